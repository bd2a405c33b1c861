// Queries and mutations over graphql-ws (issue 22): apps that open one socket for every operation (graphql-ws's
// own client, Apollo Client's GraphQLWsLink) get what the same POST gets: the same answers, limits, persisted-
// document rules, response cache, rate limit and error codes; a deferred query arrives as successive `next`
// messages. Every answer is compared with a real HTTP request to the same gateway, never with pinned data.
// Real subgraphs, Postgres and Redis on loopback.
import { createHash } from 'node:crypto';
import { ApolloClient, CombinedGraphQLErrors, HttpLink, InMemoryCache, gql } from '@apollo/client/core';
import { Defer20220824Handler } from '@apollo/client/incremental';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { addTypenameToDocument } from '@apollo/client/utilities';
import { recordStream, waitFor, type RecordedStream } from '@fed/platform/testing';
import { parse, print, visit, type DocumentNode, type GraphQLFormattedError } from 'graphql';
import type { Client, FormattedExecutionResult } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { seed } from '../src/seed.ts';
import { signedInAs, socketClient, startGatewayTo, startTestStack, subgraphRequestsDuring as requestsDuring, type TestStack } from './harness.ts';
import { startHttpFaultProxy } from './http-proxy.ts';
import { mergedData, type Data } from './incremental.ts';

type Result = FormattedExecutionResult<Data, unknown> & { hasNext?: boolean; incremental?: { data?: Data | null; path: (string | number)[]; label?: string; errors?: GraphQLFormattedError[] }[] };

interface Payload {
  query: string;
  variables?: Record<string, unknown>;
  operationName?: string;
  extensions?: Record<string, unknown>;
}

/** Everything one operation got over the socket: its `next` payloads, then `complete` or an `error` message. */
interface Outcome {
  results: Result[];
  error?: GraphQLFormattedError[];
  completed: boolean;
}

/** Runs one operation over the socket and waits for its end (`complete` or `error`). */
function overSocket(client: Client, payload: Payload): Promise<Outcome> {
  return new Promise((resolve) => {
    const outcome: Outcome = { results: [], completed: false };
    client.subscribe<Data, unknown>(payload, {
      next: (result) => outcome.results.push(result as Result),
      error: (error) => resolve({ ...outcome, error: error as GraphQLFormattedError[] }),
      complete: () => resolve({ ...outcome, completed: true }),
    });
  });
}

interface HttpAnswer {
  status: number;
  body: { data?: Data | null; errors?: GraphQLFormattedError[] };
}

async function overHttp(url: string, payload: Partial<Payload>, headers: Record<string, string>): Promise<HttpAnswer> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(payload) });
  return { status: response.status, body: (await response.json()) as HttpAnswer['body'] };
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** The same operation without any @defer directive. */
const withoutDefer = (query: string) => print(visit(parse(query), { Directive: (node) => (node.name.value === 'defer' ? null : undefined) }));

/** What Apollo Client sends for `query`: InMemoryCache adds `__typename` to every selection set. */
const asApolloSends = (query: string) => print(addTypenameToDocument(parse(query)) as DocumentNode);

const LIST = `{
  users(first: 3) {
    edges { node { id name ... @defer(label: "orders") { orderCount orders(first: 2) { edges { node { id status } } } } } }
  }
}`;

