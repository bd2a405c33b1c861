// `npm run -s bench:live -w @fed/bench`: live queries (issue 23) through this gateway, compiled, on real Postgres
// and Redis: update latency (1 000 live queries over 100 users, one write at a time), memory per idle live
// query (10 000, each of its own user, on its own socket), and the gateway's CPU under a steady write load (100
// writes/s over 10 000 users while 1 000 live queries run).
//   --head REV               a commit instead of the working tree
//   --latency USERSxPER      live queries for the latency run (100x10; '' to skip)
//   --writes N               timed writes (20)
//   --idle N                 idle live queries for the memory run (10000; 0 to skip)
//   --steady Q,W,S           live queries, writes per second and seconds of the steady run (1000,100,10; '' to skip)
// Progress goes to stderr, the table (markdown) to stdout. Needs Postgres and Redis, like the bench.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { deleteRedisKeys, testRedisUrl } from '@fed/platform/testing';
import { buildCompiledTree, checkOutCommit } from '../build.ts';
import { seedDataset, type Dataset } from '../dataset.ts';
import { liveIdleMemory, liveSteadyLoad, liveUpdateLatency } from '../live.ts';
import { REPO } from '../processes.ts';
import { startTopology, type Topology } from '../topology.ts';

const { values } = parseArgs({
  options: {
    head: { type: 'string' },
    latency: { type: 'string', default: '100x10' },
    writes: { type: 'string', default: '20' },
    idle: { type: 'string', default: '10000' },
    steady: { type: 'string', default: '1000,100,10' },
  },
});
const log = (line: string) => process.stderr.write(`${line}\n`);
const scratch = join(REPO, `.bench/live-${process.pid}`);
const redisPrefix = `bench-live-${process.pid}-${Date.now().toString(36)}:`;
const [latencyUsers, perUser] = values.latency ? values.latency.split('x').map(Number) : [];
const idle = Number(values.idle);
const [steadyQueries, writesPerSecond, steadySeconds] = values.steady ? values.steady.split(',').map(Number) : [];
const users = Math.max(latencyUsers ?? 0, idle, 10_000);

let dataset: Dataset | undefined;
let topology: Topology | undefined;
try {
  const tree = join(scratch, 'tree');
  if (values.head) {
    log(`checking out and compiling ${values.head}`);
    checkOutCommit(values.head, join(scratch, 'source'));
    buildCompiledTree(tree, join(scratch, 'source'));
  } else {
    log('compiling this tree');
    buildCompiledTree(tree);
  }
  dataset = await seedDataset({ users, ordersPerUser: 1 }, log);
  topology = await startTopology(
    { tree, inherited: { PATH: process.env.PATH, HOME: process.env.HOME }, usersDatabaseUrl: dataset.users.url, ordersDatabaseUrl: dataset.orders.url, redisUrl: testRedisUrl(), redisPrefix, wanted: ['ours'] },
    log,
  );
  const gateway = topology.gateways.get('ours')!;
  const rows: [string, string, string][] = [];
  if (latencyUsers && perUser) {
    log(`update latency: ${latencyUsers * perUser} live queries over ${latencyUsers} users`);
    const latency = await liveUpdateLatency(gateway, topology.adminToken, { users: latencyUsers, perUser, writes: Number(values.writes) }, log);
    rows.push([`update p99, ${latency.liveQueries} live queries over ${latency.users} users (${latency.deliveries} answers; p50 ${latency.p50Ms} ms)`, '≤ 100 ms', `${latency.p99Ms} ms`]);
  }
  if (idle > 0) {
    log(`memory: ${idle} idle live queries`);
    const memory = await liveIdleMemory(gateway, topology.adminToken, idle, log);
    rows.push([`memory per idle live query, ${memory.liveQueries} (one socket each)`, '≤ 40 KB', `${memory.kbPerLiveQuery} KB`]);
  }
  if (steadyQueries && writesPerSecond && steadySeconds) {
    log(`steady load: ${writesPerSecond} writes/s over ${users} users, ${steadyQueries} live queries, ${steadySeconds} s`);
    const steady = await liveSteadyLoad(gateway, topology.adminToken, { liveQueries: steadyQueries, users, writesPerSecond, seconds: steadySeconds }, log);
    rows.push([`gateway CPU, ${steady.writesPerSecond} writes/s over ${steady.users} users, ${steady.liveQueries} live queries (${steady.updates} answers sent)`, '< 1 core', `${steady.gatewayCores} cores`]);
  }
  process.stdout.write(`| Live queries | Goal | Measured |\n|---|---|---|\n${rows.map((row) => `| ${row.join(' | ')} |`).join('\n')}\n`);
} finally {
  await topology?.stop();
  await dataset?.drop();
  await deleteRedisKeys(redisPrefix).catch(() => {});
  rmSync(scratch, { recursive: true, force: true });
}
