import type { ServiceMap } from '@apollo/gateway';
import { assert, errorCodeDef, ERRORS, type VariableDefinitions } from '@apollo/federation-internals';
import { evaluateCondition, type DeferNode, type DeferredNode, type FetchDataRewrite, type FetchNode, type PlanNode, type QueryPlanSelectionNode } from '@apollo/query-planner';
import type { GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import type { MergeScoped } from '../subgraphs/data-source.ts';
import { GraphQLError, isAbstractType, isInterfaceType, isObjectType, type GraphQLFormattedError, type GraphQLSchema } from 'graphql';
import { SpanStatusCode, type Tracer } from '@opentelemetry/api';

/**
 * Runs a query plan's nodes: fetches in sequence and in parallel, each `Flatten`ed into the entities it
 * completes, exactly as @apollo/gateway's `executeQueryPlan` does (the same requests, in the same order, merged
 * the same way), without what it pays on every request whether anyone looks or not: a trace node per plan
 * node, a span per step, `Object.create(null)` objects.
 */

type ResponsePath = (string | number)[];
type Data = Record<string, unknown>;

export interface Cursor {
  path: ResponsePath;
  data: Data | Data[];
  fullResult: Data;
}

export interface PlanRun {
  requestContext: GatewayGraphQLRequestContext;
  serviceMap: ServiceMap;
  /** The operation's variable definitions, for `Condition` nodes' defaults. */
  variableDefinitions: VariableDefinitions;
  errors: unknown[];
  tracer?: Tracer;
  /** Identical representations within one `_entities` fetch are sent once, and the answer fanned back out. */
  dedupeRepresentations?: boolean;
  /** Runs `Defer` nodes part by part (incremental delivery); unset, a `Defer` node runs whole. */
  defer?: (node: DeferNode, cursor: Cursor) => Promise<void>;
}

/** What the fetches need from the supergraph, resolved once per schema. */
export interface SupergraphTypes {
  /** Apollo's `isObjectOfType`, memoised: `obj.__typename` satisfies `condition`. */
  isObjectOfType(typename: unknown, condition: string, whenUnknown?: boolean): boolean;
}

export function supergraphTypes(schema: GraphQLSchema): SupergraphTypes {
  const answers = new Map<string, boolean>();
  return {
    isObjectOfType(typename, condition, whenUnknown = false) {
      if (!typename) return whenUnknown;
      if (condition === typename) return true;
      const key = `${String(typename)}\0${condition}`;
      let answer = answers.get(key);
      if (answer === undefined) {
        const type = schema.getType(String(typename));
        const conditional = schema.getType(condition);
        answer =
          !!type &&
          !!conditional &&
          isAbstractType(conditional) &&
          (isObjectType(type) || isInterfaceType(type)) &&
          schema.isSubType(conditional, type);
        answers.set(key, answer);
      }
      return answer;
    },
  };
}

export async function executePlanNode(run: PlanRun, types: SupergraphTypes, node: PlanNode, cursor: Cursor | undefined): Promise<void> {
  if (!cursor) return;
  switch (node.kind) {
    case 'Sequence':
      for (const child of node.nodes) await executePlanNode(run, types, child, cursor);
      return;
    case 'Parallel':
      await Promise.all(node.nodes.map((child) => executePlanNode(run, types, child, cursor)));
      return;
    case 'Flatten':
      return executePlanNode(run, types, node.node, moveIntoCursor(cursor, node.path));
    case 'Fetch':
      try {
        await (run.tracer ? traced(run.tracer, node.serviceName, () => executeFetch(run, types, node, cursor)) : executeFetch(run, types, node, cursor));
      } catch (error) {
        run.errors.push(error);
      }
      return;
    case 'Condition': {
      const branch = evaluateCondition(node, run.variableDefinitions, run.requestContext.request.variables) ? node.ifClause : node.elseClause;
      if (branch) await executePlanNode(run, types, branch, cursor);
      return;
    }
    case 'Defer':
      if (run.defer) return run.defer(node, cursor);
      // For a client that takes the answer whole: the primary part, then every deferred part.
      if (node.primary.node) await executePlanNode(run, types, node.primary.node, cursor);
      return runDeferredParts(node, async (part) => {
        if (part.node) await executePlanNode(run, types, part.node, cursor);
      });
    default:
      // A `Subscription` never reaches here: the subscription engine runs its `primary` itself.
      throw new Error(`Unsupported plan node ${(node as { kind: string }).kind}`);
  }
}

/**
 * Runs a `Defer` node's deferred parts, once its primary part has run: all at once, except that a part whose
 * `depends` names a fetch of an earlier part waits for that part.
 */
export async function runDeferredParts(node: DeferNode, runPart: (part: DeferredNode) => Promise<void>): Promise<void> {
  const finished = new Map<DeferredNode, Promise<void>>();
  for (const part of node.deferred) {
    const earlier = part.depends
      .map(({ id }) => node.deferred.find((other) => other !== part && finished.has(other) && other.node && fetchIdsIn(other.node).has(id)))
      .map((other) => other && finished.get(other));
    finished.set(part, Promise.all(earlier).then(() => runPart(part)));
  }
  await Promise.all(finished.values());
}

function fetchIdsIn(node: PlanNode, ids = new Set<string>()): Set<string> {
  switch (node.kind) {
    case 'Fetch':
      if (node.id !== undefined) ids.add(node.id);
      break;
    case 'Sequence':
    case 'Parallel':
      for (const child of node.nodes) fetchIdsIn(child, ids);
      break;
    case 'Flatten':
      fetchIdsIn(node.node, ids);
      break;
    case 'Condition':
      if (node.ifClause) fetchIdsIn(node.ifClause, ids);
      if (node.elseClause) fetchIdsIn(node.elseClause, ids);
      break;
    case 'Defer':
      if (node.primary.node) fetchIdsIn(node.primary.node, ids);
      for (const part of node.deferred) if (part.node) fetchIdsIn(part.node, ids);
      break;
  }
  return ids;
}

export const rootCursor = (data: Data): Cursor => ({ path: [], data, fullResult: data });

function traced(tracer: Tracer, service: string, fetch: () => Promise<void>): Promise<void> {
  return tracer.startActiveSpan('gateway.fetch', { attributes: { service } }, async (span) => {
    try {
      await fetch();
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}

async function executeFetch(run: PlanRun, types: SupergraphTypes, fetch: FetchNode, cursor: Cursor): Promise<void> {
  const service = run.serviceMap[fetch.serviceName];
  if (!service) throw new Error(`Couldn't find service with name "${fetch.serviceName}"`);

  const entities: Data[] = Array.isArray(cursor.data) ? cursor.data.filter((entity) => entity !== null && entity !== undefined) : [cursor.data];
  if (entities.length < 1) return;

  const variables: Data = {};
  const provided = run.requestContext.request.variables;
  if (fetch.variableUsages && provided) {
    for (const name of fetch.variableUsages) {
      if (hasOwn(provided, name) && typeof provided[name] !== 'undefined') variables[name] = provided[name];
    }
  }

  const send = async (variables: Data, fanOut?: (response: SubgraphAnswer) => void, positions?: number[]): Promise<Data | null | undefined> => {
    const response: SubgraphAnswer = await service.process({
      // GraphQLDataSourceRequestKind.INCOMING_OPERATION: the enum is not exported.
      kind: 'incoming operation',
      request: { query: fetch.operation, variables, operationName: fetch.operationName },
      incomingRequestContext: run.requestContext,
      context: run.requestContext.context,
      document: fetch.operationDocumentNode,
      pathInIncomingRequest: plainPath(cursor.path),
      // Sibling fetches of one run may go out as one request; a deferred part's run is its own, so that a fast
      // part never waits for a slow part's fetch.
      mergeScope: run satisfies MergeScoped['mergeScope'],
    } as never);
    fanOut?.(response);
    if (response.errors) {
      const pathOf = errorPaths(fetch, cursor);
      // A group of a context split: its `_entities` positions are positions among all the fetch's entities.
      const placed = positions ? response.errors.map((error) => (typeof error.path?.[1] === 'number' ? { ...error, path: [error.path[0]!, positions[error.path[1]] ?? error.path[1], ...error.path.slice(2)] } : error)) : response.errors;
      run.errors.push(...placed.map((error) => downstreamError(error, fetch.serviceName, pathOf)));
      if (!response.extensions?.ftv1) {
        const metrics = run.requestContext.metrics as { nonFtv1ErrorPaths?: { subgraph: string; path: unknown }[] };
        const paths = response.errors.map((error) => ({ subgraph: fetch.serviceName, path: error.path }));
        if (metrics.nonFtv1ErrorPaths) metrics.nonFtv1ErrorPaths.push(...paths);
        else metrics.nonFtv1ErrorPaths = paths;
      }
    }
    return response.data as Data | null | undefined;
  };

  if (!fetch.requires) {
    const received = await send(variables);
    if (received) applyRewrites(types, fetch.outputRewrites, received);
    for (const entity of entities) deepMerge(entity, received);
    return;
  }

  if (!fetch.contextRewrites?.length) return fetchEntities(entities, variables);
  // @fromContext: each entity's arguments come from its ancestors (`..`), so entities whose values differ go
  // in fetches of their own, one per distinct set of values (the merger sends such fetches alone).
  // Of several rewrites for one variable (one context set at several levels), the nearest ancestor's wins.
  const rewrites = [...fetch.contextRewrites].sort((a, b) => ups(a) - ups(b));
  const groups = new Map<string, { entities: Data[]; positions: number[]; values: Data }>();
  const withParents = flattenWithParents(cursor.fullResult, cursor.path);
  let position = 0;
  for (const { value, parents } of withParents) {
    if (value === null || value === undefined) continue;
    const values = contextValues(types, rewrites, value as Data, parents);
    const key = JSON.stringify(values);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { entities: [], positions: [], values }));
    group.entities.push(value as Data);
    group.positions.push(position++);
  }
  await Promise.all([...groups.values()].map((group) => fetchEntities(group.entities, { ...variables, ...group.values }, groups.size > 1 ? group.positions : undefined)));

  async function fetchEntities(entities: Data[], variables: Data, positions?: number[]): Promise<void> {
    const representations: Data[] = [];
    const representationToEntity: number[] = [];
    for (let index = 0; index < entities.length; index++) {
      // The supergraph's types, not the API schema's: a key may use @inaccessible fields, which subgraphs know.
      const representation = selectRequires(types, entities[index]!, fetch.requires!);
      if (representation && representation.__typename) {
        applyRewrites(types, fetch.inputRewrites, representation);
        representations.push(representation);
        representationToEntity.push(index);
      }
    }
    if (representations.length < 1) return;
    if ('representations' in variables) throw new Error(`Variables cannot contain key "representations"`);

    const sent = run.dedupeRepresentations ? dedupe(representations) : undefined;
    // A group's `_entities` positions, as positions among all the fetch's entities (for error paths).
    const placed = positions && representationToEntity.map((entity) => positions[entity]!);
    const received = await send({ ...variables, representations: sent ? sent.unique : representations }, sent?.fanOut, placed);
    if (!received) return;
    if (!(received._entities && Array.isArray(received._entities))) throw new Error(`Expected "data._entities" in response to be an array`);
    const receivedEntities = received._entities as (Data | null)[];
    if (receivedEntities.length !== representations.length) throw new Error(`Expected "data._entities" to contain ${representations.length} elements`);

    // Apollo walks `entities`, not `representations`: past the representations' end it merges nothing into
    // nothing, and it does the same here.
    for (let index = 0; index < entities.length; index++) {
      const entity = receivedEntities[index];
      const target = entities[representationToEntity[index]!];
      if (entity && !entity.__typename) entity.__typename = target!.__typename;
      applyRewrites(types, fetch.outputRewrites, entity as Data);
      deepMerge(target, entity);
    }
  }
}

/** What `flattenFrom` finds at `path` from the root, each with the objects above it (nearest last). */
function flattenWithParents(root: Data, path: ResponsePath): { value: unknown; parents: Data[] }[] {
  const found: { value: unknown; parents: Data[] }[] = [];
  const walk = (value: unknown, from: number, parents: Data[]) => {
    if (from === path.length || value === null || value === undefined) {
      if (Array.isArray(value) && from === path.length) for (const item of value) found.push({ value: item, parents });
      else found.push({ value, parents });
      return;
    }
    const { name, types } = stepOf(path[from] as string);
    if (name === '@') {
      if (!Array.isArray(value)) throw new TypeError('value.flatMap is not a function');
      for (const item of value as unknown[]) if (!(types && outOfType(item, types))) walk(item, from + 1, parents);
      return;
    }
    if (Array.isArray(value) || typeof value !== 'object') return;
    const next = name === '' ? value : getOwn(value as Data, name);
    if (types && outOfType(next, types)) return;
    walk(next, from + 1, name === '' ? parents : [...parents, value as Data]);
  };
  walk(root, 0, []);
  return found;
}

const ups = (rewrite: FetchDataRewrite) => rewrite.path.filter((element) => element === '..').length;

/**
 * The variables a fetch's context rewrites give one entity: `..` is the object one field above, `... on T` a
 * type check, then fields; a list on the way gives a list.
 */
function contextValues(types: SupergraphTypes, rewrites: readonly FetchDataRewrite[], entity: Data, parents: readonly Data[]): Data {
  const values: Data = {};
  const read = (value: unknown, path: readonly string[], from: number): unknown => {
    if (from === path.length || value === null || value === undefined) return value;
    if (Array.isArray(value)) return value.map((item) => read(item, path, from));
    if (typeof value !== 'object') return undefined;
    const element = path[from]!;
    if (element.startsWith('... on ')) return types.isObjectOfType((value as Data).__typename, element.slice('... on '.length), true) ? read(value, path, from + 1) : undefined;
    return read(getOwn(value as Data, element), path, from + 1);
  };
  for (const rewrite of rewrites) {
    if (rewrite.kind !== 'KeyRenamer' || hasOwn(values, rewrite.renameKeyTo)) continue;
    let current: unknown = entity;
    let above = parents.length;
    let from = 0;
    for (; from < rewrite.path.length && rewrite.path[from] === '..'; from++) current = above > 0 ? parents[--above] : undefined;
    const value = read(current, rewrite.path, from);
    if (value !== undefined) values[rewrite.renameKeyTo] = value;
  }
  return values;
}

type SubgraphAnswer = { data?: Data | null; errors?: readonly GraphQLFormattedError[]; extensions?: Data };

/**
 * Representations to send once each, and how to turn the subgraph's answer to them back into the answer to
 * all of them: each entity its own copy (later fetches merge into them separately), each error repeated at
 * every position its representation held.
 */
function dedupe(representations: Data[]) {
  const unique: Data[] = [];
  const slots: number[] = [];
  const seen = new Map<string, number>();
  for (const representation of representations) {
    const key = JSON.stringify(representation);
    let slot = seen.get(key);
    if (slot === undefined) {
      slot = unique.length;
      seen.set(key, slot);
      unique.push(representation);
    }
    slots.push(slot);
  }
  if (unique.length === representations.length) return undefined;
  const fanOut = (response: SubgraphAnswer) => {
    const entities = response.data?._entities;
    if (Array.isArray(entities) && entities.length === unique.length) {
      const used = new Set<number>();
      response.data!._entities = slots.map((slot) => {
        const entity = entities[slot] as unknown;
        if (!used.has(slot)) {
          used.add(slot);
          return entity;
        }
        return copy(entity);
      });
    }
    if (response.errors) {
      // In the subgraph's order (it may fail one entity later than another), each error repeated in place.
      response.errors = response.errors.flatMap((error) => {
        const slot = error.path?.[0] === '_entities' ? error.path[1] : undefined;
        if (typeof slot !== 'number') return [error];
        const repeated: GraphQLFormattedError[] = [];
        slots.forEach((candidate, position) => {
          if (candidate === slot) repeated.push({ ...error, path: ['_entities', position, ...error.path!.slice(2)] });
        });
        return repeated.length > 0 ? repeated : [error];
      });
    }
  };
  return { unique, fanOut };
}

/** A deep copy of parsed JSON (plain objects, arrays, scalars): several times cheaper than structuredClone. */
function copy(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(copy);
  const copied: Data = {};
  for (const key of Object.keys(value)) {
    const inner = copy((value as Data)[key]);
    // An assignment to `__proto__` would set the prototype; JSON.parse made it an own key, and so does this.
    if (key === '__proto__') Object.defineProperty(copied, key, { value: inner, enumerable: true, writable: true, configurable: true });
    else copied[key] = inner;
  }
  return copied;
}

const hasOwn = (object: object, key: PropertyKey) => Object.prototype.hasOwnProperty.call(object, key);
const getOwn = (object: Data, key: string) => (hasOwn(object, key) ? object[key] : undefined);

function defineOwn(object: object, key: string) {
  if (!hasOwn(object, key) && key in object) Object.defineProperty(object, key, { configurable: true, enumerable: true, value: undefined, writable: true });
}

const isObject = (value: unknown): value is Data => value !== undefined && value !== null && typeof value === 'object' && !Array.isArray(value);

function deepMerge(target: unknown, source: unknown): unknown {
  if (source === undefined || source === null) return target;
  const into = target as Data;
  const from = source as Data;
  for (const key of Object.keys(from)) {
    const value = from[key];
    if (value === undefined) continue;
    defineOwn(into, key);
    const existing = into[key];
    if (existing && isObject(value)) {
      deepMerge(existing, value);
    } else if (Array.isArray(value) && Array.isArray(existing) && value.length === existing.length) {
      for (let index = 0; index < value.length; index++) {
        if (isObject(existing[index]) && isObject(value[index])) deepMerge(existing[index], value[index]);
        else existing[index] = value[index];
      }
    } else {
      into[key] = value;
    }
  }
  return target;
}

/** A fetch's `requires` read out of an entity: its representation, or null when an input is missing. */
function selectRequires(types: SupergraphTypes, source: Data | null, selections: readonly QueryPlanSelectionNode[]): Data | null {
  if (source === null) return null;
  const result: Data = {};
  for (const selection of selections) {
    if (selection.kind === 'Field') {
      const responseName = selection.alias ?? selection.name;
      if (!hasOwn(source, responseName) || typeof source[responseName] === 'undefined') return null;
      const value = source[responseName];
      const nested = selection.selections;
      if (Array.isArray(value)) result[responseName] = value.map((element: Data | null) => (nested ? selectRequires(types, element, nested) : element));
      else if (nested) result[responseName] = selectRequires(types, value as Data | null, nested);
      else result[responseName] = value;
    } else {
      if (!selection.typeCondition || !source) continue;
      if (types.isObjectOfType(source.__typename, selection.typeCondition)) deepMerge(result, selectRequires(types, source, selection.selections));
    }
  }
  return result;
}

const FRAGMENT_PREFIX = '... on ';

function applyRewrites(types: SupergraphTypes, rewrites: readonly FetchDataRewrite[] | undefined, value: Data) {
  if (!rewrites) return;
  for (const rewrite of rewrites) {
    if (rewrite.path.length === 0) continue;
    const parent = rewrite.path.slice(0, -1);
    const last = rewrite.path[rewrite.path.length - 1]!;
    assert(!last.startsWith(FRAGMENT_PREFIX), () => `Unexpected fragment as last element of ${rewrite.path}`);
    applyAtPath(types, parent, value, (object) => {
      if (rewrite.kind === 'ValueSetter') {
        defineOwn(object, last);
        object[last] = rewrite.setValueTo;
      } else {
        const atPath = getOwn(object, last);
        if (atPath) {
          defineOwn(object, rewrite.renameKeyTo);
          object[rewrite.renameKeyTo] = atPath;
          object[last] = undefined;
        }
      }
    });
  }
}

function applyAtPath(types: SupergraphTypes, path: readonly string[], value: unknown, apply: (object: Data) => void) {
  if (Array.isArray(value)) {
    for (const element of value) applyAtPath(types, path, element, apply);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  if (path.length === 0) {
    apply(value as Data);
    return;
  }
  const [first, ...rest] = path as [string, ...string[]];
  if (first.startsWith(FRAGMENT_PREFIX)) {
    // Rewrites do not always have every object's __typename, and must still apply then.
    if (types.isObjectOfType((value as Data).__typename, first.slice(FRAGMENT_PREFIX.length), true)) applyAtPath(types, rest, value, apply);
  } else {
    applyAtPath(types, rest, getOwn(value as Data, first), apply);
  }
}

function moveIntoCursor(cursor: Cursor, pathInCursor: ResponsePath): Cursor | undefined {
  const data = flattenFrom(cursor.data, pathInCursor, 0);
  return data ? { path: cursor.path.concat(pathInCursor), data, fullResult: cursor.fullResult } : undefined;
}

/**
 * With type-conditioned fetching, the planner suffixes a path element with the types the value it reaches must
 * have (`review|[UserReview]`, `@|[A,B]`) and starts the path with '' (the root, which may carry one too): an
 * entity of another type gets nothing from that fetch, so it is left out of it, as Apollo Router does.
 */
const CONDITION = '|[';
const conditionTypes = (element: string, bar: number) => element.slice(bar + CONDITION.length, -1).split(',');
/** A path element's field name ('@' for a list, '' for the root) and the types its value must have, if any. */
function stepOf(element: string): { name: string; types?: string[] } {
  const bar = element.indexOf(CONDITION);
  return bar < 0 ? { name: element } : { name: element.slice(0, bar), types: conditionTypes(element, bar) };
}
/** An object whose `__typename` is none of `types`; one without a `__typename` stays in. */
function outOfType(value: unknown, types: readonly string[]): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const typename = (value as Data).__typename;
  return typeof typename === 'string' && !types.includes(typename);
}

// Apollo's recursion, by index instead of by copying the rest of the path at every step (and the path elements
// read in place rather than through stepOf: this runs for every entity of every fetch).
function flattenFrom(value: unknown, path: ResponsePath, from: number): Data | Data[] | null | undefined {
  let current = value;
  for (let index = from; index < path.length; index++) {
    if (current === undefined || current === null) return current;
    const element = path[index];
    // Tested first: the message closures would otherwise be made for every step of every entity.
    if (typeof element !== 'string') assert(false, `Unexpected ${typeof element} found in path`);
    const bar = element.indexOf(CONDITION);
    const name = bar < 0 ? element : element.slice(0, bar);
    if (name === '@') {
      // A subgraph that sent something else than a list where the plan expects one: Apollo's `flatMap` call
      // fails with this, and the request with it.
      if (!Array.isArray(current)) throw new TypeError('value.flatMap is not a function');
      const types = bar < 0 ? undefined : conditionTypes(element, bar);
      const flattened: unknown[] = [];
      for (const item of current as unknown[]) {
        if (types && outOfType(item, types)) continue;
        const inner = flattenFrom(item, path, index + 1);
        if (Array.isArray(inner)) {
          for (const entity of inner) flattened.push(entity);
        } else {
          flattened.push(inner);
        }
      }
      return flattened as Data[];
    }
    if (Array.isArray(current)) assert(false, `Unexpected array in result for path element ${element}`);
    if (name !== '') current = getOwn(current as Data, name);
    if (bar >= 0 && outOfType(current, conditionTypes(element, bar))) return undefined;
  }
  return current as Data | Data[];
}

/** Error paths from a subgraph, moved to where its answer lands in the client's response (hydrated lazily). */
function errorPaths(fetch: FetchNode, cursor: Cursor) {
  let hydrated: ResponsePath[] | undefined;
  return (path: readonly (string | number)[] | undefined): ResponsePath | undefined => {
    if (fetch.requires && typeof path?.[1] === 'number') {
      if (!hydrated) {
        hydrated = [];
        hydratePaths([], cursor.path, cursor.fullResult, hydrated);
      }
      return [...(hydrated[path[1]] ?? []), ...path.slice(2)];
    }
    return path ? [...plainPath(cursor.path), ...path.slice()] : undefined;
  };
}

/** A plan's path as a response path: without the root's '' and the type conditions. */
const plainPath = (path: ResponsePath): ResponsePath =>
  path.flatMap((element): ResponsePath => {
    if (typeof element !== 'string') return [element];
    const { name } = stepOf(element);
    return name === '' ? [] : [name];
  });

function hydratePaths(parent: ResponsePath, path: ResponsePath, data: unknown, result: ResponsePath[]) {
  const head = path[0];
  if (data == null) return;
  if (head == null) {
    result.push(parent.slice());
    return;
  }
  if (typeof head !== 'string') assert(false, `unknown path part "${head}"`);
  const { name, types } = stepOf(head);
  if (name === '@') {
    assert(Array.isArray(data), 'expected array when encountering `@`');
    for (const [index, value] of data.entries()) {
      if (types && outOfType(value, types)) continue;
      parent.push(index);
      hydratePaths(parent, path.slice(1), value, result);
      parent.pop();
    }
  } else if (Array.isArray(data)) {
    for (const [index, value] of data.entries()) {
      parent.push(index);
      hydratePaths(parent, path, value, result);
      parent.pop();
    }
  } else if (name === '') {
    if (!(types && outOfType(data, types))) hydratePaths(parent, path.slice(1), data, result);
  } else if (hasOwn(data as object, name)) {
    const value = (data as Data)[name];
    if (types && outOfType(value, types)) return;
    parent.push(name);
    hydratePaths(parent, path.slice(1), value, result);
    parent.pop();
  }
}

function downstreamError(original: GraphQLFormattedError, serviceName: string, pathOf: (path: readonly (string | number)[] | undefined) => ResponsePath | undefined): GraphQLError {
  const message = original.message || `Error while fetching subquery from service "${serviceName}"`;
  const extensions = original.extensions;
  const options = {
    originalError: original as Error,
    path: pathOf(original.path),
    extensions: { ...extensions, serviceName },
  };
  const codeDef = errorCodeDef(original);
  if (!codeDef && extensions?.code) return new GraphQLError(message, options);
  return (codeDef ?? ERRORS.DOWNSTREAM_SERVICE_ERROR).err(message, options);
}
