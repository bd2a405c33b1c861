// Supergraph roll-outs on a running gateway, under load: the supergraph file is replaced (as a deploy tool or a
// ConfigMap would replace it) by one that adds a field, then by one that moves a field to a new subgraph with
// @override, then by a broken one, then by one that drops a field a subscription selects. Real subgraphs,
// Postgres, Redis and graphql-ws on loopback; 50 HTTP clients keep asking throughout.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { followSupergraph } from '@fed/gateway/supergraph';
import { createSubgraphApp, listen, MemoryRateLimiter, type GraphQLApp } from '@fed/platform';
import { recordStream, waitFor, type RecordedStream } from '@fed/platform/testing';
import { composeSubgraphs, subgraphSdl } from '@fed/schema';
import type { Client, FormattedExecutionResult } from 'graphql-ws';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import { silentLogger, socketClient, startTestStack, type TestStack } from './harness.ts';

const PROFILES_SDL = `extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key", "@override"])
type User @key(fields: "id") {
  id: ID!
  name: String! @override(from: "users")
}
`;

const LOCAL = { users: 'http://localhost:4001/graphql', orders: 'http://localhost:4002/graphql' };
/** The users subgraph's SDL without `updatedAt`: the subgraph still serves it, the supergraph does not know it yet. */
const usersWithoutUpdatedAt = () => subgraphSdl('users').replace(/^\s*updatedAt: DateTime!\n/m, '');
const compose = (users: string, extra: { name: string; url: string; sdl: string }[] = []) =>
  composeSubgraphs([{ name: 'users', url: LOCAL.users, sdl: users }, { name: 'orders', url: LOCAL.orders, sdl: subgraphSdl('orders') }, ...extra]).supergraphSdl;

const LOAD_QUERY = `query Load($first: Int!) { users(first: $first) { edges { node { id name } } } }`;

type Stream = RecordedStream<FormattedExecutionResult<Record<string, unknown>, unknown>>;

