// `npm run -s bench:observability -w @fed/stack -- [--runs 3] [--duration 10] [--connections 16]`: what metrics
// and tracing cost on the nested users → orders → items query. Three copies of the one-process stack, on
// identical Postgres data and the same Redis, with the response cache off so every request does the work:
//   before:  the last commit before observability (BEFORE_COMMIT): no metrics, request ids or tracing;
//   metrics: this tree as it ships: request ids, Prometheus metrics in all three services, tracing off;
//   tracing: the same with TRACING=on, every trace sampled, exported over OTLP/HTTP to a sink in this process.
// Access logs are left at LOG_LEVEL=warn in all three (their cost is the log pipeline's, not this code's).
// Answers must be deep-equal before anything is timed; runs alternate; medians and ratios go to stdout as
// JSON, progress to stderr.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import { mintToken } from '@fed/gateway';
import { DEVELOPMENT_AUTH } from '@fed/gateway/config';
import { createTestDatabase, median, testPostgresUrl, testRedisUrl, type TestDatabase } from '@fed/platform/testing';
import { openDatabases } from '../src/databases.ts';
import { startStackProcess } from '../src/process.ts';
import { seed } from '../src/seed.ts';
import { checkoutAt, stackEnv } from './stack-env.ts';
import { answerNested, loadNested, type BenchStack } from './stack-load.ts';

const BEFORE_COMMIT = '13b785c';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '16' },
  },
});
const runs = Number(values.runs);
const duration = Number(values.duration);
const connections = Number(values.connections);
const log = (line: string) => process.stderr.write(`${line}\n`);
const repo = fileURLToPath(new URL('../../..', import.meta.url));


const before = checkoutAt(BEFORE_COMMIT, 'before-observability', log);

// An OTLP/HTTP endpoint that takes every export and throws it away: the exporter's work is paid in full.
let spansReceived = 0;
const sink = createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    spansReceived += 1;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
});
await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;

const jwtSecret = randomBytes(32).toString('base64url');
const headers = {
  'content-type': 'application/json',
  authorization: `Bearer ${await mintToken({ ...DEVELOPMENT_AUTH, secret: jwtSecret, sub: '1', role: 'admin' })}`,
};

const databases: TestDatabase[] = [];
const stacks: BenchStack[] = [];
try {
  log(`seeding three identical pairs of databases on ${testPostgresUrl()}`);
  const variants: { name: string; tree: string; env: Record<string, string> }[] = [
    { name: 'before', tree: before, env: {} },
    { name: 'metrics', tree: repo, env: { TRACING: 'off' } },
    { name: 'tracing', tree: repo, env: { TRACING: 'on', OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl } },
  ];
  for (const variant of variants) {
    const users = await createTestDatabase(`bench_${variant.name}_users`);
    const orders = await createTestDatabase(`bench_${variant.name}_orders`);
    databases.push(users, orders);
    const opened = await openDatabases({ users: { url: users.url }, orders: { url: orders.url } });
    await seed(opened, { users: 300, ordersPerUser: 4 });
    await opened.close();
    const env = {
      ...variant.env,
      USERS_DATABASE_URL: users.url,
      ORDERS_DATABASE_URL: orders.url,
      REDIS_URL: testRedisUrl(),
      JWT_SECRET: jwtSecret,
      RATE_LIMIT_MAX: '1000000000',
      RESPONSE_CACHE: 'off',
    };
    const started = await startStackProcess(variant.tree, stackEnv(env));
    stacks.push({ name: variant.name, url: started.gatewayUrl, headers, process: started });
  }

  const [reference, ...others] = stacks as [BenchStack, ...BenchStack[]];
  const expected = await answerNested(reference);
  for (const stack of others) {
    if (!isDeepStrictEqual(await answerNested(stack), expected)) throw new Error(`${stack.name} answers differently; nothing was timed`);
  }
  log('answers are deep-equal; warming up');
  for (const stack of stacks) await loadNested(stack, 3, connections);

  const measured = Object.fromEntries(stacks.map((stack) => [stack.name, { rps: [] as number[], p50: [] as number[], p99: [] as number[], cpu: [] as number[] }]));
  for (let run = 1; run <= runs; run++) {
    // Each run starts with a different stack, so no variant always follows the same one.
    const order = stacks.map((_, index) => stacks[(index + run) % stacks.length]!);
    for (const stack of order) {
      const result = await loadNested(stack, duration, connections);
      const series = measured[stack.name]!;
      series.rps.push(result.rps);
      series.p50.push(result.p50);
      series.p99.push(result.p99);
      series.cpu.push(result.cpuMsPerRequest);
      log(JSON.stringify({ run, stack: stack.name, ...result }));
    }
  }
  const medians = Object.fromEntries(
    Object.entries(measured).map(([name, series]) => [
      name,
      { rps: Math.round(median(series.rps)), p50Ms: median(series.p50), p99Ms: median(series.p99), cpuMsPerRequest: median(series.cpu) },
    ]),
  );
  const ratio = (name: string, field: 'rps' | 'cpuMsPerRequest') => Number((medians[name]![field] / medians.before![field]).toFixed(3));
  process.stdout.write(
    `${JSON.stringify({
      query: 'users(first: 20) × orders(first: 5) × items, as admin, response cache off',
      machine: { cores: cpus().length, loadAverage: loadavg().map((value) => Number(value.toFixed(2))), node: process.version, date: new Date().toISOString() },
      runs,
      durationSeconds: duration,
      connections,
      medians,
      rpsRatioToBefore: { metrics: ratio('metrics', 'rps'), tracing: ratio('tracing', 'rps') },
      cpuPerRequestRatioToBefore: { metrics: ratio('metrics', 'cpuMsPerRequest'), tracing: ratio('tracing', 'cpuMsPerRequest') },
      otlpExportsReceived: spansReceived,
    })}\n`,
  );
} finally {
  for (const stack of stacks) await stack.process.stop();
  for (const database of databases) await database.drop();
  sink.close();
}
