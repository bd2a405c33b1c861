import {
  buildASTSchema,
  isInterfaceType,
  isObjectType,
  Kind,
  parse,
  print,
  TypeInfo,
  visit,
  visitWithTypeInfo,
  type DocumentNode,
  type FieldNode,
  type InterfaceTypeDefinitionNode,
  type ObjectTypeDefinitionNode,
  type SelectionNode,
  type SelectionSetNode,
  type TypeNode,
} from 'graphql';

/** A key's fields as a tree: `id`, `carrier number`, `owner { id } handle`. */
export interface KeyField {
  name: string;
  fields?: readonly KeyField[];
}

/** How a subgraph identifies one entity type. */
export interface EntityKey {
  fields: readonly KeyField[];
  /**
   * Whether the subgraph owns the key (neither an extension nor `@external` there), so that asking it for the
   * key where the planner did not cannot change its answer.
   */
  owned: boolean;
}

/** Per subgraph: the entity types it can identify, by their first key there (the one its events name). */
export type EntityKeys = ReadonlyMap<string, ReadonlyMap<string, EntityKey>>;

const stringArg = (node: { arguments?: readonly { name: { value: string }; value: { kind: string } }[] }, name: string) => {
  const value = node.arguments?.find((argument) => argument.name.value === name)?.value;
  return value && (value.kind === Kind.STRING || value.kind === Kind.ENUM) ? (value as unknown as { value: string }).value : undefined;
};
const trueArg = (node: { arguments?: readonly { name: { value: string }; value: { kind: string } }[] }, name: string) =>
  node.arguments?.some((argument) => argument.name.value === name && argument.value.kind === Kind.BOOLEAN && (argument.value as unknown as { value: boolean }).value);

/** Parses a field set (`owner { id } handle`); undefined for one with fragments or arguments. */
function parseFieldSet(text: string): KeyField[] | undefined {
  const fields = (selections: readonly SelectionNode[]): KeyField[] | undefined => {
    const result: KeyField[] = [];
    for (const selection of selections) {
      if (selection.kind !== Kind.FIELD || selection.alias || selection.arguments?.length) return undefined;
      const nested = selection.selectionSet && fields(selection.selectionSet.selections);
      if (selection.selectionSet && !nested) return undefined;
      result.push(nested ? { name: selection.name.value, fields: nested } : { name: selection.name.value });
    }
    return result;
  };
  try {
    const operation = parse(`{ ${text} }`).definitions[0];
    return operation?.kind === Kind.OPERATION_DEFINITION ? fields(operation.selectionSet.selections) : undefined;
  } catch {
    return undefined;
  }
}

/** Reads every `@join__type(graph:, key:)` of a supergraph (object and interface types). */
export function readEntityKeys(supergraph: DocumentNode): EntityKeys {
  const graphNames = new Map<string, string>();
  const types = new Map<string, ObjectTypeDefinitionNode | InterfaceTypeDefinitionNode>();
  for (const definition of supergraph.definitions) {
    if (definition.kind === Kind.ENUM_TYPE_DEFINITION && definition.name.value === 'join__Graph') {
      for (const value of definition.values ?? []) {
        const name = stringArg(value.directives?.find((d) => d.name.value === 'join__graph') ?? {}, 'name');
        if (name) graphNames.set(value.name.value, name);
      }
    }
    if (definition.kind === Kind.OBJECT_TYPE_DEFINITION || definition.kind === Kind.INTERFACE_TYPE_DEFINITION) types.set(definition.name.value, definition);
  }
  // `@external` in that graph: the subgraph may not be able to resolve it (composition drops the mark on the
  // keys of a type's extension, hence `extension: true` counts too).
  const external = (type: string, fields: readonly KeyField[], graph: string): boolean =>
    fields.some((keyField) => {
      const field = types.get(type)?.fields?.find((candidate) => candidate.name.value === keyField.name);
      const marked = field?.directives?.some((d) => d.name.value === 'join__field' && stringArg(d, 'graph') === graph && trueArg(d, 'external'));
      return !field || !!marked || (!!keyField.fields && external(getNamedTypeName(field.type), keyField.fields, graph));
    });
  const keys = new Map<string, Map<string, EntityKey>>();
  for (const [typeName, definition] of types) {
    for (const directive of definition.directives ?? []) {
      if (directive.name.value !== 'join__type') continue;
      const graph = stringArg(directive, 'graph') ?? '';
      const subgraph = graphNames.get(graph);
      const key = stringArg(directive, 'key');
      const fields = key === undefined ? undefined : parseFieldSet(key);
      if (!subgraph || !fields) continue;
      const byType = keys.get(subgraph) ?? new Map<string, EntityKey>();
      keys.set(subgraph, byType);
      if (!byType.has(typeName)) byType.set(typeName, { fields, owned: !trueArg(directive, 'extension') && !external(typeName, fields, graph) });
    }
  }
  return keys;
}

