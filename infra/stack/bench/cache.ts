// `npm run -s bench:cache -w @fed/stack -- [--runs 3] [--duration 10] [--connections 50]`: what the response
// cache buys and costs on the nested users → orders → items query. One layout for everything: the users and
// orders subgraphs as their own processes on seeded Postgres, one Redis, and three gateway processes in front
// of the same subgraphs:
//   cached:   this gateway, every default layer on, response cache on (Redis);
//   uncached: the same gateway with RESPONSE_CACHE=off;
//   apollo:   bare @apollo/gateway + @apollo/server with Apollo's responseCachePlugin on the same Redis
//             (bench/bare-gateway.ts), the reference for hit throughput (it only expires by TTL).
// Scenarios, at the same concurrency:
//   hit:  one admin repeats the query: every cached answer is a hit (uncached runs it every time);
//   miss: every request comes from another admin (a fresh token per request), so every cached request is a
//         miss that looks up, runs, tags and stores its private answer; uncached runs the same requests.
// Load comes from wrk when it is installed (it needs far less CPU than autocannon), else autocannon.
// All answers must be deep-equal before anything is timed. Runs alternate between gateways; medians of
// requests/s, p50 and p99 (ms), and the gateway process's CPU per request (/proc, Linux) go to stdout as JSON,
// a markdown table to stderr with the progress.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { mintToken } from '@fed/gateway';
import { DEFAULT_SUPERGRAPH_PATH, DEVELOPMENT_AUTH } from '@fed/gateway/config';
import { createTestDatabase, freePort, testPostgresUrl, testRedisUrl, type TestDatabase } from '@fed/platform/testing';
import { openDatabases } from '../src/databases.ts';
import { seed } from '../src/seed.ts';
import { cpuMs, median } from './stats.ts';
import { NESTED_QUERY as QUERY } from './stack-env.ts';

const BODY = JSON.stringify({ query: QUERY });

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    /** `hit`, `miss` or both (comma-separated): more runs of one scenario for a tighter median. */
    scenarios: { type: 'string', default: 'hit,miss' },
  },
});
const scenarios = new Set(values.scenarios.split(','));
const runs = Number(values.runs);
const duration = Number(values.duration);
const connections = Number(values.connections);
const log = (line: string) => process.stderr.write(`${line}\n`);
const repo = fileURLToPath(new URL('../../..', import.meta.url));

interface Service {
  name: string;
  url: string;
  child: ChildProcess;
}

/** Starts a TypeScript entry as its own process and waits until `probe` answers. */
async function startService(name: string, entry: string, args: string[], env: Record<string, string>, url: string, probe: () => Promise<boolean>): Promise<Service> {
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: repo,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, APOLLO_TELEMETRY_DISABLED: '1', LOG_LEVEL: 'warn', NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited: ${stderr}`);
    if (await probe().catch(() => false)) return { name, url, child };
    if (Date.now() > deadline) throw new Error(`${name} did not start: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const httpOk = (url: string) => async () => (await fetch(url)).ok;
const graphqlOk = (url: string) => async () =>
  (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' })).ok;


async function answer(url: string, authorization: string): Promise<unknown> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body: BODY });
  const body = (await response.json()) as { data?: unknown; errors?: unknown };
  if (response.status !== 200 || body.errors) throw new Error(`${url} answered ${response.status}: ${JSON.stringify(body).slice(0, 300)}`);
  return body.data;
}

interface Measured {
  rps: number;
  p50: number;
  p99: number;
  cpuMsPerRequest: number;
  requests: number;
}

