// `npm run -s bench:subscriptions -w @fed/stack -- [--subscribers 1000,10000] [--events 20]`: subscription
// fan-out on one gateway process. The stack runs as one process (`npm start` on Postgres and Redis); N
// graphql-ws clients, each on its own socket, follow one user's events with fields from both subgraphs
// (identical subscriptions: the gateway holds one upstream subscription for all of them). For each N:
//   memory: the process's RSS with N idle subscribers, minus before, per subscriber;
//   latency: commit → client, for every delivery of `events` writes spaced 200 ms apart (each event carries
//            occurredAt, stamped by the subgraph after its commit; same machine, same clock);
//   throughput: `burst` writes sent 10 at a time, and distinct events per second until every subscriber has
//            all of them (1 subscriber is the baseline: the writes themselves bound it).
// Medians and p99 go to stdout as JSON, progress to stderr.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { mintToken } from '@fed/gateway';
import { DEVELOPMENT_AUTH } from '@fed/gateway/config';
import { createTestDatabase, testRedisUrl, type TestDatabase } from '@fed/platform/testing';
import { openDatabases } from '../src/databases.ts';
import { startStackProcess, type StackProcess } from '../src/process.ts';
import { seed } from '../src/seed.ts';
import { stackEnv } from './stack-env.ts';

const SUBSCRIPTION = 'subscription { userEvents(userId: "1") { kind occurredAt user { name orders(first: 3) { totalCount } } } }';

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '1,1000,10000' },
    events: { type: 'string', default: '20' },
    burst: { type: 'string', default: '100' },
  },
});
const sizes = values.subscribers.split(',').map(Number);
const eventCount = Number(values.events);
const burstSize = Number(values.burst);
const log = (line: string) => process.stderr.write(`${line}\n`);
const repo = fileURLToPath(new URL('../../..', import.meta.url));

const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(check: () => boolean, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const databases: TestDatabase[] = [];
let stack: StackProcess | undefined;
try {
  const users = await createTestDatabase('bench_subs_users');
  const orders = await createTestDatabase('bench_subs_orders');
  databases.push(users, orders);
  const opened = await openDatabases({ users: { url: users.url }, orders: { url: orders.url } });
  await seed(opened, { users: 100, ordersPerUser: 3 });
  await opened.close();

  const jwtSecret = randomBytes(32).toString('base64url');
  stack = await startStackProcess(repo, stackEnv({
    USERS_DATABASE_URL: users.url,
    ORDERS_DATABASE_URL: orders.url,
    REDIS_URL: testRedisUrl(),
    RATE_LIMIT_MAX: '0',
    JWT_SECRET: jwtSecret,
  }));
  const pid = stack.child.pid!;
  const token = `Bearer ${await mintToken({ ...DEVELOPMENT_AUTH, secret: jwtSecret, sub: '1000000', role: 'admin' })}`;
  const wsUrl = stack.gatewayUrl.replace(/^http/, 'ws');
  let writes = 0;
  const write = () =>
    fetch(stack!.gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: token },
      body: JSON.stringify({ query: `mutation { updateUser(id: "1", input: { name: "Bench ${++writes}" }) { id } }` }),
    }).then((response) => {
      if (!response.ok) throw new Error(`write answered ${response.status}`);
    });

  const results = [];
  for (const size of sizes) {
    await sleep(500);
    const before = rssKb(pid);
    const clients: Client[] = [];
    const latencies: number[] = [];
    const received = new Array<number>(size).fill(0);
    log(`connecting ${size} subscribers`);
    for (let i = 0; i < size; i += 1) {
      const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false, connectionParams: { authorization: token } });
      clients.push(client);
      client.subscribe(
        { query: SUBSCRIPTION },
        {
          next: (result) => {
            received[i] = (received[i] ?? 0) + 1;
            const occurredAt = (result.data?.userEvents as { occurredAt?: string } | undefined)?.occurredAt;
            if (occurredAt && measuring) latencies.push(Date.now() - Date.parse(occurredAt));
          },
          error: (error) => log(`subscriber ${i}: ${String((error as Error).message ?? error)}`),
          complete: () => {},
        },
      );
      // Pace the handshakes a little: a burst of 10 000 at once measures the accept queue, not the gateway.
      if (i % 200 === 199) await sleep(20);
    }
    let measuring = false;
    // Every subscriber is live once a probe write reaches all of them.
    const probeDeadline = Date.now() + 60_000;
    for (;;) {
      await write();
      try {
        await waitUntil(() => received.every((count) => count > 0), 3_000, 'the probe event');
        break;
      } catch (error) {
        if (Date.now() > probeDeadline) throw error;
      }
    }
    await sleep(1_000);
    const idle = rssKb(pid);
    log(`${size} subscribers live; RSS ${before} → ${idle} kB`);

    measuring = true;
    const target = received.map((count) => count + eventCount);
    for (let e = 0; e < eventCount; e += 1) {
      await write();
      await sleep(200);
    }
    await waitUntil(() => received.every((count, i) => count >= target[i]!), 30_000, 'every event at every subscriber');
    measuring = false;

    const burstTarget = received.map((count) => count + burstSize);
    const burstStarted = performance.now();
    for (let sent = 0; sent < burstSize; sent += 10) await Promise.all(Array.from({ length: Math.min(10, burstSize - sent) }, () => write()));
    await waitUntil(() => received.every((count, i) => count >= burstTarget[i]!), 120_000, 'every burst event at every subscriber');
    const eventsPerSecond = Math.round(burstSize / ((performance.now() - burstStarted) / 1000));
    latencies.sort((a, b) => a - b);
    const result = {
      subscribers: size,
      deliveries: latencies.length,
      latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) },
      rssKb: { before, idle },
      kbPerIdleSubscriber: Number(((idle - before) / size).toFixed(1)),
      distinctEventsPerSecond: eventsPerSecond,
      deliveriesPerSecond: eventsPerSecond * size,
    };
    results.push(result);
    log(JSON.stringify(result));
    await Promise.all(clients.map((client) => client.dispose()));
  }
  process.stdout.write(
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cores: cpus().length, loadAverage: loadavg().map((v) => Number(v.toFixed(2))), events: eventCount, results })}\n`,
  );
} finally {
  await stack?.stop();
  for (const database of databases) await database.drop();
}
