import {
  assert,
  ERRORS,
  isCompositeType,
  isCustomScalarType,
  isEnumType,
  isListType,
  isNonNullType,
  isObjectType,
  isSubtype,
  isValidLeafValue,
  typenameFieldName,
  Variable,
  type CompositeType,
  type Directive,
  type NamedType,
  type Operation,
  type OutputType,
  type Schema,
  type SelectionSet,
} from '@apollo/federation-internals';
import type { GraphQLError } from 'graphql';
import { BUBBLE, compileLevel, inlineFragments, isPlainLevel, type Level, type LevelRun } from './compiled-level.ts';
import { Kind, ShapeKind, type CompositeShape, type Condition, type FragmentSelection, type Guard, type Selection, type Selections, type Shape, type ValueSelection } from './selections.ts';

/**
 * Shapes what the fetches gathered into the client's answer: only the fields asked for, in the order asked,
 * with `null`s propagated to the nearest nullable parent and errors where Apollo's result shaping reports them.
 *
 * It follows `computeResponse` in @apollo/gateway's `resultShaping` step for step, over the same normalised
 * `Operation`, so that answers and errors are the same byte for byte. What changes is when the work happens:
 * directives, types, type conditions and leaf checks are resolved once per operation here, not once per value
 * per request, and the output is plain objects (Apollo's `Object.create(null)` ones are slow to serialise).
 */
export type Projection = (input: Record<string, unknown>, variables: Record<string, unknown> | undefined) => ProjectionResult;

export interface ProjectionResult {
  data: Record<string, unknown> | null;
  errors: GraphQLError[];
}

type Path = (string | number)[];

export class UnsupportedOperation extends Error {}

const hasOwn = (object: object, key: string) => Object.prototype.hasOwnProperty.call(object, key);
const own = (object: Record<string, unknown>, key: string, inherited: boolean) => (inherited ? (hasOwn(object, key) ? object[key] : undefined) : object[key]);

/** Compiles the projection of one operation (from `operationFromDocument` on the API schema). */
export function compileProjection(operation: Operation): Projection {
  const schema = operation.schema();
  const project = compileSelectionProjection(schema, operation.selectionSet, operation.collectDefaultedVariableValues());
  const rootType = schema.schemaDefinition.rootType(operation.rootKind)!;
  return (input, provided) => project(input, provided, [], rootType);
}

/**
 * The projection of a selection set at some position of the answer: a deferred fragment's, applied to each
 * object it covers. Error paths start at `path`; `parentType` is the position's type (its runtime type when
 * the object names one).
 */
export type SelectionProjection = (
  input: Record<string, unknown>,
  variables: Record<string, unknown> | undefined,
  path: readonly (string | number)[],
  parentType: CompositeType,
) => ProjectionResult;

