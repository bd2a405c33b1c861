// `npm run bench [-- --quick]`: this gateway against bare Apollo Gateway (with and without Apollo's response
// cache) and Hive Gateway (on its own planner and on Hive Router's Rust planner), in one run, on one seeded dataset,
// behind the same subgraph processes.
//   --quick                 what the README shows: 3 runs of 2 s per gateway and scenario
//   --runs N --seconds S    alternating runs per gateway and scenario, and their length (full: 5 × 15 s); a
//                           scenario may ask for longer runs (the deep one: at least 8 s) unless --seconds is given
//   --warmup S              seconds per warm-up round, per gateway and scenario (quick: 1, full: 5); rounds
//                           repeat until the first answers come
//   --connections C         concurrent connections (50)
//   --subscribers 1000,10000  fan-out sizes ('' to skip), each over graphql-ws then over SSE
//   --gateways a,b          only these gateways (bare Apollo, the reference, and ours always run)
//   --scenarios a,b         only these scenarios (nested, deep, entity, mix, cache-hit, orders-entities, defer)
//                           defer: the nested query with its orders deferred against the complete one, on ours
//                           alone (time to the first part; as many alternating runs as the others, of at least
//                           8 s unless --seconds is given)
//   --reference-flags       start bare Apollo and Hive with this gateway's Node flags too (like for like)
//   --cpu-prof              write each process's CPU profile (gateways and subgraphs) to OUT/profiles when it stops
//   --out DIR               where bench.md, bench.json and bench.svg go (infra/bench/results)
// Progress goes to stderr; the report's path and the goals to stdout. Needs Postgres and Redis (TEST_DATABASE_URL,
// TEST_REDIS_URL, else the loopback defaults).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { deleteRedisKeys, median, testPostgresUrl, testRedisUrl } from '@fed/platform/testing';
import { buildCompiledTree } from './build.ts';
import { checkDeferAnswers, DEFER_MIN_SECONDS_PER_RUN, deferredNestedQuery, loadParts, medianRun, type PartsRun } from './defer.ts';
import { postgresBackendsCpu, processCpu, redisCpu, type CpuWatch } from './cpu.ts';
import { seedDataset, type Dataset } from './dataset.ts';
import { headersOf, load, pickLoadGenerator, warmUp, type LoadResult } from './load.ts';
import { peakRssMb, REPO } from './processes.ts';
import { checkGoals, renderChart, renderMarkdown, withRatios, type BenchReport, type DeferReport, type MeasuredRow, type SubgraphRow } from './report.ts';
import { httpScenarios, nestedQuery, subgraphScenarios } from './scenarios.ts';
import { sqlPerRequest } from './sql.ts';
import { fanOut, type FanOut } from './subscriptions.ts';
import { startTopology, type GatewayName, type Topology } from './topology.ts';
import { checkAnswers } from './verify.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    seconds: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string', default: '50' },
    subscribers: { type: 'string', default: '1000,10000' },
    gateways: { type: 'string' },
    scenarios: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'reference-flags': { type: 'boolean', default: false },
    users: { type: 'string', default: '10000' },
    'orders-per-user': { type: 'string', default: '10' },
    out: { type: 'string', default: join(REPO, 'infra/bench/results') },
  },
});
const quick = values.quick;
const settings = {
  mode: quick ? ('quick' as const) : ('full' as const),
  runs: Number(values.runs ?? (quick ? 3 : 5)),
  secondsPerRun: Number(values.seconds ?? (quick ? 2 : 15)),
  warmupSeconds: Number(values.warmup ?? (quick ? 1 : 5)),
  connections: Number(values.connections),
  loadGenerator: pickLoadGenerator(),
};
const subscriberCounts = values.subscribers.split(',').filter(Boolean).map(Number);
const log = (line: string) => process.stderr.write(`${line}\n`);
const cpuLine = ({ cpuMsPerRequestOf }: LoadResult) => Object.entries(cpuMsPerRequestOf).map(([part, ms]) => `${part} ${ms}`).join(', ');
const began = performance.now();
const elapsed = () => `${Math.round((performance.now() - began) / 1000)} s`;

