import {
  getNamedType,
  GraphQLError,
  isAbstractType,
  isInterfaceType,
  isNonNullType,
  isObjectType,
  Kind,
  visit,
  type ASTNode,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type FragmentSpreadNode,
  type GraphQLNamedType,
  type GraphQLSchema,
  type InlineFragmentNode,
  type SelectionSetNode,
} from 'graphql';
import { ErrorCode } from '../errors/codes.ts';
import { satisfies, type AuthorizationRules, type Condition, type Grants } from './rules.ts';

type Guardable = FieldNode | InlineFragmentNode | FragmentSpreadNode;

/** A response path (response keys) a guard empties, and whether its field is non-null (its null bubbles up). */
export interface Removed {
  path: readonly string[];
  nonNull: boolean;
  /** Set for a field of a fragment on an object type: only objects of that type lose it. */
  onType?: string;
}

interface Guard {
  node: Guardable;
  conditions: Condition[];
  /** Each place the node is reached (a named fragment may be spread under several fields). */
  sites: Site[];
}

interface Site {
  guard: Guard;
  removes: Removed[];
  /** The site of the guard this place sits under, if any: denied, it removes this place's fields already. */
  outer?: Site;
}

/** One request's verdict on an operation: the guards it fails (none: the operation runs as written). */
export interface Verdict {
  /** Names which guards failed: requests with the same key share a plan. */
  key: string;
  denied: readonly Guard[];
}

export interface OperationGuards {
  verdict(grants: Grants): Verdict;
}

const TYPENAME: FieldNode = { kind: Kind.FIELD, name: { kind: Kind.NAME, value: '__typename' } };
const MAX_ERRORS = 100;

/**
 * Where an operation touches what `@authenticated`, `@requiresScopes` or `@policy` guard: fields with the
 * directives, fields returning a guarded type, fragments on a guarded type. Undefined when it touches none,
 * which is most operations: they pay nothing per request.
 */
