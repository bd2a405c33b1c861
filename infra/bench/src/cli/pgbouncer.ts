// `npx tsx src/cli/pgbouncer.ts` (in infra/bench): what the subgraphs pay behind PgBouncer in transaction mode,
// where they must send every statement unnamed (`*_DATABASE_PREPARE=off`), against connecting straight to
// Postgres with prepared statements, side by side in one run (issue 25). A third side, straight to Postgres with
// prepare off, separates the cost of unnamed statements from PgBouncer's hop. Each side is its own users and orders
// subgraphs and gateway (`ours`: uncached, dedupe off) on one seeded dataset, compiled from one commit; loaded in
// alternating runs (the sides' order rotates from run to run).
//   --rev REV               the commit to compile (HEAD: others' uncommitted edits in a shared checkout stay out)
//   --sides a,b,c           direct (prepare on, as shipped), pgbouncer (through a private PgBouncer 1.18 in
//                           transaction mode, prepare off), direct-unnamed (straight, prepare off); the first is
//                           the one the others are divided by (all three)
//   --pool N                PgBouncer's server connections per database (20; each subgraph opens up to 10)
//   --scenarios a,b         nested (through each gateway) and orders-entities (straight to each orders subgraph)
//   --runs N --seconds S    alternating runs per side and scenario (5 × 5 s), after one warm-up each
//   --connections C         concurrent connections (20, as bench:ab)
//   --users N               seeded users, 10 orders each (10 000)
// Progress goes to stderr, the tables (markdown, with every run's line after them) to stdout. Needs Postgres,
// Redis and PgBouncer (`apt-get install pgbouncer`; PGBOUNCER names another binary).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { deleteRedisKeys, hasPgBouncer, startPgBouncer, testPostgresUrl, testRedisUrl, uniqueName, type PrivatePgBouncer } from '@fed/platform/testing';
import { buildCompiledTree, checkOutCommit } from '../build.ts';
import { postgresBackendsCpu, processCpu, redisCpu, type CpuWatch } from '../cpu.ts';
import { seedDataset, type Dataset } from '../dataset.ts';
import { pickLoadGenerator } from '../load.ts';
import { REPO } from '../processes.ts';
import { nestedQuery, subgraphScenarios } from '../scenarios.ts';
import { alternate, beginning, checkAlike, shortCommit, sideBySideReport, type Side, type Target } from '../side-by-side.ts';
import { startTopology } from '../topology.ts';

const { values } = parseArgs({
  options: {
    rev: { type: 'string', default: 'HEAD' },
    sides: { type: 'string', default: 'direct,pgbouncer,direct-unnamed' },
    pool: { type: 'string', default: '20' },
    scenarios: { type: 'string', default: 'nested,orders-entities' },
    runs: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '20' },
    users: { type: 'string', default: '10000' },
  },
});
const log = (line: string) => process.stderr.write(`${line}\n`);
const generator = pickLoadGenerator();
const [runs, seconds, connections] = [Number(values.runs), Number(values.seconds), Number(values.connections)];
const KINDS = {
  direct: 'direct, prepared',
  pgbouncer: 'PgBouncer, unnamed',
  'direct-unnamed': 'direct, unnamed',
} as const;
type Kind = keyof typeof KINDS;
const kinds = values.sides.split(',');
if (kinds.length < 2 || !kinds.every((kind): kind is Kind => kind in KINDS)) throw new Error(`--sides takes two or more of ${Object.keys(KINDS).join(', ')}`);
const wanted = new Set(values.scenarios.split(','));
if (kinds.includes('pgbouncer') && !hasPgBouncer()) throw new Error('PgBouncer is not installed (apt-get install pgbouncer), or set PGBOUNCER');

/** The process listening on `port` on loopback (ss), so that PgBouncer's own CPU counts on its side. */
function listenerPid(port: number): number {
  const output = execFileSync('ss', ['-Hltnp', `sport = :${port}`], { encoding: 'utf8' });
  const pid = Number(/pid=(\d+)/.exec(output)?.[1]);
  if (!Number.isInteger(pid)) throw new Error(`nothing of this machine listens on ${port}: ${output}`);
  return pid;
}

