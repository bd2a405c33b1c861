import {
  getNamedType,
  isCompositeType,
  isInterfaceType,
  isObjectType,
  Kind,
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
  /**
   * Fields the response could hold: each field counts 1, and a field with a `first` argument multiplies
   * everything under it by `first` (the literal, the variable's value, or the schema default).
   */
  cost: number;
}

const NOTHING: OperationMeasure = { depth: 0, aliases: 0, directives: 0, cost: 0 };

const combine = (a: OperationMeasure, b: OperationMeasure): OperationMeasure => ({
  depth: Math.max(a.depth, b.depth),
  aliases: a.aliases + b.aliases,
  directives: a.directives + b.directives,
  cost: a.cost + b.cost,
});

/**
 * Measures an operation as it would execute, fragments expanded. Each fragment is measured once and
 * reused, so a fragment explosion (fragments spreading the next one twice, thirty deep) costs linear time
 * here while its measure grows exponentially, which is what gets it refused. Introspection fields
 * (`__typename`, `__schema`) never reach a subgraph and are not counted.
 */
export function measureOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown> = {},
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

  /** How many items a `first`-paged field can return; 1 for every other field. */
  const pageSize = (field: FieldNode, definition: GraphQLField<unknown, unknown> | undefined): number => {
    const argument = definition?.args.find((arg) => arg.name === 'first');
    if (!argument) return 1;
    const given = intValue(field.arguments?.find((arg) => arg.name.value === 'first')?.value);
    const fallback = typeof argument.defaultValue === 'number' ? argument.defaultValue : 1;
    return Math.max(0, given ?? fallback);
  };

  const typeNamed = (name: string): GraphQLCompositeType | undefined => {
    const type = schema.getType(name);
    return type && isCompositeType(type) ? type : undefined;
  };

  const measureFragment = (name: string): OperationMeasure => {
    const known = measured.get(name);
    // Validation refuses fragment cycles before this runs; the guard only keeps a bug from recursing forever.
    if (known === 'measuring') return NOTHING;
    if (known) return known;
    const fragment = fragments.get(name);
    if (!fragment) return NOTHING;
    measured.set(name, 'measuring');
    const result = measureSelections(fragment.selectionSet, typeNamed(fragment.typeCondition.name.value));
    measured.set(name, result);
    return result;
  };

  function measureSelections(selectionSet: SelectionSetNode, parent: GraphQLCompositeType | undefined): OperationMeasure {
    let total = NOTHING;
    for (const selection of selectionSet.selections) {
      const directives = selection.directives?.length ?? 0;
      let measure: OperationMeasure;
      if (selection.kind === Kind.FIELD) {
        if (selection.name.value.startsWith('__')) continue;
        const definition = parent && (isObjectType(parent) || isInterfaceType(parent)) ? parent.getFields()[selection.name.value] : undefined;
        const childType = definition ? getNamedType(definition.type) : undefined;
        const children = selection.selectionSet
          ? measureSelections(selection.selectionSet, childType && isCompositeType(childType) ? childType : undefined)
          : NOTHING;
        measure = {
          depth: 1 + children.depth,
          aliases: (selection.alias ? 1 : 0) + children.aliases,
          directives: children.directives,
          cost: 1 + pageSize(selection, definition) * children.cost,
        };
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        // Branches on an abstract type are summed: an over-estimate, never an under-estimate.
        const type = selection.typeCondition ? typeNamed(selection.typeCondition.name.value) : parent;
        measure = measureSelections(selection.selectionSet, type);
      } else {
        measure = measureFragment(selection.name.value);
      }
      total = combine(total, { ...measure, directives: measure.directives + directives });
    }
    return total;
  }

  const rootType = schema.getRootType(operation.operation) ?? undefined;
  const result = measureSelections(operation.selectionSet, rootType);
  return { ...result, directives: result.directives + (operation.directives?.length ?? 0) };
}
