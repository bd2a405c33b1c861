import { Kind, parse, print, stripIgnoredCharacters, visit, type DocumentNode, type GraphQLFormattedError, type FieldNode, type OperationDefinitionNode, type VariableDefinitionNode } from 'graphql';
import type { SubgraphRequest, SubgraphResponse } from './data-source.ts';

/**
 * Sibling `_entities` fetches to one subgraph, sent as one request: the query plan runs them in parallel, each
 * under its own alias of `_entities` with its own representations, and each fetch gets back the answer it
 * would have had alone. A query plan that goes back and forth between subgraphs often has such siblings (a
 * user's name at two depths of the answer), and each request saved is a round trip and the subgraph's own
 * per-request work.
 *
 * Merged only when nothing can differ: every query is exactly one `_entities` field, and the merged answer
 * splits cleanly (data for every alias, every error under one). Otherwise the fetches are sent one by one.
 */

/** One fetch's request, with what settles its promise. */
export interface BatchMember {
  request: SubgraphRequest;
  resolve(response: SubgraphResponse): void;
  reject(error: unknown): void;
}

export interface MergedQuery {
  query: string;
  operationName: string | undefined;
  /** The merged request's variables: every fetch's own (each fetch's representations under its own name). */
  variables(requests: readonly SubgraphRequest[]): Record<string, unknown> | undefined;
  /** Each fetch's answer from the merged one, or undefined when it does not split cleanly. */
  split(response: SubgraphResponse): SubgraphResponse[] | undefined;
}

const ENTITIES = '_entities';
const REPRESENTATIONS = 'representations';
/** Merged queries kept, by the fetches' queries: a plan's siblings come back with every request that runs it. */
const MAX_MERGED_QUERIES = 500;

const aliasOf = (index: number) => `_${index}`;

/** The one `_entities` field of a fetch's query, or undefined when it is anything else. */
function entitiesFieldOf(document: DocumentNode): { operation: OperationDefinitionNode; field: FieldNode } | undefined {
  const operations = document.definitions.filter((definition) => definition.kind === Kind.OPERATION_DEFINITION);
  if (operations.length !== 1) return undefined;
  const operation = operations[0]!;
  if (operation.operation !== 'query' || operation.directives?.length || operation.selectionSet.selections.length !== 1) return undefined;
  const field = operation.selectionSet.selections[0]!;
  if (field.kind !== Kind.FIELD || field.name.value !== ENTITIES || field.alias || field.directives?.length) return undefined;
  const [argument, ...others] = field.arguments ?? [];
  if (others.length || argument?.name.value !== REPRESENTATIONS || argument.value.kind !== Kind.VARIABLE || argument.value.name.value !== REPRESENTATIONS) return undefined;
  return { operation, field };
}

/** A name not taken yet: `base`, else `base_`, `base__`... */
function freeName(base: string, taken: Set<string>): string {
  let name = base;
  while (taken.has(name)) name += '_';
  taken.add(name);
  return name;
}

