import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { forApolloGateway, mintToken } from '@fed/gateway';
import { DEFAULT_SUPERGRAPH_PATH, DEVELOPMENT_AUTH } from '@fed/gateway/config';
import { IDENTITY_HEADER, signIdentity } from '@fed/platform';
import { freePort } from '@fed/platform/testing';
import { ADMIN } from './gateways/reference.ts';
import { graphqlOk, httpOk, startProcess, type BenchProcess } from './processes.ts';

/** Every gateway the harness can start, each as its own process in front of the same subgraph processes. */
export const GATEWAYS = {
  ours: 'This gateway, uncached: auth, limits, rate limit, metrics, breaker; dedupe off',
  'ours-dedupe': 'This gateway, uncached, with in-flight dedupe on (its default)',
  'ours-unmerged': 'This gateway, uncached, dedupe off, sibling entity fetches sent one by one (MERGE_ENTITY_FETCHES=off)',
  'ours-cached': 'This gateway with its response cache on Redis (its default)',
  apollo: 'Bare @apollo/gateway + @apollo/server, no plugins',
  'apollo-cached': "Bare @apollo/gateway with Apollo's responseCachePlugin on the same Redis",
  hive: '@graphql-hive/gateway on its default (JavaScript) planner, in-flight dedupe off',
  'hive-dedupe': '@graphql-hive/gateway with its defaults (JavaScript planner, in-flight dedupe on)',
  'hive-router': "@graphql-hive/gateway on @graphql-hive/router-runtime (Hive Router's Rust query planner, a JavaScript executor), in-flight dedupe off",
} as const;

export type GatewayName = keyof typeof GATEWAYS;

export interface Topology {
  users: BenchProcess;
  orders: BenchProcess;
  gateways: Map<GatewayName, BenchProcess>;
  /** The admin token every request carries (bare Apollo and Hive ignore it: they sign a fixed admin). */
  adminToken: string;
  /** Every process that exited by itself, with its stderr: a failed step says why. */
  deaths(): string[];
  mintAdmin(sub: number): Promise<string>;
  /** The `x-fed-identity` header the gateway would send with `body` to `subgraph`, for a fixed admin. */
  signAsGateway(subgraph: 'users' | 'orders', body: string): Record<string, string>;
  stop(): Promise<void>;
}

const secret = () => randomBytes(32).toString('base64url');

/**
 * Starts something on a port that was free a moment ago. Between freePort() and the child's listen, another
 * process can take it; then the start is tried again on another port.
 */
async function onFreePort<T>(start: (port: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await start(await freePort());
    } catch (error) {
      if (attempt === 3 || !/EADDRINUSE|already in use/.test(String((error as Error).message))) throw error;
    }
  }
}

/**
 * Starts the users and orders subgraphs on the seeded databases, then `wanted` gateways, all from the compiled
 * `tree` with `node`, as production runs them. Every gateway reads the same committed supergraph file.
 */
