import {
  DirectiveLocation,
  getOperationAST,
  GraphQLBoolean,
  GraphQLDirective,
  GraphQLSchema,
  parse,
  print,
  Kind,
  valueFromASTUntyped,
  type DirectiveNode,
  type DocumentNode,
  type OperationDefinitionNode,
} from 'graphql';

/**
 * `query @live { … }`: the answer is kept current. The spelling of graphql-live-query (n1ru4l), which urql and
 * Apollo Client users already write; `if: false` makes it a plain query, as `@defer(if:)` does.
 */
export const LIVE_DIRECTIVE = new GraphQLDirective({
  name: 'live',
  description: 'Keeps the answer current: the query runs again whenever a committed write touches what it read (over graphql-ws and server-sent events).',
  locations: [DirectiveLocation.QUERY],
  args: { if: { type: GraphQLBoolean, defaultValue: true } },
});

/** The API schema clients validate against, with `@live` (Apollo validates every request against it). */
export function withLiveDirective(schema: GraphQLSchema): GraphQLSchema {
  if (schema.getDirective('live')) return schema;
  const config = schema.toConfig();
  return new GraphQLSchema({ ...config, directives: [...config.directives, LIVE_DIRECTIVE] });
}

const liveDirectiveOf = (operation: OperationDefinitionNode): DirectiveNode | undefined => operation.directives?.find((directive) => directive.name.value === 'live');

/** Whether `operation` asks to be live: a query marked `@live` whose `if` is not false (a variable read from `variables`). */
export function isLive(operation: OperationDefinitionNode | null | undefined, variables: Record<string, unknown> | null | undefined): boolean {
  if (operation?.operation !== 'query') return false;
  const directive = liveDirectiveOf(operation);
  if (!directive) return false;
  const condition = directive.arguments?.find((argument) => argument.name.value === 'if')?.value;
  return condition === undefined || valueFromASTUntyped(condition, variables ?? undefined) !== false;
}

/** A POST body's live operation, parsed; undefined for anything else (cheaply, for the text without `@live`). */
export function liveOperationOf(body: Record<string, unknown>): { document: DocumentNode; operation: OperationDefinitionNode } | undefined {
  const { query, operationName, variables } = body;
  if (typeof query !== 'string' || !query.includes('@live')) return undefined;
  let document: DocumentNode;
  try {
    document = parse(query, { noLocation: true });
  } catch {
    // The HTTP path words the syntax error.
    return undefined;
  }
  const operation = getOperationAST(document, typeof operationName === 'string' ? operationName : undefined);
  const vars = typeof variables === 'object' && variables !== null ? (variables as Record<string, unknown>) : undefined;
  return operation && isLive(operation, vars) ? { document, operation } : undefined;
}

/**
 * The document without `@live` (the same document when no operation has it): what the planner sees, since a
 * live query's runs, and `@live(if: false)`, are plain queries.
 */
export function withoutLiveDirective(document: DocumentNode): DocumentNode {
  const marked = (definition: DocumentNode['definitions'][number]) => definition.kind === Kind.OPERATION_DEFINITION && liveDirectiveOf(definition) !== undefined;
  if (!document.definitions.some(marked)) return document;
  return {
    ...document,
    definitions: document.definitions.map((definition) =>
      definition.kind === Kind.OPERATION_DEFINITION && marked(definition) ? { ...definition, directives: definition.directives?.filter((directive) => directive.name.value !== 'live') } : definition,
    ),
  };
}

/** The query text without `@live`, for a live query's runs. */
export const withoutLive = (document: DocumentNode): string => print(withoutLiveDirective(document));