function getNamedTypeName(type: TypeNode): string {
  return type.kind === Kind.NAMED_TYPE ? type.name.value : getNamedTypeName(type.type);
}

/** The key's values, leaves depth first in the key's order, joined by commas; undefined if one is missing. */
function keyValue(value: Record<string, unknown>, fields: readonly KeyField[], nameOf: (field: string) => string = (name) => name): string | undefined {
  const parts: string[] = [];
  for (const field of fields) {
    const part = value[nameOf(field.name)];
    if (field.fields) {
      const nested = part && typeof part === 'object' && !Array.isArray(part) ? keyValue(part as Record<string, unknown>, field.fields) : undefined;
      if (nested === undefined) return undefined;
      parts.push(nested);
    } else if (typeof part === 'string' || typeof part === 'number') {
      parts.push(String(part));
    } else {
      return undefined;
    }
  }
  return parts.join(',');
}

/** Key fields are selected under these aliases, so they never collide with what the operation selects. */
const keyAlias = (field: string) => `_cacheKey_${field}`;

const field = (name: string, alias?: string, fields?: readonly KeyField[]): FieldNode => ({
  kind: Kind.FIELD,
  name: { kind: Kind.NAME, value: name },
  ...(alias ? { alias: { kind: Kind.NAME, value: alias } } : {}),
  ...(fields ? { selectionSet: { kind: Kind.SELECTION_SET, selections: fields.map((nested) => field(nested.name, undefined, nested.fields)) } } : {}),
});

/** Whether `selections` already ask for the whole key, unaliased and without arguments. */
const selectsKey = (selections: readonly SelectionNode[], fields: readonly KeyField[]): boolean =>
  fields.every((keyField) =>
    selections.some(
      (selection) =>
        selection.kind === Kind.FIELD &&
        selection.name.value === keyField.name &&
        (!selection.alias || selection.alias.value === keyField.name) &&
        !selection.arguments?.length &&
        (!keyField.fields || (!!selection.selectionSet && selectsKey(selection.selectionSet.selections, keyField.fields))),
    ),
  );

export interface TaggedFetch {
  /** The subgraph operation, also selecting `__typename` and the key of entities it could not name otherwise. */
  query: string;
  /** Root fields it reads (`Query.users`), tagged whatever they return. */
  rootTags: readonly string[];
}

