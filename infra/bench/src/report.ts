import type { PartsRun } from './defer.ts';
import type { LoadResult } from './load.ts';
import type { SqlCount } from './sql.ts';
import type { FanOut } from './subscriptions.ts';
import { GATEWAYS, type GatewayName } from './topology.ts';
import type { ScenarioName } from './scenarios.ts';

export interface ScenarioRow {
  gateway: GatewayName;
  /** Medians over the runs. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  cpuMsPerRequest: number;
  /** Requests/s over bare Apollo Gateway's in the same scenario (for cache hits: over its nested run). */
  ratioToApollo: number | null;
  /** Requests/s over the hive-router gateway's in the same scenario; null where it did not run. */
  ratioToHiveRouter: number | null;
  /** Gateway CPU per request over bare Apollo Gateway's (the same reference run as `ratioToApollo`). */
  cpuRatioToApollo: number | null;
  /** Gateway CPU per request over the hive-router gateway's in the same scenario; null where it did not run. */
  cpuRatioToHiveRouter: number | null;
  /** CPU per request of every process of the system during the scenario's runs (medians), by PROCESSES name. */
  cpuMsPerRequestOf: Record<string, number>;
  runs: LoadResult[];
}

/**
 * The processes whose CPU every run reads: the load's target gateway, both subgraphs, the Postgres backends of the
 * bench databases (summed) and the Redis server (shared with whatever else runs on the machine: an upper bound).
 */
export const PROCESSES = ['gateway', 'users', 'orders', 'postgres', 'redis'] as const;

/** One target of a subgraph-only scenario (the subgraph as shipped, or a variant of it), with medians over its runs. */
export interface SubgraphRow {
  target: string;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** By process: the subgraph under load, the other one, `postgres`, `redis`. */
  cpuMsPerRequestOf: Record<string, number>;
  runs: LoadResult[];
}

export type MeasuredRow = Omit<ScenarioRow, 'ratioToApollo' | 'ratioToHiveRouter' | 'cpuRatioToApollo' | 'cpuRatioToHiveRouter'>;

/** `top / bottom` to two decimals; null without a bottom, or when it is not positive (no ratio to a zero). */
const ratioOf = (top: number, bottom: number | undefined) => (bottom !== undefined && bottom > 0 ? Number((top / bottom).toFixed(2)) : null);

/**
 * Each row's throughput and gateway CPU per request over bare Apollo's and over hive-router's in the same
 * scenario. A scenario without bare Apollo (cache hits) is compared with `fallbackApollo` (its nested run).
 */
export function withRatios(rows: readonly MeasuredRow[], fallbackApollo?: Pick<MeasuredRow, 'rps' | 'cpuMsPerRequest'>): ScenarioRow[] {
  const apollo = rows.find((row) => row.gateway === 'apollo') ?? fallbackApollo;
  const router = rows.find((row) => row.gateway === 'hive-router');
  return rows.map((row) => ({
    ...row,
    ratioToApollo: ratioOf(row.rps, apollo?.rps),
    ratioToHiveRouter: ratioOf(row.rps, router?.rps),
    cpuRatioToApollo: ratioOf(row.cpuMsPerRequest, apollo?.cpuMsPerRequest),
    cpuRatioToHiveRouter: ratioOf(row.cpuMsPerRequest, router?.cpuMsPerRequest),
  }));
}

/**
 * Time to the first part of the nested query with its orders deferred, against the same query complete, on this
 * gateway (issue 22): alternating runs of each, medians over the runs.
 */
export interface DeferReport {
  gateway: GatewayName;
  connections: number;
  runs: number;
  secondsPerRun: number;
  /** The deferred query (the complete one is the nested scenario's). */
  query: string;
  /** The first part's JSON, and the complete answer's, in bytes. */
  firstPartBytes: number;
  completeBytes: number;
  /** Medians over the runs of the deferred query: request sent → first part whole, and → the last part (the body's end). */
  deferred: Omit<PartsRun, 'seconds'>;
  /** Medians over the runs of the complete query, asked with the same Accept header (answered as one JSON body). */
  complete: Omit<PartsRun, 'seconds'>;
  /** deferred.firstPartP50Ms / complete.lastPartP50Ms. */
  firstPartToComplete: number | null;
  deferredRuns: PartsRun[];
  completeRuns: PartsRun[];
}