/** Builds the merged query of `queries`, each one fetch's; undefined when one of them is not a plain `_entities` fetch. */
export function mergeEntityQueries(queries: readonly string[]): MergedQuery | undefined {
  const documents = queries.map((query) => parse(query, { noLocation: true }));
  const parts = documents.map(entitiesFieldOf);
  if (parts.some((part) => part === undefined)) return undefined;

  const variableNames = new Set<string>();
  const fragmentNames = new Set<string>();
  for (const document of documents) {
    visit(document, {
      Variable: (node) => void variableNames.add(node.name.value),
      FragmentDefinition: (node) => void fragmentNames.add(node.name.value),
    });
  }

  // The variables every fetch shares (the client's, passed through) are declared once, with one type each.
  const shared = new Map<string, VariableDefinitionNode>();
  const representationNames: string[] = [];
  const selections: FieldNode[] = [];
  const fragments: DocumentNode['definitions'][number][] = [];
  for (const [index, document] of documents.entries()) {
    const { operation, field } = parts[index]!;
    for (const definition of operation.variableDefinitions ?? []) {
      const name = definition.variable.name.value;
      if (name === REPRESENTATIONS) continue;
      const known = shared.get(name);
      if (known && print(known.type) !== print(definition.type)) return undefined;
      shared.set(name, definition);
    }
    const representations = freeName(`${REPRESENTATIONS}${index}`, variableNames);
    representationNames.push(representations);
    // Each fetch's fragments under names of their own: two fetches may use one name for different selections.
    const renamed = new Map<string, string>();
    for (const definition of document.definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) renamed.set(definition.name.value, freeName(`${definition.name.value}_${index}`, fragmentNames));
    }
    const rename = <T extends object>(node: T): T =>
      visit(node as never, {
        FragmentSpread: (spread) => ({ ...spread, name: { ...spread.name, value: renamed.get(spread.name.value) ?? spread.name.value } }),
        FragmentDefinition: (definition) => ({ ...definition, name: { ...definition.name, value: renamed.get(definition.name.value)! } }),
      }) as T;
    selections.push({
      ...rename(field),
      alias: { kind: Kind.NAME, value: aliasOf(index) },
      arguments: [{ kind: Kind.ARGUMENT, name: { kind: Kind.NAME, value: REPRESENTATIONS }, value: { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: representations } } }],
    });
    for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.push(rename(definition));
  }

  const representationsType = parts[0]!.operation.variableDefinitions?.find((definition) => definition.variable.name.value === REPRESENTATIONS)?.type;
  if (!representationsType) return undefined;
  const operationName = parts[0]!.operation.name ? `${parts[0]!.operation.name.value}__merged` : undefined;
  const merged: DocumentNode = {
    kind: Kind.DOCUMENT,
    definitions: [
      {
        kind: Kind.OPERATION_DEFINITION,
        operation: parts[0]!.operation.operation,
        ...(operationName && { name: { kind: Kind.NAME, value: operationName } }),
        variableDefinitions: [
          ...shared.values(),
          ...representationNames.map((name): VariableDefinitionNode => ({
            kind: Kind.VARIABLE_DEFINITION,
            variable: { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: name } },
            type: representationsType,
          })),
        ],
        selectionSet: { kind: Kind.SELECTION_SET, selections },
      },
      ...fragments,
    ],
  };

  return {
    query: stripIgnoredCharacters(print(merged)),
    operationName,
    variables(requests) {
      // No prototype: a client's variable may have any name, `constructor` or `__proto__` too.
      const variables = Object.create(null) as Record<string, unknown>;
      for (const [index, request] of requests.entries()) {
        for (const [name, value] of Object.entries(request.variables ?? {})) {
          if (name === REPRESENTATIONS) variables[representationNames[index]!] = value;
          // Fetches of one operation pass the client's variables through unchanged; anything else is not merged.
          else if (name in variables && variables[name] !== value) return undefined;
          else variables[name] = value;
        }
      }
      // A fetch that uses a variable it was not given (a context value one entity group lacks) would take
      // another's: not merged either.
      // (A name that only prefixes another one refuses a merge needlessly, never wrongly.)
      const given = Object.keys(variables).filter((name) => !representationNames.includes(name));
      for (const request of requests) {
        for (const name of given) if (!(name in (request.variables ?? {})) && request.query?.includes(`$${name}`)) return undefined;
      }
      return variables;
    },
    split(response) {
      const data = response.data as Record<string, unknown> | null | undefined;
      if (!data || typeof data !== 'object') return undefined;
      const answers: SubgraphResponse[] = [];
      for (let index = 0; index < queries.length; index++) {
        const entities = data[aliasOf(index)];
        if (!Array.isArray(entities)) return undefined;
        // The subgraph's extensions (events, traces) belong to the request: they go with the first answer alone.
        answers.push({ data: { [ENTITIES]: entities }, http: response.http, ...(index === 0 && response.extensions && { extensions: response.extensions }) });
      }
      const errors: unknown = response.errors ?? [];
      if (!Array.isArray(errors)) return undefined;
      for (const error of errors as GraphQLFormattedError[]) {
        // Anything but an error object with a path under one alias could have been any fetch's.
        if (typeof error !== 'object' || error === null || !Array.isArray(error.path)) return undefined;
        const [alias, ...rest] = error.path;
        const index = typeof alias === 'string' && /^_[0-9]+$/.test(alias) ? Number(alias.slice(1)) : -1;
        const answer = answers[index];
        if (!answer) return undefined;
        answer.errors = [...(answer.errors ?? []), { ...error, path: [ENTITIES, ...rest] }];
      }
      return answers;
    },
  };
}

export interface EntityQueryMerger {
  (queries: readonly string[]): MergedQuery | undefined;
  /** These queries are sent alone from now on (the subgraph refused their merged request). */
  forbid(queries: readonly string[]): void;
}

/** Merged queries by the queries they merge, kept to a bound, the least recently used out first. */
export function createEntityQueryMerger(): EntityQueryMerger {
  const merged = new Map<string, MergedQuery | undefined>();
  const remember = (key: string, query: MergedQuery | undefined) => {
    merged.delete(key);
    if (merged.size >= MAX_MERGED_QUERIES) merged.delete(merged.keys().next().value!);
    merged.set(key, query);
  };
  const merger = (queries: readonly string[]) => {
    const key = queries.join('\0');
    if (merged.has(key)) {
      const query = merged.get(key);
      remember(key, query);
      return query;
    }
    let query: MergedQuery | undefined;
    try {
      query = mergeEntityQueries(queries);
    } catch {
      // A query that does not parse is sent as it is, and the subgraph says what is wrong with it.
      query = undefined;
    }
    remember(key, query);
    return query;
  };
  return Object.assign(merger, { forbid: (queries: readonly string[]) => remember(queries.join('\0'), undefined) });
}

/** Whether a fetch is one that may be merged: an `_entities` query with its representations. */
export const isEntitiesRequest = (request: SubgraphRequest) => Array.isArray(request.variables?.[REPRESENTATIONS]) && !!request.query?.includes(ENTITIES);
