// `npm run -s bench:fanout -w @fed/bench -- --subscribers 10000`: the subscription fan-out alone, without the HTTP
// scenarios and the reference gateways, to work on it: commit → client latency, memory per subscriber, and the CPU
// per event of the gateway and of the subscribers' side. With --base REV, that commit's gateway runs beside this
// tree's, on the same subgraphs' kind and dataset, in alternating runs.
//   --subscribers 1000,10000  fan-out sizes
//   --transports sse,graphql-ws
//   --events N              measured events per run (5)
//   --runs N                runs per side, transport and size (1; alternating sides with --base)
//   --base REV              a commit to compare this tree (or --head REV) with
//   --head REV              a commit instead of the working tree
//   --cpu-prof DIR          every process's CPU profile, written when it stops, to DIR/base and DIR/head
//   --floor                 also the machine's floor: a bare Node server that only writes each event to every
//                           subscriber, over the same transports, read by the same clients (gateways/floor.ts)
// Progress goes to stderr, the table (markdown) to stdout. Needs Postgres and Redis, like the bench.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { deleteRedisKeys, freePort, median, testRedisUrl } from '@fed/platform/testing';
import { buildCompiledTree, checkOutCommit } from '../build.ts';
import { seedDataset, type Dataset } from '../dataset.ts';
import { httpOk, REPO, startProcess, type BenchProcess } from '../processes.ts';
import { fanOut, type FanOut, type Transport } from '../subscriptions.ts';
import { startTopology, type Topology } from '../topology.ts';

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '10000' },
    transports: { type: 'string', default: 'sse,graphql-ws' },
    events: { type: 'string', default: '5' },
    runs: { type: 'string', default: '1' },
    base: { type: 'string' },
    head: { type: 'string' },
    'cpu-prof': { type: 'string' },
    floor: { type: 'boolean', default: false },
  },
});
const log = (line: string) => process.stderr.write(`${line}\n`);
const sizes = values.subscribers.split(',').filter(Boolean).map(Number);
const transports = values.transports.split(',').filter(Boolean) as Transport[];
for (const transport of transports) if (transport !== 'sse' && transport !== 'graphql-ws') throw new Error(`unknown transport ${transport}`);

const scratch = join(REPO, `.bench/fanout-${process.pid}`);
const redisPrefix = `bench-fanout-${process.pid}-${Date.now().toString(36)}:`;
const sides: { name: string; tree: string; source?: string; rev?: string; topology?: Topology; floor?: BenchProcess }[] = [
  ...(values.base ? [{ name: `base ${values.base}`, tree: join(scratch, 'base'), source: join(scratch, 'base-source'), rev: values.base }] : []),
  values.head ? { name: `head ${values.head}`, tree: join(scratch, 'head'), source: join(scratch, 'head-source'), rev: values.head } : { name: 'this tree', tree: join(scratch, 'this') },
];
let dataset: Dataset | undefined;
try {
  for (const side of sides) {
    log(`compiling ${side.name}`);
    if (side.rev && side.source) checkOutCommit(side.rev, side.source);
    buildCompiledTree(side.tree, side.source);
  }
  // Every event is about user 1; a small dataset is enough.
  dataset = await seedDataset({ users: 100, ordersPerUser: 3 }, log);
  for (const [index, side] of sides.entries()) {
    side.topology = await startTopology(
      {
        tree: side.tree,
        inherited: { PATH: process.env.PATH, HOME: process.env.HOME },
        usersDatabaseUrl: dataset.users.url,
        ordersDatabaseUrl: dataset.orders.url,
        redisUrl: testRedisUrl(),
        // Each side its own key space: one side's writes must not reach the other's subscribers.
        redisPrefix: `${redisPrefix}${index}:`,
        wanted: ['ours'],
        ...(values['cpu-prof'] && { profileDir: join(values['cpu-prof'], values.base && index === 0 ? 'base' : 'head') }),
      },
      log,
    );
  }
  if (values.floor) {
    const port = await freePort();
    const floor = await startProcess({
      name: 'floor',
      inherited: { PATH: process.env.PATH, HOME: process.env.HOME },
      entry: join(sides[0]!.tree, 'infra/bench/dist/gateways/floor.js'),
      args: ['--port', String(port)],
      url: `http://127.0.0.1:${port}/graphql`,
      ready: httpOk(`http://127.0.0.1:${port}/readyz`),
    });
    sides.push({ name: 'floor', tree: sides[0]!.tree, floor });
  }
  const results: { side: string; result: FanOut }[] = [];
  for (let run = 1; run <= Number(values.runs); run += 1) {
    for (const size of sizes) {
      for (const transport of transports) {
        for (const side of run % 2 ? sides : [...sides].reverse()) {
          const gateway = side.floor ?? side.topology!.gateways.get('ours')!;
          log(`run ${run}: ${size} ${transport} subscribers, ${side.name}`);
          const result = await fanOut(gateway, side.topology?.adminToken ?? 'none', size, Number(values.events), log, transport);
          log(`  p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, fastest ${result.minMs} ms; CPU per event: gateway ${result.gatewayCpuMsPerEvent} ms, subscribers ${result.clientCpuMsPerEvent} ms; ${result.kbPerSubscriber} KB per subscriber`);
          results.push({ side: side.name, result });
        }
      }
    }
  }
  const lines = ['| side | subscribers | transport | p50 ms | p99 ms | fastest ms | gateway CPU ms/event | subscribers CPU ms/event | KB/subscriber |', '|---|---:|---|---:|---:|---:|---:|---:|---:|'];
  for (const size of sizes) {
    for (const transport of transports) {
      for (const side of sides) {
        const runs = results.filter(({ side: name, result }) => name === side.name && result.subscribers === size && result.transport === transport).map(({ result }) => result);
        const of = (pick: (result: FanOut) => number | undefined) => Number(median(runs.map((result) => pick(result) ?? NaN)).toFixed(1));
        // Memory from the first run only: later ones start before the collector has returned the last run's.
        lines.push(`| ${side.name} | ${size} | ${transport} | ${of((r) => r.p50Ms)} | ${of((r) => r.p99Ms)} | ${of((r) => r.minMs)} | ${of((r) => r.gatewayCpuMsPerEvent)} | ${of((r) => r.clientCpuMsPerEvent)} | ${runs[0]?.kbPerSubscriber ?? NaN} |`);
      }
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  for (const side of sides) await (side.floor ?? side.topology)?.stop();
  await dataset?.drop();
  await deleteRedisKeys(redisPrefix).catch(() => {});
  rmSync(scratch, { recursive: true, force: true });
}