/** Issue 22's goal: the first part's median at most half the complete answer's. */
export const DEFER_FIRST_PART_TO_COMPLETE = 0.5;

export interface Goal {
  goal: string;
  target: string;
  measured: string;
  met: boolean;
}

export interface BenchReport {
  date: string;
  command: string;
  machine: { cores: number; cpu: string; memoryGb: number; node: string; loadAverageAtStart: number[]; loadAverageAtEnd: number[] };
  settings: { mode: 'quick' | 'full'; runs: number; secondsPerRun: number; warmupSeconds: number; connections: number; loadGenerator: string };
  dataset: { users: number; orders: number; items: number; seedSeconds: number };
  scenarios: {
    name: ScenarioName;
    title: string;
    /** The mean size of bare Apollo Gateway's answers to the scenario's distinct requests, in bytes. */
    answerBytes: number | null;
    /** How long each of its runs lasted: the settings' secondsPerRun, or the scenario's minimum if longer. */
    secondsPerRun: number;
    rows: ScenarioRow[];
  }[];
  /** Scenarios sent straight to a subgraph, signed as the gateway signs. */
  subgraphScenarios: { name: string; title: string; subgraph: string; answerBytes: number | null; secondsPerRun: number; rows: SubgraphRow[] }[];
  sql: SqlCount[];
  /** The fan-out runs: over graphql-ws, and over SSE (`transport: 'sse'`) at the same sizes. */
  subscriptions: FanOut[];
  /** The deferred nested query against the complete one; null (or absent in older reports) when not run. */
  defer?: DeferReport | null;
  /** Peak RSS (VmHWM) of every process over the HTTP scenarios, in MB. */
  peakRssMb: Record<string, number>;
  /** The `ours` gateway's peak once the subscription fan-out has run too. */
  peakRssWithSubscribersMb: number | null;
  goals: Goal[];
  totalSeconds: number;
}

const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');

/** The goals of the benchmark issue, checked against this run's medians. */
export function checkGoals(report: Omit<BenchReport, 'goals'>): Goal[] {
  const row = (scenario: ScenarioName, gateway: GatewayName) => report.scenarios.find((s) => s.name === scenario)?.rows.find((r) => r.gateway === gateway);
  const goals: Goal[] = [];
  const ratio = (goal: string, target: number, top: ScenarioRow | undefined, bottom: ScenarioRow | undefined) => {
    if (!top || !bottom) return;
    const value = top.rps / bottom.rps;
    goals.push({ goal, target: `≥ ${target}×`, measured: `${fixed(value, 2)}× (${Math.round(top.rps)} vs ${Math.round(bottom.rps)} req/s)`, met: value >= target });
  };
  for (const scenario of ['nested', 'entity'] as const) {
    ratio(`Uncached ${scenario}: this gateway / bare Apollo`, 0.95, row(scenario, 'ours'), row(scenario, 'apollo'));
    ratio(`Uncached ${scenario}: this gateway / Hive (dedupe off in both)`, 1, row(scenario, 'ours'), row(scenario, 'hive'));
  }
  ratio('Uncached nested: this gateway / Hive, both with in-flight dedupe (their defaults)', 1, row('nested', 'ours-dedupe'), row('nested', 'hive-dedupe'));
  const hit = row('cache-hit', 'ours-cached');
  ratio('Cache hits / uncached (nested)', 20, hit, row('nested', 'ours'));
  ratio("Cache hits / Apollo's responseCachePlugin", 1, hit, row('cache-hit', 'apollo-cached'));
  if (hit) {
    goals.push({ goal: `Cache hits p99 at ${report.settings.connections} connections`, target: '≤ 20 ms', measured: `${fixed(hit.p99Ms)} ms`, met: hit.p99Ms <= 20 });
  }
  if (report.sql.length > 0) {
    const counts = report.sql.map((count) => count.statementsPerRequest);
    goals.push({
      goal: 'SQL statements per nested request, flat in N',
      target: 'the same at every N',
      measured: report.sql.map(({ n, statementsPerRequest }) => `N=${n}: ${statementsPerRequest}`).join(', '),
      met: counts.every((count) => count === counts[0]),
    });
  }
  // The websocket goal holds the p99 at 1k subscribers; issue 22 holds SSE's at 10k.
  for (const [transport, prefix, latencyAt] of [['graphql-ws', '', 1_000], ['sse', 'SSE: ', 10_000]] as const) {
    const runs = report.subscriptions.filter((run) => (run.transport ?? 'graphql-ws') === transport);
    const atSize = runs.find((run) => run.subscribers === latencyAt);
    if (atSize) {
      goals.push({ goal: `${prefix}Subscription p99, ${latencyAt / 1_000}k subscribers`, target: '≤ 100 ms', measured: `${fixed(atSize.p99Ms, 0)} ms`, met: atSize.p99Ms <= 100 });
    }
    const tenThousand = runs.find((run) => run.subscribers === 10_000);
    if (tenThousand) {
      goals.push({ goal: `${prefix}Memory per subscriber, 10k subscribers`, target: '≤ 30 KB', measured: `${fixed(tenThousand.kbPerSubscriber)} KB`, met: tenThousand.kbPerSubscriber <= 30 });
    }
  }
  if (report.defer) {
    const { deferred, complete, firstPartToComplete } = report.defer;
    goals.push({
      goal: `Deferred nested: time to the first part p50 / the complete query's p50 (${report.defer.connections} connections)`,
      target: `≤ ${DEFER_FIRST_PART_TO_COMPLETE}×`,
      measured: `${firstPartToComplete === null ? 'n/a' : `${fixed(firstPartToComplete, 2)}×`} (${fixed(deferred.firstPartP50Ms)} vs ${fixed(complete.lastPartP50Ms)} ms)`,
      met: firstPartToComplete !== null && firstPartToComplete <= DEFER_FIRST_PART_TO_COMPLETE,
    });
  }
  // The goal is this gateway's; the others' peaks are in the RSS table.
  for (const [name, mb] of Object.entries(report.peakRssMb)) {
    if (name.startsWith('ours')) goals.push({ goal: `Peak RSS, ${name}`, target: '≤ 400 MB', measured: `${mb} MB`, met: mb <= 400 });
  }
  goals.push(...executorGoals(report));
  return goals;
}

