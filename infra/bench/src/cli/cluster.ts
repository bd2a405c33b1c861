// `npx tsx src/cli/cluster.ts` (in infra/bench): the gateway with REDIS_URL on a 3-primary Redis Cluster, against
// the same on one Redis, side by side in one run (issue 25: at least 0.9× for cache hits and for the uncached
// read/write mix). Each side is its own users and orders subgraphs and gateways, all on its own Redis (the
// cache, rate limits, signatures, pub/sub and the event stream move with REDIS_URL), on one seeded dataset,
// compiled from one commit; loaded in alternating runs.
//   --rev REV               the commit to compile (HEAD: others' uncommitted edits in a shared checkout stay out)
//   --sides a,b             the Redis of each side: redis (a private redis-server), cluster (a private cluster of
//                           3 primaries, each with --replicas replicas), shared (the machine's Redis); the first is
//                           the one the others are divided by (redis,cluster)
//   --replicas N            replicas per primary of the cluster (1, as in production; 0 for primaries alone)
//   --scenarios a,b         cache-hit (the nested list again and again, one viewer, on ours-cached), mix (9 reads
//                           of a user's orders to 1 updateUser, on 100 users, on `ours`: uncached, dedupe off) and
//                           mix-cached (the same on ours-cached); all three by default
//   --runs N --seconds S    alternating runs per side and scenario (5 × 5 s), after one warm-up each
//   --connections C         concurrent connections (50, the bench's)
//   --users N               seeded users, 10 orders each (10 000)
//   --cpu-prof DIR          every process's CPU profile, written when it stops, to DIR/<side> (redis, cluster, shared)
// Progress goes to stderr, the tables (markdown, with every run's line after them) to stdout. Needs Postgres.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { deleteRedisKeys, testPostgresUrl, uniqueName } from '@fed/platform/testing';
import { buildCompiledTree, checkOutCommit } from '../build.ts';
import { postgresBackendsCpu } from '../cpu.ts';
import { seedDataset, type Dataset } from '../dataset.ts';
import { pickLoadGenerator } from '../load.ts';
import { REPO } from '../processes.ts';
import { isRedisKind, startBenchRedis, type BenchRedis } from '../redis-servers.ts';
import { httpScenarios } from '../scenarios.ts';
import { alternate, beginning, checkAlike, shortCommit, sideBySideReport, type Side, type Target } from '../side-by-side.ts';
import { startTopology } from '../topology.ts';

const { values } = parseArgs({
  options: {
    rev: { type: 'string', default: 'HEAD' },
    sides: { type: 'string', default: 'redis,cluster' },
    replicas: { type: 'string', default: '1' },
    scenarios: { type: 'string', default: 'cache-hit,mix,mix-cached' },
    runs: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50' },
    users: { type: 'string', default: '10000' },
    'cpu-prof': { type: 'string' },
  },
});
const log = (line: string) => process.stderr.write(`${line}\n`);
const generator = pickLoadGenerator();
const [runs, seconds, connections] = [Number(values.runs), Number(values.seconds), Number(values.connections)];
const kinds = values.sides.split(',');
const wanted = new Set(values.scenarios.split(','));
const gateways = [...(wanted.has('mix') ? (['ours'] as const) : []), ...(wanted.has('cache-hit') || wanted.has('mix-cached') ? (['ours-cached'] as const) : [])];
if (kinds.length < 2 || !kinds.every(isRedisKind)) throw new Error('--sides takes two or more of redis, cluster, shared');

