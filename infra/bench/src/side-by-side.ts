import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { median } from '@fed/platform/testing';
import { processCpu, type CpuWatch } from './cpu.ts';
import { headersOf, load, warmUp, type LoadGenerator, type LoadRequest, type LoadResult } from './load.ts';
import { REPO, type BenchProcess } from './processes.ts';
import { PROCESSES } from './report.ts';
import { readsThenWrites } from './scenarios.ts';
import type { Topology } from './topology.ts';

/**
 * One configuration under test: its own subgraphs and gateways (on the dataset every side shares), and what else
 * it runs on that the CPU readers should see (its Redis servers, the Postgres backends).
 */
export interface Side {
  name: string;
  topology: Topology;
  watch: readonly CpuWatch[];
}

/** What one scenario loads on every side: a gateway, or a subgraph called straight. */
export interface Target {
  scenario: string;
  title: string;
  process(topology: Topology): BenchProcess;
  /** Built again before every run: a subgraph's signed identity lives 30 s. */
  requests(topology: Topology): LoadRequest[];
  /**
   * How many times each distinct request is sent when the sides' answers are compared: twice for a cached
   * gateway, so that a hit is compared too.
   */
  checkTimes?: number;
  /** Runs of this target last at most this long, however long a busy machine asks for (signatures expire). */
  maxSecondsPerRun?: number;
}

const keyOf = (target: Target, side: Side) => `${target.scenario}:${side.name}`;

/** Every side answers every distinct request of every target alike (reads first, then writes), before anything is timed. */
export async function checkAlike(sides: readonly Side[], targets: readonly Target[]): Promise<void> {
  for (const target of targets) {
    for (const request of readsThenWrites(target.requests(sides[0]!.topology))) {
      const answers = await Promise.all(
        sides.map(async (side) => {
          const [same] = target.requests(side.topology).filter((candidate) => candidate.body === request.body);
          const seen: unknown[] = [];
          for (let time = 0; time < (target.checkTimes ?? 1); time += 1) {
            const response = await fetch(target.process(side.topology).url, { method: 'POST', headers: headersOf(same!), body: same!.body });
            seen.push({ status: response.status, body: (await response.json()) as unknown });
          }
          return seen;
        }),
      );
      const failed = answers.flat().some((answer) => (answer as { status: number }).status !== 200 || (answer as { body: { errors?: unknown } }).body.errors);
      if (failed || answers.some((answer) => !isDeepStrictEqual(answer, answers[0]))) {
        throw new Error(`${target.scenario}: the sides answer differently: ${JSON.stringify(answers).slice(0, 800)}`);
      }
    }
  }
}

/**
 * A warm-up per side and target, then `runs` rounds; each round loads every side once per target, the sides'
 * order rotating from round to round, so that whatever else loads the shared machine meanwhile falls on each.
 */
export async function alternate(
  sides: readonly Side[],
  targets: readonly Target[],
  { generator, runs, seconds, connections, log }: { generator: LoadGenerator; runs: number; seconds: number; connections: number; log: (line: string) => void },
): Promise<Map<string, LoadResult[]>> {
  const quiesce = (topology: Topology) => [topology.users.pid, topology.orders.pid, ...[...topology.gateways.values()].map((gateway) => gateway.pid)];
  const watchOf = (side: Side, target: Target) => {
    const loaded = target.process(side.topology);
    const gateways = [...side.topology.gateways.values()].filter((gateway) => gateway === loaded);
    return [
      ...gateways.map((gateway) => processCpu('gateway', gateway.pid)),
      processCpu('users', side.topology.users.pid),
      processCpu('orders', side.topology.orders.pid),
      ...side.watch,
    ];
  };
  const length = (target: Target) => Math.min(seconds, target.maxSecondsPerRun ?? seconds);
  for (const target of targets) {
    for (const side of sides) {
      await warmUp(generator, target.process(side.topology), target.requests(side.topology), { seconds: length(target), connections, log, quiesce: quiesce(side.topology) });
    }
  }
  const results = new Map<string, LoadResult[]>();
  for (let run = 1; run <= runs; run += 1) {
    const order = sides.map((_, index) => sides[(index + run - 1) % sides.length]!);
    for (const target of targets) {
      for (const side of order) {
        const measured = await load(generator, target.process(side.topology), target.requests(side.topology), {
          seconds: length(target),
          maxSeconds: target.maxSecondsPerRun ?? length(target) * 8,
          connections,
          log,
          quiesce: quiesce(side.topology),
          watch: watchOf(side, target),
        });
        const deaths = side.topology.deaths();
        if (deaths.length > 0) throw new Error(deaths.join('\n'));
        results.set(keyOf(target, side), [...(results.get(keyOf(target, side)) ?? []), measured]);
        log(`  ${runLine(run, target, side, measured)}`);
      }
    }
  }
  return results;
}