/**
 * The own executor's goals (issue 20), on every scenario where this gateway ran uncached (`ours`): gateway CPU per
 * request against bare Apollo's (at most EXECUTOR_CPU_TO_APOLLO of it) and against hive-router's (at most
 * EXECUTOR_CPU_TO_HIVE_ROUTER), throughput at least hive-router's, and each of this gateway's processes no larger
 * at its peak than before the executor.
 */
export const EXECUTOR_CPU_TO_APOLLO: Partial<Record<ScenarioName, number>> & { default: number } = { nested: 0.35, deep: 0.35, default: 0.5 };
export const EXECUTOR_CPU_TO_HIVE_ROUTER = 0.6;
export const EXECUTOR_RPS_TO_HIVE_ROUTER = 1;
/** Peak RSS of this gateway's processes before its own executor (about 310 MB): the executor must not raise it. */
export const EXECUTOR_PEAK_RSS_MB = 310;

function executorGoals(report: Omit<BenchReport, 'goals'>): Goal[] {
  const goals: Goal[] = [];
  const cpuRatio = (goal: string, target: number, top: ScenarioRow, bottom: ScenarioRow | undefined) => {
    if (!bottom) return;
    const value = bottom.cpuMsPerRequest > 0 ? top.cpuMsPerRequest / bottom.cpuMsPerRequest : Number.POSITIVE_INFINITY;
    goals.push({ goal, target: `≤ ${target}×`, measured: `${fixed(value, 2)}× (${fixed(top.cpuMsPerRequest, 2)} vs ${fixed(bottom.cpuMsPerRequest, 2)} ms)`, met: value <= target });
  };
  for (const scenario of report.scenarios) {
    const ours = scenario.rows.find((row) => row.gateway === 'ours');
    if (!ours) continue;
    const apollo = scenario.rows.find((row) => row.gateway === 'apollo');
    const router = scenario.rows.find((row) => row.gateway === 'hive-router');
    cpuRatio(`Gateway CPU per request, ${scenario.name}: this gateway / bare Apollo`, EXECUTOR_CPU_TO_APOLLO[scenario.name] ?? EXECUTOR_CPU_TO_APOLLO.default, ours, apollo);
    cpuRatio(`Gateway CPU per request, ${scenario.name}: this gateway / hive-router`, EXECUTOR_CPU_TO_HIVE_ROUTER, ours, router);
    if (router) {
      const value = router.rps > 0 ? ours.rps / router.rps : Number.POSITIVE_INFINITY;
      goals.push({
        goal: `Uncached ${scenario.name}: this gateway / hive-router`,
        target: `≥ ${EXECUTOR_RPS_TO_HIVE_ROUTER}×`,
        measured: `${fixed(value, 2)}× (${Math.round(ours.rps)} vs ${Math.round(router.rps)} req/s)`,
        met: value >= EXECUTOR_RPS_TO_HIVE_ROUTER,
      });
    }
  }
  for (const [name, mb] of Object.entries(report.peakRssMb)) {
    if (name.startsWith('ours')) {
      goals.push({ goal: `Peak RSS, ${name}, with the own executor`, target: `≤ ${EXECUTOR_PEAK_RSS_MB} MB`, measured: `${mb} MB`, met: mb <= EXECUTOR_PEAK_RSS_MB });
    }
  }
  return goals;
}