export function compileSelectionProjection(schema: Schema, selectionSet: SelectionSet, defaults: Record<string, unknown>): SelectionProjection {
  const shapes = new Map<string, Shape>();
  const leafChecks = new Map<NamedType, (value: unknown) => boolean>();

  const leafCheck = (type: NamedType): ((value: unknown) => boolean) => {
    let check = leafChecks.get(type);
    if (!check) {
      if (isCustomScalarType(type)) check = () => true;
      else if (isEnumType(type)) {
        const values = new Set(type.values.map((value) => value.name));
        check = (value) => typeof value === 'string' && values.has(value);
      } else {
        check = builtInLeafCheck(schema, type);
      }
      leafChecks.set(type, check);
    }
    return check;
  };

  const shapeOf = (type: OutputType): Shape => {
    const label = String(type);
    let shape = shapes.get(label);
    if (shape) return shape;
    if (isNonNullType(type)) shape = { kind: ShapeKind.NonNull, of: shapeOf(type.ofType), label };
    else if (isListType(type)) shape = { kind: ShapeKind.List, of: shapeOf(type.ofType), label };
    else if (isCompositeType(type)) shape = { kind: ShapeKind.Composite, type, label };
    else shape = { kind: ShapeKind.Leaf, valid: leafCheck(type), label };
    shapes.set(label, shape);
    return shape;
  };

  const conditionOf = (directive: Directive<never, { if: boolean | Variable }> | undefined): Condition | undefined => {
    if (!directive) return undefined;
    const value = directive.arguments().if;
    return value instanceof Variable ? { directive, variable: value.name } : { directive, literal: value };
  };

  const guardOf = (element: { appliedDirectivesOf(definition: unknown): readonly unknown[] }): Guard | undefined => {
    const skip = conditionOf(element.appliedDirectivesOf(schema.skipDirective())[0] as never);
    const include = conditionOf(element.appliedDirectivesOf(schema.includeDirective())[0] as never);
    return skip || include ? { skip, include } : undefined;
  };

  const compile = (selectionSet: SelectionSet): Selections =>
    selectionSet.selections().map((selection): Selection => {
      if (selection.kind === 'FieldSelection') {
        const field = selection.element;
        const responseName = field.responseName();
        // A plain object cannot hold `__proto__` as data; Apollo's path can.
        if (responseName === '__proto__') throw new UnsupportedOperation('a response key named __proto__');
        if (field.definition.isSchemaIntrospectionField()) throw new UnsupportedOperation('schema introspection');
        const guard = guardOf(field);
        // Read as own properties only where a prototype has the name too (`constructor`; `map` on a list sent
        // where an object belongs).
        const inherited = responseName in Object.prototype || responseName in Array.prototype;
        if (field.name === typenameFieldName) return { kind: Kind.Typename, guard, responseName, inherited };
        return {
          kind: Kind.Value,
          guard,
          responseName,
          inherited,
          fresh: false,
          type: shapeOf(field.definition.type!),
          selections: selection.selectionSet ? compile(selection.selectionSet) : undefined,
        };
      }
      return {
        kind: Kind.Fragment,
        guard: guardOf(selection.element),
        typeCondition: selection.element.typeCondition,
        selections: compile(selection.selectionSet),
        applies: new Map(),
      };
    });

  /**
   * Marks the value selections of one object's level (its fragments included) whose response name is written
   * once. Below a name written twice, the second writer merges into what the first wrote: nothing there is fresh.
   */
  const markFresh = (selections: Selections, objectFresh: boolean): Selections => {
    const counts = new Map<string, number>();
    const values: ValueSelection[] = [];
    const count = (level: Selections) => {
      for (const selection of level) {
        if (selection.kind === Kind.Fragment) count(selection.selections);
        else {
          counts.set(selection.responseName, (counts.get(selection.responseName) ?? 0) + 1);
          if (selection.kind === Kind.Value) values.push(selection);
        }
      }
    };
    count(selections);
    for (const selection of values) {
      selection.fresh = objectFresh && !selection.inherited && counts.get(selection.responseName) === 1;
      if (selection.selections) markFresh(selection.selections, selection.fresh);
    }
    return selections;
  };

  const root = markFresh(compile(selectionSet), true);

  // Bottom-up, so that a level's code can call the levels below it directly. Only a field's selections (and the
  // root) are levels: a fragment's body is part of its object's level, written in place when the fragment
  // always applies there, and run by the interpreter otherwise.
  let generating = true;
  const generateBelow = (selections: Selections): void => {
    for (const selection of selections) {
      if (selection.kind === Kind.Fragment) generateBelow(selection.selections);
      else if (selection.kind === Kind.Value && selection.selections) selection.level = generate(selection.selections, compositeOf(selection.type));
    }
  };
  const generate = (selections: Selections, parentType: CompositeType): Level | undefined => {
    generateBelow(selections);
    const inlined = generating ? inlineFragments(selections, parentType) : undefined;
    if (!inlined || !isPlainLevel(inlined.selections)) return undefined;
    try {
      return compileLevel(inlined.selections, inlined.inlined ? { typename: inlined.typed ? parentType.name : undefined, selections } : undefined);
    } catch (error) {
      // Node run with --disallow-code-generation-from-strings: the interpreter gives the same answers.
      if (!(error instanceof EvalError)) throw error;
      generating = false;
      return undefined;
    }
  };
  const rootLevel = generate(root, selectionSet.parentType);
  const compositeTypes = new Map<string, CompositeType>();

  return (input, provided, path, parentType) => {
    const variables: Record<string, unknown> = { __proto__: null, ...defaults, ...provided };
    const errors: GraphQLError[] = [];
    const run = createRun(schema, variables, errors, compositeTypes);
    if (rootLevel) {
      const data = rootLevel(run.levelRun, input, [...path], parentType);
      return { data: data === BUBBLE ? null : data, errors };
    }
    const data: Record<string, unknown> = {};
    const bubbled = run.applySelections(input, root, data, [...path], parentType);
    return { data: bubbled ? null : data, errors };
  };
}

