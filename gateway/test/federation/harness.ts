// The federation-behaviour suites' harness: small subgraphs written for each test (buildSubgraphSchema over
// in-memory data, each a real Apollo Server on an ephemeral loopback port), composed at test time, and served
// through the real createGateway once per executor. Every case is asked over HTTP of every executor; each answer
// must be the one the test pins, and the executors' answers must be byte-identical.
import { Writable } from 'node:stream';
import { composeServices } from '@apollo/composition';
import { ApolloServer, type ApolloServerPlugin, type BaseContext } from '@apollo/server';
import { ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { createLogger, createMemoryCache, listen, MemoryRateLimiter } from '@fed/platform';
import { getOperationAST, GraphQLError, parse, print, type GraphQLFormattedError } from 'graphql';
import { afterAll, beforeAll, expect } from 'vitest';
import { DEVELOPMENT_AUTH } from '../../src/config.ts';
import { createAuthenticator, createGateway, type Gateway, type GatewayDeps } from '../../src/gateway.ts';
import { deferVariant, mergePayloads, readMultipart, type Payload } from '../incremental/variants.ts';

/** The line the gateway logs when an operation is handed to Apollo's executor instead of its own. */
const FALLBACK_MESSAGE = "operation runs on Apollo's executor";

/** A log destination that keeps only the fallback lines (each operation's reason); everything else is dropped. */
function fallbackRecorder(fallbacks: string[]) {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.includes(FALLBACK_MESSAGE)) continue;
        const { reason } = JSON.parse(line) as { reason?: string };
        fallbacks.push(reason ?? line);
      }
      done();
    },
  });
}

/** Every executor the gateway can run a plan with: Apollo's is the reference, ours must answer the same. */
export const EXECUTIONS = ['apollo', 'own'] as const;
export type Execution = (typeof EXECUTIONS)[number];

/** A subgraph error code the gateway lets through (with its message), so that tests see what was raised. */
export const TEST_ERROR_CODE = 'FED_TEST_ERROR';

/** An error a subgraph resolver raises on purpose; its message and code reach the client. */
export const testError = (message: string) => new GraphQLError(message, { extensions: { code: TEST_ERROR_CODE } });

export interface SubgraphDefinition {
  name: string;
  typeDefs: string;
  resolvers: Record<string, unknown>;
}

export interface SubgraphRequest {
  subgraph: string;
  query: string;
  variables: Record<string, unknown>;
}

/** An operation's text, or its text and which of its operations to run. */
export type Operation = string | { query: string; operationName: string };

export interface Answer {
  status: number;
  /** The response body exactly as it came over the wire. */
  text: string;
  body: { data?: unknown; errors?: GraphQLFormattedError[]; extensions?: Record<string, unknown> };
}

export interface Expected {
  data?: unknown;
  errors?: Array<{ message: string; path?: ReadonlyArray<string | number>; extensions?: Record<string, unknown>; locations?: unknown }>;
  /** Apollo's executor reports value-completion problems here (`valueCompletion`), not in `errors`. */
  extensions?: Record<string, unknown>;
  /** Default 200. */
  status?: number;
  /**
   * The reason our executor gives for handing this operation to Apollo's, where it does so by design; by default
   * every operation must run on the executor asked for.
   */
  fallsBack?: string;
  /**
   * Why the operation with its selections deferred answers otherwise (a null that stops at a deferred fragment,
   * say); by default every clean answer is also asked for in parts, and the parts must merge into it.
   */
  deferDiffers?: string;
}

export interface Federation {
  supergraphSdl: string;
  /** Every subgraph request since the suite started (the gateway's readiness probes aside), in arrival order. */
  requests: SubgraphRequest[];
  /** Stops one subgraph's server: from then on, fetches to it are refused. */
  stopSubgraph(name: string): Promise<void>;
  /** What each executor answers to one request. */
  ask(query: Operation, variables?: Record<string, unknown>): Promise<Record<Execution, Answer>>;
  /** One executor's answer, and the subgraph requests it made. */
  askWith(execution: Execution, query: Operation, variables?: Record<string, unknown>): Promise<{ answer: Answer; requests: SubgraphRequest[] }>;
  /**
   * Asks every executor (at once; one after the other when `before` is given, which runs before each to reset
   * state a mutation changes); each answer must be `expected`, data keys in the order the operation asks for
   * them, and all answers byte-identical.
   */
  expectAnswer(query: Operation, variables: Record<string, unknown> | undefined, expected: Expected, before?: () => void): Promise<Record<Execution, Answer>>;
}