export function renderMarkdown(report: BenchReport): string {
  const { machine, settings, dataset } = report;
  const lines = [
    `# Gateway benchmark, ${report.date.slice(0, 10)}`,
    '',
    `\`${report.command}\` on ${machine.cores} cores (${machine.cpu}), ${machine.memoryGb} GB, Node ${machine.node}; load average ${machine.loadAverageAtStart.join(' ')} at the start, ${machine.loadAverageAtEnd.join(' ')} at the end.`,
    `Real Postgres and Redis on loopback; ${dataset.users.toLocaleString('en')} users, ${dataset.orders.toLocaleString('en')} orders, ${dataset.items.toLocaleString('en')} items (seeded in ${dataset.seedSeconds} s).`,
    `Every process runs compiled JavaScript with \`node\`. Load: ${settings.loadGenerator}, ${settings.connections} connections, ${settings.runs} alternating runs of ${settings.secondsPerRun} s after a ${settings.warmupSeconds} s warm-up; medians. Every gateway's answers deep-equal bare Apollo Gateway's before anything is timed.`,
    '',
    '## Goals',
    '',
    '| Goal | Target | Measured | Met |',
    '|---|---|---|---|',
    ...report.goals.map((goal) => `| ${goal.goal} | ${goal.target} | ${goal.measured} | ${goal.met ? 'yes' : '**no**'} |`),
  ];
  const times = (ratio: number | null) => (ratio === null ? '' : `${fixed(ratio, 2)}×`);
  for (const scenario of report.scenarios) {
    lines.push(
      '',
      `## ${scenario.title}`,
      '',
      ...(scenario.answerBytes === null ? [] : [`Bare Apollo Gateway's answer: ${fixed(scenario.answerBytes / 1024)} KB of JSON per request (mean).`, '']),
      ...(scenario.secondsPerRun === report.settings.secondsPerRun ? [] : [`Runs of ${scenario.secondsPerRun} s in this scenario (its answers take seconds at ${report.settings.connections} connections).`, '']),
      '| Gateway | req/s | req/s × bare Apollo | req/s × hive-router | p50 ms | p99 ms | gateway CPU ms/req | CPU × bare Apollo | CPU × hive-router |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const row of scenario.rows) {
      lines.push(
        `| ${row.gateway} | ${Math.round(row.rps)} | ${times(row.ratioToApollo)} | ${times(row.ratioToHiveRouter)} | ${fixed(row.p50Ms)} | ${fixed(row.p99Ms)} | ${fixed(row.cpuMsPerRequest, 2)} | ${times(row.cpuRatioToApollo)} | ${times(row.cpuRatioToHiveRouter)} |`,
      );
    }
    lines.push(
      '',
      'CPU ms per request of every process (medians): the gateway under load, both subgraphs, the Postgres backends of the bench databases, and the Redis server (shared with the machine: an upper bound).',
      '',
      `| Gateway | ${PROCESSES.join(' | ')} | all |`,
      `|---|${PROCESSES.map(() => '---:').join('|')}|---:|`,
    );
    for (const row of scenario.rows) lines.push(cpuCells(row.gateway, PROCESSES, row.cpuMsPerRequestOf));
    const ours = scenario.rows.find((row) => row.gateway === 'ours');
    const against = (reference: string, rps: number | null, cpu: number | null) =>
      rps === null || cpu === null ? [] : [`${times(rps)} ${reference}'s throughput at ${times(cpu)} its gateway CPU per request`];
    const summary = ours ? [...against('bare Apollo', ours.ratioToApollo, ours.cpuRatioToApollo), ...against('hive-router', ours.ratioToHiveRouter, ours.cpuRatioToHiveRouter)] : [];
    if (summary.length > 0) lines.push('', `This gateway (\`ours\`): ${summary.join('; ')}.`);
  }
  for (const scenario of report.subgraphScenarios) {
    const parts = [scenario.subgraph, ...PROCESSES.filter((name) => name !== 'gateway' && name !== scenario.subgraph)];
    lines.push(
      '',
      `## ${scenario.title}`,
      '',
      ...(scenario.answerBytes === null ? [] : [`The subgraph's answer: ${fixed(scenario.answerBytes / 1024)} KB of JSON per request.`, '']),
      '| Target | req/s | p50 ms | p99 ms |',
      '|---|---:|---:|---:|',
      ...scenario.rows.map((row) => `| ${row.target} | ${Math.round(row.rps)} | ${fixed(row.p50Ms)} | ${fixed(row.p99Ms)} |`),
      '',
      'CPU ms per request of every process (medians).',
      '',
      `| Target | ${parts.join(' | ')} | all |`,
      `|---|${parts.map(() => '---:').join('|')}|---:|`,
      ...scenario.rows.map((row) => cpuCells(row.target, parts, row.cpuMsPerRequestOf)),
    );
  }
  if (report.sql.length > 0) {
    lines.push('', '## SQL statements per nested request (both subgraphs)', '', '| N users | statements |', '|---:|---:|');
    for (const { n, statementsPerRequest } of report.sql) lines.push(`| ${n} | ${statementsPerRequest} |`);
  }
  if (report.defer) {
    const { deferred, complete } = report.defer;
    const cells = (label: string, run: Omit<PartsRun, 'seconds'>, first: boolean) =>
      `| ${label} | ${run.rps} | ${first ? `${fixed(run.firstPartP50Ms)} | ${fixed(run.firstPartP99Ms)}` : '– | –'} | ${fixed(run.lastPartP50Ms)} | ${fixed(run.lastPartP99Ms)} | ${fixed(run.gatewayCpuMsPerRequest, 2)} |`;
    lines.push(
      '',
      `## @defer: time to the first part of the nested query, its orders deferred (\`${report.defer.gateway}\`)`,
      '',
      `\`users(first: 20) { … ... @defer { orderCount orders(first: 5) { … items } } }\` sent as Apollo Client sends it (\`accept: multipart/mixed;deferSpec=20220824,application/json\`), against the nested query without @defer with the same header (answered as one JSON body), on the same gateway: ${report.defer.connections} keep-alive connections, ${report.defer.runs} alternating runs of ${report.defer.secondsPerRun} s each, medians. A part counts once its closing delimiter has arrived (when Apollo Client reads it); the last part is the body's end. Before timing, the merged parts deep-equal bare Apollo Gateway's answer to the complete query. First part ${fixed(report.defer.firstPartBytes / 1024)} KB of JSON; the complete answer ${fixed(report.defer.completeBytes / 1024)} KB.`,
      '',
      '| Query | req/s | first part p50 ms | first part p99 ms | last part (whole answer) p50 ms | p99 ms | gateway CPU ms/req |',
      '|---|---:|---:|---:|---:|---:|---:|',
      cells('orders deferred', deferred, true),
      cells('complete', complete, false),
      '',
      `The first part comes at ${report.defer.firstPartToComplete === null ? 'n/a' : `${fixed(report.defer.firstPartToComplete, 2)}×`} the complete answer's median (goal ≤ ${DEFER_FIRST_PART_TO_COMPLETE}×).`,
    );
  }
  if (report.subscriptions.length > 0) {
    lines.push(
      '',
      '## Subscription fan-out (this gateway; bare Apollo Gateway cannot execute subscriptions)',
      '',
      'Each subscriber on its own connection: graphql-ws (one socket each), or SSE (graphql-sse distinct connections: one `POST` with `Accept: text/event-stream` each). Latency is commit → client; memory is the gateway’s RSS growth with every subscriber connected, per subscriber. At each size SSE runs right after graphql-ws, in the same process.',
      '',
      '| Subscribers | transport | deliveries | p50 ms | p99 ms | KB per subscriber |',
      '|---:|---|---:|---:|---:|---:|',
    );
    for (const run of report.subscriptions) lines.push(`| ${run.subscribers} | ${run.transport ?? 'graphql-ws'} | ${run.deliveries} | ${run.p50Ms} | ${run.p99Ms} | ${run.kbPerSubscriber} |`);
  }
  lines.push('', `## Peak RSS per process under the HTTP scenarios (${report.settings.connections} connections)`, '', '| Process | MB |', '|---|---:|');
  for (const [name, mb] of Object.entries(report.peakRssMb)) lines.push(`| ${name} | ${mb} |`);
  if (report.peakRssWithSubscribersMb !== null) lines.push('', `With the subscription fan-out as well, \`ours\` peaked at ${report.peakRssWithSubscribersMb} MB.`);
  lines.push('', '## Gateways', '', ...Object.entries(GATEWAYS).map(([name, description]) => `- \`${name}\`: ${description}.`));
  lines.push('', `The whole run took ${Math.round(report.totalSeconds)} s. Chart: \`bench.svg\`; every run's figures: \`bench.json\`.`, '');
  return lines.join('\n');
}