/** The object, interface or union type a field's values have, under its lists and non-nulls. */
function compositeOf(shape: Shape): CompositeType {
  while (shape.kind === ShapeKind.NonNull || shape.kind === ShapeKind.List) shape = shape.of;
  if (shape.kind !== ShapeKind.Composite) throw new Error(`A selection set on the leaf type ${shape.label}`);
  return shape.type;
}

const isInteger = (value: unknown) => typeof value === 'number' && Number.isInteger(value) && Number.isFinite(value);

/** `isValidLeafValue` for the built-in scalars, decided once per type instead of once per value. */
function builtInLeafCheck(schema: Schema, type: NamedType): (value: unknown) => boolean {
  const leaf = type as Parameters<typeof isValidLeafValue>[2];
  // Integers print without an exponent up to 1e21; past that Apollo's regular expression says no.
  if (type === schema.intType() || type === schema.idType()) {
    const integral = (value: unknown) => isInteger(value) && Math.abs(value as number) < 1e21;
    return type === schema.idType()
      ? (value) => typeof value === 'string' || (typeof value === 'number' ? integral(value) : isValidLeafValue(schema, value, leaf))
      : (value) => (typeof value === 'number' ? integral(value) : isValidLeafValue(schema, value, leaf));
  }
  if (type === schema.stringType()) return (value) => typeof value === 'string' || isValidLeafValue(schema, value, leaf);
  return (value) => isValidLeafValue(schema, value, leaf);
}

