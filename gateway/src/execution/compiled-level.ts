import { isObjectType, type CompositeType } from '@apollo/federation-internals';
import { Kind, ShapeKind, type Guard, type Selection, type Selections, type Shape } from './selections.ts';

/**
 * The projection of one object's selections, generated as JavaScript once per operation: each response name a
 * constant property read and an object literal (or constant stores), each leaf check and null check inline. The
 * interpreter in `projection.ts` reads response names from data, so every read and store there is a
 * megamorphic keyed access; here each one has its own inline cache.
 *
 * It covers only what a level reached fresh looks like: fields each written once (no fragments to merge, no
 * name a prototype also has). Anything unusual in the data (a non-list where a list belongs, a non-object or an
 * unknown `__typename` where an object belongs) goes back to the interpreter, which reports it exactly as Apollo
 * does; so do the levels below that are not plain.
 */
export type Level = (run: LevelRun, input: Record<string, unknown>, path: (string | number)[], parentType: CompositeType) => Record<string, unknown> | typeof BUBBLE;

/** What a level answers when a null must replace its whole object (Apollo's NULL_BUBBLE_UP). */
export const BUBBLE: unique symbol = Symbol('bubble');

/** The per-request side of a level: errors, variables, and the interpreter for what the level hands back. */
export interface LevelRun {
  skipped(guard: Guard): boolean;
  /** The interpreter's completion of a value at a fresh position, with its flags left in `invalid` and `errored`. */
  fallback(shape: Shape, input: unknown, selections: Selections | undefined, level: Level | undefined, path: (string | number)[], parentType: CompositeType): unknown;
  invalid: boolean;
  errored: boolean;
  /** Records "Cannot return null for non-nullable …" at `path` (plus `last`, when the path does not hold it yet). */
  nonNull(path: (string | number)[], last: string | number | undefined, description: string): void;
  /** Records "Invalid value found for …". */
  invalidValue(path: (string | number)[], last: string | number | undefined, description: string): void;
  /** A composite type by runtime `__typename`, undefined when the schema has none. */
  compositeType(typename: string): CompositeType | undefined;
  /** A `__typename` selection's value, or null when it must bubble (not an object type). */
  typename(input: Record<string, unknown>, responseName: string, parentType: CompositeType): string | null;
  /** The interpreter's projection of one object reached fresh, for what a level's inlined fragments do not cover. */
  interpret(input: Record<string, unknown>, selections: Selections, path: (string | number)[], parentType: CompositeType): Record<string, unknown> | typeof BUBBLE;
}

/** A level whose fragments were inlined because they apply to its object type: objects of any other type are interpreted. */
export interface InlinedFragments {
  /** The object type the inlined fragments' conditions name; undefined when none has a condition. */
  typename: string | undefined;
  /** The level's selections as written, fragments included. */
  selections: Selections;
}

/**
 * `selections` with the fragments that always apply to an object of `parentType` written in place: no `@skip` or
 * `@include` on them, and no type condition but `parentType` itself (an object type). Undefined when a fragment
 * is not one of those. `typed`: a fragment had a type condition, which the level checks against `__typename`.
 */
export function inlineFragments(selections: Selections, parentType: CompositeType): { selections: Selections; typed: boolean; inlined: boolean } | undefined {
  const flat: Selection[] = [];
  let typed = false;
  const inlined = selections.some((selection) => selection.kind === Kind.Fragment);
  for (const selection of selections) {
    if (selection.kind !== Kind.Fragment) {
      flat.push(selection);
      continue;
    }
    if (selection.guard) return undefined;
    if (selection.typeCondition) {
      if (!isObjectType(parentType) || selection.typeCondition.name !== parentType.name) return undefined;
      typed = true;
    }
    const inner = inlineFragments(selection.selections, parentType);
    if (!inner) return undefined;
    flat.push(...inner.selections);
    typed ||= inner.typed;
  }
  return { selections: flat, typed, inlined };
}

/** Whether a level's selections are plain enough to generate: fields each written once, no fragment. */
export function isPlainLevel(selections: Selections): boolean {
  const names = new Set<string>();
  for (const selection of selections) {
    if (selection.kind === Kind.Fragment || selection.inherited || names.has(selection.responseName)) return false;
    if (selection.kind === Kind.Value && !selection.fresh) return false;
    names.add(selection.responseName);
  }
  return true;
}

const isLeafish = (shape: Shape) => shape.kind === ShapeKind.Leaf || (shape.kind === ShapeKind.NonNull && shape.of.kind === ShapeKind.Leaf);

/**
 * Generates the level of `selections`, which must be plain (`isPlainLevel`). The fields below carry their own
 * levels already (`ValueSelection.level`, undefined where the interpreter runs). `inlined`: `selections` came
 * from `inlineFragments`, with type conditions to check.
 */
