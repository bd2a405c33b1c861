import {
  getNamedType,
  isCompositeType,
  isInterfaceType,
  isObjectType,
  Kind,
  parse,
  type ConstDirectiveNode,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';

/** What an operation would do if executed, as the limits see it. */
export interface OperationMeasure {
  /** Nesting of fields (root fields are depth 1). */
  depth: number;
  /** Aliased fields, counted as often as fragments repeat them. */
  aliases: number;
  /** Directive uses, counted as often as fragments repeat them. */
  directives: number;
  /** Fields the response could hold, lists priced at the size their @listSize declares. */
  cost: number;
}

/**
 * A field's `@listSize` (the cost spec Federation 2.9 composes into the supergraph): how many items its list
 * holds, either a fixed `assumedSize` or the value of a slicing argument such as `first`; with `sizedFields`,
 * the size applies to those child lists (a connection's `edges`) rather than to the field itself.
 */
export interface ListSize {
  assumedSize?: number;
  slicingArguments?: string[];
  sizedFields?: string[];
}

/** `Type.field` → its @listSize. */
export type ListSizes = ReadonlyMap<string, ListSize>;

const LIST_SIZE_DIRECTIVES = new Set(['listSize', 'cost__listSize']);

const strings = (value: ValueNode | undefined) =>
  value?.kind === Kind.LIST ? value.values.flatMap((item) => (item.kind === Kind.STRING ? [item.value] : [])) : undefined;

function listSizeOf(directive: ConstDirectiveNode): ListSize {
  const argument = (name: string) => directive.arguments?.find((arg) => arg.name.value === name)?.value;
  const assumed = argument('assumedSize');
  return {
    assumedSize: assumed?.kind === Kind.INT ? Number(assumed.value) : undefined,
    slicingArguments: strings(argument('slicingArguments')),
    sizedFields: strings(argument('sizedFields')),
  };
}

/** Every @listSize of a supergraph. The API schema drops directives, so they are read from the SDL. */
export function readListSizes(supergraphSdl: string): ListSizes {
  const sizes = new Map<string, ListSize>();
  for (const definition of parse(supergraphSdl).definitions) {
    if (!('fields' in definition) || !('name' in definition) || !definition.name) continue;
    for (const field of definition.fields ?? []) {
      if (field.kind !== Kind.FIELD_DEFINITION) continue;
      const directive = field.directives?.find((candidate) => LIST_SIZE_DIRECTIVES.has(candidate.name.value));
      if (directive) sizes.set(`${definition.name.value}.${field.name.value}`, listSizeOf(directive));
    }
  }
  return sizes;
}

const NOTHING: OperationMeasure = { depth: 0, aliases: 0, directives: 0, cost: 0 };

const combine = (a: OperationMeasure, b: OperationMeasure): OperationMeasure => ({
  depth: Math.max(a.depth, b.depth),
  aliases: a.aliases + b.aliases,
  directives: a.directives + b.directives,
  cost: a.cost + b.cost,
});

/** The child lists a parent's slicing argument sizes (a connection's `edges`), and that size. */
interface Sized {
  fields: ReadonlySet<string>;
  size: number;
}

/**
 * Measures an operation as it would execute, fragments expanded. Each fragment is measured once per
 * context and reused, so a fragment explosion (fragments spreading the next one twice, thirty deep) costs
 * linear time here while its measure grows exponentially, which is what gets it refused. `__typename` counts
 * like any field (aliased, it multiplies a response like any other); the introspection roots `__schema` and
 * `__type` are not measured, since production refuses them and development tools need them whole.
 */
export function measureOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown> = {},
  listSizes: ListSizes = new Map(),
): OperationMeasure {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const variableDefaults = new Map<string, ValueNode>();
  for (const definition of operation.variableDefinitions ?? []) {
    if (definition.defaultValue) variableDefaults.set(definition.variable.name.value, definition.defaultValue);
  }
  const measured = new Map<string, OperationMeasure | 'measuring'>();

  const intValue = (node: ValueNode | undefined): number | undefined => {
    if (node?.kind === Kind.INT) return Number(node.value);
    if (node?.kind === Kind.VARIABLE) {
      const value = variables[node.name.value];
      if (typeof value === 'number' && Number.isInteger(value)) return value;
      return value === undefined ? intValue(variableDefaults.get(node.name.value)) : undefined;
    }
    return undefined;
  };

  /** The list size @listSize declares for this use of a field: the largest slicing argument, else the assumed size. */
  const sizeOf = (field: FieldNode, definition: GraphQLField<unknown, unknown> | undefined, listSize: ListSize): number => {
    const sliced = (listSize.slicingArguments ?? []).flatMap((name) => {
      const given = intValue(field.arguments?.find((arg) => arg.name.value === name)?.value);
      const fallback = definition?.args.find((arg) => arg.name === name)?.defaultValue;
      const value = given ?? (typeof fallback === 'number' ? fallback : undefined);
      return value === undefined ? [] : [Math.max(0, value)];
    });
    return sliced.length > 0 ? Math.max(...sliced) : (listSize.assumedSize ?? 1);
  };

  const typeNamed = (name: string): GraphQLCompositeType | undefined => {
    const type = schema.getType(name);
    return type && isCompositeType(type) ? type : undefined;
  };

  const measureFragment = (name: string, sized: Sized | undefined): OperationMeasure => {
    const key = sized ? `${name}|${[...sized.fields].join(',')}:${sized.size}` : name;
    const known = measured.get(key);
    // Validation refuses fragment cycles before this runs; the guard only keeps a bug from recursing forever.
    if (known === 'measuring') return NOTHING;
    if (known) return known;
    const fragment = fragments.get(name);
    if (!fragment) return NOTHING;
    measured.set(key, 'measuring');
    const result = measureSelections(fragment.selectionSet, typeNamed(fragment.typeCondition.name.value), sized);
    measured.set(key, result);
    return result;
  };

  function measureField(field: FieldNode, parent: GraphQLCompositeType | undefined, sized: Sized | undefined): OperationMeasure {
    const name = field.name.value;
    const definition = parent && (isObjectType(parent) || isInterfaceType(parent)) ? parent.getFields()[name] : undefined;
    const listSize = parent ? listSizes.get(`${parent.name}.${name}`) : undefined;
    const size = listSize ? sizeOf(field, definition, listSize) : 1;
    // With sizedFields the size belongs to those child lists; without, the field is the list.
    const sizesChildren = listSize?.sizedFields?.length ? { fields: new Set(listSize.sizedFields), size } : undefined;
    const childType = definition ? getNamedType(definition.type) : undefined;
    const children = field.selectionSet
      ? measureSelections(field.selectionSet, childType && isCompositeType(childType) ? childType : undefined, sizesChildren)
      : NOTHING;
    const multiplier = (sizesChildren ? 1 : size) * (sized?.fields.has(name) ? sized.size : 1);
    return {
      depth: 1 + children.depth,
      aliases: (field.alias ? 1 : 0) + children.aliases,
      directives: children.directives,
      cost: 1 + multiplier * children.cost,
    };
  }

  function measureSelections(selectionSet: SelectionSetNode, parent: GraphQLCompositeType | undefined, sized?: Sized): OperationMeasure {
    let total = NOTHING;
    for (const selection of selectionSet.selections) {
      let measure: OperationMeasure;
      if (selection.kind === Kind.FIELD) {
        if (selection.name.value === '__schema' || selection.name.value === '__type') continue;
        measure = measureField(selection, parent, sized);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        // Branches on an abstract type are summed: an over-estimate, never an under-estimate.
        const type = selection.typeCondition ? typeNamed(selection.typeCondition.name.value) : parent;
        measure = measureSelections(selection.selectionSet, type, sized);
      } else {
        measure = measureFragment(selection.name.value, sized);
      }
      total = combine(total, { ...measure, directives: measure.directives + (selection.directives?.length ?? 0) });
    }
    return total;
  }

  const rootType = schema.getRootType(operation.operation) ?? undefined;
  const result = measureSelections(operation.selectionSet, rootType);
  return { ...result, directives: result.directives + (operation.directives?.length ?? 0) };
}