const commit = shortCommit(values.rev);
const began = beginning();
const scratch = join(REPO, `.bench/pgbouncer-${process.pid}`);
const redisPrefix = `${uniqueName('bench-pgbouncer')}:`;
const sides: Side[] = [];
let bouncer: PrivatePgBouncer | undefined;
let dataset: Dataset | undefined;
let monitor: ReturnType<typeof postgresBackendsCpu> | undefined;
try {
  log(`checking out and compiling ${commit}`);
  checkOutCommit(commit, join(scratch, 'source'));
  buildCompiledTree(join(scratch, 'tree'), join(scratch, 'source'));
  log(`seeding ${values.users} users`);
  dataset = await seedDataset({ users: Number(values.users), ordersPerUser: 10 }, log);
  monitor = postgresBackendsCpu(testPostgresUrl(), [dataset.users.name, dataset.orders.name]);
  const redis = await redisCpu(testRedisUrl());
  for (const kind of kinds) {
    let [usersUrl, ordersUrl] = [dataset.users.url, dataset.orders.url];
    const watch: CpuWatch[] = [monitor, redis];
    if (kind === 'pgbouncer') {
      bouncer = await startPgBouncer({ poolSize: Number(values.pool) });
      [usersUrl, ordersUrl] = [bouncer.urlFor(usersUrl), bouncer.urlFor(ordersUrl)];
      watch.push(processCpu('pgbouncer', listenerPid(bouncer.port)));
    }
    const prepare = kind === 'direct' ? 'on' : 'off';
    log(`starting ${KINDS[kind]}`);
    const topology = await startTopology(
      {
        tree: join(scratch, 'tree'),
        inherited: { PATH: process.env.PATH, HOME: process.env.HOME },
        usersDatabaseUrl: usersUrl,
        ordersDatabaseUrl: ordersUrl,
        redisUrl: testRedisUrl(),
        redisPrefix,
        wanted: ['ours'],
        subgraphEnv: { users: { USERS_DATABASE_PREPARE: prepare }, orders: { ORDERS_DATABASE_PREPARE: prepare } },
      },
      log,
    );
    sides.push({ name: KINDS[kind], topology, watch });
  }

  const targets: Target[] = [];
  if (wanted.has('nested')) {
    const body = JSON.stringify({ query: nestedQuery(20) });
    targets.push({
      scenario: 'nested',
      title: 'Nested list through the gateway (`ours`: uncached, dedupe off): users(first: 20) → orders(first: 5) → items',
      process: (topology) => topology.gateways.get('ours')!,
      requests: (topology) => [{ body, authorization: topology.adminToken }],
    });
  }
  for (const scenario of subgraphScenarios().filter((candidate) => wanted.has(candidate.name))) {
    targets.push({
      scenario: scenario.name,
      title: scenario.title,
      process: (topology) => topology[scenario.subgraph],
      requests: (topology) => scenario.requests((body) => topology.signAsGateway(scenario.subgraph, body)),
      maxSecondsPerRun: scenario.maxSecondsPerRun,
    });
  }
  log('checking that every side answers alike');
  await checkAlike(sides, targets);
  const results = await alternate(sides, targets, { generator, runs, seconds, connections, log });

  const report = {
    title: `Issue 25: the subgraphs ${kinds.map((kind) => KINDS[kind as Kind]).join(' against ')}`,
    summary:
      `${runs} alternating runs of ${seconds} s per side and scenario at ${connections} connections (${generator}), after one warm-up each, medians; ${dataset.counts.users} users, ${dataset.counts.orders} orders. ` +
      `Every side: its own users, orders and gateway processes, compiled from ${commit}, on one seeded dataset; "unnamed" is *_DATABASE_PREPARE=off; PgBouncer 1.18 in transaction mode, pool ${values.pool} per database. ` +
      `CPU per request: each process; postgres: the bench databases' backends; redis: the machine's Redis, shared (an upper bound); pgbouncer: its process.`,
    began,
  };
  process.stdout.write(sideBySideReport(report, sides, targets, results));
} finally {
  for (const side of sides) await side.topology.stop().catch((error: unknown) => log(`stopping ${side.name}: ${String(error)}`));
  await bouncer?.stop();
  await monitor?.close();
  await dataset?.drop().catch((error: unknown) => log(`dropping the databases: ${String(error)}`));
  await deleteRedisKeys(redisPrefix).catch(() => {});
  rmSync(scratch, { recursive: true, force: true });
}