const runLine = (run: number, target: Target, side: Side, measured: LoadResult) =>
  `run ${run} ${target.scenario} [${side.name}]: ${Math.round(measured.rps)} req/s, p50 ${measured.p50Ms} ms, p99 ${measured.p99Ms} ms, ${measured.requests} requests in ${measured.seconds} s; CPU ms/req ${Object.entries(measured.cpuMsPerRequestOf).map(([part, ms]) => `${part} ${ms}`).join(', ')}`;

/** Every run's figures, one line each, in the order the runs were made per side (for the result files). */
export function rawRunLines(sides: readonly Side[], targets: readonly Target[], results: ReadonlyMap<string, LoadResult[]>): string[] {
  return targets.flatMap((target) => sides.flatMap((side) => (results.get(keyOf(target, side)) ?? []).map((measured, index) => runLine(index + 1, target, side, measured))));
}

/**
 * Each other side's req/s over the first's in the same round, the median of those: the machine's load drifts
 * from round to round, and within one round both sides ran seconds apart.
 */
function pairedRow(sides: readonly Side[], runsOf: (side: Side) => LoadResult[]): string {
  const first = runsOf(sides[0]!);
  const ratios = sides.slice(1).map((side) => {
    const paired = runsOf(side).flatMap((run, index) => (first[index] && first[index].rps > 0 ? [run.rps / first[index].rps] : []));
    return paired.length > 0 ? `${median(paired).toFixed(2)}×` : '';
  });
  return `| req/s, same round: median ratio | ${sides.map(() => '').join(' | ')} | ${ratios.join(' | ')} |`;
}

/**
 * Per target: medians of every side's req/s, p50, p99 and CPU per request of each part, with every other side's
 * ratio to the first.
 */
export function sideBySideTables(sides: readonly Side[], targets: readonly Target[], results: ReadonlyMap<string, LoadResult[]>): string[] {
  const lines: string[] = [];
  const [first, ...others] = sides;
  for (const target of targets) {
    const runsOf = (side: Side) => results.get(keyOf(target, side)) ?? [];
    const row = (label: string, pick: (run: LoadResult) => number, digits: number) => {
      const medians = sides.map((side) => median(runsOf(side).map(pick)));
      const ratios = medians.slice(1).map((value) => (medians[0]! > 0 ? `${(value / medians[0]!).toFixed(2)}×` : ''));
      return `| ${label} | ${medians.map((value) => value.toFixed(digits)).join(' | ')} | ${ratios.join(' | ')} |`;
    };
    // The bench's processes in their usual order, then whatever only some sides run (a PgBouncer).
    const seen = new Set(sides.flatMap((side) => runsOf(side).flatMap((run) => Object.keys(run.cpuMsPerRequestOf))));
    const parts = [...PROCESSES.filter((part) => seen.has(part)), ...[...seen].filter((part) => !(PROCESSES as readonly string[]).includes(part))];
    lines.push(
      `## ${target.scenario}`,
      '',
      target.title,
      '',
      `| | ${sides.map((side) => side.name).join(' | ')} | ${others.map((side) => `${side.name} / ${first!.name}`).join(' | ')} |`,
      `|---|${sides.map(() => '---:').join('|')}|${others.map(() => '---:').join('|')}|`,
      row('req/s', (run) => run.rps, 0),
      pairedRow(sides, runsOf),
      row('p50 ms', (run) => run.p50Ms, 1),
      row('p99 ms', (run) => run.p99Ms, 1),
      ...parts.map((part) => row(`CPU ms/req: ${part}`, (run) => run.cpuMsPerRequestOf[part] ?? 0, 3)),
      row('CPU ms/req: all', (run) => parts.reduce((sum, part) => sum + (run.cpuMsPerRequestOf[part] ?? 0), 0), 3),
      '',
    );
  }
  return lines;
}

/** The 1-minute load average, rounded: recorded at the start and the end of every run. */
export const loadAverage = () => loadavg().map((value) => value.toFixed(2)).join(' ');

/** `rev`'s short hash, which names the result directory and the report: a name like HEAD moves. */
export const shortCommit = (rev: string) => execFileSync('git', ['rev-parse', '--short', `${rev}^{commit}`], { cwd: REPO, encoding: 'utf8' }).trim();

/** When a side-by-side run began and the machine's load then, for its report. */
export const beginning = () => ({ at: new Date().toISOString(), load: loadAverage() });

/**
 * The whole report: what ran, the load average at the start and the end, a table per target, then every run's
 * line (markdown).
 */
export function sideBySideReport(
  { title, summary, began }: { title: string; summary: string; began: ReturnType<typeof beginning> },
  sides: readonly Side[],
  targets: readonly Target[],
  results: ReadonlyMap<string, LoadResult[]>,
): string {
  const ended = beginning();
  return `${[
    `# ${title}`,
    '',
    summary,
    '',
    `Started ${began.at}, load average ${began.load}; ended ${ended.at}, load average ${ended.load} (1, 5, 15 min; 2 cores shared with other work).`,
    '',
    ...sideBySideTables(sides, targets, results),
    '## Runs',
    '',
    '```',
    ...rawRunLines(sides, targets, results),
    '```',
  ].join('\n')}\n`;
}
