import { THROWS, type Recording, type SubgraphAnswer, type ThrownFailure } from './recorded.ts';

/** A recording with one answer changed, and what was changed (for the report of a divergence). */
export interface Variant {
  description: string;
  recording: Recording;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Path = (string | number)[];

/** mulberry32: the same seed always samples the same positions. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of a corpus id: its mutations' seed. */
export function seedOf(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

// Values of this supergraph's enums (and one of its @inaccessible enum, CacheControlScope).
const ENUM_VALUES = new Set(['PENDING', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'USER_CREATED', 'USER_UPDATED', 'USER_DELETED', 'ORDER_PLACED', 'ORDER_CANCELLED', 'ORDER_STATUS_CHANGED']);

/** Names `__typename` is replaced with: unknown, a wrong object type, an @inaccessible type, the root, an empty name. */
const WRONG_TYPENAMES = ['NoSuchType', 'OrderItem', 'CacheControlScope', 'Query', ''];

interface Candidate {
  /** Which fetch of the recording it changes. */
  fetch: number;
  kind: string;
  depth: number;
  describe: string;
  apply(answer: SubgraphAnswer): SubgraphAnswer;
}

const render = (path: Path) => (path.length === 0 ? 'data' : `data.${path.join('.')}`);

function at(root: Json, path: Path): Json | undefined {
  let node: Json | undefined = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, Json>)[key as string];
  }
  return node;
}