export function guardsOf(schema: GraphQLSchema, rules: AuthorizationRules, document: DocumentNode, operationName: string | undefined): OperationGuards | undefined {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  const operation = document.definitions.find((definition) => definition.kind === Kind.OPERATION_DEFINITION && (!operationName || definition.name?.value === operationName));
  if (operation?.kind !== Kind.OPERATION_DEFINITION) return undefined;
  const root = operation.operation === 'query' ? schema.getQueryType() : operation.operation === 'mutation' ? schema.getMutationType() : schema.getSubscriptionType();
  if (!root) return undefined;

  const guards = new Map<Guardable, Guard>();
  const typeConditions = (type: GraphQLNamedType | undefined | null) => (type ? (rules.types.get(type.name) ?? []) : []);
  const fieldConditions = (parent: GraphQLNamedType, name: string): Condition[] => {
    const own = rules.fields.get(`${parent.name}.${name}`) ?? [];
    // On an abstract type, what any of its object types guards: the object may be any of them.
    if (!isAbstractType(parent)) return own;
    return [...own, ...schema.getPossibleTypes(parent).flatMap((possible) => rules.fields.get(`${possible.name}.${name}`) ?? [])];
  };
  // A node's conditions are the same wherever it is reached (its parent type is fixed); its places are not.
  const guard = (node: Guardable, conditions: Condition[], removes: Removed[], outer: Site | undefined): Site => {
    let existing = guards.get(node);
    if (!existing) guards.set(node, (existing = { node, conditions, sites: [] }));
    const site: Site = { guard: existing, removes, outer };
    existing.sites.push(site);
    return site;
  };
  /** The fields a removed fragment would have answered at `path`. */
  const fieldsOf = (selectionSet: SelectionSetNode, parent: GraphQLNamedType, path: string[], seen: Set<string>): Removed[] =>
    selectionSet.selections.flatMap((selection): Removed[] => {
      if (selection.kind === Kind.FIELD) {
        const field = (isObjectType(parent) || isInterfaceType(parent)) ? parent.getFields()[selection.name.value] : undefined;
        const onType = isObjectType(parent) ? parent.name : undefined;
        return [{ path: [...path, selection.alias?.value ?? selection.name.value], nonNull: !!field && isNonNullType(field.type), ...(onType ? { onType } : {}) }];
      }
      if (selection.kind === Kind.INLINE_FRAGMENT) return fieldsOf(selection.selectionSet, (selection.typeCondition && schema.getType(selection.typeCondition.name.value)) || parent, path, seen);
      const fragment = fragments.get(selection.name.value);
      if (!fragment || seen.has(fragment.name.value)) return [];
      return fieldsOf(fragment.selectionSet, schema.getType(fragment.typeCondition.name.value) ?? parent, path, new Set([...seen, fragment.name.value]));
    });

  const walk = (selectionSet: SelectionSetNode, parent: GraphQLNamedType, path: string[], seen: Set<string>, atRoot: boolean, outer: Site | undefined) => {
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        if (selection.name.value.startsWith('__')) continue;
        const field = (isObjectType(parent) || isInterfaceType(parent)) ? parent.getFields()[selection.name.value] : undefined;
        if (!field) continue;
        const key = selection.alias?.value ?? selection.name.value;
        const conditions = [...(atRoot ? typeConditions(parent) : []), ...fieldConditions(parent, selection.name.value), ...typeConditions(getNamedType(field.type))];
        // On an object type, only objects of that type lose it (`... on A { label }` beside `... on B { label }`);
        // on an abstract one, every object at the place does: over-removal is the safe side.
        const onType = isObjectType(parent) ? { onType: parent.name } : {};
        const guarded = conditions.length > 0 ? guard(selection, conditions, [{ path: [...path, key], nonNull: isNonNullType(field.type), ...onType }], outer) : outer;
        // Inside, whether guarded or not: a viewer who passes this guard must still pass the ones below it.
        if (selection.selectionSet) walk(selection.selectionSet, getNamedType(field.type), [...path, key], seen, false, guarded);
        continue;
      }
      const fragment = selection.kind === Kind.FRAGMENT_SPREAD ? fragments.get(selection.name.value) : undefined;
      if (selection.kind === Kind.FRAGMENT_SPREAD && (!fragment || seen.has(fragment.name.value))) continue;
      const condition = selection.kind === Kind.INLINE_FRAGMENT ? selection.typeCondition : fragment!.typeCondition;
      const type = (condition && schema.getType(condition.name.value)) || parent;
      const body = selection.kind === Kind.INLINE_FRAGMENT ? selection.selectionSet : fragment!.selectionSet;
      const inner = fragment ? new Set([...seen, fragment.name.value]) : seen;
      const conditions = condition ? typeConditions(type) : [];
      const guarded = conditions.length > 0 ? guard(selection, conditions, fieldsOf(body, type, path, inner), outer) : outer;
      walk(body, type, path, inner, atRoot, guarded);
    }
  };
  walk(operation.selectionSet, root, [], new Set(), true, undefined);
  if (guards.size === 0) return undefined;

  const all = [...guards.values()];
  return {
    verdict(grants) {
      let key = '';
      const denied: Guard[] = [];
      for (const candidate of all) {
        const allowed = candidate.conditions.every((condition) => satisfies(condition, grants));
        key += allowed ? '1' : '0';
        if (!allowed) denied.push(candidate);
      }
      return { key, denied };
    },
  };
}

/**
 * The operation without what `denied` guards, for the planner: no fetch ever asks for it. A selection set
 * left empty keeps `__typename`, and fragments no longer spread anywhere go.
 */