/** A table row of CPU per request: one cell per part (blank where it was not watched), and their sum. */
function cpuCells(label: string, parts: readonly string[], cpu: Record<string, number>): string {
  const cells = parts.map((part) => (cpu[part] === undefined ? '' : fixed(cpu[part], 2)));
  const all = parts.reduce((sum, part) => sum + (cpu[part] ?? 0), 0);
  return `| ${label} | ${cells.join(' | ')} | ${fixed(all, 2)} |`;
}

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Throughput (left) and p99 latency (right) per gateway, one group of bars per scenario, each on its own scale. */
export function renderChart(report: BenchReport): string {
  const barHeight = 18;
  const gap = 4;
  const labelWidth = 120;
  const panelWidth = 330;
  const width = labelWidth + 2 * panelWidth + 60;
  const colors: Record<string, string> = { ours: '#2563eb', 'ours-dedupe': '#60a5fa', 'ours-unmerged': '#93c5fd', 'ours-cached': '#1e3a8a', apollo: '#6b7280', 'apollo-cached': '#374151', hive: '#d97706', 'hive-dedupe': '#fbbf24', 'hive-router': '#b91c1c' };
  const parts: string[] = [];
  let y = 40;
  parts.push(`<text x="${labelWidth}" y="24" font-weight="bold">requests/s (median)</text>`, `<text x="${labelWidth + panelWidth + 40}" y="24" font-weight="bold">p99 latency, ms (median)</text>`);
  for (const scenario of report.scenarios) {
    parts.push(`<text x="8" y="${y + 12}" font-weight="bold">${escape(scenario.name)}</text>`);
    y += barHeight;
    const maxRps = Math.max(...scenario.rows.map((row) => row.rps), 1);
    const maxP99 = Math.max(...scenario.rows.map((row) => row.p99Ms), 1);
    for (const row of scenario.rows) {
      const color = colors[row.gateway] ?? '#999';
      const rpsWidth = (row.rps / maxRps) * (panelWidth - 70);
      const p99Width = (row.p99Ms / maxP99) * (panelWidth - 70);
      const p99X = labelWidth + panelWidth + 40;
      parts.push(
        `<text x="16" y="${y + 13}">${escape(row.gateway)}</text>`,
        `<rect x="${labelWidth}" y="${y}" width="${rpsWidth.toFixed(1)}" height="${barHeight}" fill="${color}"/>`,
        `<text x="${(labelWidth + rpsWidth + 4).toFixed(1)}" y="${y + 13}">${Math.round(row.rps)}</text>`,
        `<rect x="${p99X}" y="${y}" width="${p99Width.toFixed(1)}" height="${barHeight}" fill="${color}"/>`,
        `<text x="${(p99X + p99Width + 4).toFixed(1)}" y="${y + 13}">${fixed(row.p99Ms)}</text>`,
      );
      y += barHeight + gap;
    }
    y += 10;
  }
  const caption = `${report.date.slice(0, 10)} · ${report.machine.cores} cores · Node ${report.machine.node} · ${report.settings.connections} connections · ${report.settings.loadGenerator}`;
  parts.push(`<text x="8" y="${y + 14}" fill="#555">${escape(caption)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 28}" font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}