/**
 * Rewrites the operations the query planner sends to subgraphs so that every entity in a response can be
 * named, without changing any answer: an `_entities` result is named by the representation it was sent (the
 * subgraph is asked nothing more; it may not even return its key); elsewhere an entity selection also selects
 * `__typename` and the key under aliases, where the subgraph owns the key or already returns it. An entity
 * that can be named neither way, with fields of this subgraph selected on it, makes the fetch untaggable (its
 * answer is never cached). The gateway shapes the client's response from the planned selections only, so the
 * extra fields never reach clients.
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
    // Fragments spread right under `_entities` select on the entities the representations name.
    const entitiesFragments = new Set<string>();
    for (const definition of operation.definitions) {
      if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
      for (const root of definition.selectionSet.selections) {
        if (root.kind !== Kind.FIELD || root.name.value !== '_entities') continue;
        for (const selection of root.selectionSet?.selections ?? []) {
          const inner = selection.kind === Kind.INLINE_FRAGMENT ? selection.selectionSet.selections : [selection];
          for (const spread of inner) if (spread.kind === Kind.FRAGMENT_SPREAD) entitiesFragments.add(spread.name.value);
        }
      }
    }
    let untaggable = false;
    const typeInfo = new TypeInfo(schema);
    /** Per selection set being visited: whether it selects right on the entities `_entities` returns. */
    const entitiesRoots: boolean[] = [];
    const fieldPath: string[] = [];
    let fragment: string | undefined;
    const tagged = visit(
      operation,
      visitWithTypeInfo(typeInfo, {
        FragmentDefinition: {
          enter: (node) => void (fragment = node.name.value),
          leave: () => void (fragment = undefined),
        },
        Field: {
          enter: (node) => void fieldPath.push(node.name.value),
          leave: () => void fieldPath.pop(),
        },
        FragmentSpread(node) {
          // Used right under `_entities` and somewhere else too: the second use could not be named.
          if (entitiesFragments.has(node.name.value) && !(fieldPath.length === 1 && fieldPath[0] === '_entities')) untaggable = true;
        },
        SelectionSet: {
          enter() {
            entitiesRoots.push(fieldPath.length === 0 ? fragment !== undefined && entitiesFragments.has(fragment) : fieldPath.length === 1 && fieldPath[0] === '_entities');
          },
          leave(node: SelectionSetNode) {
            const entitiesRoot = entitiesRoots.pop();
            const parent = typeInfo.getParentType();
            const key = parent && (isObjectType(parent) || isInterfaceType(parent)) ? keys.get(parent.name) : undefined;
            if (!key || entitiesRoot) return undefined;
            if (!key.owned && !selectsKey(node.selections, key.fields)) {
              // A reference only (its key, for the planner's next hop) needs no name; anything this subgraph
              // says about an entity it cannot name could go stale unseen.
              if (node.selections.some((selection) => selection.kind !== Kind.FIELD || (selection.name.value !== '__typename' && !key.fields.some((f) => f.name === selection.name.value)))) {
                untaggable = true;
              }
              return undefined;
            }
            const taken = new Map(
              node.selections.flatMap((selection) => (selection.kind === Kind.FIELD ? [[(selection.alias ?? selection.name).value, selection.name.value]] : [])),
            );
            // A client alias already named like ours (or `__typename` on another field) would clash.
            const clash = (alias: string, name: string) => taken.has(alias) && taken.get(alias) !== name;
            if (clash('__typename', '__typename') || key.fields.some((keyField) => clash(keyAlias(keyField.name), keyField.name))) {
              untaggable = true;
              return undefined;
            }
            const extra = [field('__typename'), ...key.fields.map((keyField) => field(keyField.name, keyAlias(keyField.name), keyField.fields))];
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
     * asked to resolve (an entity that resolved to null is still part of the answer). False when a
     * representation does not carry the key this subgraph's events name it by: the answer cannot be tagged.
     */
    collect(subgraph: string, data: unknown, representations: unknown, tags: Set<string>): boolean {
      const keys = entityKeys.get(subgraph);
      if (!keys) return true;
      const tagOf = (value: Record<string, unknown>, aliased: boolean): string | undefined => {
        const typename = value.__typename;
        const key = typeof typename === 'string' ? keys.get(typename) : undefined;
        const id = key && keyValue(value, key.fields, aliased ? keyAlias : undefined);
        return id === undefined ? undefined : `${subgraph}/${String(typename)}:${id}`;
      };
      let complete = true;
      if (Array.isArray(representations)) {
        for (const representation of representations) {
          const tag = representation && typeof representation === 'object' ? tagOf(representation as Record<string, unknown>, false) : undefined;
          if (tag) tags.add(tag);
          else complete = false;
        }
      }
      const walk = (value: unknown): void => {
        if (Array.isArray(value)) {
          for (const item of value) walk(item);
        } else if (value && typeof value === 'object') {
          const object = value as Record<string, unknown>;
          const tag = tagOf(object, true);
          if (tag) tags.add(tag);
          for (const key in object) {
            const child = object[key];
            if (child && typeof child === 'object') walk(child);
          }
        }
      };
      walk(data);
      return complete;
    },
  };
}

export type FetchTagger = ReturnType<typeof createFetchTagger>;