function createRun(schema: Schema, variables: Record<string, unknown>, errors: GraphQLError[], compositeTypes: Map<string, CompositeType>) {
  // What the last `complete` call reports besides its value: a null that must bubble up past a non-null
  // position, and whether an error was already recorded for it (so that only one is).
  let invalid = false;
  let errored = false;

  const holds = (condition: Condition): boolean => {
    if (condition.variable === undefined) return condition.literal!;
    const value = variables[condition.variable];
    if (typeof value !== 'boolean') assert(false, `Unexpected value ${value} for variable $${condition.variable} of ${condition.directive}`);
    return value;
  };
  const skipped = (guard: Guard) => (guard.skip !== undefined && holds(guard.skip)) || (guard.include !== undefined && !holds(guard.include));

  const describe = (path: Path, shape: Shape, parentType: CompositeType) => {
    const element = path[path.length - 1];
    assert(element !== undefined, 'Should not have been called on an empty path');
    return typeof element === 'string' ? `field ${parentType}.${element}` : `array element of type ${shape.label} at index ${element}`;
  };

  /** A composite type by runtime `__typename`, undefined when the schema has none. */
  function compositeType(typename: string): CompositeType | undefined {
    let type = compositeTypes.get(typename);
    if (type === undefined) {
      const named = schema.type(typename);
      // Only names the schema has are kept: a subgraph sending made-up ones cannot grow the map.
      if (!named || !isCompositeType(named)) return undefined;
      type = named;
      compositeTypes.set(typename, type);
    }
    return type;
  }

  /**
   * A `__typename` selection's answer from what the subgraph sent for it (`value`, null when nothing), or null when
   * the object must bubble. Root types answer with the supergraph's names, and an @interfaceObject's name is never
   * a runtime type.
   */
  function runtimeTypename(input: Record<string, unknown>, responseName: string, value: unknown, parentType: CompositeType): string | null {
    if (value === null && responseName !== typenameFieldName) value = input[typenameFieldName] ?? null;
    const type = value !== null && typeof value === 'string' ? (schema.type(value) ?? parentType) : parentType;
    return isObjectType(type) ? type.name : null;
  }

  const fragmentApplies = (fragment: FragmentSelection, typename: string | undefined, parentType: CompositeType): boolean => {
    const condition = fragment.typeCondition;
    if (!condition) return true;
    const key = typename ? typename : `\0${parentType.name}`;
    let applies = fragment.applies.get(key);
    if (applies === undefined) {
      if (typename) {
        const type = schema.type(typename);
        // Only names the schema has are kept: a subgraph sending made-up ones cannot grow the map.
        if (!type) return false;
        applies = isSubtype(condition, type);
      } else {
        applies = isSubtype(condition, parentType);
      }
      fragment.applies.set(key, applies);
    }
    return applies;
  };

  /** Returns true when a null must replace the whole object (Apollo's NULL_BUBBLE_UP). */
  function applySelections(input: Record<string, unknown>, selections: Selections, output: Record<string, unknown>, path: Path, parentType: CompositeType): boolean {
    for (let index = 0; index < selections.length; index++) {
      const selection = selections[index]!;
      if (selection.guard && skipped(selection.guard)) continue;

      if (selection.kind === Kind.Fragment) {
        const typename = input[typenameFieldName];
        if (typename && typeof typename !== 'string') assert(false, `Got unexpected value for __typename: ${typename}`);
        if (fragmentApplies(selection, typename as string | undefined, parentType)) {
          if (applySelections(input, selection.selections, output, path, selection.typeCondition ?? parentType)) return true;
        }
        continue;
      }

      const { responseName, inherited } = selection;
      if (selection.kind === Kind.Value && selection.fresh) {
        path.push(responseName);
        const value = input[responseName];
        output[responseName] = complete(undefined, selection.type, value === undefined ? null : value, selection.selections, selection.level, path, parentType);
        path.pop();
        if (invalid) return true;
        continue;
      }
      const outputValue = own(output, responseName, inherited);
      const inputValue = own(input, responseName, inherited) ?? null;

      if (selection.kind === Kind.Typename) {
        if (outputValue === undefined) {
          const name = runtimeTypename(input, responseName, inputValue, parentType);
          if (name === null) return true;
          output[responseName] = name;
        }
        continue;
      }

      path.push(responseName);
      const updated = complete(outputValue, selection.type, inputValue, selection.selections, selection.level, path, parentType);
      output[responseName] = updated;
      path.pop();
      if (invalid) return true;
    }
    return false;
  }

  // The assertions test first and build their message only when they fail: this runs once per value.
  function complete(outputValue: unknown, shape: Shape, inputValue: unknown, selections: Selections | undefined, level: Level | undefined, path: Path, parentType: CompositeType): unknown {
    if (inputValue === undefined) assert(false, 'Should not pass undefined for `inputValue` to this method');

    if (outputValue === null || (outputValue !== undefined && !selections)) {
      invalid = errored = false;
      return outputValue;
    }

    switch (shape.kind) {
      case ShapeKind.NonNull: {
        const updated = complete(outputValue, shape.of, inputValue, selections, level, path, parentType);
        if (updated === null) {
          if (!errored) {
            errors.push(ERRORS.INVALID_GRAPHQL.err(`Cannot return null for non-nullable ${describe(path, shape.of, parentType)}.`, { path: Array.from(path) }));
          }
          invalid = errored = true;
          return updated;
        }
        invalid = errored = false;
        return updated;
      }
      default:
        if (inputValue === null) {
          invalid = errored = false;
          return null;
        }
    }

    switch (shape.kind) {
      case ShapeKind.List: {
        if (!Array.isArray(inputValue)) assert(false, `Invalid non-list value ${inputValue} returned by subgraph for list type ${shape.label}`);
        if (outputValue !== undefined && !Array.isArray(outputValue)) assert(false, `Invalid non-list value ${outputValue} returned by subgraph for list type ${shape.label}`);
        // What an earlier selection of the same response name wrote (through a fragment), merged into here.
        const list = outputValue as unknown[] | undefined;
        const length = inputValue.length;
        if (list && length !== list.length) assert(false, `[${inputValue}].length (${length}) !== [${list}].length (${list.length})`);
        let nullify = false;
        let anyErrors = false;
        const updated = new Array<unknown>(length);
        for (let index = 0; index < length; index++) {
          path.push(index);
          updated[index] = complete(list?.[index], shape.of, inputValue[index], selections, level, path, parentType);
          path.pop();
          nullify ||= invalid;
          anyErrors ||= errored;
        }
        invalid = false;
        errored = anyErrors;
        return nullify ? null : updated;
      }
      case ShapeKind.Composite:
        return completeObject(shape, outputValue, inputValue, selections, level, path, parentType);
      case ShapeKind.Leaf: {
        if (outputValue !== undefined) assert(false, `Excepted output to be undefined but got ${shape.label} for type ${shape.label}`);
        const valid = shape.valid(inputValue);
        if (!valid) errors.push(ERRORS.INVALID_GRAPHQL.err(`Invalid value found for ${describe(path, shape, parentType)}.`, { path: Array.from(path) }));
        invalid = false;
        errored = !valid;
        return valid ? inputValue : null;
      }
      default:
        throw new Error('unreachable');
    }
  }

  function completeObject(shape: CompositeShape, outputValue: unknown, inputValue: unknown, selections: Selections | undefined, level: Level | undefined, path: Path, parentType: CompositeType): unknown {
    if (!selections) assert(false, `Invalid empty selection set for composite type ${shape.label}`);
    if (typeof inputValue !== 'object') assert(false, `Invalid non-object value ${inputValue} returned by subgraph for composite type ${shape.label}`);
    if (outputValue !== undefined && typeof outputValue !== 'object') assert(false, `Invalid non-object value ${inputValue} returned by subgraph for composite type ${shape.label}`);
    const object = inputValue as Record<string, unknown>;
    const typename = object[typenameFieldName];
    if (typename !== undefined && typeof typename !== 'string') assert(false, `Invalid non-string value ${typename} for __typename at ${path}`);
    let objectType: CompositeType = shape.type;
    if (typename) {
      const named = compositeType(typename);
      if (!named) {
        // Never the subgraph's typename in the message: it may name an @inaccessible type.
        errors.push(ERRORS.INVALID_GRAPHQL.err(`Invalid __typename found for object at ${describe(path, shape, parentType)}.`, { path: Array.from(path) }));
        invalid = false;
        errored = true;
        return null;
      }
      objectType = named;
    }
    if (level !== undefined && outputValue === undefined) {
      const generated = level(levelRun, object, path, objectType);
      invalid = false;
      errored = generated === BUBBLE;
      return errored ? null : generated;
    }
    const target = outputValue === undefined ? {} : (outputValue as Record<string, unknown>);
    const bubbled = applySelections(object, selections!, target, path, objectType);
    invalid = false;
    errored = bubbled;
    return bubbled ? null : target;
  }

  const levelRun: LevelRun = {
    skipped,
    fallback(shape, input, selections, level, path, parentType) {
      const value = complete(undefined, shape, input, selections, level, path, parentType);
      levelRun.invalid = invalid;
      levelRun.errored = errored;
      return value;
    },
    invalid: false,
    errored: false,
    nonNull(path, last, description) {
      const at = last === undefined ? Array.from(path) : [...path, last];
      errors.push(ERRORS.INVALID_GRAPHQL.err(`Cannot return null for non-nullable ${description}.`, { path: at }));
    },
    invalidValue(path, last, description) {
      const at = last === undefined ? Array.from(path) : [...path, last];
      errors.push(ERRORS.INVALID_GRAPHQL.err(`Invalid value found for ${description}.`, { path: at }));
    },
    compositeType,
    typename: (input, responseName, parentType) => runtimeTypename(input, responseName, input[responseName] ?? null, parentType),
    interpret(input, selections, path, parentType) {
      const output: Record<string, unknown> = {};
      return applySelections(input, selections, output, path, parentType) ? BUBBLE : output;
    },
  };

  return { applySelections, levelRun };
}