export async function startTopology(
  options: {
    tree: string;
    inherited: Record<string, string | undefined>;
    /** Where every process (subgraphs and gateways) writes its CPU profile when it stops; none without. */
    profileDir?: string;
    usersDatabaseUrl: string;
    ordersDatabaseUrl: string;
    redisUrl: string;
    /** Before every Redis key of this run, so that nothing it caches or publishes meets another run's. */
    redisPrefix: string;
    wanted: readonly GatewayName[];
    /**
     * More settings for one subgraph, over the ones above (`USERS_DATABASE_PREPARE=off` and a migration URL, behind
     * PgBouncer).
     */
    subgraphEnv?: { users?: Record<string, string>; orders?: Record<string, string> };
    /** Start bare Apollo and Hive with this gateway's Node flags too, to compare like for like. */
    referencesGetGatewayFlags?: boolean;
  },
  log: (line: string) => void,
): Promise<Topology> {
  const { usersDatabaseUrl, ordersDatabaseUrl, redisUrl, redisPrefix, wanted } = options;
  const entry = (path: string) => join(options.tree, path);
  const secrets = { users: secret(), orders: secret(), ordersToUsers: secret(), jwt: secret() };
  const started: BenchProcess[] = [];
  // One CPU profile per process, written when it stops: open it in Chrome DevTools or speedscope.
  const profiled = (name: string) => (options.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`, `--cpu-prof-name=${name}.cpuprofile`] : []);
  const stop = async () => {
    for (const process of started.reverse()) await process.stop();
  };
  try {
    const shared = { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: redisPrefix, USERS_SUBGRAPH_SECRET: secrets.users, ORDERS_SUBGRAPH_SECRET: secrets.orders, ORDERS_TO_USERS_SECRET: secrets.ordersToUsers };
    const { inherited } = options;
    const users = await onFreePort((port) =>
      startProcess({
        name: 'users',
        inherited,
        nodeArgs: profiled('users'),
        entry: entry('subgraphs/users/dist/index.js'),
        env: { ...shared, USERS_PORT: String(port), USERS_DATABASE_URL: usersDatabaseUrl, ...options.subgraphEnv?.users },
        url: `http://127.0.0.1:${port}/graphql`,
        ready: httpOk(`http://127.0.0.1:${port}/readyz`),
      }),
    );
    started.push(users);
    const orders = await onFreePort((port) =>
      startProcess({
        name: 'orders',
        inherited,
        nodeArgs: profiled('orders'),
        entry: entry('subgraphs/orders/dist/index.js'),
        env: { ...shared, ORDERS_PORT: String(port), ORDERS_DATABASE_URL: ordersDatabaseUrl, USERS_URL: users.url, ...options.subgraphEnv?.orders },
        url: `http://127.0.0.1:${port}/graphql`,
        ready: httpOk(`http://127.0.0.1:${port}/readyz`),
      }),
    );
    started.push(orders);
    const [usersUrl, ordersUrl] = [users.url, orders.url];

    // One supergraph file for every gateway: the committed one, its authorization links without `for: SECURITY`,
    // which bare Apollo (and, in bench:ab, a commit from before they existed) would refuse. The others ignore the
    // directives; ours still enforces them (the bench's viewer is an admin, so the answers stay the same).
    const supergraphPath = join(mkdtempSync(join(tmpdir(), 'bench-supergraph-')), 'supergraph.graphql');
    writeFileSync(supergraphPath, forApolloGateway(readFileSync(DEFAULT_SUPERGRAPH_PATH, 'utf8')));
    // `--name=value`: a base64url secret may start with '-', which parseArgs would take for an option.
    const reference = [`--supergraph=${supergraphPath}`, `--users=${usersUrl}`, `--users-secret=${secrets.users}`, `--orders=${ordersUrl}`, `--orders-secret=${secrets.orders}`];
    const gatewayFlags = await shippedGatewayFlags(options.tree);
    const ours = (port: number, cache: 'on' | 'off', dedupe: 'on' | 'off', merge: 'on' | 'off' = 'on') => ({
      entry: entry('gateway/dist/index.js'),
      // As the image, compose and Kubernetes start it: with the flags of the tree's own build (bench:ab may
      // compare a commit from before they existed).
      nodeArgs: gatewayFlags,
      env: {
        GATEWAY_PORT: String(port),
        HOST: '127.0.0.1',
        REDIS_URL: redisUrl,
        REDIS_KEY_PREFIX: redisPrefix,
        JWT_SECRET: secrets.jwt,
        SUPERGRAPH_PATH: supergraphPath,
        SUBGRAPH_URLS: `users=${usersUrl},orders=${ordersUrl}`,
        SUBGRAPH_SECRETS: `users=${secrets.users},orders=${secrets.orders}`,
        RESPONSE_CACHE: cache,
        SUBGRAPH_DEDUPE: dedupe,
        MERGE_ENTITY_FETCHES: merge,
        // High enough never to refuse, so that every request still pays for the check.
        RATE_LIMIT_MAX: '1000000000',
        // The fan-out's subscribers are one viewer on one address, by the thousand: the per-viewer and
        // per-address websocket limits (32 sockets by default, 2 MiB of running query text) would refuse them.
        WS_MAX_DOCUMENT_BYTES_PER_CLIENT: '1000000000',
        WS_MAX_SOCKETS_PER_VIEWER: '1000000',
        WS_MAX_SUBSCRIPTIONS_PER_VIEWER: '1000000',
        WS_MAX_SOCKETS_PER_ADDRESS: '1000000',
        WS_MAX_SUBSCRIPTIONS_PER_ADDRESS: '1000000',
      },
      url: `http://127.0.0.1:${port}/graphql`,
      ready: httpOk(`http://127.0.0.1:${port}/readyz`),
    });
    const bare = (path: string, port: number, extra: string[]) => ({
      entry: entry(path),
      nodeArgs: options.referencesGetGatewayFlags ? gatewayFlags : [],
      args: ['--port', String(port), ...reference, ...extra],
      url: `http://127.0.0.1:${port}/graphql`,
      ready: graphqlOk(`http://127.0.0.1:${port}/graphql`),
    });
    const how: Record<GatewayName, (port: number) => Omit<Parameters<typeof startProcess>[0], 'name' | 'inherited'>> = {
      ours: (port) => ours(port, 'off', 'off'),
      'ours-dedupe': (port) => ours(port, 'off', 'on'),
      'ours-unmerged': (port) => ours(port, 'off', 'off', 'off'),
      'ours-cached': (port) => ours(port, 'on', 'on'),
      apollo: (port) => bare('infra/bench/dist/gateways/apollo.js', port, []),
      'apollo-cached': (port) => bare('infra/bench/dist/gateways/apollo.js', port, ['--redis', redisUrl, '--redis-prefix', `${redisPrefix}apollo:`]),
      hive: (port) => bare('infra/bench/dist/gateways/hive.js', port, ['--dedupe', 'off']),
      'hive-dedupe': (port) => bare('infra/bench/dist/gateways/hive.js', port, ['--dedupe', 'on']),
      'hive-router': (port) => bare('infra/bench/dist/gateways/hive.js', port, ['--dedupe', 'off', '--runtime', 'router']),
    };
    // Side by side: each start is mostly loading modules, and one after the other eight of them took half a minute.
    const starts = await Promise.allSettled(
      wanted.map((name) => onFreePort((port) => {
        const { nodeArgs = [], ...start } = how[name](port);
        return startProcess({ name, inherited, nodeArgs: [...nodeArgs, ...profiled(name)], ...start });
      })),
    );
    const gateways = new Map<GatewayName, BenchProcess>();
    for (const [index, start] of starts.entries()) {
      if (start.status !== 'fulfilled') continue;
      started.push(start.value);
      gateways.set(wanted[index]!, start.value);
      log(`  ${wanted[index]} ready (pid ${start.value.pid})`);
    }
    // Every start has settled, so whatever did start is in `started` and stopped with the rest.
    const failed = starts.find((start): start is PromiseRejectedResult => start.status === 'rejected');
    if (failed) throw failed.reason;
    const auth = { ...DEVELOPMENT_AUTH, secret: secrets.jwt };
    const mintAdmin = async (sub: number) => `Bearer ${await mintToken({ ...auth, sub: String(sub), role: 'admin' })}`;
    const deaths = () => started.flatMap((process) => process.died() ?? []);
    const signAsGateway = (subgraph: 'users' | 'orders', body: string) => ({
      [IDENTITY_HEADER]: signIdentity({ secret: secrets[subgraph], caller: 'gateway', audience: subgraph, viewer: ADMIN, body }),
    });
    return { users, orders, gateways, adminToken: await mintAdmin(1), mintAdmin, signAsGateway, deaths, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The Node flags a compiled tree's gateway ships with (none before `gateway/dist/runtime.js` existed). */
async function shippedGatewayFlags(tree: string): Promise<readonly string[]> {
  const runtime = join(tree, 'gateway/dist/runtime.js');
  if (!existsSync(runtime)) return [];
  return ((await import(pathToFileURL(runtime).href)) as { GATEWAY_NODE_FLAGS: readonly string[] }).GATEWAY_NODE_FLAGS;
}