export function compileLevel(selections: Selections, inlined?: InlinedFragments): Level {
  const constants: unknown[] = [];
  const constant = (value: unknown) => `K[${constants.push(value) - 1}]`;
  let names = 0;
  const name = (prefix: string) => `${prefix}${names++}`;
  const named = <T extends string[]>(...prefixes: T) => prefixes.map(name) as { [K in keyof T]: string };
  const lines: string[] = [];
  if (inlined) {
    // The interpreter decides a fragment's condition by the object's `__typename`, else by its parent type, and
    // asserts on a `__typename` that is not a string (the parent level checks that too, but not above the root).
    const typed = inlined.typename === undefined ? '' : ` || (t ? t : parentType.name) !== ${JSON.stringify(inlined.typename)}`;
    lines.push(`{ const t = input.__typename; if ((t && typeof t !== 'string')${typed}) return run.interpret(input, ${constant(inlined.selections)}, path, parentType); }`);
  }

  /** A description of the position `last` names, for error messages, as a JavaScript expression. */
  const describe = (field: string | undefined, index: string | undefined, shape: Shape) =>
    field !== undefined
      ? `"field " + parentType + ${JSON.stringify(`.${field}`)}`
      : `${JSON.stringify(`array element of type ${shape.label} at index `)} + ${index}`;

  /**
   * Completes `input` (never undefined) at a fresh position into `output`, leaving `inv` and `err` as the
   * interpreter's `complete` leaves `invalid` and `errored`. `pushed`: the path already ends with the position.
   */
  const emit = (shape: Shape, input: string, output: string, field: string | undefined, index: string | undefined, pushed: boolean, selections: Selections | undefined, level: Level | undefined) => {
    const last = pushed ? 'undefined' : (index ?? JSON.stringify(field));
    const fallback = () =>
      `${output} = run.fallback(${constant(shape)}, ${input}, ${constant(selections)}, ${constant(level)}, path, parentType); inv = run.invalid; err = run.errored;`;
    switch (shape.kind) {
      case ShapeKind.NonNull:
        emit(shape.of, input, output, field, index, pushed, selections, level);
        lines.push(`if (${output} === null) { if (!err) run.nonNull(path, ${last}, ${describe(field, index, shape.of)}); inv = err = true; } else { inv = err = false; }`);
        return;
      case ShapeKind.Leaf:
        lines.push(
          `if (${input} === null) { ${output} = null; inv = err = false; }`,
          `else if (${constant(shape.valid)}(${input})) { ${output} = ${input}; inv = err = false; }`,
          `else { run.invalidValue(path, ${last}, ${describe(field, index, shape)}); ${output} = null; inv = false; err = true; }`,
        );
        return;
      case ShapeKind.List: {
        const [length, list, nullify, anyErrors, i, element, completed] = named('n', 'l', 'z', 'e', 'i', 'x', 'c');
        const elementPushed = !isLeafish(shape.of);
        lines.push(
          `if (${input} === null) { ${output} = null; inv = err = false; }`,
          `else if (!Array.isArray(${input})) { ${fallback()} }`,
          `else { const ${length} = ${input}.length; const ${list} = new Array(${length}); let ${nullify} = false, ${anyErrors} = false;`,
          `for (let ${i} = 0; ${i} < ${length}; ${i}++) { const ${element} = ${input}[${i}]; let ${completed};`,
        );
        if (elementPushed) lines.push(`path.push(${i});`);
        // An undefined element cannot come from JSON; the interpreter asserts on it.
        lines.push(`if (${element} === undefined) { ${completed} = run.fallback(${constant(shape.of)}, ${element}, ${constant(selections)}, undefined, path, parentType); inv = run.invalid; err = run.errored; } else {`);
        emit(shape.of, element, completed, undefined, i, elementPushed, selections, level);
        lines.push('}');
        if (elementPushed) lines.push('path.pop();');
        lines.push(
          `${list}[${i}] = ${completed}; if (inv) ${nullify} = true; if (err) ${anyErrors} = true; }`,
          `inv = false; err = ${anyErrors}; ${output} = ${nullify} ? null : ${list}; }`,
        );
        return;
      }
      case ShapeKind.Composite: {
        if (!level) {
          lines.push(fallback());
          return;
        }
        const [typename, type, object] = named('t', 'y', 'o');
        lines.push(
          `if (${input} === null) { ${output} = null; inv = err = false; }`,
          `else { let ${typename}, ${type} = ${constant(shape.type)};`,
          `if (typeof ${input} !== 'object' || ((${typename} = ${input}.__typename) !== undefined && typeof ${typename} !== 'string') || (${typename} && (${type} = run.compositeType(${typename})) === undefined)) { ${fallback()} }`,
          `else { const ${object} = ${constant(level)}(run, ${input}, path, ${type}); inv = false; err = ${object} === BUBBLE; ${output} = err ? null : ${object}; } }`,
        );
        return;
      }
    }
  };

  const entries: string[] = [];
  const guarded = selections.some((selection) => selection.guard);
  if (guarded) lines.push('const out = {};');
  for (const selection of selections) {
    if (selection.kind === Kind.Fragment) throw new Error('not a plain level');
    const key = JSON.stringify(selection.responseName);
    const value = name('v');
    if (selection.guard) lines.push(`if (!run.skipped(${constant(selection.guard)})) {`);
    if (selection.kind === Kind.Typename) {
      lines.push(`const ${value} = run.typename(input, ${key}, parentType); if (${value} === null) return BUBBLE;`);
    } else {
      const input = name('r');
      const pushed = !isLeafish(selection.type);
      lines.push(`let ${input} = input[${key}]; if (${input} === undefined) ${input} = null; let ${value};`);
      if (pushed) lines.push(`path.push(${key});`);
      emit(selection.type, input, value, selection.responseName, undefined, pushed, selection.selections, selection.level);
      if (pushed) lines.push('path.pop();');
      lines.push('if (inv) return BUBBLE;');
    }
    if (selection.guard) lines.push(`out[${key}] = ${value}; }`);
    else if (guarded) lines.push(`out[${key}] = ${value};`);
    else entries.push(`${key}: ${value}`);
  }
  lines.push(guarded ? 'return out;' : `return { ${entries.join(', ')} };`);

  // Response names are GraphQL names (letters, digits, underscores) and are written as JSON string literals;
  // everything else the code uses is passed in as a constant.
  const source = `return function level(run, input, path, parentType) {\nlet inv = false, err = false;\n${lines.join('\n')}\n};`;
  return new Function('K', 'BUBBLE', source)(constants, BUBBLE) as Level;
}