let tree: string | undefined;
let cleaning: Promise<void> | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}
const redisPrefix = `bench-${process.pid}-${Date.now().toString(36)}:`;
let dataset: Dataset | undefined;
let topology: Topology | undefined;
let postgresCpu: ReturnType<typeof postgresBackendsCpu> | undefined;
try {
  const loadAverageAtStart = loadavg().map((value) => Number(value.toFixed(2)));
  // One tree per run, removed afterwards (two runs at once would still share each workspace's dist/).
  tree = join(REPO, `.bench/compiled-${process.pid}`);
  log(`[${elapsed()}] compiling every workspace into ${relative(REPO, tree)}, laid out as the image is`);
  buildCompiledTree(tree);

  const size = { users: Number(values.users), ordersPerUser: Number(values['orders-per-user']) };
  log(`[${elapsed()}] seeding ${size.users} users with ${size.ordersPerUser} orders each`);
  dataset = await seedDataset(size, log);

  // Bare Apollo is the reference; ours also serves the SQL count and the fan-out.
  const only = values.gateways && new Set([...values.gateways.split(','), 'apollo', 'ours']);
  const onlyScenarios = values.scenarios && new Set(values.scenarios.split(','));
  const scenarios = httpScenarios(dataset.counts.users)
    .filter((scenario) => !onlyScenarios || onlyScenarios.has(scenario.name))
    .map((scenario) => ({ ...scenario, gateways: scenario.gateways.filter((name) => !only || only.has(name)) }))
    .filter((scenario) => scenario.gateways.length > 0);
  const straight = subgraphScenarios().filter((scenario) => !onlyScenarios || onlyScenarios.has(scenario.name));
  const deferWanted = !onlyScenarios || onlyScenarios.has('defer');
  // Ours always: the SQL count, the fan-out and the defer runs are on it.
  const wanted = [...new Set<GatewayName>(['apollo', 'ours', ...scenarios.flatMap((scenario) => scenario.gateways)])];
  log(`[${elapsed()}] starting the subgraphs and ${wanted.length} gateways`);
  topology = await startTopology({
    tree,
    inherited: { PATH: process.env.PATH, HOME: process.env.HOME },
    ...(values['cpu-prof'] && { profileDir: join(values.out, 'profiles') }),
    referencesGetGatewayFlags: values['reference-flags'],
    usersDatabaseUrl: dataset.users.url, ordersDatabaseUrl: dataset.orders.url, redisUrl: testRedisUrl(), redisPrefix, wanted }, log);
  const { gateways, adminToken } = topology;
  const gateway = (name: GatewayName) => gateways.get(name)!;
  const subgraph = (name: 'users' | 'orders') => topology![name];
  // Every process of the system, read before and after each run: the table of issue 21 for every scenario.
  postgresCpu = postgresBackendsCpu(testPostgresUrl(), [dataset.users.name, dataset.orders.name]);
  const shared: CpuWatch[] = [processCpu('users', topology.users.pid), processCpu('orders', topology.orders.pid), postgresCpu, await redisCpu(testRedisUrl())];
  const watchOf = (name: GatewayName) => [processCpu('gateway', gateway(name).pid), ...shared];

  log(`[${elapsed()}] checking that every gateway answers like bare Apollo`);
  const answerBytes = new Map<string, number>();
  for (const scenario of scenarios) {
    const sizes = await checkAnswers(scenario.name, scenario.gateways.filter((name) => name !== 'apollo').map(gateway), gateway('apollo'), scenario.requests(adminToken));
    if (sizes.length > 0) answerBytes.set(scenario.name, Math.round(sizes.reduce((total, size) => total + size, 0) / sizes.length));
  }
  for (const scenario of straight) {
    for (const request of scenario.requests((body) => topology!.signAsGateway(scenario.subgraph, body))) {
      const response = await fetch(subgraph(scenario.subgraph).url, { method: 'POST', headers: headersOf(request), body: request.body });
      const text = await response.text();
      let wrong = response.status === 200 ? undefined : `status ${response.status}`;
      try {
        wrong ??= scenario.wrongAnswer(JSON.parse(text));
      } catch {
        wrong ??= 'not JSON';
      }
      if (wrong) throw new Error(`${scenario.name}: the ${scenario.subgraph} subgraph answered wrongly (${wrong}); nothing was timed: ${text.slice(0, 300)}`);
      answerBytes.set(scenario.name, Buffer.byteLength(text));
    }
  }

  const DEFER_USERS = 20;
  let deferSizes: Awaited<ReturnType<typeof checkDeferAnswers>> | undefined;
  if (deferWanted) deferSizes = await checkDeferAnswers(gateway('ours'), gateway('apollo'), adminToken, DEFER_USERS);

  // After every run and warm-up round, until the gateway and both subgraphs have served what the load abandoned.
  const quiesce = (name: GatewayName) => [gateway(name).pid, topology!.users.pid, topology!.orders.pid];
  // Seconds asked for are seconds run (the smoke test's 1 s runs); otherwise a slow scenario gets its minimum.
  const secondsOf = (scenario: (typeof scenarios)[number]) => (values.seconds ? settings.secondsPerRun : Math.max(settings.secondsPerRun, scenario.minSecondsPerRun ?? 0));
  const options = { connections: settings.connections, log };
  const signedRequests = (scenario: (typeof straight)[number]) => scenario.requests((body) => topology!.signAsGateway(scenario.subgraph, body));
  const straightSeconds = (scenario: (typeof straight)[number]) => Math.min(settings.secondsPerRun, scenario.maxSecondsPerRun);
  const straightQuiesce = [topology.users.pid, topology.orders.pid];
  log(`[${elapsed()}] warming up (${settings.warmupSeconds} s each, until the first answers come; ${settings.loadGenerator})`);
  for (const scenario of scenarios) {
    for (const name of scenario.gateways) {
      await warmUp(settings.loadGenerator, gateway(name), scenario.requests(adminToken), { ...options, seconds: settings.warmupSeconds, quiesce: quiesce(name) });
    }
  }
  for (const scenario of straight) {
    await warmUp(settings.loadGenerator, subgraph(scenario.subgraph), signedRequests(scenario), { ...options, seconds: Math.min(settings.warmupSeconds, scenario.maxSecondsPerRun), quiesce: straightQuiesce });
  }
  const results = new Map<string, LoadResult[]>();
  for (let run = 1; run <= settings.runs; run += 1) {
    log(`[${elapsed()}] run ${run} of ${settings.runs}`);
    for (const scenario of scenarios) {
      // Alternating order, so that no gateway always runs right after the same one.
      for (const name of run % 2 ? scenario.gateways : [...scenario.gateways].reverse()) {
        const measured = await load(settings.loadGenerator, gateway(name), scenario.requests(adminToken), { ...options, seconds: secondsOf(scenario), maxSeconds: 8 * secondsOf(scenario), quiesce: quiesce(name), watch: watchOf(name) });
        results.set(`${scenario.name}:${name}`, [...(results.get(`${scenario.name}:${name}`) ?? []), measured]);
        log(`  ${scenario.name} ${name}: ${Math.round(measured.rps)} req/s, p50 ${measured.p50Ms} ms, p99 ${measured.p99Ms} ms, CPU ms/req ${cpuLine(measured)}`);
      }
    }
    for (const scenario of straight) {
      const seconds = straightSeconds(scenario);
      // Signed now, for this run only; a run is never doubled past the signature's life.
      const measured = await load(settings.loadGenerator, subgraph(scenario.subgraph), signedRequests(scenario), { ...options, seconds, maxSeconds: Math.min(8 * seconds, scenario.maxSecondsPerRun), quiesce: straightQuiesce, watch: shared });
      results.set(`${scenario.name}:${scenario.subgraph}`, [...(results.get(`${scenario.name}:${scenario.subgraph}`) ?? []), measured]);
      log(`  ${scenario.name} ${scenario.subgraph}: ${Math.round(measured.rps)} req/s, p50 ${measured.p50Ms} ms, p99 ${measured.p99Ms} ms, CPU ms/req ${cpuLine(measured)}`);
    }
  }
  // @defer on ours: the deferred nested query and the complete one, in alternating runs of the same length and load.
  let defer: DeferReport | null = null;
  if (deferSizes) {
    const deferQueries = { deferred: deferredNestedQuery(DEFER_USERS), complete: nestedQuery(DEFER_USERS) };
    // As for the deep scenario: seconds asked for are seconds run; otherwise runs long enough to see the tail.
    const deferSeconds = values.seconds ? settings.secondsPerRun : Math.max(settings.secondsPerRun, DEFER_MIN_SECONDS_PER_RUN);
    const partsOptions = { seconds: deferSeconds, connections: settings.connections, quiesce: quiesce('ours') };
    log(`[${elapsed()}] @defer: the nested query with its orders deferred against the complete one, on ours`);
    for (const query of Object.values(deferQueries)) await loadParts(gateway('ours'), query, adminToken, { ...partsOptions, seconds: settings.warmupSeconds });
    const partsRuns: Record<keyof typeof deferQueries, PartsRun[]> = { deferred: [], complete: [] };
    for (let run = 1; run <= settings.runs; run += 1) {
      for (const kind of run % 2 ? (['deferred', 'complete'] as const) : (['complete', 'deferred'] as const)) {
        // As with wrk: fewer answers than connections measured the start, not the pace; run again twice as long.
        let measured = await loadParts(gateway('ours'), deferQueries[kind], adminToken, partsOptions);
        for (let seconds = deferSeconds * 2; measured.requests < settings.connections && seconds <= 8 * deferSeconds; seconds *= 2) {
          log(`  defer ${kind}: ${measured.requests} answers in ${measured.seconds} s at ${settings.connections} connections; measuring again for ${seconds} s`);
          measured = await loadParts(gateway('ours'), deferQueries[kind], adminToken, { ...partsOptions, seconds });
        }
        partsRuns[kind].push(measured);
        log(`  defer run ${run}, ${kind}: ${measured.rps} req/s, first part p50 ${measured.firstPartP50Ms} ms, p99 ${measured.firstPartP99Ms} ms; last part p50 ${measured.lastPartP50Ms} ms, p99 ${measured.lastPartP99Ms} ms`);
      }
    }
    const deferred = medianRun(partsRuns.deferred);
    const complete = medianRun(partsRuns.complete);
    defer = {
      gateway: 'ours',
      connections: settings.connections,
      runs: settings.runs,
      secondsPerRun: deferSeconds,
      query: deferQueries.deferred,
      ...deferSizes,
      deferred,
      complete,
      firstPartToComplete: complete.lastPartP50Ms > 0 ? Number((deferred.firstPartP50Ms / complete.lastPartP50Ms).toFixed(2)) : null,
      deferredRuns: partsRuns.deferred,
      completeRuns: partsRuns.complete,
    };
  }
  const cpuOf = (runs: readonly LoadResult[]) => Object.fromEntries(Object.keys(runs[0]?.cpuMsPerRequestOf ?? {}).map((part) => [part, median(runs.map((run) => run.cpuMsPerRequestOf[part] ?? 0))]));
  const rowOf = (scenario: string, name: GatewayName): MeasuredRow => {
    const runs = results.get(`${scenario}:${name}`)!;
    const of = (field: 'rps' | 'p50Ms' | 'p99Ms' | 'cpuMsPerRequest') => median(runs.map((run) => run[field]));
    return { gateway: name, rps: Math.round(of('rps')), p50Ms: of('p50Ms'), p99Ms: of('p99Ms'), cpuMsPerRequest: of('cpuMsPerRequest'), cpuMsPerRequestOf: cpuOf(runs), runs };
  };
  const subgraphRowOf = (scenario: string, target: string): SubgraphRow => {
    const runs = results.get(`${scenario}:${target}`)!;
    const of = (field: 'rps' | 'p50Ms' | 'p99Ms') => median(runs.map((run) => run[field]));
    return { target, rps: Math.round(of('rps')), p50Ms: of('p50Ms'), p99Ms: of('p99Ms'), cpuMsPerRequestOf: cpuOf(runs), runs };
  };
  // Cache hits have no bare Apollo row of their own: they are compared with its nested run.
  const apolloNested = results.has('nested:apollo') ? rowOf('nested', 'apollo') : undefined;
  const scenarioRows = scenarios.map((scenario) => ({
    name: scenario.name,
    title: scenario.title,
    answerBytes: answerBytes.get(scenario.name) ?? null,
    secondsPerRun: secondsOf(scenario),
    rows: withRatios(
      scenario.gateways.map((name) => rowOf(scenario.name, name)),
      apolloNested,
    ),
  }));

  log(`[${elapsed()}] counting SQL statements per nested request`);
  const sql = await sqlPerRequest(gateway('ours'), [topology.users, topology.orders], adminToken, [10, 50, 100]);
  log(`  ${sql.map(({ n, statementsPerRequest }) => `N=${n}: ${statementsPerRequest}`).join(', ')}`);

  // Before the fan-out: the goal is the peak under HTTP load; 10 000 sockets are another load.
  const everyProcess = [topology.users, topology.orders, ...gateways.values()];
  const peakRss = Object.fromEntries(everyProcess.map((process) => [process.name, peakRssMb(process.pid)]));
  const subscriptions: FanOut[] = [];
  for (const subscribers of subscriberCounts) {
    log(`[${elapsed()}] subscription fan-out to ${subscribers} subscribers`);
    subscriptions.push(await fanOut(gateway('ours'), adminToken, subscribers, quick ? 5 : 20, log, 'graphql-ws'));
    log(`[${elapsed()}] subscription fan-out to ${subscribers} subscribers over SSE`);
    subscriptions.push(await fanOut(gateway('ours'), adminToken, subscribers, quick ? 5 : 20, log, 'sse'));
  }

  const peakRssWithSubscribers = peakRssMb(gateway('ours').pid);
  const partial = {
    date: new Date().toISOString(),
    command: ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
    machine: {
      cores: cpus().length,
      cpu: cpus()[0]?.model.trim() ?? 'unknown',
      memoryGb: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      loadAverageAtStart,
      loadAverageAtEnd: loadavg().map((value) => Number(value.toFixed(2))),
    },
    settings,
    dataset: { ...dataset.counts, seedSeconds: dataset.seedSeconds },
    scenarios: scenarioRows,
    subgraphScenarios: straight.map((scenario) => ({
      name: scenario.name,
      title: scenario.title,
      subgraph: scenario.subgraph,
      answerBytes: answerBytes.get(scenario.name) ?? null,
      secondsPerRun: straightSeconds(scenario),
      rows: [subgraphRowOf(scenario.name, scenario.subgraph)],
    })),
    sql,
    subscriptions,
    defer,
    peakRssMb: peakRss,
    peakRssWithSubscribersMb: subscriptions.length > 0 ? peakRssWithSubscribers : null,
    totalSeconds: Math.round((performance.now() - began) / 1000),
  };
  const report: BenchReport = { ...partial, goals: checkGoals(partial) };
  mkdirSync(values.out, { recursive: true });
  writeFileSync(join(values.out, 'bench.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(values.out, 'bench.md'), renderMarkdown(report));
  writeFileSync(join(values.out, 'bench.svg'), renderChart(report));
  log(`[${elapsed()}] done`);
  process.stdout.write(`${report.goals.map((goal) => `${goal.met ? 'met ' : 'MISS'}  ${goal.goal}: ${goal.measured} (${goal.target})`).join('\n')}\n\nReport: ${join(values.out, 'bench.md')}\n`);
} catch (error) {
  for (const death of topology?.deaths() ?? []) log(death);
  throw error;
} finally {
  await cleanUp();
}

/** Stops what the run started and removes what it made; once, whether the run ends, fails or is interrupted. */
async function cleanUp() {
  cleaning ??= (async () => {
    const steps: [string, () => Promise<unknown> | undefined][] = [
      ['stopping the processes', () => topology?.stop()],
      ['closing the Postgres monitor', () => postgresCpu?.close()],
      ['dropping the databases', () => dataset?.drop()],
      ['removing the compiled tree', async () => tree && rmSync(tree, { recursive: true, force: true })],
      ['deleting the Redis keys', () => deleteRedisKeys(redisPrefix)],
    ];
    // Each step runs even when one before it fails; a failure here must not hide the run's own error.
    for (const [what, step] of steps) await Promise.resolve(step()).catch((error: unknown) => log(`cleanup: ${what} failed: ${String(error)}`));
  })();
  await cleaning;
}