describe('supergraph hot reload', () => {
  let stack: TestStack;
  let profiles: { app: GraphQLApp; url: string; requests: number };
  let dir: string;
  let path: string;
  let stopFollowing: () => void;
  const clients: Client[] = [];
  const secret = randomBytes(32).toString('base64url');
  const names = new Map<string, string>();

  /** Replaces the file the way deploy tools do: a new file renamed over the old one. */
  const deploy = async (sdl: string) => {
    await writeFile(`${path}.next`, sdl);
    await rename(`${path}.next`, path);
  };
  /** A series' value on /metrics, by its name and one label (the service label comes first). */
  const metric = async (name: string, label: string) => {
    const text = await (await fetch(stack.urls.gateway.replace(/\/graphql$/, '/metrics'))).text();
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{`) && candidate.includes(label));
    return Number(line?.split(' ').at(-1) ?? 0);
  };
  const servedHash = async () => ((await (await fetch(stack.urls.gateway.replace(/\/graphql$/, '/readyz'))).json()) as { supergraph?: string }).supergraph;

  beforeAll(async () => {
    const app = await createSubgraphApp<{ viewer: unknown }>({
      name: 'profiles',
      typeDefs: parse(PROFILES_SDL),
      resolvers: { User: { __resolveReference: ({ id }: { id: string }) => ({ id, name: names.get(id) }) } },
      context: async (identity) => ({ viewer: identity.viewer }),
      callers: { gateway: { secret, actsForViewers: true } },
      replayStore: new MemoryRateLimiter(),
      logger: silentLogger(),
      knownCodes: [],
    });
    profiles = { app, url: `http://127.0.0.1:${await listen(app.httpServer, 0, '127.0.0.1')}/graphql`, requests: 0 };
    app.httpServer.on('request', () => (profiles.requests += 1));

    dir = await mkdtemp(join(tmpdir(), 'supergraph-'));
    path = join(dir, 'supergraph.graphql');
    const initial = compose(usersWithoutUpdatedAt());
    await writeFile(path, initial);
    // No rate limit: 50 anonymous clients from one address are the load, not an attack. Only the new subgraph gets this secret: one the test does not name has none, and is refused.
    stack = await startTestStack({ supergraphSdl: initial, gateway: { rateLimit: null, defaultSubgraphSecret: (name) => (name === 'profiles' ? secret : '') } });
    await seed(stack.databases, { users: 6, ordersPerUser: 1 });
    stopFollowing = followSupergraph({ path, watch: true, pollMs: 10_000 }, stack.gateway.reloadSupergraph, silentLogger());
    const listed = await stack.request<{ users: { edges: { node: { id: string; name: string } }[] } }>(LOAD_QUERY, { first: 10 });
    for (const { node } of listed.data!.users.edges) names.set(node.id, node.name);
  });
  afterAll(async () => {
    stopFollowing?.();
    for (const client of clients) await client.dispose();
    await stack?.teardown();
    await new Promise((resolve) => profiles?.app.httpServer.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('rolls out added, moved and removed fields with no failed request, refusing a broken file while the old one serves', async () => {
    // 50 clients, each asking again as soon as it is answered, each answer checked.
    let running = true;
    const failures: string[] = [];
    let answered = 0;
    const expected = [...names.entries()].map(([id, name]) => ({ node: { id, name } }));
    const client = async () => {
      while (running) {
        const first = 1 + Math.floor(Math.random() * 5);
        try {
          const response = await stack.request<{ users: { edges: unknown[] } }>(LOAD_QUERY, { first }, {});
          if (response.status !== 200 || response.errors) failures.push(`${response.status} ${JSON.stringify(response.errors)}`);
          else if (JSON.stringify(response.data!.users.edges) !== JSON.stringify(expected.slice(0, first))) failures.push(`wrong data: ${JSON.stringify(response.data)}`);
          answered += 1;
        } catch (error) {
          failures.push(String(error));
        }
      }
    };
    const load = Array.from({ length: 50 }, client);

    // A subscription open throughout, selecting nothing any reload removes.
    const socket = await socketClient(stack.urls.gateway, '1', 'user');
    clients.push(socket);
    const steady: Stream = recordStream();
    steady.stop = socket.subscribe({ query: 'subscription { userEvents(userId: "1") { kind user { id name } } }' }, steady.sink);

    const withUpdatedAt = 'query { user(id: "1") { id updatedAt } }';
    expect((await stack.request(withUpdatedAt)).errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    const startHash = await servedHash();

    // 1. A field added.
    const added = compose(subgraphSdl('users'));
    const deployedAt = Date.now();
    await deploy(added);
    await waitFor(async () => expect((await stack.request(withUpdatedAt)).data).toMatchObject({ user: { id: '1', updatedAt: expect.any(String) } }));
    const answeredAfterMs = Date.now() - deployedAt;
    expect(await servedHash()).not.toBe(startHash);

    // 2. A field moved to a new subgraph with @override: the same answers, now from profiles.
    const moved = compose(subgraphSdl('users'), [{ name: 'profiles', url: profiles.url, sdl: PROFILES_SDL }]);
    await deploy(moved);
    await waitFor(async () => {
      const before = profiles.requests;
      const response = await stack.request(LOAD_QUERY, { first: 3 }, {});
      expect(response.data).toEqual({ users: { edges: expected.slice(0, 3) } });
      expect(profiles.requests).toBeGreaterThan(before);
    });
    const movedHash = await servedHash();

    // 3. A broken file is refused, counted, and the moved supergraph keeps serving.
    const refusedBefore = await metric('gateway_supergraph_reloads_total', 'outcome="refused"');
    await deploy('type Query {');
    await waitFor(async () => expect(await metric('gateway_supergraph_reloads_total', 'outcome="refused"')).toBe(refusedBefore + 1));
    expect(await servedHash()).toBe(movedHash);
    expect((await stack.request(withUpdatedAt)).data).toMatchObject({ user: { id: '1' } });

    // A supergraph naming a subgraph the gateway has no secret for fails to apply, and is refused too.
    const ghost = compose(subgraphSdl('users'), [{ name: 'ghost', url: 'http://127.0.0.1:9/graphql', sdl: 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"])\ntype Query { ghost: String }' }]);
    const refused = await stack.gateway.reloadSupergraph(ghost, 'test');
    expect(refused).toMatchObject({ outcome: 'refused', serving: movedHash });
    expect(refused.outcome === 'refused' && refused.reason).toMatch(/no secret/);
    expect(await servedHash()).toBe(movedHash);

    // 4. A field removed, and email now needs a scope: the subscription that selects the removed field ends with
    // SCHEMA_CHANGED, the one that reads email without the scope with FORBIDDEN; the other keeps running.
    const doomed: Stream = recordStream();
    doomed.stop = socket.subscribe({ query: 'subscription { userEvents(userId: "1") { kind user { updatedAt } } }' }, doomed.sink);
    const reading: Stream = recordStream();
    reading.stop = socket.subscribe({ query: 'subscription { userEvents(userId: "1") { kind user { email } } }' }, reading.sink);
    await waitFor(() => expect(stack.gateway.subscriptions?.active).toBe(3));
    const scopedEmail = usersWithoutUpdatedAt().replace(/(email: String .*)@authenticated/, '$1@requiresScopes(scopes: [["pii"]])');
    expect(scopedEmail).toContain('@requiresScopes(scopes: [["pii"]])\n');
    await deploy(compose(scopedEmail));
    await waitFor(() => expect(doomed.completed && reading.completed).toBe(true));
    expect(doomed.results.at(-1)?.errors?.[0]?.extensions?.code).toBe('SCHEMA_CHANGED');
    expect(reading.results.at(-1)?.errors?.[0]).toMatchObject({ path: ['userEvents', 'user', 'email'], extensions: { code: 'FORBIDDEN' } });
    expect((await stack.request(withUpdatedAt)).errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');

    running = false;
    await Promise.all(load);
    expect(failures).toEqual([]);

    // The subscription that selects nothing removed is still running, and hears the next commit.
    const renamed = await stack.request('mutation { updateUser(id: "1", input: { name: "Ada Reloaded" }) { id } }');
    expect(renamed.errors).toBeUndefined();
    await waitFor(() => expect(steady.results.map((result) => result.data)).toContainEqual({ userEvents: { kind: 'USER_UPDATED', user: { id: '1', name: 'Ada Reloaded' } } }));
    expect(steady.completed).toBe(false);
    expect(answered).toBeGreaterThan(100);
    console.info(`hot reload: the added field answered ${answeredAfterMs} ms after the file was replaced; ${answered} requests answered under load, none failed`);
  });
});