function recorder(subgraph: string, requests: SubgraphRequest[]): ApolloServerPlugin<BaseContext> {
  return {
    async requestDidStart({ request }) {
      // The gateway's readiness probes are not part of any operation.
      if (request.operationName === '__ApolloServiceHealthCheck__' || request.query?.includes('__ApolloServiceHealthCheck__')) return;
      requests.push({ subgraph, query: request.query ?? '', variables: request.variables ?? {} });
    },
  };
}

/** Subgraph SDL with the federation 2 link header. */
export const federationSdl = (imports: string[], body: string) =>
  `extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ${JSON.stringify(imports)})\n${body}`;

/**
 * Starts the subgraphs, composes them (any composition error fails the suite) and one gateway per executor; all
 * of it in the suite's beforeAll, and closed in its afterAll.
 */
export function federation(subgraphs: SubgraphDefinition[]): Federation {
  const requests: SubgraphRequest[] = [];
  const servers = new Map<string, ApolloServer>();
  const gateways: Gateway[] = [];
  const urls = new Map<Execution, string>();
  /** Why operations went to Apollo's executor, in any gateway: the cases here must all run on the executor asked for. */
  const fallbacks: string[] = [];
  let supergraphSdl = '';

  beforeAll(async () => {
    const services = await Promise.all(
      subgraphs.map(async (subgraph) => {
        const server = new ApolloServer({
          schema: buildSubgraphSchema([{ typeDefs: parse(subgraph.typeDefs), resolvers: subgraph.resolvers as never }]),
          plugins: [ApolloServerPluginInlineTraceDisabled(), recorder(subgraph.name, requests)],
          includeStacktraceInErrorResponses: false,
        });
        servers.set(subgraph.name, server);
        const { url } = await startStandaloneServer(server, { listen: { port: 0, host: '127.0.0.1' } });
        return { name: subgraph.name, url, typeDefs: parse(subgraph.typeDefs) };
      }),
    );
    const composed = composeServices(services);
    if (composed.errors) throw new Error(`composition failed:\n${composed.errors.map((error) => error.message).join('\n')}`);
    supergraphSdl = composed.supergraphSdl;
    await Promise.all(
      EXECUTIONS.map(async (execution) => {
        const deps: GatewayDeps = {
          supergraphSdl,
          execution,
          // Apollo's executor is the reference, sending each fetch alone: ours, with sibling entity fetches
          // merged, must answer byte for byte the same.
          mergeEntityFetches: execution !== 'apollo',
          logger: createLogger({ name: `federation-${execution}`, level: 'info', destination: fallbackRecorder(fallbacks) }),
          cache: createMemoryCache(),
          rateLimiter: new MemoryRateLimiter(),
          rateLimit: null,
          breaker: null,
          authenticate: createAuthenticator(DEVELOPMENT_AUTH),
          subgraphSecrets: {},
          defaultSubgraphSecret: () => 'federation-behaviour-tests-subgraph-secret',
          extraPublicErrorCodes: [TEST_ERROR_CODE],
          readiness: { intervalMs: 600_000, staleAfterMs: 600_000 },
        };
        const gateway = await createGateway(deps);
        gateways.push(gateway);
        urls.set(execution, `http://127.0.0.1:${await listen(gateway.httpServer, 0, '127.0.0.1')}/graphql`);
      }),
    );
  });

  afterAll(async () => {
    await Promise.all(gateways.map((gateway) => gateway.stop()));
    await Promise.all([...servers.values()].map((server) => server.stop()));
  });

  const post = async (execution: Execution, operation: Operation, variables?: Record<string, unknown>, fallsBack?: string): Promise<Answer> => {
    const { query, operationName } = typeof operation === 'string' ? { query: operation, operationName: undefined } : operation;
    const fellBackBefore = fallbacks.length;
    const response = await fetch(urls.get(execution)!, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query, operationName, variables }),
    });
    const text = await response.text();
    // Logged before the answer is sent; only the own executor's gateway ever logs one.
    const fellBack = fallbacks.slice(fellBackBefore);
    if (execution === 'own' && fallsBack) expect(fellBack, `handed to Apollo's executor, as designed: ${query}`).toEqual([fallsBack]);
    else expect(fellBack, `handed to Apollo's executor instead of our own: ${query}`).toEqual([]);
    let body: Answer['body'];
    try {
      body = JSON.parse(text) as Answer['body'];
    } catch {
      throw new Error(`${execution}: non-JSON answer (${response.status}): ${text.slice(0, 300)}`);
    }
    return { status: response.status, text, body };
  };

  /**
   * @defer on every suite's behaviour: the query with every field's selections after the first deferred (nested
   * and in lists), asked of the own executor as Apollo Client asks; its parts, merged, must be the answer.
   */
  const expectDeferredAnswer = async (operation: Operation, variables: Record<string, unknown> | undefined, data: unknown) => {
    const { query, operationName } = typeof operation === 'string' ? { query: operation, operationName: undefined } : operation;
    const document = parse(query);
    if (getOperationAST(document, operationName)?.operation !== 'query') return;
    const deferred = print(deferVariant(document, false));
    if (deferred === print(document)) return;
    const response = await fetch(urls.get('own')!, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'multipart/mixed;deferSpec=20220824, application/json' },
      body: JSON.stringify({ query: deferred, operationName, variables }),
    });
    const text = await response.text();
    expect(response.status, `@defer: ${deferred}`).toBe(200);
    const payloads: Payload[] = response.headers.get('content-type')?.startsWith('multipart/mixed') ? readMultipart(text) : [{ ...(JSON.parse(text) as Payload), hasNext: false }];
    expect(payloads.at(-1)?.hasNext, `@defer: ${deferred}`).toBe(false);
    const errors = payloads.flatMap((payload) => [...(payload.errors ?? []), ...(payload.incremental ?? []).flatMap((item) => item.errors ?? [])]);
    expect(errors, `@defer: ${deferred}`).toEqual([]);
    expect(mergePayloads(payloads), `@defer: ${deferred}`).toEqual(data);
  };

  const askWith = async (execution: Execution, query: Operation, variables?: Record<string, unknown>) => {
    const from = requests.length;
    const answer = await post(execution, query, variables);
    return { answer, requests: requests.slice(from) };
  };

  const ask = async (query: Operation, variables?: Record<string, unknown>) => {
    const answers = {} as Record<Execution, Answer>;
    for (const execution of EXECUTIONS) answers[execution] = await post(execution, query, variables);
    return answers;
  };

  return {
    get supergraphSdl() {
      return supergraphSdl;
    },
    requests,
    async stopSubgraph(name) {
      await servers.get(name)?.stop();
    },
    ask,
    askWith,
    async expectAnswer(query, variables, expected, before) {
      const answers = {} as Record<Execution, Answer>;
      if (before) {
        // State the operation changes: one executor at a time, each from the same state.
        for (const execution of EXECUTIONS) {
          before();
          answers[execution] = await post(execution, query, variables, expected.fallsBack);
        }
      } else {
        // One after the other when a fallback is expected: the log it is recognised by is shared.
        const asked = expected.fallsBack
          ? [await post('apollo', query, variables), await post('own', query, variables, expected.fallsBack)]
          : await Promise.all(EXECUTIONS.map((execution) => post(execution, query, variables)));
        EXECUTIONS.forEach((execution, index) => (answers[execution] = asked[index]!));
      }
      const { status = 200, fallsBack: _, deferDiffers, ...body } = expected;
      for (const execution of EXECUTIONS) {
        const answer = answers[execution];
        expect({ status: answer.status, ...answer.body }, `the ${execution} executor's answer`).toEqual({ status, ...body });
        // toEqual ignores key order; a response's keys follow the operation's selections.
        expect(JSON.stringify(answer.body.data), `the ${execution} executor's key order`).toBe(JSON.stringify(expected.data));
      }
      expect(answers.own.text, "the own executor's answer, byte for byte against apollo's").toBe(answers.apollo.text);
      if (!before && !expected.fallsBack && !deferDiffers && status === 200 && !body.errors && !body.extensions) await expectDeferredAnswer(query, variables, expected.data);
      return answers;
    },
  };
}
