// `npm run -s bench:layers -w @fed/stack -- [--runs 5] [--duration 10] [--connections 16]`: what identity and
// hardening cost on the nested users → orders → items query. Two copies of the one-process stack (the same
// layout, on identical Postgres data and the same Redis) serve the same query side by side:
//   baseline: the last commit before identity and hardening (BASELINE_COMMIT), checked out in .bench/ and
//             installed on first use; every client was anonymous and nothing was checked;
//   layered:  this tree with every layer on: JWT verification, rate limit (Redis, set high enough never to
//             refuse, so each request still pays for the check), operation limits, signed identity to the
//             subgraphs and its verification, and the authorization rules.
// Both answers must be deep-equal before anything is timed. Runs alternate between the two. Throughput on a
// shared 2-core machine is noisy (the load generator and Postgres compete with the stack), so each run also
// reports the stack process's CPU time per request, read from /proc (Linux). Medians and ratios go to stdout
// as JSON, progress to stderr.
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { mintToken } from '@fed/gateway';
import { DEVELOPMENT_AUTH } from '@fed/gateway/config';
import { createTestDatabase, median, testPostgresUrl, testRedisUrl, type TestDatabase } from '@fed/platform/testing';
import { openDatabases } from '../src/databases.ts';
import { startStackProcess } from '../src/process.ts';
import { seed } from '../src/seed.ts';
import { checkoutAt, stackEnv } from './stack-env.ts';
import { answerNested, loadNested, type BenchStack } from './stack-load.ts';

const BASELINE_COMMIT = '9cd7990';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '16' },
  },
});
const runs = Number(values.runs);
const duration = Number(values.duration);
const connections = Number(values.connections);
const log = (line: string) => process.stderr.write(`${line}\n`);

const repo = fileURLToPath(new URL('../../..', import.meta.url));



async function startStack(name: string, tree: string, env: Record<string, string>, headers: Record<string, string>): Promise<BenchStack> {
  const started = await startStackProcess(tree, stackEnv(env));
  return { name, url: started.gatewayUrl, headers: { 'content-type': 'application/json', ...headers }, process: started };
}

const baselineTree = checkoutAt(BASELINE_COMMIT, 'baseline', log);
const databases: TestDatabase[] = [];
const stacks: BenchStack[] = [];
try {
  log(`seeding two identical pairs of databases on ${testPostgresUrl()}`);
  const pairs = [];
  for (const name of ['baseline', 'layered']) {
    const users = await createTestDatabase(`bench_${name}_users`);
    const orders = await createTestDatabase(`bench_${name}_orders`);
    databases.push(users, orders);
    const opened = await openDatabases({ users: { url: users.url }, orders: { url: orders.url } });
    await seed(opened, { users: 300, ordersPerUser: 4 });
    await opened.close();
    pairs.push({ USERS_DATABASE_URL: users.url, ORDERS_DATABASE_URL: orders.url, REDIS_URL: testRedisUrl() });
  }

  const jwtSecret = randomBytes(32).toString('base64url');
  const token = await mintToken({ ...DEVELOPMENT_AUTH, secret: jwtSecret, sub: '1', role: 'admin' });
  stacks.push(await startStack('baseline', baselineTree, pairs[0]!, {}));
  stacks.push(
    await startStack('layered', repo, { ...pairs[1]!, JWT_SECRET: jwtSecret, RATE_LIMIT_MAX: '1000000000' }, { authorization: `Bearer ${token}` }),
  );
  const [baseline, layered] = stacks as [BenchStack, BenchStack];

  const expected = await answerNested(baseline);
  if (!isDeepStrictEqual(await answerNested(layered), expected)) throw new Error('the two stacks answer differently; nothing was timed');
  log('answers are deep-equal; warming up');
  for (const stack of stacks) await loadNested(stack, 3, connections);

  const rps: Record<string, number[]> = { baseline: [], layered: [] };
  const p50: Record<string, number[]> = { baseline: [], layered: [] };
  const cpu: Record<string, number[]> = { baseline: [], layered: [] };
  for (let run = 1; run <= runs; run++) {
    for (const stack of run % 2 ? [baseline, layered] : [layered, baseline]) {
      const measured = await loadNested(stack, duration, connections);
      rps[stack.name]!.push(measured.rps);
      p50[stack.name]!.push(measured.p50);
      cpu[stack.name]!.push(measured.cpuMsPerRequest);
      log(JSON.stringify({ run, stack: stack.name, ...measured }));
    }
  }
  const summary = {
    query: 'users(first: 20) × orders(first: 5) × items, as admin',
    runs,
    durationSeconds: duration,
    connections,
    medianRps: { baseline: Math.round(median(rps.baseline!)), layered: Math.round(median(rps.layered!)) },
    medianLatencyP50Ms: { baseline: median(p50.baseline!), layered: median(p50.layered!) },
    medianCpuMsPerRequest: { baseline: median(cpu.baseline!), layered: median(cpu.layered!) },
    rpsRatio: Number((median(rps.layered!) / median(rps.baseline!)).toFixed(3)),
    cpuPerRequestRatio: Number((median(cpu.layered!) / median(cpu.baseline!)).toFixed(3)),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
} finally {
  for (const stack of stacks) await stack.process.stop();
  for (const database of databases) await database.drop();
}