describe('queries and mutations over graphql-ws, answered as over HTTP', () => {
  let stack: TestStack;
  const clients: Client[] = [];
  const cleanups: (() => unknown)[] = [];

  /** graphql-ws's own client, signed in as `sub` (admin: the stack's admin, who may read anything). */
  const connect = async (sub = '1000000', role: 'user' | 'admin' = 'admin', url = stack.urls.gateway) => {
    const client = await socketClient(url, sub, role);
    clients.push(client);
    return client;
  };

  const subgraphRequestsDuring = <T>(call: () => Promise<T>) => requestsDuring(stack, call);

  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 4, ordersPerUser: 3 });
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    for (const client of clients) await client.dispose();
    await stack?.teardown();
  });

  describe("graphql-ws's client", () => {
    it('answers a query with exactly what the same POST answers, private fields as the signed-in viewer', async () => {
      const query = 'query Me($first: Int) { user(id: "2") { id name email orders(first: $first) { totalCount edges { node { id status totalCents items { sku } } } } } }';
      const variables = { first: 2 };
      const http = await overHttp(stack.urls.gateway, { query, variables }, await signedInAs('2'));
      expect(http.status).toBe(200);
      expect(http.body.errors).toBeUndefined();

      const socket = await overSocket(await connect('2', 'user'), { query, variables });
      expect(socket).toEqual({ results: [http.body], completed: true });
    });

    it('answers as the socket’s viewer: another user’s private field is refused as over HTTP', async () => {
      const query = '{ user(id: "3") { id name email } }';
      const http = await overHttp(stack.urls.gateway, { query }, await signedInAs('2'));
      expect(http.body.errors?.length).toBeGreaterThan(0);
      const socket = await overSocket(await connect('2', 'user'), { query });
      expect(socket).toEqual({ results: [http.body], completed: true });
    });

    it('runs a mutation once, answering what the same POST answers', async () => {
      const mutation = 'mutation Rename($name: String!) { updateUser(id: "3", input: { name: $name }) { id name } }';
      const socket = await overSocket(await connect('3', 'user'), { query: mutation, variables: { name: 'Renamed Over The Socket' } });
      // The write landed: HTTP reads it back.
      const read = await overHttp(stack.urls.gateway, { query: '{ user(id: "3") { name } }' }, stack.admin);
      expect(read.body.data).toEqual({ user: { name: 'Renamed Over The Socket' } });
      // The same write over HTTP answers the same.
      const http = await overHttp(stack.urls.gateway, { query: mutation, variables: { name: 'Renamed Over The Socket' } }, await signedInAs('3'));
      expect(http.status).toBe(200);
      expect(http.body.errors).toBeUndefined();
      expect(socket).toEqual({ results: [http.body], completed: true });
    });

    it('answers an unknown id with the data and errors a POST gets', async () => {
      const query = '{ user(id: "999999") { id name } users(first: 1) { totalCount } }';
      const http = await overHttp(stack.urls.gateway, { query }, stack.admin);
      expect(http.status).toBe(200);
      expect(http.body.errors?.length).toBeGreaterThan(0);
      expect(await overSocket(await connect(), { query })).toEqual({ results: [http.body], completed: true });
    });

    it('refuses what HTTP refuses, with an `error` message carrying HTTP’s errors: validation, introspection, variables, limits, operation resolution', async () => {
      const aliases = Array.from({ length: 20 }, (_, i) => `a${i}: name`).join(' ');
      const refusals: [string, Partial<Payload>][] = [
        ['GRAPHQL_VALIDATION_FAILED', { query: '{ user(id: "2") { id nam } }' }],
        // Introspection is off in production: HTTP's own message, not the subscription path's.
        ['GRAPHQL_VALIDATION_FAILED', { query: '{ __schema { types { name } } }' }],
        ['BAD_USER_INPUT', { query: 'query ($first: Int) { users(first: $first) { totalCount } }', variables: { first: 'many' } }],
        ['ALIAS_LIMIT_EXCEEDED', { query: `{ user(id: "2") { id ${aliases} } }` }],
        ['OPERATION_RESOLUTION_FAILURE', { query: 'query A { users { totalCount } } query B { users { totalCount } }', operationName: 'C' }],
      ];
      const client = await connect();
      for (const [code, payload] of refusals) {
        const http = await overHttp(stack.urls.gateway, payload, stack.admin);
        expect(http.status, JSON.stringify(payload)).toBe(400);
        expect(http.body.errors?.map((error) => error.extensions?.code)).toEqual([code]);
        const socket = await overSocket(client, payload as Payload);
        expect(socket, JSON.stringify(payload)).toEqual({ results: [], completed: false, error: http.body.errors });
      }
    });

    it('refuses a document that does not parse with HTTP’s message and code (before it is known not to be a subscription)', async () => {
      const payload = { query: '{ user(id: "2") { id ' };
      const http = await overHttp(stack.urls.gateway, payload, stack.admin);
      expect(http.status).toBe(400);
      const socket = await overSocket(await connect(), payload);
      expect(socket.results).toEqual([]);
      // The subscription path's refusal, as before: the same message and code, without HTTP's locations.
      expect(socket.error?.map(({ message, extensions }) => ({ message, extensions }))).toEqual(http.body.errors?.map(({ message, extensions }) => ({ message, extensions })));
      expect(socket.error?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
    });

    it('applies the persisted-document rules: an unknown hash, a mismatched one, then a registered one by hash alone (APQ)', async () => {
      const query = '{ users(first: 2) { edges { node { id name } } } }';
      const client = await connect();
      const unknown = { query: '', extensions: { persistedQuery: { version: 1, sha256Hash: sha256(`${query} `) } } };
      const httpUnknown = await overHttp(stack.urls.gateway, { extensions: unknown.extensions }, stack.admin);
      expect(httpUnknown.body.errors?.map((error) => error.extensions?.code)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
      expect(await overSocket(client, unknown)).toEqual({ results: [], completed: false, error: httpUnknown.body.errors });

      const mismatched = { query, extensions: { persistedQuery: { version: 1, sha256Hash: sha256('{ users { totalCount } }') } } };
      const httpMismatched = await overHttp(stack.urls.gateway, mismatched, stack.admin);
      expect(httpMismatched.body.errors?.map((error) => error.extensions?.code)).toEqual(['PERSISTED_QUERY_HASH_MISMATCH']);
      expect(await overSocket(client, mismatched)).toEqual({ results: [], completed: false, error: httpMismatched.body.errors });

      // Registered over the socket (query and hash), then run by its hash alone, as over HTTP.
      const extensions = { persistedQuery: { version: 1, sha256Hash: sha256(query) } };
      const registered = await overSocket(client, { query, extensions });
      expect(registered.results[0]?.errors).toBeUndefined();
      const byHash = await overSocket(client, { query: '', extensions });
      const httpByHash = await overHttp(stack.urls.gateway, { extensions }, stack.admin);
      expect(httpByHash.body.errors).toBeUndefined();
      expect(byHash).toEqual({ results: [httpByHash.body], completed: true });
      expect(registered).toEqual(byHash);
    });

    it('serves a cached answer from the response cache, the same as HTTP’s', async () => {
      // Public fields only, in a shape no other test asks for.
      const query = '{ users(first: 4) { totalCount edges { cursor node { id name createdAt } } } }';
      const stored = await subgraphRequestsDuring(() => overHttp(stack.urls.gateway, { query }, stack.admin));
      expect(stored.value.status).toBe(200);
      expect(stored.requests).toBeGreaterThan(0);
      const client = await connect();
      // Stored once the first answer was sent: asked until it is a hit.
      const hit = await waitFor(async () => {
        const again = await subgraphRequestsDuring(() => overSocket(client, { query }));
        expect(again.requests).toBe(0);
        return again.value;
      });
      expect(hit).toEqual({ results: [stored.value.body], completed: true });
    });

    it('delivers a deferred query as successive `next` payloads, whose merge is the query without @defer', async () => {
      const expected = await overHttp(stack.urls.gateway, { query: withoutDefer(LIST) }, stack.admin);
      expect(expected.body.errors).toBeUndefined();
      const socket = await overSocket(await connect(), { query: LIST });
      expect(socket.completed).toBe(true);
      expect(socket.error).toBeUndefined();
      const [initial, ...rest] = socket.results;
      // The initial payload, then each incremental payload as its own `next`; only the last says hasNext: false.
      expect(initial).toHaveProperty('data');
      expect(initial?.hasNext).toBe(true);
      expect(rest.length).toBeGreaterThan(0);
      expect(socket.results.map((result) => result.hasNext)).toEqual([...rest.map(() => true), false]);
      for (const result of rest) {
        expect(result).not.toHaveProperty('data');
        if (result.hasNext || result.incremental) expect(Array.isArray(result.incremental)).toBe(true);
      }
      const items = rest.flatMap((result) => result.incremental ?? []);
      expect(items).toHaveLength(3);
      for (const item of items) expect(item.label).toBe('orders');
      expect(socket.results.flatMap((result) => [...(result.errors ?? []), ...(result.incremental ?? []).flatMap((item) => item.errors ?? [])])).toEqual([]);
      expect(mergedData(socket.results)).toEqual(expected.body.data);
    });

    it('sends the initial payload while the deferred fragment’s subgraph is held, the rest once it answers; a client may stop mid-stream', async () => {
      // Orders sits behind a gate, with a subgraph timeout far longer than any test: nothing here depends on speed.
      const gate = await startHttpFaultProxy(stack.urls.orders);
      cleanups.push(() => gate.close());
      const gateway = await startGatewayTo(stack, stack.urls.users, { subgraphUrls: { users: stack.urls.users, orders: gate.url }, subgraphTimeoutMs: 3_600_000 });
      cleanups.push(() => gateway.stop());
      const client = await connect('1000000', 'admin', gateway.url);
      cleanups.push(() => client.dispose());
      // Cleanups run last first: held requests go on before anything stops.
      cleanups.push(() => gate.release());
      const expected = await overHttp(gateway.url, { query: withoutDefer(LIST) }, stack.admin);

      gate.hold();
      const streamed: RecordedStream<Result> = recordStream();
      streamed.stop = client.subscribe<Data, unknown>({ query: LIST }, streamed.sink as never);
      const stopped: RecordedStream<Result> = recordStream();
      stopped.stop = client.subscribe<Data, unknown>({ query: LIST }, stopped.sink as never);
      await waitFor(() => expect([streamed.results.length, stopped.results.length]).toEqual([1, 1]));
      expect(gate.held()).toBeGreaterThan(0);
      expect(streamed.results[0]?.hasNext).toBe(true);
      expect(streamed.completed).toBe(false);
      // One client leaves while its deferred parts are still being fetched.
      stopped.stop();

      gate.release();
      await waitFor(() => expect(streamed.completed).toBe(true));
      expect(streamed.error).toBeUndefined();
      expect(streamed.results.at(-1)?.hasNext).toBe(false);
      expect(mergedData(streamed.results)).toEqual(expected.body.data);
      // The socket goes on serving.
      expect(await overSocket(client, { query: '{ user(id: "2") { id } }' })).toEqual({ results: [{ data: { user: { id: '2' } } }], completed: true });
      expect(stopped.error).toBeUndefined();
    });

    it('answers a cached deferred query as one `next`, the whole answer, as a multipart client gets it', async () => {
      const query = '{ users(first: 2) { edges { node { id ... @defer(label: "cached") { name createdAt } } } } }';
      const plain = await overHttp(stack.urls.gateway, { query }, stack.admin);
      expect(plain.body.errors).toBeUndefined();
      const client = await connect();
      const hit = await waitFor(async () => {
        const again = await subgraphRequestsDuring(() => overSocket(client, { query }));
        expect(again.requests).toBe(0);
        return again.value;
      });
      expect(hit).toEqual({ results: [{ data: plain.body.data, hasNext: false }], completed: true });
    });

    it('runs identical queries side by side on one socket (neither replaces the other), next to a running subscription', async () => {
      const client = await connect('4', 'user');
      const events: RecordedStream<FormattedExecutionResult<Data, unknown>> = recordStream();
      events.stop = client.subscribe<Data, unknown>({ query: 'subscription { userEvents(userId: "4") { kind user { name } } }' }, events.sink);
      cleanups.push(() => events.stop());
      const query = '{ user(id: "4") { id name orderCount } }';
      const http = await overHttp(stack.urls.gateway, { query }, await signedInAs('4'));
      const answers = await Promise.all(Array.from({ length: 5 }, () => overSocket(client, { query })));
      for (const answer of answers) expect(answer).toEqual({ results: [http.body], completed: true });
      // The same socket writes, and hears its own write.
      await waitFor(async () => {
        const renamed = await overSocket(client, { query: `mutation { updateUser(id: "4", input: { name: "Heard ${events.results.length}" }) { id } }` });
        expect(renamed.results[0]?.errors).toBeUndefined();
        expect(events.results.length).toBeGreaterThan(0);
      });
      expect(events.error).toBeUndefined();
      expect(events.completed).toBe(false);
    });

    it('counts each subscribe message once against the HTTP rate limit, and refuses past it with HTTP’s RATE_LIMITED', async () => {
      // A window far longer than the test: the count cannot reset midway.
      const gateway = await startGatewayTo(stack, stack.urls.users, { rateLimit: { limit: 5, windowMs: 3_600_000 } });
      cleanups.push(() => gateway.stop());
      const client = await connect('2', 'user', gateway.url);
      // Closed before the gateway stops (cleanups run last first), so that no client sees the drain.
      cleanups.push(() => client.dispose());
      const query = '{ user(id: "2") { id } }';
      // The sign-in is one request, each query another: four queries, then the limit.
      const outcomes: Outcome[] = [];
      for (let i = 0; i < 5; i++) outcomes.push(await overSocket(client, { query }));
      expect(outcomes.slice(0, 4).map((outcome) => outcome.completed && outcome.results[0]?.errors === undefined)).toEqual([true, true, true, true]);
      expect(outcomes[4]?.error?.map((error) => error.extensions?.code)).toEqual(['RATE_LIMITED']);
      // HTTP, on the same limiter and key, refuses with the same code.
      const http = await overHttp(gateway.url, { query }, await signedInAs('2'));
      expect(http.status).toBe(429);
      expect(http.body.errors?.map((error) => error.extensions?.code)).toEqual(['RATE_LIMITED']);
    });
  });

  describe('Apollo Client 4 with GraphQLWsLink', () => {
    // GraphQLWsLink reads the global WebSocket when it sorts an `error` message from a closed socket; Node 20
    // has none (browsers and Node 22 do).
    beforeAll(() => {
      (globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
    });
    const apolloOver = (link: GraphQLWsLink | HttpLink) => {
      const client = new ApolloClient({ link, cache: new InMemoryCache(), incrementalHandler: new Defer20220824Handler() });
      cleanups.push(() => client.stop());
      return client;
    };
    const wsLink = async () => new GraphQLWsLink(await connect());

    it('runs a query over the socket: the data HttpLink gets', async () => {
      const query = '{ users(first: 3) { totalCount edges { node { id name orders(first: 2) { edges { node { id status } } } } } } }';
      const expected = await overHttp(stack.urls.gateway, { query: asApolloSends(query) }, stack.admin);
      expect(expected.body.errors).toBeUndefined();
      const result = await apolloOver(await wsLink()).query<Data>({ query: gql(query), fetchPolicy: 'network-only' });
      expect(result.error).toBeUndefined();
      expect(result.data).toEqual(expected.body.data);
      const viaHttp = await apolloOver(new HttpLink({ uri: stack.urls.gateway, headers: stack.admin })).query<Data>({ query: gql(query), fetchPolicy: 'network-only' });
      expect(result.data).toEqual(viaHttp.data);
    });

    it('runs a mutation, and a deferred query to its complete data', async () => {
      const client = apolloOver(await wsLink());
      const renamed = await client.mutate<Data>({ mutation: gql('mutation { updateUser(id: "1", input: { name: "Via Apollo Socket" }) { id name } }') });
      expect(renamed.error).toBeUndefined();
      expect(renamed.data).toEqual({ updateUser: { __typename: 'User', id: '1', name: 'Via Apollo Socket' } });
      const expected = await overHttp(stack.urls.gateway, { query: asApolloSends(withoutDefer(LIST)) }, stack.admin);
      const deferred = await client.query<Data>({ query: gql(LIST), fetchPolicy: 'network-only' });
      expect(deferred.error).toBeUndefined();
      expect(deferred.data).toEqual(expected.body.data);
    });

    it('surfaces a refused query as CombinedGraphQLErrors with the errors HttpLink gets', async () => {
      const query = gql('{ user(id: "2") { id nam } }');
      const viaSocket = await apolloOver(await wsLink()).query({ query, fetchPolicy: 'network-only', errorPolicy: 'all' });
      const viaHttp = await apolloOver(new HttpLink({ uri: stack.urls.gateway, headers: stack.admin })).query({ query, fetchPolicy: 'network-only', errorPolicy: 'all' });
      expect(viaSocket.error).toBeInstanceOf(CombinedGraphQLErrors);
      expect(viaHttp.error).toBeInstanceOf(CombinedGraphQLErrors);
      expect((viaSocket.error as CombinedGraphQLErrors).errors).toEqual((viaHttp.error as CombinedGraphQLErrors).errors);
      expect((viaSocket.error as CombinedGraphQLErrors).errors[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    });
  });
});