/** A copy of the answer with the value at `path` (under `data`) replaced, or deleted when `value` is undefined. */
function withValue(answer: SubgraphAnswer, path: Path, value: Json | undefined): SubgraphAnswer {
  const copy = structuredClone(answer);
  if (path.length === 0) {
    if (value === undefined) delete copy.data;
    else copy.data = value as SubgraphAnswer['data'];
    return copy;
  }
  const parent = at(copy.data as Json, path.slice(0, -1)) as Record<string | number, Json>;
  const last = path[path.length - 1]!;
  if (value === undefined) {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else parent[last] = value;
  return copy;
}

const withError = (answer: SubgraphAnswer, error: Record<string, unknown>): SubgraphAnswer => {
  const copy = structuredClone(answer);
  copy.errors = [...(copy.errors ?? []), error];
  return copy;
};

/** Every change this harness knows how to make to one answer, at every position of its `data`. */
function candidatesOf(fetch: number, answer: SubgraphAnswer): Candidate[] {
  const out: Candidate[] = [];
  const add = (kind: string, path: Path, describe: string, apply: (a: SubgraphAnswer) => SubgraphAnswer) =>
    out.push({ fetch, kind, depth: path.length, describe: `${describe} at ${render(path)}`, apply });

  const walk = (value: Json, path: Path) => {
    const key = path[path.length - 1];
    if (path.length > 0) {
      add('null', path, 'null', (a) => withValue(a, path, null));
      if (typeof key === 'string') add('delete', path, 'field deleted', (a) => withValue(a, path, undefined));
    }
    // A subgraph error pointing here: alone, and with the value nulled as a subgraph would.
    const message = `injected at depth ${path.length}`;
    add('error', path, 'error with path and code', (a) => withError(a, { message, path, extensions: { code: 'INJECTED', depth: path.length } }));
    if (path.length > 0) {
      add('error-and-null', path, 'error with path, value nulled', (a) => withError(withValue(a, path, null), { message, path, extensions: { code: 'INJECTED' } }));
    }

    if (key === '__typename' && typeof value === 'string') {
      WRONG_TYPENAMES.forEach((name, i) => add(`typename-${i}`, path, `__typename ${JSON.stringify(value)} -> ${JSON.stringify(name)}`, (a) => withValue(a, path, name)));
    }
    if (Array.isArray(value)) {
      add('string-for-list', path, 'a string for a list', (a) => withValue(a, path, 'not a list'));
      add('object-for-list', path, 'an object for a list', (a) => withValue(a, path, {}));
      if (key === '_entities') {
        if (value.length > 0) add('entities-shorter', path, '_entities one shorter', (a) => withValue(a, path, value.slice(0, -1)));
        add('entities-longer', path, '_entities one longer', (a) => withValue(a, path, [...value, value[value.length - 1] ?? null]));
        add('entities-null-item', path, '_entities with a null', (a) => withValue(a, path, [null, ...value.slice(1)]));
      } else if (value.length > 0) {
        add('list-item-null', [...path, 0], 'list item null', (a) => withValue(a, [...path, 0], null));
        add('list-shorter', path, 'list one shorter', (a) => withValue(a, path, value.slice(1)));
      }
      value.forEach((item, i) => walk(item, [...path, i]));
      return;
    }
    if (value !== null && typeof value === 'object') {
      if (path.length > 0) {
        add('scalar-for-object', path, 'a string for an object', (a) => withValue(a, path, 'not an object'));
        add('list-for-object', path, 'a list for an object', (a) => withValue(a, path, [value]));
      }
      add('extra-field', path, 'a field nobody asked for', (a) => withValue(a, [...path, 'unrequested'], { nested: [1, 'two'] }));
      for (const [k, v] of Object.entries(value)) walk(v, [...path, k]);
      return;
    }
    if (typeof value === 'string' && ENUM_VALUES.has(value)) {
      add('enum-invalid', path, `enum ${value} -> INVALID_VALUE`, (a) => withValue(a, path, 'INVALID_VALUE'));
      add('enum-inaccessible', path, `enum ${value} -> PRIVATE (a value of an @inaccessible enum)`, (a) => withValue(a, path, 'PRIVATE'));
      add('enum-lower-case', path, `enum ${value} -> lower case`, (a) => withValue(a, path, value.toLowerCase()));
    }
    if (typeof value === 'number' && Number.isInteger(value)) {
      add('float-for-int', path, `float for ${value}`, (a) => withValue(a, path, value + 0.5));
      add('string-for-int', path, `string for ${value}`, (a) => withValue(a, path, String(value)));
      add('big-int', path, `2^31 for ${value}`, (a) => withValue(a, path, 2 ** 31));
      // Where integer checks tend to be hand-written: past 2^53, at and past 1e21 (JSON's exponent), negative.
      for (const [name, edge] of [['2^53+2', 2 ** 53 + 2], ['1e20', 1e20], ['1e21', 1e21], ['-2^31-1', -(2 ** 31) - 1], ['-1.5', -1.5]] as const) {
        add(`int-edge-${name}`, path, `${name} for ${value}`, (a) => withValue(a, path, edge));
      }
    }
    if (typeof value === 'string') {
      // Strings include IDs, which accept integers: so integers, floats and booleans in their place.
      add('number-for-string', path, 'a number for a string', (a) => withValue(a, path, 42));
      add('float-for-string', path, 'a float for a string', (a) => withValue(a, path, 1.5));
      add('huge-for-string', path, '1e21 for a string', (a) => withValue(a, path, 1e21));
      add('boolean-for-string', path, 'a boolean for a string', (a) => withValue(a, path, true));
    }
    if (typeof value === 'boolean') add('string-for-boolean', path, 'a string for a boolean', (a) => withValue(a, path, 'true'));
    if (path.length > 0 && value !== null) add('object-for-leaf', path, 'an object for a leaf', (a) => withValue(a, path, { value }));
  };

  if (answer.data !== undefined && answer.data !== null) walk(answer.data as Json, []);
  // Errors a subgraph should not send, but might: no path, no extensions, a path outside the answer, odd types.
  const odd: [string, Record<string, unknown>][] = [
    ['error without path', { message: 'no path', extensions: { code: 'INJECTED_NO_PATH' } }],
    ['error without path or extensions', { message: 'bare' }],
    ['error with an empty path', { message: 'empty path', path: [] }],
    ['error with a path past the answer', { message: 'far away', path: ['_entities', 99, 'name'], extensions: { code: 'FAR' } }],
    ['error with a path into a missing field', { message: 'missing field', path: ['nowhere', 0] }],
    ['error with null extensions and locations', { message: 'odd shape', locations: [{ line: 1, column: 2 }], extensions: null }],
    ['error with extensions that name a service and a code', { message: 'named', path: [], extensions: { code: 'FORBIDDEN', serviceName: 'elsewhere', exception: { stacktrace: ['x'] } } }],
  ];
  odd.forEach(([describe, error], i) => add(`error-odd-${i}`, [], describe, (a) => withError(a, error)));
  const failures: [string, ThrownFailure][] = [
    ['the data source throws an Error', { message: 'connect ECONNREFUSED 127.0.0.1:1' }],
    ['the data source throws a GraphQLError', { message: 'The subgraph is unavailable', graphql: true, extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'x' } }],
  ];
  failures.forEach(([describe, failure], i) => add(`throws-${i}`, [], describe, () => ({ [THROWS]: failure }) as SubgraphAnswer));
  add('answer-extensions', [], 'extensions on the answer', (a) => ({ ...a, extensions: { ftv1: 'abc', cacheControl: { version: 1, hints: [] } } }));
  add('data-null', [], 'data null with an error', (a) => ({ data: null, errors: [...(a.errors ?? []), { message: 'whole answer failed', extensions: { code: 'INJECTED' } }] }));
  add('errors-only', [], 'no data, only an error', (a) => ({ errors: [...(a.errors ?? []), { message: 'no data at all' }] }));
  add('empty-answer', [], 'an empty answer', () => ({}));
  return out;
}