export function withoutDenied(document: DocumentNode, denied: readonly Guard[]): DocumentNode {
  const removed = new Set<ASTNode>(denied.map((guard) => guard.node));
  const drop = (node: ASTNode) => (removed.has(node) ? null : undefined);
  let filtered: DocumentNode = visit(document, {
    Field: drop,
    InlineFragment: drop,
    FragmentSpread: drop,
    SelectionSet: { leave: (node) => (node.selections.length === 0 ? { ...node, selections: [TYPENAME] } : undefined) },
  });
  for (;;) {
    const spread = new Set<string>();
    visit(filtered, { FragmentSpread: (node) => void spread.add(node.name.value) });
    const unused = filtered.definitions.filter((definition) => definition.kind === Kind.FRAGMENT_DEFINITION && !spread.has(definition.name.value));
    if (unused.length === 0) return filtered;
    filtered = { ...filtered, definitions: filtered.definitions.filter((definition) => !unused.includes(definition)) };
  }
}

const forbidden = (path: readonly (string | number)[]) =>
  new GraphQLError('Not authorized to read this field', { path, extensions: { code: ErrorCode.Forbidden } });

/** Calls `at` with each object (and its response path) where `removed` would be, in a response-shaped tree. */
function eachHolder(tree: unknown, removed: Removed, at: (holder: Record<string, unknown>, key: string, path: (string | number)[]) => void) {
  const walk = (value: unknown, depth: number, path: (string | number)[]) => {
    if (value === null || value === undefined || typeof value !== 'object') return;
    if (Array.isArray(value)) {
      value.forEach((item, index) => walk(item, depth, [...path, index]));
      return;
    }
    const holder = value as Record<string, unknown>;
    const key = removed.path[depth]!;
    if (!Object.hasOwn(holder, key)) return;
    if (depth < removed.path.length - 1) return walk(holder[key], depth + 1, [...path, key]);
    // A field of a fragment on another object type is not this object's to lose.
    if (removed.onType && typeof holder.__typename === 'string' && holder.__typename !== removed.onType) return;
    at(holder, key, [...path, key]);
  };
  walk(tree, 0, []);
}

/**
 * Takes what the viewer may not read out of what the fetches gathered, before the answer is shaped: the plan
 * leaves it out, but a subgraph may still have sent it (an entity key the planner needed, a field @requires).
 */
export function stripDenied(input: unknown, removes: readonly Removed[]): void {
  for (const removed of removes) eachHolder(input, removed, (holder, key) => void delete holder[key]);
}

/**
 * FORBIDDEN at each place in the shaped answer a denied field would have been: where it is null, and, for a
 * non-null field, where the shaping reported it null (its null bubbled up; that report is replaced). Returns the
 * shaping's other reports.
 */
export function forbiddenErrors(data: unknown, removes: readonly Removed[], completion: readonly GraphQLError[] = []): { errors: GraphQLError[]; completion: GraphQLError[] } {
  const errors: GraphQLError[] = [];
  const seen = new Set<string>();
  const emit = (path: readonly (string | number)[]) => {
    const id = JSON.stringify(path);
    if (seen.has(id) || errors.length >= MAX_ERRORS) return;
    seen.add(id);
    errors.push(forbidden(path));
  };
  for (const removed of removes) eachHolder(data, removed, (holder, key, path) => holder[key] === null && emit(path));
  const pattern = (path: readonly (string | number)[]) => path.filter((step) => typeof step === 'string').join('.');
  const nonNull = new Set(removes.filter((removed) => removed.nonNull).map((removed) => removed.path.join('.')));
  const rest: GraphQLError[] = [];
  for (const error of completion) {
    if (error.path && nonNull.has(pattern(error.path))) emit(error.path);
    else rest.push(error);
  }
  // Nothing ran (a refused subscription, an operation only Apollo's executor could run): the client still hears why.
  if (errors.length === 0 && (data === null || data === undefined)) for (const removed of removes) emit(removed.path);
  return { errors, completion: rest };
}

/** All the places a verdict's denied guards empty. */
export function removedBy(verdict: Verdict): Removed[] {
  const denied = new Set(verdict.denied);
  const within = (site: Site): boolean => !!site.outer && (denied.has(site.outer.guard) || within(site.outer));
  return verdict.denied.flatMap((guard) => guard.sites.filter((site) => !within(site)).flatMap((site) => site.removes));
}
