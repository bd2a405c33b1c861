// `npm run -s bench:ab -w @fed/bench -- --base REV`: this checkout's working tree against commit REV, side by side in
// one run: both compiled, each its own users and orders subgraphs and its own gateway (`ours`: uncached, dedupe
// off) on one seeded dataset, loaded in alternating runs. Reads the CPU per request of every process, so that a
// change to the subgraphs shows where it lands, and the throughput.
//   --base REV              the commit to compare with (required)
//   --head REV              a commit to compare it with instead of the working tree (others' uncommitted edits
//                           in a shared checkout then stay out of the comparison)
//   --scenarios a,b         nested (through each gateway) and orders-entities (straight to each orders subgraph);
//                           also deep, entity and mix, the bench's other uncached scenarios, through each gateway
//   --runs N --seconds S    alternating runs per side and scenario (5 × 5 s), after one warm-up each
//   --connections C         concurrent connections (20)
//   --users N               seeded users, 10 orders each (10 000)
//   --cpu-prof DIR          every process's CPU profile, written when it stops, to DIR/base and DIR/head
// Progress goes to stderr, the table (markdown) to stdout. Needs Postgres and Redis, like the bench.
import { rmSync } from 'node:fs';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import { join } from 'node:path';
import { deleteRedisKeys, median, testPostgresUrl, testRedisUrl } from '@fed/platform/testing';
import { buildCompiledTree, checkOutCommit } from '../build.ts';
import { postgresBackendsCpu, processCpu, redisCpu } from '../cpu.ts';
import { seedDataset, type Dataset } from '../dataset.ts';
import { headersOf, load, pickLoadGenerator, warmUp, type LoadRequest, type LoadResult } from '../load.ts';
import { REPO, type BenchProcess } from '../processes.ts';
import { PROCESSES } from '../report.ts';
import { httpScenarios, nestedQuery, subgraphScenarios } from '../scenarios.ts';
import { startTopology, type Topology } from '../topology.ts';

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    head: { type: 'string' },
    scenarios: { type: 'string', default: 'nested,orders-entities' },
    runs: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '20' },
    users: { type: 'string', default: '10000' },
    'cpu-prof': { type: 'string' },
  },
});
if (!values.base) throw new Error('--base REV is required');
const log = (line: string) => process.stderr.write(`${line}\n`);
const generator = pickLoadGenerator();
const runs = Number(values.runs);
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const wanted = new Set(values.scenarios.split(','));