const hasWrk = (() => {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (error) {
    // wrk prints its version and exits 1; only a missing binary fails to spawn.
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
})();
const scratch = mkdtempSync(`${tmpdir()}/bench-cache-`);

/**
 * One wrk run (it uses far less CPU than autocannon, which shares these two cores with the gateway): a Lua
 * script cycles through `authorizations` and prints the summary as JSON. One thread, so that no token is
 * sent twice in the miss scenario (each wrk thread runs its own copy of the script).
 */
function loadWithWrk(gateway: Service, seconds: number, authorizations: readonly string[]): Omit<Measured, 'cpuMsPerRequest'> {
  const script = `${scratch}/run.lua`;
  writeFileSync(
    script,
    `local tokens = { ${authorizations.map((token) => JSON.stringify(token)).join(',')} }
local body = ${JSON.stringify(BODY)}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", nil, { ["content-type"] = "application/json", ["authorization"] = tokens[(counter % #tokens) + 1] }, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"durationUs":%d,"p50":%d,"p99":%d,"errors":%d,"non2xx":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
`,
  );
  const output = execFileSync('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '30s', '-s', script, gateway.url], { encoding: 'utf8' });
  const line = output.split('\n').find((candidate) => candidate.startsWith('{"requests"'));
  if (!line) throw new Error(`wrk printed no summary:\n${output}`);
  const result = JSON.parse(line) as { requests: number; durationUs: number; p50: number; p99: number; errors: number; non2xx: number };
  const failed = result.errors + result.non2xx;
  // A run with more than a stray failure measures failures, not the gateway.
  if (failed > result.requests / 1_000) throw new Error(`${gateway.name}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  if (failed > 0) log(`${gateway.name}: ${failed} of ${result.requests} requests failed`);
  return { rps: result.requests / (result.durationUs / 1e6), p50: result.p50 / 1000, p99: result.p99 / 1000, requests: result.requests };
}

/** One run; `authorizations` are used in turn, one per request. */
async function load(gateway: Service, seconds: number, authorizations: readonly string[]): Promise<Measured> {
  const cpuBefore = cpuMs(gateway.child.pid!);
  if (hasWrk) {
    const measured = loadWithWrk(gateway, seconds, authorizations);
    const cpu = cpuMs(gateway.child.pid!) - cpuBefore;
    return { ...measured, cpuMsPerRequest: Number((cpu / measured.requests).toFixed(3)) };
  }
  let next = 0;
  const result = await autocannon({
    url: gateway.url,
    connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        body: BODY,
        setupRequest: (request) => ({
          ...request,
          headers: { ...request.headers, 'content-type': 'application/json', authorization: authorizations[next++ % authorizations.length]! },
        }),
      },
    ],
  });
  const cpu = cpuMs(gateway.child.pid!) - cpuBefore;
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(`${gateway.name}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`);
  }
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuMsPerRequest: Number((cpu / result.requests.total).toFixed(3)),
    requests: result.requests.total,
  };
}

const databases: TestDatabase[] = [];
const services: Service[] = [];
try {
  log(`seeding users and orders on ${testPostgresUrl()}`);
  const usersDb = await createTestDatabase('bench_cache_users');
  const ordersDb = await createTestDatabase('bench_cache_orders');
  databases.push(usersDb, ordersDb);
  const opened = await openDatabases({ users: { url: usersDb.url }, orders: { url: ordersDb.url } });
  await seed(opened, { users: 1_000, ordersPerUser: 5 });
  await opened.close();

  const secret = () => randomBytes(32).toString('base64url');
  const secrets = { users: secret(), orders: secret(), ordersToUsers: secret(), jwt: secret() };
  const redisUrl = testRedisUrl();
  const [usersPort, ordersPort] = [await freePort(), await freePort()];
  const usersUrl = `http://127.0.0.1:${usersPort}/graphql`;
  const ordersUrl = `http://127.0.0.1:${ordersPort}/graphql`;
  const shared = { REDIS_URL: redisUrl, USERS_SUBGRAPH_SECRET: secrets.users, ORDERS_SUBGRAPH_SECRET: secrets.orders, ORDERS_TO_USERS_SECRET: secrets.ordersToUsers };
  services.push(
    await startService('users', 'subgraphs/users/src/index.ts', [], { ...shared, USERS_PORT: String(usersPort), USERS_DATABASE_URL: usersDb.url }, usersUrl, httpOk(`http://127.0.0.1:${usersPort}/healthz`)),
    await startService(
      'orders',
      'subgraphs/orders/src/index.ts',
      [],
      { ...shared, ORDERS_PORT: String(ordersPort), ORDERS_DATABASE_URL: ordersDb.url, USERS_URL: usersUrl },
      ordersUrl,
      httpOk(`http://127.0.0.1:${ordersPort}/healthz`),
    ),
  );

  const startOurs = async (name: string, cache: 'on' | 'off') => {
    const port = await freePort();
    return startService(
      name,
      'gateway/src/index.ts',
      [],
      {
        GATEWAY_PORT: String(port),
        HOST: '127.0.0.1',
        REDIS_URL: redisUrl,
        JWT_SECRET: secrets.jwt,
        SUBGRAPH_URLS: `users=${usersUrl},orders=${ordersUrl}`,
        SUBGRAPH_SECRETS: `users=${secrets.users},orders=${secrets.orders}`,
        RESPONSE_CACHE: cache,
        // Private entries of the miss scenario (one viewer each) leave Redis quickly.
        RESPONSE_CACHE_MAX_TTL_S: '10',
        // High enough never to refuse, so every request still pays for the check.
        RATE_LIMIT_MAX: '1000000000',
      },
      `http://127.0.0.1:${port}/graphql`,
      httpOk(`http://127.0.0.1:${port}/readyz`),
    );
  };
  const cached = await startOurs('cached', 'on');
  const uncached = await startOurs('uncached', 'off');
  const apolloPort = await freePort();
  const apollo = await startService(
    'apollo',
    'infra/stack/bench/bare-gateway.ts',
    ['--port', String(apolloPort), '--supergraph', DEFAULT_SUPERGRAPH_PATH, '--users', usersUrl, '--users-secret', secrets.users, '--orders', ordersUrl, '--orders-secret', secrets.orders, '--redis', redisUrl],
    {},
    `http://127.0.0.1:${apolloPort}/`,
    graphqlOk(`http://127.0.0.1:${apolloPort}/`),
  );
  services.push(cached, uncached, apollo);

  const auth = { ...DEVELOPMENT_AUTH, secret: secrets.jwt };
  const admin = `Bearer ${await mintToken({ ...auth, sub: '1', role: 'admin' })}`;
  const expected = await answer(uncached.url, admin);
  for (const gateway of [cached, apollo]) {
    if (!isDeepStrictEqual(await answer(gateway.url, admin), expected)) throw new Error(`${gateway.name} answers differently; nothing was timed`);
  }
  log('answers are deep-equal');

  // Enough distinct admins that no token is sent twice in all the miss runs (about 100 requests/s each).
  const tokenCount = Math.max(5_000, runs * duration * 2 * 300);
  log(`minting ${tokenCount} tokens for the miss scenario`);
  const tokens: string[] = [];
  for (let i = 0; i < tokenCount; i += 1) tokens.push(`Bearer ${await mintToken({ ...auth, sub: String(1_000_000 + i), role: 'admin' })}`);
  const freshViewer = tokens;
  const sameViewer = [admin];

  log(`warming up; load from ${hasWrk ? 'wrk' : 'autocannon'}`);
  for (const gateway of [cached, uncached, ...(scenarios.has('hit') ? [apollo] : [])]) await load(gateway, 3, sameViewer);

  type Key = 'hit:cached' | 'hit:uncached' | 'hit:apollo' | 'miss:cached' | 'miss:uncached';
  type Step = { key: Key; gateway: Service; viewer: readonly string[] };
  const plan = ([
    { key: 'hit:cached', gateway: cached, viewer: sameViewer },
    { key: 'hit:uncached', gateway: uncached, viewer: sameViewer },
    { key: 'hit:apollo', gateway: apollo, viewer: sameViewer },
    { key: 'miss:cached', gateway: cached, viewer: freshViewer },
    { key: 'miss:uncached', gateway: uncached, viewer: freshViewer },
  ] satisfies Step[]).filter(({ key }) => scenarios.has(key.split(':')[0]!));
  const results = Object.fromEntries(plan.map(({ key }) => [key, [] as Measured[]])) as Record<Key, Measured[]>;
  // Each miss run starts where the last one stopped in the pool: a token that came back within the TTL
  // would be a hit.
  let used = 0;
  for (let run = 1; run <= runs; run += 1) {
    for (const step of run % 2 ? plan : [...plan].reverse()) {
      const fresh = step.viewer === freshViewer;
      const measured = await load(step.gateway, duration, fresh ? tokens.slice(used) : step.viewer);
      if (fresh) used += measured.requests;
      if (used > tokens.length) throw new Error(`the miss scenario used up its ${tokens.length} tokens; run shorter or fewer runs`);
      results[step.key].push(measured);
      log(JSON.stringify({ run, scenario: step.key, ...measured }));
    }
  }

  const medianOf = (key: Key) => {
    const measured = results[key];
    const of = (field: keyof Measured) => median(measured.map((run) => run[field]));
    return { rps: Math.round(of('rps')), p50Ms: of('p50'), p99Ms: of('p99'), cpuMsPerRequest: of('cpuMsPerRequest') };
  };
  const summary = Object.fromEntries(
    plan.map(({ key }) => [key, medianOf(key)]),
  ) as Partial<Record<Key, ReturnType<typeof medianOf>>>;
  const ratio = (a: Key, b: Key, field: 'rps' | 'cpuMsPerRequest') => {
    const [top, bottom] = [summary[a]?.[field], summary[b]?.[field]];
    return top === undefined || bottom === undefined ? undefined : Number((top / bottom).toFixed(2));
  };
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    cores: cpus().length,
    loadAverage: loadavg().map((value) => Number(value.toFixed(2))),
    query: 'users(first: 20) × orders(first: 5) × items, as admin',
    loadGenerator: hasWrk ? 'wrk' : 'autocannon',
    runs,
    durationSeconds: duration,
    connections,
    medians: summary,
    ratios: {
      hitOverUncached: ratio('hit:cached', 'hit:uncached', 'rps'),
      hitOverApolloPlugin: ratio('hit:cached', 'hit:apollo', 'rps'),
      missOverCacheOff: ratio('miss:cached', 'miss:uncached', 'rps'),
      missCpuOverCacheOff: ratio('miss:cached', 'miss:uncached', 'cpuMsPerRequest'),
    },
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  log('');
  log('| scenario | gateway | req/s | p50 ms | p99 ms | CPU ms/req |');
  log('|---|---|---:|---:|---:|---:|');
  for (const { key } of plan) {
    const [scenario, gateway] = key.split(':');
    const row = summary[key]!;
    log(`| ${scenario} | ${gateway} | ${row.rps} | ${row.p50Ms} | ${row.p99Ms} | ${row.cpuMsPerRequest} |`);
  }
} finally {
  for (const service of services.reverse()) {
    if (service.child.exitCode === null) {
      const exited = new Promise((resolve) => service.child.once('exit', resolve));
      service.child.kill('SIGTERM');
      await exited;
    }
  }
  for (const database of databases) await database.drop();
  rmSync(scratch, { recursive: true, force: true });
}
