// `npm run -s bench:gateway-cpu -w @fed/stack -- [--rounds 3] [--duration 5] [--connections 20] [--latency 0] [--only own] [--queries deep]`:
// the gateway's CPU per request over HTTP, with every default layer on (auth, limits, rate limit, signing,
// breaker, dedupe) but the response cache off, for our executor against @apollo/gateway's, side by side.
// The subgraphs' answers are recorded once from the real one-process stack (PGlite) and then served by
// replaying servers that cost next to nothing, so that the process's CPU is the gateway's. autocannon runs
// as its own process. Runs alternate; medians go to stdout as JSON. With `--only own` (or `apollo`) one
// gateway is loaded, for a profile of it alone: `node --cpu-prof --import tsx bench/gateway-cpu.ts --only own`.
import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { createAuthenticator, createGateway, mintToken, type Gateway } from '@fed/gateway';
import { DEVELOPMENT_AUTH } from '@fed/gateway/config';
import { createMemoryCache, listen, MemoryRateLimiter } from '@fed/platform';
import { median } from '@fed/platform/testing';
import { QUERIES, startSeededStack } from './queries.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '20' },
    only: { type: 'string' },
    // A comma-separated subset of the queries (nested, deep, ...); all of them by default.
    queries: { type: 'string' },
    // Each replayed subgraph answer waits this long, as a real subgraph's would: requests stay in flight, and
    // what they hold lives through collections as it does in production.
    latency: { type: 'string', default: '0' },
  },
});
const latencyMs = Number(values.latency);
const log = (line: string) => process.stderr.write(`${line}\n`);
const autocannon = fileURLToPath(new URL('../../../node_modules/.bin/autocannon', import.meta.url));

const { stack, logger, supergraphSdl, removeData } = await startSeededStack('bench-gateway-cpu');

/** Forwards a request the first time its body is seen, then answers it from memory. */
async function replaying(target: string) {
  const answers = new Map<string, { status: number; headers: Record<string, string>; body: string }>();
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    let answer = answers.get(body);
    if (!answer) {
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => !['host', 'content-length', 'connection'].includes(name))) as Record<string, string>;
      const response = await fetch(target, { method: 'POST', headers, body });
      answer = { status: response.status, headers: { 'content-type': response.headers.get('content-type') ?? 'application/json', 'cache-control': response.headers.get('cache-control') ?? '' }, body: await response.text() };
      if (response.ok) answers.set(body, answer);
    }
    if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));
    res.writeHead(answer.status, answer.headers).end(answer.body);
  });
  await listen(server, 0, '127.0.0.1');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql` };
}

const proxies = { users: await replaying(stack.urls.users), orders: await replaying(stack.urls.orders) };
const gateways: Record<'own' | 'apollo', { gateway: Gateway; url: string }> = {} as never;
for (const execution of ['own', 'apollo'] as const) {
  const gateway = await createGateway({
    supergraphSdl,
    subgraphUrls: { users: proxies.users.url, orders: proxies.orders.url },
    logger,
    cache: createMemoryCache(),
    rateLimiter: new MemoryRateLimiter(),
    // Checked on every request, never refusing one.
    rateLimit: { limit: 1_000_000_000, windowMs: 60_000 },
    authenticate: createAuthenticator(DEVELOPMENT_AUTH),
    subgraphSecrets: { users: stack.secrets.users, orders: stack.secrets.orders },
    execution,
  });
  await listen(gateway.httpServer, 0, '127.0.0.1');
  gateways[execution] = { gateway, url: `http://127.0.0.1:${(gateway.httpServer.address() as AddressInfo).port}/graphql` };
}

const token = await mintToken({ ...DEVELOPMENT_AUTH, sub: '1', role: 'admin' });
const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
const results: Record<string, unknown> = {};
let stopped = false;
try {
  for (const [name, query] of Object.entries(QUERIES)) {
    const body = JSON.stringify({ query });
    const answers = await Promise.all(Object.values(gateways).map(async ({ url }) => (await fetch(url, { method: 'POST', headers, body })).text()));
    if (answers[0] !== answers[1] || answers[0]!.includes('"errors"')) throw new Error(`${name}: the gateways' answers differ or fail: ${answers[0]!.slice(0, 300)}`);
    log(`${name}: ${answers[0]!.length} bytes, the same from both`);
  }
  // Every answer is recorded now: the stack's own work (its relays poll PGlite) would count as the gateway's.
  await stack.stop();
  stopped = true;

  const chosen = values.queries ? values.queries.split(',') : Object.keys(QUERIES);
  for (const [name, query] of Object.entries(QUERIES).filter(([name]) => chosen.includes(name))) {
    const body = JSON.stringify({ query });

    const load = async (url: string) => {
      const before = process.cpuUsage();
      const { stdout } = await promisify(execFile)(autocannon, [
        '--json', '-c', values.connections!, '-d', values.duration!, '-m', 'POST', '-b', body,
        '-H', 'content-type=application/json', '-H', `authorization=Bearer ${token}`, url,
      ], { maxBuffer: 64 * 1024 * 1024 });
      const used = process.cpuUsage(before);
      const report = JSON.parse(stdout) as { requests: { total: number; average: number }; non2xx: number; errors: number };
      if (report.non2xx > 0 || report.errors > 0) throw new Error(`${name}: ${report.non2xx} non-2xx answers, ${report.errors} errors`);
      return { cpuMs: (used.user + used.system) / 1000 / report.requests.total, rps: report.requests.average };
    };
    const samples: Record<'own' | 'apollo', { cpuMs: number; rps: number }[]> = { own: [], apollo: [] };
    const which = values.only ? [values.only as 'own' | 'apollo'] : (['apollo', 'own'] as const);
    for (let round = 0; round <= Number(values.rounds); round++) {
      for (const execution of which) {
        const sample = await load(gateways[execution].url);
        if (round > 0) samples[execution].push(sample);
        log(`${name} ${execution}${round === 0 ? ' (warm-up)' : ''}: ${sample.cpuMs.toFixed(2)} ms of CPU per request, ${sample.rps.toFixed(0)} requests/s`);
      }
    }
    const summary = (execution: 'own' | 'apollo') => ({ cpuMs: median(samples[execution].map((s) => s.cpuMs)), rps: median(samples[execution].map((s) => s.rps)) });
    results[name] = values.only ? { [values.only]: summary(values.only as 'own') } : { own: summary('own'), apollo: summary('apollo'), cpuRatio: summary('own').cpuMs / summary('apollo').cpuMs };
  }
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
} finally {
  for (const { gateway } of Object.values(gateways)) await gateway.stop();
  for (const { server } of Object.values(proxies)) server.close();
  if (!stopped) await stack.stop();
  removeData();
}