const scratch = join(REPO, `.bench/ab-${process.pid}`);
const redisPrefix = `bench-ab-${process.pid}-${Date.now().toString(36)}:`;
const sides: { name: string; topology?: Topology }[] = [{ name: `base ${values.base}` }, { name: values.head ? `head ${values.head}` : 'this tree' }];
let dataset: Dataset | undefined;
let monitor: ReturnType<typeof postgresBackendsCpu> | undefined;
try {
  log(`checking out and compiling ${values.base}`);
  checkOutCommit(values.base, join(scratch, 'base-source'));
  buildCompiledTree(join(scratch, 'base'), join(scratch, 'base-source'));
  if (values.head) {
    log(`checking out and compiling ${values.head}`);
    checkOutCommit(values.head, join(scratch, 'head-source'));
    buildCompiledTree(join(scratch, 'this'), join(scratch, 'head-source'));
  } else {
    log('compiling this tree');
    buildCompiledTree(join(scratch, 'this'));
  }
  log(`seeding ${values.users} users`);
  dataset = await seedDataset({ users: Number(values.users), ordersPerUser: 10 }, log);
  for (const [index, side] of sides.entries()) {
    side.topology = await startTopology(
      {
        tree: join(scratch, index === 0 ? 'base' : 'this'),
        inherited: { PATH: process.env.PATH, HOME: process.env.HOME },
        usersDatabaseUrl: dataset.users.url,
        ordersDatabaseUrl: dataset.orders.url,
        redisUrl: testRedisUrl(),
        redisPrefix,
        wanted: ['ours'],
        ...(values['cpu-prof'] && { profileDir: join(values['cpu-prof'], index === 0 ? 'base' : 'head') }),
      },
      log,
    );
  }
  monitor = postgresBackendsCpu(testPostgresUrl(), [dataset.users.name, dataset.orders.name]);
  const redis = await redisCpu(testRedisUrl());
  const topologyOf = (side: (typeof sides)[number]) => side.topology!;

  interface Target {
    scenario: string;
    process: (topology: Topology) => BenchProcess;
    requests: (topology: Topology) => LoadRequest[];
  }
  const targets: Target[] = [];
  if (wanted.has('nested')) {
    targets.push({ scenario: 'nested', process: (topology) => topology.gateways.get('ours')!, requests: (topology) => [{ body: JSON.stringify({ query: nestedQuery(20) }), authorization: topology.adminToken }] });
  }
  for (const scenario of httpScenarios(Number(values.users)).filter((candidate) => candidate.name !== 'nested' && candidate.name !== 'cache-hit' && wanted.has(candidate.name))) {
    targets.push({ scenario: scenario.name, process: (topology) => topology.gateways.get('ours')!, requests: (topology) => scenario.requests(topology.adminToken) });
  }
  for (const scenario of subgraphScenarios().filter((candidate) => wanted.has(candidate.name))) {
    targets.push({ scenario: scenario.name, process: (topology) => topology[scenario.subgraph], requests: (topology) => scenario.requests((body) => topology.signAsGateway(scenario.subgraph, body)) });
  }

  // Both sides must answer alike before anything is timed.
  for (const target of targets) {
    const answers = await Promise.all(
      sides.map(async (side) => {
        const [request] = target.requests(topologyOf(side));
        const response = await fetch(target.process(topologyOf(side)).url, { method: 'POST', headers: headersOf(request!), body: request!.body });
        return { status: response.status, body: (await response.json()) as unknown };
      }),
    );
    if (answers.some((answer) => answer.status !== 200 || (answer.body as { errors?: unknown }).errors) || !isDeepStrictEqual(answers[0], answers[1])) {
      throw new Error(`${target.scenario}: the two sides answer differently: ${JSON.stringify(answers).slice(0, 600)}`);
    }
  }

  const watchOf = (topology: Topology, target: Target) => {
    const loaded = target.process(topology);
    const gateway = topology.gateways.get('ours')!;
    return [
      ...(loaded === gateway ? [processCpu('gateway', gateway.pid)] : []),
      processCpu('users', topology.users.pid),
      processCpu('orders', topology.orders.pid),
      monitor!,
      redis,
    ];
  };
  const quiesce = (topology: Topology) => [topology.gateways.get('ours')!.pid, topology.users.pid, topology.orders.pid];
  for (const target of targets) {
    for (const side of sides) {
      const topology = topologyOf(side);
      await warmUp(generator, target.process(topology), target.requests(topology), { seconds, connections, log, quiesce: quiesce(topology) });
    }
  }
  const results = new Map<string, LoadResult[]>();
  for (let run = 1; run <= runs; run += 1) {
    for (const target of targets) {
      for (const side of run % 2 ? sides : [...sides].reverse()) {
        const topology = topologyOf(side);
        const measured = await load(generator, target.process(topology), target.requests(topology), { seconds, connections, log, quiesce: quiesce(topology), watch: watchOf(topology, target) });
        results.set(`${target.scenario}:${side.name}`, [...(results.get(`${target.scenario}:${side.name}`) ?? []), measured]);
        log(`  run ${run} ${target.scenario} ${side.name}: ${Math.round(measured.rps)} req/s, ${Object.entries(measured.cpuMsPerRequestOf).map(([part, ms]) => `${part} ${ms}`).join(', ')}`);
      }
    }
  }

  const lines = [`${runs} alternating runs of ${seconds} s at ${connections} connections (${generator}), medians; ${dataset.counts.users} users, ${dataset.counts.orders} orders.`, ''];
  for (const target of targets) {
    const [base, mine] = sides.map((side) => results.get(`${target.scenario}:${side.name}`)!);
    const of = (side: LoadResult[], pick: (run: LoadResult) => number) => median(side.map(pick));
    const row = (label: string, pick: (run: LoadResult) => number, digits: number) => {
      const [before, after] = [of(base!, pick), of(mine!, pick)];
      return `| ${label} | ${before.toFixed(digits)} | ${after.toFixed(digits)} | ${before > 0 ? `${(after / before).toFixed(2)}×` : ''} |`;
    };
    const parts = PROCESSES.filter((part) => part in base![0]!.cpuMsPerRequestOf);
    lines.push(
      `## ${target.scenario}`,
      '',
      `| | ${sides[0]!.name} | ${sides[1]!.name} | ratio |`,
      '|---|---:|---:|---:|',
      row('req/s', (run) => run.rps, 0),
      row('p99 ms', (run) => run.p99Ms, 1),
      ...parts.map((part) => row(`CPU ms/req: ${part}`, (run) => run.cpuMsPerRequestOf[part] ?? 0, 2)),
      row('CPU ms/req: all', (run) => parts.reduce((sum, part) => sum + (run.cpuMsPerRequestOf[part] ?? 0), 0), 2),
      '',
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  for (const side of sides) await side.topology?.stop().catch((error: unknown) => log(`stopping ${side.name}: ${String(error)}`));
  await monitor?.close();
  await dataset?.drop().catch((error: unknown) => log(`dropping the databases: ${String(error)}`));
  await deleteRedisKeys(redisPrefix).catch(() => {});
  rmSync(scratch, { recursive: true, force: true });
}
