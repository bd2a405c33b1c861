import type { GraphQLDataSource, GraphQLDataSourceProcessOptions, ServiceMap } from '@apollo/gateway';
import { GraphQLError } from 'graphql';

/** What a subgraph answered, as plain JSON. */
export interface SubgraphAnswer {
  data?: Record<string, unknown> | null;
  errors?: Record<string, unknown>[];
  extensions?: Record<string, unknown>;
}

/** One subgraph request: what an executor sent. `variables` is `JSON.stringify` of them, as sent (key order kept). */
export interface SubgraphCall {
  service: string;
  query: string;
  variables: string;
}

/** One recorded fetch: the request and the answer it got, as JSON text (every replay parses a fresh copy). */
export interface RecordedFetch extends SubgraphCall {
  answer: string;
}

/** The fetches of one operation, in the order they were made. */
export type Recording = readonly RecordedFetch[];

/** JSON with object keys sorted: finds a recorded answer whatever order an executor wrote the variables in. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

const keyOf = (service: string, query: string, variables: unknown) => `${service}\n${query}\n${canonical(variables ?? {})}`;

/** Only what a subgraph's JSON body carries: no `http`, nothing added by the data source. */
const answerOf = (response: SubgraphAnswer): SubgraphAnswer => ({
  ...(response.data !== undefined && { data: response.data }),
  ...(response.errors !== undefined && { errors: response.errors }),
  ...(response.extensions !== undefined && { extensions: response.extensions }),
});

/** Wraps real data sources: every request goes through, and is appended with its answer to `into`. */
export function recording(services: Record<string, GraphQLDataSource>, into: RecordedFetch[]): ServiceMap {
  return Object.fromEntries(
    Object.entries(services).map(([service, source]) => [
      service,
      {
        async process(options: GraphQLDataSourceProcessOptions) {
          const { query = '', variables } = options.request;
          const sentVariables = JSON.stringify(variables ?? {});
          const response = await source.process(options);
          into.push({ service, query, variables: sentVariables, answer: JSON.stringify(answerOf(response as SubgraphAnswer)) });
          return response;
        },
      } satisfies GraphQLDataSource,
    ]),
  );
}

export const NOT_RECORDED = 'NOT_RECORDED';

/** An answer holding this key makes the replaying data source throw instead (a subgraph down, a timeout). */
export const THROWS = '__harnessThrows';

export interface ThrownFailure {
  message: string;
  /** A GraphQLError with these extensions, as the gateway's SubgraphDataSource throws; otherwise a plain Error. */
  graphql?: boolean;
  extensions?: Record<string, unknown>;
}

/**
 * Data sources that answer from a recording, deterministically: each request resolves after one microtask (so
 * the order of requests depends on the executor alone, never on timing), with a fresh copy of the answer.
 *
 * A request the recording does not hold (a mutated answer changed what later fetches ask) is answered from the
 * unmutated `base`: an `_entities` fetch gets, for each representation, the entity the subgraph returned for an
 * equal one in a recorded fetch of the same operation text (null if none); anything else gets one error.
 */
export function replaying(recording: Recording, base: Recording, calls: SubgraphCall[]): ServiceMap {
  const answers = new Map<string, string[]>();
  for (const fetch of recording) {
    const key = keyOf(fetch.service, fetch.query, JSON.parse(fetch.variables));
    answers.set(key, [...(answers.get(key) ?? []), fetch.answer]);
  }
  const served = new Map<string, number>();
  const entities = entityIndex(base);
  const services = new Set(recording.map((f) => f.service));
  const sources: ServiceMap = {};
  for (const service of [...services, 'users', 'orders']) {
    sources[service] = {
      async process(options: GraphQLDataSourceProcessOptions) {
        const { query = '', variables } = options.request;
        calls.push({ service, query, variables: JSON.stringify(variables ?? {}) });
        await Promise.resolve();
        const key = keyOf(service, query, variables);
        const recorded = answers.get(key);
        if (recorded) {
          // The same request twice in one operation gets the answers in recorded order (the last one after that).
          const n = served.get(key) ?? 0;
          served.set(key, n + 1);
          const answer = JSON.parse(recorded[Math.min(n, recorded.length - 1)]!) as SubgraphAnswer & { [THROWS]?: ThrownFailure };
          const thrown = answer[THROWS];
          if (thrown) throw thrown.graphql ? new GraphQLError(thrown.message, { extensions: thrown.extensions }) : new Error(thrown.message);
          return answer as never;
        }
        return synthesize(entities, service, query, variables ?? {}) as never;
      },
    };
  }
  return sources;
}

type EntityIndex = Map<string, unknown>;

function entityIndex(base: Recording): EntityIndex {
  const index: EntityIndex = new Map();
  for (const fetch of base) {
    const variables = JSON.parse(fetch.variables) as Record<string, unknown>;
    const representations = variables.representations;
    if (!Array.isArray(representations)) continue;
    const { representations: _, ...others } = variables;
    const answer = JSON.parse(fetch.answer) as SubgraphAnswer;
    const received = (answer.data as { _entities?: unknown[] } | null | undefined)?._entities;
    if (!Array.isArray(received)) continue;
    representations.forEach((representation, i) => {
      const key = `${fetch.service}\n${fetch.query}\n${canonical(others)}\n${canonical(representation)}`;
      if (!index.has(key) && i < received.length) index.set(key, received[i]);
    });
  }
  return index;
}

function synthesize(index: EntityIndex, service: string, query: string, variables: Record<string, unknown>): SubgraphAnswer {
  const { representations, ...others } = variables;
  if (Array.isArray(representations)) {
    return {
      data: {
        _entities: representations.map((representation) => {
          const found = index.get(`${service}\n${query}\n${canonical(others)}\n${canonical(representation)}`);
          return found === undefined ? null : structuredClone(found);
        }),
      },
    };
  }
  return { errors: [{ message: 'The harness holds no recorded answer for this request', extensions: { code: NOT_RECORDED } }] };
}