const commit = shortCommit(values.rev);
const began = beginning();
const scratch = join(REPO, `.bench/cluster-${process.pid}`);
const redises: BenchRedis[] = [];
// Keys left on the machine's Redis (the private ones are stopped with everything in them).
const sharedPrefixes: string[] = [];
const sides: Side[] = [];
let dataset: Dataset | undefined;
let monitor: ReturnType<typeof postgresBackendsCpu> | undefined;
try {
  log(`checking out and compiling ${commit}`);
  checkOutCommit(commit, join(scratch, 'source'));
  buildCompiledTree(join(scratch, 'tree'), join(scratch, 'source'));
  log(`seeding ${values.users} users`);
  dataset = await seedDataset({ users: Number(values.users), ordersPerUser: 10 }, log);
  monitor = postgresBackendsCpu(testPostgresUrl(), [dataset.users.name, dataset.orders.name]);
  for (const kind of kinds) {
    log(`starting ${kind}`);
    const redis = await startBenchRedis(kind, { replicasPerPrimary: Number(values.replicas) });
    redises.push(redis);
    // Its own prefix even on a private Redis, as a deployment would have.
    const redisPrefix = `${uniqueName('bench-cluster')}:`;
    if (kind === 'shared') sharedPrefixes.push(redisPrefix);
    const topology = await startTopology(
      {
        tree: join(scratch, 'tree'),
        inherited: { PATH: process.env.PATH, HOME: process.env.HOME },
        usersDatabaseUrl: dataset.users.url,
        ordersDatabaseUrl: dataset.orders.url,
        redisUrl: redis.url,
        redisPrefix,
        wanted: gateways,
        ...(values['cpu-prof'] && { profileDir: join(values['cpu-prof'], kind) }),
      },
      log,
    );
    sides.push({ name: redis.label, topology, watch: [monitor, redis.cpu] });
  }

  const scenarioOf = new Map(httpScenarios(dataset.counts.users).map((scenario) => [scenario.name, scenario]));
  // The mix uncached (`ours`: Redis still carries its rate limits, signatures, pub/sub and event stream) and as
  // shipped (`ours-cached`: its reads hit the cache between writes, which purge).
  const plans = [
    { scenario: 'cache-hit', from: 'cache-hit', gateway: 'ours-cached', note: '' },
    { scenario: 'mix', from: 'mix', gateway: 'ours', note: ', uncached (`ours`)' },
    { scenario: 'mix-cached', from: 'mix', gateway: 'ours-cached', note: ', response cache on (`ours-cached`)' },
  ] as const;
  const targets: Target[] = plans
    .filter((plan) => wanted.has(plan.scenario))
    .map((plan) => {
      const scenario = scenarioOf.get(plan.from)!;
      return {
        scenario: plan.scenario,
        title: `${scenario.title}${plan.note}`,
        process: (topology) => topology.gateways.get(plan.gateway)!,
        requests: (topology) => scenario.requests(topology.adminToken),
        // Twice: with the cache on, the second answer is a hit, and must be the same on every side too.
        checkTimes: 2,
      };
    });
  log('checking that every side answers alike');
  await checkAlike(sides, targets);
  const results = await alternate(sides, targets, { generator, runs, seconds, connections, log });

  const report = {
    title: `Issue 25: the gateway on ${kinds.join(' against ')}`,
    summary:
      `${runs} alternating runs of ${seconds} s per side and scenario at ${connections} connections (${generator}), after one warm-up each, medians; ${dataset.counts.users} users, ${dataset.counts.orders} orders. ` +
      `Every side: its own users and orders processes and ${gateways.join(' and ')} gateway processes, compiled from ${commit}, with REDIS_URL on its Redis, on one seeded dataset. CPU per request: each process (Redis: every server of the side, replicas included), Postgres: the bench databases' backends.`,
    began,
  };
  process.stdout.write(sideBySideReport(report, sides, targets, results));
} finally {
  for (const side of sides) await side.topology.stop().catch((error: unknown) => log(`stopping ${side.name}: ${String(error)}`));
  for (const redis of redises) await redis.stop().catch((error: unknown) => log(`stopping ${redis.label}: ${String(error)}`));
  await monitor?.close();
  for (const prefix of sharedPrefixes) await deleteRedisKeys(prefix).catch(() => {});
  await dataset?.drop().catch((error: unknown) => log(`dropping the databases: ${String(error)}`));
  rmSync(scratch, { recursive: true, force: true });
}
