// Compiled execution against graphql-js, answer for answer. The gateway plans the contract operations and the
// executor corpus (every operation the end-to-end tests send, the contract's, and generated shapes, errors and
// mutations included) as three viewers; every request it sends a subgraph is then replayed, byte for byte with
// its signature, to a compiled and a graphql-js twin of that subgraph on the same database. Their answers must be
// identical: status, Cache-Control (the gateway's response cache relies on it) and the body, errors and
// extensions included. Writes carry an idempotency key, so a replay returns what the write stored.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { createHttpUserSnapshot, createOrdersServer } from '@fed/orders';
import {
  createLogger,
  createOutboxRelay,
  createTelemetry,
  renderMetrics,
  listen,
  MemoryEventStream,
  MemoryPubSub,
  MemoryRateLimiter,
  signIdentity,
  IDENTITY_HEADER,
  type GraphQLApp,
  type SubgraphExecution,
  type Telemetry,
  type Viewer,
} from '@fed/platform';
import { graphql } from '@fed/platform/testing';
import { createUsersServer } from '@fed/users';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCorpus } from '../../../gateway/test/execution/corpus.ts';
import { seed } from '../src/seed.ts';
import { signedInAs, startTestStack, type TestStack } from './harness.ts';

type Subgraph = 'users' | 'orders';

interface Captured {
  subgraph: Subgraph;
  headers: Record<string, string>;
  body: string;
}

interface Answer {
  status: number;
  cacheControl: string | null;
  body: string;
}

let stack: TestStack;
interface Twin {
  app: GraphQLApp;
  url: string;
  telemetry: Telemetry;
}
const twins = {} as Record<Subgraph, Record<SubgraphExecution, Twin>>;
const captured: Captured[] = [];

// What is not part of the request itself: the connection's own headers.
const HOP_BY_HOP = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive']);

function capture(subgraph: Subgraph) {
  return (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (!HOP_BY_HOP.has(name) && typeof value === 'string') headers[name] = value;
      }
      captured.push({ subgraph, headers, body: Buffer.concat(chunks).toString('utf8') });
    });
  };
}

async function send(url: string, { headers, body }: Captured): Promise<Answer> {
  const response = await fetch(url, { method: 'POST', headers, body });
  return { status: response.status, cacheControl: response.headers.get('cache-control'), body: await response.text() };
}

/** Replays what the gateway sent since `from` to both twins; returns each pair of answers. */
async function replay(from: number) {
  const pairs: { request: Captured; compiled: Answer; graphqlJs: Answer }[] = [];
  for (const request of captured.slice(from)) {
    const compiled = await send(twins[request.subgraph].compiled.url, request);
    const graphqlJs = await send(twins[request.subgraph]['graphql-js'].url, request);
    pairs.push({ request, compiled, graphqlJs });
  }
  return pairs;
}

beforeAll(async () => {
  stack = await startTestStack({ responseCache: null });
  await seed(stack.databases, { users: 24, ordersPerUser: 3 });
  stack.httpServers.users.on('request', capture('users'));
  stack.httpServers.orders.on('request', capture('orders'));
  const logger = createLogger({ name: 'differential', level: 'silent' });
  // Twins only answer what is replayed to them: their outboxes are not relayed, their projection not started.
  const stream = new MemoryEventStream(new MemoryPubSub());
  for (const execution of ['compiled', 'graphql-js'] as const) {
    const telemetry = { users: createTelemetry({ service: 'users' }), orders: createTelemetry({ service: 'orders' }) };
    const users = await createUsersServer({
      db: stack.databases.users.db,
      events: { stream, pubsub: new MemoryPubSub(), relay: createOutboxRelay({ db: stack.databases.users.db, stream, logger }) },
      logger,
      secrets: { gateway: stack.secrets.users, orders: stack.secrets.ordersToUsers },
      replayStore: new MemoryRateLimiter(),
      introspection: false,
      telemetry: telemetry.users,
      execution,
    });
    const orders = await createOrdersServer({
      db: stack.databases.orders.db,
      events: { stream, relay: createOutboxRelay({ db: stack.databases.orders.db, stream, logger }) },
      userSnapshot: createHttpUserSnapshot({ url: stack.urls.users, secret: stack.secrets.ordersToUsers }),
      logger,
      secrets: { gateway: stack.secrets.orders },
      replayStore: new MemoryRateLimiter(),
      introspection: false,
      telemetry: telemetry.orders,
      execution,
    });
    for (const [name, app] of [['users', users], ['orders', orders]] as const) {
      const port = await listen(app.httpServer, 0, '127.0.0.1');
      (twins[name] ??= {} as Record<SubgraphExecution, Twin>)[execution] = { app, url: `http://127.0.0.1:${port}/graphql`, telemetry: telemetry[name] };
    }
  }
}, 120_000);

