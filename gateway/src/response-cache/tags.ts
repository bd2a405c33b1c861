import {
  buildASTSchema,
  isObjectType,
  Kind,
  parse,
  print,
  TypeInfo,
  visit,
  visitWithTypeInfo,
  type DocumentNode,
  type FieldNode,
  type SelectionSetNode,
} from 'graphql';

/** Per subgraph: the entity types it can identify, and their key fields (`User` → ['id']). */
export type EntityKeys = ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>;

const FLAT_KEY = /^\s*[_A-Za-z]\w*(\s+[_A-Za-z]\w*)*\s*$/;

const stringArg = (node: { arguments?: readonly { name: { value: string }; value: { kind: string } }[] }, name: string) => {
  const value = node.arguments?.find((argument) => argument.name.value === name)?.value;
  return value && (value.kind === Kind.STRING || value.kind === Kind.ENUM) ? (value as unknown as { value: string }).value : undefined;
};

/**
 * Reads every `@join__type(graph:, key:)` of a supergraph. Keys made of plain fields only: a nested key
 * (`key: "owner { id }"`) leaves its type identified by root field tags alone.
 */
export function readEntityKeys(supergraph: DocumentNode): EntityKeys {
  const graphNames = new Map<string, string>();
  const keys = new Map<string, Map<string, string[]>>();
  for (const definition of supergraph.definitions) {
    if (definition.kind === Kind.ENUM_TYPE_DEFINITION && definition.name.value === 'join__Graph') {
      for (const value of definition.values ?? []) {
        const name = stringArg(value.directives?.find((d) => d.name.value === 'join__graph') ?? {}, 'name');
        if (name) graphNames.set(value.name.value, name);
      }
    }
  }
  for (const definition of supergraph.definitions) {
    if (definition.kind !== Kind.OBJECT_TYPE_DEFINITION) continue;
    for (const directive of definition.directives ?? []) {
      if (directive.name.value !== 'join__type') continue;
      const subgraph = graphNames.get(stringArg(directive, 'graph') ?? '');
      const key = stringArg(directive, 'key');
      if (!subgraph || !key || !FLAT_KEY.test(key)) continue;
      const types = keys.get(subgraph) ?? new Map<string, string[]>();
      keys.set(subgraph, types);
      if (!types.has(definition.name.value)) types.set(definition.name.value, key.trim().split(/\s+/));
    }
  }
  return keys;
}

/** Key fields are selected under these aliases, so they never collide with what the operation selects. */
const keyAlias = (field: string) => `_cacheKey_${field}`;

const field = (name: string, alias?: string): FieldNode => ({
  kind: Kind.FIELD,
  name: { kind: Kind.NAME, value: name },
  ...(alias ? { alias: { kind: Kind.NAME, value: alias } } : {}),
});

export interface TaggedFetch {
  /** The subgraph operation, also selecting `__typename` and the key of every entity it returns. */
  query: string;
  /** Root fields it reads (`Query.users`), tagged whatever they return. */
  rootTags: readonly string[];
}

/**
 * Rewrites the operations the query planner sends to subgraphs so that every entity in a response names
 * itself: each selection on an entity type also selects `__typename` and its key under an alias. The gateway
 * shapes the client's response from the planned selections only, so the extra fields never reach clients.
 */
export function createFetchTagger(supergraphSdl: string) {
  const document = parse(supergraphSdl);
  const schema = buildASTSchema(document, { assumeValidSDL: true });
  const entityKeys = readEntityKeys(document);
  const rewritten = new Map<string, TaggedFetch | undefined>();

  const rewrite = (subgraph: string, query: string): TaggedFetch | undefined => {
    const keys = entityKeys.get(subgraph);
    const operation = parse(query);
    const rootTags = new Set<string>();
    for (const definition of operation.definitions) {
      if (definition.kind !== Kind.OPERATION_DEFINITION || definition.operation !== 'query') continue;
      for (const selection of definition.selectionSet.selections) {
        if (selection.kind === Kind.FIELD && !selection.name.value.startsWith('_')) rootTags.add(`${subgraph}/Query.${selection.name.value}`);
      }
    }
    if (!keys) return { query, rootTags: [...rootTags] };
    let untaggable = false;
    const typeInfo = new TypeInfo(schema);
    const tagged = visit(
      operation,
      visitWithTypeInfo(typeInfo, {
        SelectionSet: {
          leave(node: SelectionSetNode) {
            const parent = typeInfo.getParentType();
            const keyFields = parent && isObjectType(parent) ? keys.get(parent.name) : undefined;
            if (!keyFields) return undefined;
            const taken = new Map(
              node.selections.flatMap((selection) => (selection.kind === Kind.FIELD ? [[(selection.alias ?? selection.name).value, selection.name.value]] : [])),
            );
            // A client alias already named like ours (or `__typename` on another field) would clash.
            const clash = (alias: string, name: string) => taken.has(alias) && taken.get(alias) !== name;
            if (clash('__typename', '__typename') || keyFields.some((name) => clash(keyAlias(name), name))) {
              untaggable = true;
              return undefined;
            }
            const extra = [field('__typename'), ...keyFields.map((name) => field(name, keyAlias(name)))];
            return { ...node, selections: [...node.selections, ...extra] };
          },
        },
      }),
    );
    return untaggable ? undefined : { query: print(tagged), rootTags: [...rootTags] };
  };

  return {
    /**
     * The tagged form of a subgraph operation, or undefined when it cannot be tagged (then its answer is not
     * cached). Plans are cached, so each text is rewritten once.
     */
    tag(subgraph: string, query: string): TaggedFetch | undefined {
      const cacheKey = `${subgraph}\n${query}`;
      let result = rewritten.get(cacheKey);
      if (!rewritten.has(cacheKey)) {
        result = rewrite(subgraph, query);
        // Bounded by the number of distinct plans; a flood of distinct operations only resets it.
        if (rewritten.size >= 5_000) rewritten.clear();
        rewritten.set(cacheKey, result);
      }
      return result;
    },

    /**
     * Adds `subgraph/Type:key` for every entity in a subgraph's answer, and for every representation it was
     * asked to resolve (an entity that resolved to null is still part of the answer).
     */
    collect(subgraph: string, data: unknown, representations: unknown, tags: Set<string>): void {
      const keys = entityKeys.get(subgraph);
      if (!keys) return;
      const tagOf = (value: Record<string, unknown>, aliased: boolean) => {
        const typename = value.__typename;
        const keyFields = typeof typename === 'string' ? keys.get(typename) : undefined;
        if (!keyFields) return;
        const parts = keyFields.map((name) => value[aliased ? keyAlias(name) : name]);
        if (parts.every((part) => typeof part === 'string' || typeof part === 'number')) tags.add(`${subgraph}/${String(typename)}:${parts.join(',')}`);
      };
      if (Array.isArray(representations)) {
        for (const representation of representations) if (representation && typeof representation === 'object') tagOf(representation as Record<string, unknown>, false);
      }
      const walk = (value: unknown): void => {
        if (Array.isArray(value)) {
          for (const item of value) walk(item);
        } else if (value && typeof value === 'object') {
          const object = value as Record<string, unknown>;
          tagOf(object, true);
          for (const key in object) {
            const child = object[key];
            if (child && typeof child === 'object') walk(child);
          }
        }
      };
      walk(data);
    },
  };
}

export type FetchTagger = ReturnType<typeof createFetchTagger>;