/**
 * Variants of a recording, one change each, stratified so that few variants still cover many kinds of change:
 * the kinds this recording admits are visited in a seeded order, round after round, and each visit draws one
 * position of that kind (any fetch, any depth, depths first spread evenly) not drawn before. At most `max`.
 * Deterministic for a given recording and seed.
 */
export function variantsOf(recording: Recording, seed: number, max: number): Variant[] {
  const random = prng(seed);
  // kind -> depth group -> candidates
  const byKind = new Map<string, Map<string, Candidate[]>>();
  recording.forEach((fetch, index) => {
    for (const candidate of candidatesOf(index, JSON.parse(fetch.answer) as SubgraphAnswer)) {
      const depths = byKind.get(candidate.kind) ?? new Map<string, Candidate[]>();
      byKind.set(candidate.kind, depths);
      const group = `${index}/${candidate.depth}`;
      depths.set(group, [...(depths.get(group) ?? []), candidate]);
    }
  });
  const kinds = [...byKind.keys()];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  const chosen: Candidate[] = [];
  while (chosen.length < max && kinds.some((kind) => byKind.get(kind)!.size > 0)) {
    for (const kind of kinds) {
      if (chosen.length >= max) break;
      const depths = byKind.get(kind)!;
      const groups = [...depths.keys()];
      if (groups.length === 0) continue;
      const group = groups[Math.floor(random() * groups.length)]!;
      const candidates = depths.get(group)!;
      chosen.push(candidates.splice(Math.floor(random() * candidates.length), 1)[0]!);
      if (candidates.length === 0) depths.delete(group);
    }
  }
  return chosen.map((candidate) => {
    const fetch = recording[candidate.fetch]!;
    const answer = candidate.apply(JSON.parse(fetch.answer) as SubgraphAnswer);
    return {
      description: `fetch ${candidate.fetch} (${fetch.service}): ${candidate.describe}`,
      recording: recording.map((f, i) => (i === candidate.fetch ? { ...f, answer: JSON.stringify(answer) } : f)),
    };
  });
}

/**
 * Variants with `arity` changes at once (anywhere in any fetch), drawn with a PRNG seeded by `seed`. A change
 * whose position an earlier one removed is left out.
 */
export function compoundVariantsOf(recording: Recording, seed: number, max: number, arity = 3): Variant[] {
  const random = prng(seed);
  const all = recording.flatMap((fetch, index) => candidatesOf(index, JSON.parse(fetch.answer) as SubgraphAnswer));
  if (all.length === 0) return [];
  const variants: Variant[] = [];
  for (let n = 0; n < max; n++) {
    const answers = recording.map((fetch) => JSON.parse(fetch.answer) as SubgraphAnswer);
    const applied: string[] = [];
    for (let k = 0; k < arity; k++) {
      const candidate = all[Math.floor(random() * all.length)]!;
      try {
        answers[candidate.fetch] = candidate.apply(answers[candidate.fetch]!);
        applied.push(`fetch ${candidate.fetch}: ${candidate.describe}`);
      } catch {
        // Its position is gone (under a value an earlier change replaced).
      }
    }
    variants.push({ description: applied.join('; '), recording: recording.map((f, i) => ({ ...f, answer: JSON.stringify(answers[i]) })) });
  }
  return variants;
}