afterAll(async () => {
  for (const pair of Object.values(twins)) {
    for (const { app } of Object.values(pair)) {
      await app.stop();
      app.httpServer.closeAllConnections();
    }
  }
  await stack?.teardown();
});

const VIEWERS: { name: string; headers: () => Promise<Record<string, string>> }[] = [
  { name: 'admin 1', headers: () => signedInAs('1', 'admin') },
  { name: 'user 3', headers: () => signedInAs('3') },
  { name: 'anonymous', headers: async () => ({}) },
];

describe('compiled execution answers exactly as graphql-js', () => {
  it('for every request the gateway sends the subgraphs for the corpus, as three viewers', async () => {
    const corpus = buildCorpus();
    const mismatches: string[] = [];
    let compared = 0;
    for (const entry of corpus) {
      // A write runs once, as the admin, under an idempotency key: a replay returns what it stored.
      const viewers = entry.kind === 'mutation' ? VIEWERS.slice(0, 1) : VIEWERS;
      for (const viewer of viewers) {
        const from = captured.length;
        const headers = { ...(await viewer.headers()), ...(entry.kind === 'mutation' ? { 'idempotency-key': `differential-${randomUUID()}` } : {}) };
        await fetch(stack.urls.gateway, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ query: entry.query, variables: entry.variables, operationName: entry.operationName }),
        }).then((response) => response.text());
        // The gateway's requests end with its answer; the capture's `end` may still be a tick behind.
        await new Promise((resolve) => setImmediate(resolve));
        for (const { request, compiled, graphqlJs } of await replay(from)) {
          compared++;
          if (JSON.stringify(compiled) !== JSON.stringify(graphqlJs)) {
            mismatches.push(`${entry.id} as ${viewer.name} → ${request.subgraph} ${request.body}\n  compiled:   ${JSON.stringify(compiled)}\n  graphql-js: ${JSON.stringify(graphqlJs)}`);
          }
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(compared).toBeGreaterThan(corpus.length);
    for (const name of ['users', 'orders'] as const) {
      // The comparison means something only if the compiled twins compiled.
      expect(twins[name].compiled.app.execution?.compiled).toBeGreaterThan(0);
      expect(twins[name]['graphql-js'].app.execution).toBeUndefined();
      // Both counted the same operations, by type and name, and the same errors, by code.
      const counted = async (twin: Twin) =>
        (await renderMetrics([twin.telemetry.metrics])).split('\n').filter((line) => /^graphql_(errors_total|operation_duration_seconds_count)\{/.test(line));
      const compiledCounts = await counted(twins[name].compiled);
      expect(compiledCounts.length).toBeGreaterThan(1);
      expect(compiledCounts).toEqual(await counted(twins[name]['graphql-js']));
    }
  }, 600_000);

  // Requests no gateway plan makes, sent straight to the twins: the subgraph's own surface and the refusals
  // that happen before or instead of a resolver.
  const direct: { subgraph: Subgraph; query: string; variables?: Record<string, unknown>; operationName?: string; viewer?: Viewer | null }[] = [
    { subgraph: 'orders', query: '{ _service { sdl } }' },
    { subgraph: 'users', query: '{ __typename _service { sdl } }' },
    { subgraph: 'orders', query: 'query ($r: [_Any!]!) { _entities(representations: $r) { __typename ... on User { id orderCount totalSpentCents orders(first: 2) { totalCount edges { cursor node { id items { sku } } } } } ... on Order { id status } } }', variables: { r: [{ __typename: 'User', id: '3' }, { __typename: 'Order', id: '4' }, { __typename: 'User', id: '999999' }, { __typename: 'Order', id: '999999' }] } },
    { subgraph: 'orders', query: 'query ($r: [_Any!]!) { _entities(representations: $r) { ... on User { orderCount orders(first: 1) { totalCount } } } }', variables: { r: [{ __typename: 'User', id: '3' }, { __typename: 'User', id: '4' }] }, viewer: { userId: '3', role: 'user' } },
    { subgraph: 'orders', query: 'query ($r: [_Any!]!) { _entities(representations: $r) { ... on Order { id } } }', variables: { r: [{ __typename: 'Order', id: '4' }] }, viewer: null },
    { subgraph: 'orders', query: 'query ($r: [_Any!]!) { _entities(representations: $r) { ... on User { id } } }', variables: { r: [{ __typename: 'Nope', id: '1' }] } },
    { subgraph: 'users', query: 'query ($r: [_Any!]!) { _entities(representations: $r) { ... on User { id name email } } }', variables: { r: [{ __typename: 'User', id: '2' }, { __typename: 'User', id: 'x' }] } },
    { subgraph: 'orders', query: 'query ($id: ID!) { order(id: $id) { id } }' },
    { subgraph: 'orders', query: 'query ($id: ID!) { order(id: $id) { id } }', variables: { id: { nested: true } } },
    { subgraph: 'users', query: 'query ($first: Int) { users(first: $first) { totalCount } }', variables: { first: 'many' } },
    { subgraph: 'users', query: 'query A { me { id } } query B { user(id: "2") { name } }', operationName: 'B' },
    { subgraph: 'users', query: 'query A { me { id } } query B { user(id: "2") { name } }', operationName: 'C' },
    { subgraph: 'users', query: '{ users(first: 2) { edges { node { id } } } user(id: "2") @skip(if: true) { id } }' },
    { subgraph: 'orders', query: 'mutation ($id: ID!) { cancelOrder(id: $id) { id } }', variables: { id: '999999' } },
    { subgraph: 'orders', query: 'mutation { placeOrder(input: { userId: "2", items: [] }) { id } }', viewer: { userId: '3', role: 'user' } },
  ];

  it.each(direct.map((request, index) => [index, request] as const))('for direct subgraph request #%i', async (_index, { subgraph, query, variables, operationName, viewer = { userId: '1', role: 'admin' } }) => {
    const body = JSON.stringify({ query, variables, operationName });
    const answers: Answer[] = [];
    for (const execution of ['compiled', 'graphql-js'] as const) {
      // A fresh signature each: a write's signature is single-use.
      const identity = signIdentity({ secret: stack.secrets[subgraph], caller: 'gateway', audience: subgraph, viewer, body });
      answers.push(await send(twins[subgraph][execution].url, { subgraph, body, headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: identity } }));
    }
    expect(answers[0]).toEqual(answers[1]);
  });

  it('keeps running compiled and recording hints when the same document comes again', async () => {
    const query = '{ users(first: 2) { edges { node { id name } } } }';
    const before = twins.users.compiled.app.execution!.compiled;
    const first = await graphql(stack.urls.gateway, query, undefined, await signedInAs('1', 'admin'));
    expect(first.errors).toBeUndefined();
    const from = captured.length;
    await graphql(stack.urls.gateway, query, undefined, await signedInAs('1', 'admin'));
    await new Promise((resolve) => setImmediate(resolve));
    const [pair] = await replay(from);
    expect(pair?.compiled).toEqual(pair?.graphqlJs);
    expect(pair?.compiled.cacheControl).toBe('max-age=60, public');
    expect(twins.users.compiled.app.execution!.compiled).toBeGreaterThan(before);
  });
});
