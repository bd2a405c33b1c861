import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEFAULT_SUPERGRAPH_PATH } from '@fed/gateway/config';
import { graphql, waitFor } from '@fed/platform/testing';
import { composeSubgraphs, SUBGRAPHS, subgraphSdl } from '@fed/schema';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStackProcess, type StackProcess } from '../src/process.ts';

const NESTED = '{ users(first: 3) { totalCount edges { node { id name orders(first: 2) { edges { node { id totalCents items { sku quantity unitPriceCents } } } } } } } }';

interface Nested {
  users: {
    totalCount: number;
    edges: { node: { name: string; orders: { edges: { node: { totalCents: number; items: { quantity: number; unitPriceCents: number }[] } }[] } } }[];
  };
}

const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const PROMISE_HOOKS_PROBE = new URL('./fixtures/promise-hooks-probe.mjs', import.meta.url).href;

/** `TOKEN=$(npm run -s token -- ...)` exactly as the README shows it: stdout must be the token and nothing else. */
async function tokenFromCli(...args: string[]): Promise<Record<string, string>> {
  const { stdout } = await promisify(execFile)('npm', ['run', '-s', 'token', '--', ...args], { cwd: REPO_ROOT });
  expect(stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  return { authorization: `Bearer ${stdout.trim()}` };
}

/**
 * `npm start` as a newcomer runs it: no database or Redis URLs at all, so PGlite and the in-memory cache and
 * pub/sub. Ports are 0 so the test never collides with a running copy; the URLs are read from its banner.
 */
describe('the embedded default (npm start)', () => {
  let stack: StackProcess;
  let dataDir: string;
  let gatewayUrl: string;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'fed-embedded-'));
    // A copy of the committed supergraph, which the last test replaces; not watched, so only SIGHUP reloads it.
    copyFileSync(DEFAULT_SUPERGRAPH_PATH, join(dataDir, 'supergraph.graphql'));
    const env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATA_DIR: dataDir,
      GATEWAY_PORT: '0',
      USERS_PORT: '0',
      ORDERS_PORT: '0',
      LOG_LEVEL: 'warn',
      SUPERGRAPH_PATH: join(dataDir, 'supergraph.graphql'),
      SUPERGRAPH_WATCH: 'off',
    };
    stack = await startStackProcess(REPO_ROOT, env, undefined, [PROMISE_HOOKS_PROBE]);
    gatewayUrl = stack.gatewayUrl;
  });

  afterAll(async () => {
    await stack?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints the gateway and subgraph URLs and says it runs on PGlite and in-memory pub/sub', () => {
    const output = stack.output();
    expect(output).toMatch(/users\s+http:\/\/127\.0\.0\.1:\d+\/graphql\s+PGlite/);
    expect(output).toMatch(/orders\s+http:\/\/127\.0\.0\.1:\d+\/graphql\s+PGlite/);
    expect(output).toMatch(/cache and pub\/sub: in memory/);
  });

  it('answers a nested users → orders → items query on the seeded data, with totals that add up', async () => {
    const response = await graphql<Nested>(gatewayUrl, NESTED, {}, await tokenFromCli('--sub', '1', '--role', 'admin'));
    expect(response.errors).toBeUndefined();
    const users = response.data?.users;
    expect(users?.totalCount).toBeGreaterThanOrEqual(100);
    expect(users?.edges).toHaveLength(3);
    for (const { node } of users?.edges ?? []) {
      expect(node.orders.edges.length).toBeGreaterThan(0);
      for (const { node: order } of node.orders.edges) {
        expect(order.totalCents).toBe(order.items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0));
      }
    }
  });

  it('accepts writes through the gateway: an admin creates a user, who signs in and places an order', async () => {
    const created = await graphql<{ createUser: { id: string } }>(
      gatewayUrl,
      'mutation { createUser(input: { email: "newcomer@example.com", name: "New Comer" }) { id } }',
      {},
      await tokenFromCli('--sub', '1', '--role', 'admin'),
    );
    expect(created.errors).toBeUndefined();
    const newcomer = created.data?.createUser.id ?? '';
    const placed = await graphql<{ placeOrder: { totalCents: number; user: { name: string } } }>(
      gatewayUrl,
      'mutation ($u: ID!) { placeOrder(input: { userId: $u, items: [{ sku: "A", quantity: 3, unitPriceCents: 250 }] }) { totalCents user { name } } }',
      { u: newcomer },
      await tokenFromCli('--sub', newcomer),
    );
    expect(placed.errors).toBeUndefined();
    expect(placed.data?.placeOrder).toEqual({ totalCents: 750, user: { name: 'New Comer' } });
  });

  // The request scope (request ids, access lines) travels in each request's context: async context would turn
  // on promise hooks, a tax on every promise of the process (a sixth of a subgraph's CPU, measured).
  it('serves queries and writes with async hooks off', async () => {
    const admin = await tokenFromCli('--sub', '1', '--role', 'admin');
    expect((await graphql(gatewayUrl, NESTED, {}, admin)).errors).toBeUndefined();
    const renamed = await graphql(gatewayUrl, 'mutation { updateUser(id: "1", input: { name: "Still Ada" }) { name } }', {}, { ...admin, 'idempotency-key': 'hooks-probe-0001' });
    expect(renamed.errors).toBeUndefined();
    stack.child.kill('SIGUSR2');
    await waitFor(() => expect(stack.output()).toMatch(/async hooks: (on|off)/));
    expect(stack.output()).toContain('async hooks: off');
  });

  it('reloads its supergraph file on SIGHUP, without a restart', async () => {
    const readyz = async () => ((await (await fetch(gatewayUrl.replace(/\/graphql$/, '/readyz'))).json()) as { supergraph: string }).supergraph;
    const withUpdatedAt = '{ user(id: "1") { id updatedAt } }';
    const before = await readyz();
    expect((await graphql(gatewayUrl, withUpdatedAt)).errors).toBeUndefined();
    // The same subgraphs, without `User.updatedAt`.
    const users = subgraphSdl('users').replace(/^\s*updatedAt: DateTime!\n/m, '');
    const reduced = composeSubgraphs(SUBGRAPHS.map(({ name, url }) => ({ name, url, sdl: name === 'users' ? users : subgraphSdl(name) }))).supergraphSdl;
    writeFileSync(join(dataDir, 'supergraph.graphql'), reduced);
    stack.child.kill('SIGHUP');
    await waitFor(async () => expect(await readyz()).not.toBe(before));
    expect((await graphql(gatewayUrl, withUpdatedAt)).errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect((await graphql<Nested>(gatewayUrl, NESTED, {}, await tokenFromCli('--sub', '1', '--role', 'admin'))).errors).toBeUndefined();
    expect(stack.child.exitCode).toBeNull();
  });
});
