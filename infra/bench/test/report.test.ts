import { describe, expect, it } from 'vitest';
import { checkGoals, PROCESSES, renderChart, renderMarkdown, withRatios, type BenchReport, type Goal, type MeasuredRow } from '../src/report.ts';
import type { ScenarioName } from '../src/scenarios.ts';
import { GATEWAYS, type GatewayName } from '../src/topology.ts';
import { parseXml, textOf, type XmlElement } from './xml.ts';

// ---------------------------------------------------------------------------------------------------------------
// A synthetic report, shaped exactly as the CLI builds one. Every figure the assertions check is derived from it.
// ---------------------------------------------------------------------------------------------------------------

type Figures = Partial<Record<GatewayName, { rps: number; p50Ms?: number; p99Ms?: number; cpuMsPerRequest?: number }>>;

const SCENARIO_GATEWAYS: Record<ScenarioName, GatewayName[]> = {
  nested: ['ours', 'ours-dedupe', 'apollo', 'hive', 'hive-dedupe', 'hive-router'],
  deep: ['ours', 'apollo', 'hive', 'hive-router'],
  entity: ['ours', 'apollo', 'hive', 'hive-router'],
  mix: ['ours', 'ours-cached', 'apollo', 'hive', 'hive-router'],
  'cache-hit': ['ours-cached', 'apollo-cached'],
};

/** Gateway CPU per request unless a figure says otherwise: this gateway well under every reference. */
const DEFAULT_CPU: Partial<Record<GatewayName, number>> = { ours: 0.5, 'ours-dedupe': 0.5, 'ours-cached': 0.1, apollo: 2, 'apollo-cached': 0.4, hive: 1.5, 'hive-dedupe': 1.4, 'hive-router': 1 };

function measured(gateway: GatewayName, rps: number, p50Ms: number, p99Ms: number, cpuMsPerRequest: number): MeasuredRow {
  // The other processes' share: fixed figures, the same in every row, so that each row's total is derived.
  const cpuMsPerRequestOf = { gateway: cpuMsPerRequest, users: 0.5, orders: 2, postgres: 0.25, redis: 0.05 };
  const run = { rps, p50Ms, p99Ms, requests: Math.round(rps * 4), seconds: 4, cpuMsPerRequest, cpuMsPerRequestOf };
  return { gateway, rps, p50Ms, p99Ms, cpuMsPerRequest, cpuMsPerRequestOf, runs: [run] };
}

/** Default figures: every goal comfortably met. Overrides replace one scenario's figures, gateway by gateway. */
function report(overrides: Partial<Record<ScenarioName, Figures>> = {}, extra: Partial<Omit<BenchReport, 'goals'>> = {}): Omit<BenchReport, 'goals'> {
  const defaults: Record<ScenarioName, Figures> = {
    nested: { ours: { rps: 1000 }, 'ours-dedupe': { rps: 1100 }, apollo: { rps: 900 }, hive: { rps: 800 }, 'hive-dedupe': { rps: 850 }, 'hive-router': { rps: 950 } },
    deep: { ours: { rps: 300 }, apollo: { rps: 100 }, hive: { rps: 150 }, 'hive-router': { rps: 250 } },
    entity: { ours: { rps: 3000 }, apollo: { rps: 2500 }, hive: { rps: 2000 }, 'hive-router': { rps: 2800 } },
    mix: { ours: { rps: 2000 }, 'ours-cached': { rps: 2600 }, apollo: { rps: 1800 }, hive: { rps: 1500 }, 'hive-router': { rps: 1900 } },
    'cache-hit': { 'ours-cached': { rps: 30_000, p50Ms: 2, p99Ms: 9 }, 'apollo-cached': { rps: 6000, p50Ms: 8, p99Ms: 30 } },
  };
  const built = (Object.keys(SCENARIO_GATEWAYS) as ScenarioName[]).map((name) => {
    const figures = { ...defaults[name], ...overrides[name] };
    const gateways = SCENARIO_GATEWAYS[name].filter((gateway) => figures[gateway]);
    return {
      name,
      rows: gateways.map((gateway) => {
        const { rps, p50Ms = 10 + rps / 1000, p99Ms = 40 + rps / 500, cpuMsPerRequest = DEFAULT_CPU[gateway] ?? 1 } = figures[gateway]!;
        return measured(gateway, rps, p50Ms, p99Ms, cpuMsPerRequest);
      }),
    };
  });
  // As the CLI does: cache hits are compared with bare Apollo's nested run.
  const apolloNested = built.find((scenario) => scenario.name === 'nested')?.rows.find((r) => r.gateway === 'apollo');
  const scenarios = built.map(({ name, rows }) => ({ name, title: `Title of ${name}`, answerBytes: name === 'deep' ? 102_400 : 2048, secondsPerRun: name === 'deep' ? 8 : 4, rows: withRatios(rows, apolloNested) }));
  return {
    date: '2026-11-24T03:58:12.345Z',
    command: 'npm run bench -- --quick',
    machine: { cores: 2, cpu: 'Test CPU @ 2.0GHz', memoryGb: 8, node: 'v20.20.2', loadAverageAtStart: [0.51, 0.42, 0.3], loadAverageAtEnd: [1.87, 1.1, 0.66] },
    settings: { mode: 'quick', runs: 2, secondsPerRun: 4, warmupSeconds: 2, connections: 50, loadGenerator: 'wrk' },
    dataset: { users: 10_000, orders: 100_000, items: 250_123, seedSeconds: 12.3 },
    scenarios,
    subgraphScenarios: [
      {
        name: 'orders-entities',
        title: 'Title of orders-entities',
        subgraph: 'orders',
        answerBytes: 12_288,
        secondsPerRun: 4,
        rows: [
          {
            target: 'orders',
            rps: 640,
            p50Ms: 70,
            p99Ms: 120,
            cpuMsPerRequestOf: { orders: 1.5, users: 0, postgres: 0.4, redis: 0.01 },
            runs: [{ rps: 640, p50Ms: 70, p99Ms: 120, requests: 2560, seconds: 4, cpuMsPerRequest: 1.5, cpuMsPerRequestOf: { orders: 1.5, users: 0, postgres: 0.4, redis: 0.01 } }],
          },
        ],
      },
    ],
    sql: [
      { n: 10, statementsPerRequest: 3 },
      { n: 50, statementsPerRequest: 3 },
      { n: 100, statementsPerRequest: 3 },
    ],
    subscriptions: [
      { subscribers: 1000, deliveries: 20_000, p50Ms: 12, p99Ms: 60, kbPerSubscriber: 14.2 },
      { subscribers: 10_000, deliveries: 200_000, p50Ms: 40, p99Ms: 90, kbPerSubscriber: 12.5 },
    ],
    peakRssMb: { users: 180, orders: 190, ours: 210, 'ours-dedupe': 205, 'ours-unmerged': 208, 'ours-cached': 230, apollo: 250, 'apollo-cached': 260, hive: 300, 'hive-dedupe': 310, 'hive-router': 290 },
    peakRssWithSubscribersMb: null,
    totalSeconds: 187,
    ...extra,
  };
}

const complete = (partial: Omit<BenchReport, 'goals'>): BenchReport => ({ ...partial, goals: checkGoals(partial) });

function goal(goals: Goal[], name: string | RegExp): Goal {
  const found = goals.filter((candidate) => (typeof name === 'string' ? candidate.goal === name : name.test(candidate.goal)));
  expect(found, `exactly one goal ${String(name)} among ${JSON.stringify(goals.map((g) => g.goal))}`).toHaveLength(1);
  return found[0]!;
}

const hasGoal = (goals: Goal[], name: string | RegExp) => goals.some((candidate) => (typeof name === 'string' ? candidate.goal === name : name.test(candidate.goal)));

// ---------------------------------------------------------------------------------------------------------------

describe('checkGoals', () => {
  it('with the default figures, every goal is met, and each of this gateway’s processes has a memory goal', () => {
    const goals = checkGoals(report());
    expect(goals.filter((candidate) => !candidate.met)).toEqual([]);
    // 2 ratios for nested and entity, dedupe, 2 cache ratios, cache p99, SQL, 2 subscription goals, RSS of ours*;
    // then the executor's: 3 per scenario where ours ran uncached (nested, deep, entity, mix), RSS of ours* again.
    const ours = Object.keys(GATEWAYS).filter((name) => name.startsWith('ours'));
    expect(ours.length).toBeGreaterThan(0);
    expect(goals).toHaveLength(4 + 1 + 2 + 1 + 1 + 2 + ours.length + 3 * 4 + ours.length);
  });

  describe.each(['nested', 'entity'] as const)('uncached %s, this gateway against bare Apollo (≥ 0.95×)', (scenario) => {
    const name = `Uncached ${scenario}: this gateway / bare Apollo`;
    it.each([
      [0.94, false],
      [0.949, false],
      [0.95, true],
      [1.3, true],
    ])('ours at %s× apollo: met = %s', (ratio, met) => {
      const apollo = 1000;
      const ours = ratio * apollo;
      const found = goal(checkGoals(report({ [scenario]: { ours: { rps: ours }, apollo: { rps: apollo } } })), name);
      expect(found.met).toBe(met);
      expect(found.target).toBe('≥ 0.95×');
      expect(found.measured).toContain(`${ratio.toFixed(2)}×`);
      expect(found.measured).toContain(`${Math.round(ours)} vs ${apollo} req/s`);
    });
  });

  it.each([
    ['nested', 'ours', 'hive', 'Uncached nested: this gateway / Hive (dedupe off in both)'],
    ['entity', 'ours', 'hive', 'Uncached entity: this gateway / Hive (dedupe off in both)'],
    ['nested', 'ours-dedupe', 'hive-dedupe', 'Uncached nested: this gateway / Hive, both with in-flight dedupe (their defaults)'],
    ['cache-hit', 'ours-cached', 'apollo-cached', "Cache hits / Apollo's responseCachePlugin"],
  ] as const)('%s: %s against %s must be at least 1×', (scenario, top, bottom, name) => {
    const below = checkGoals(report({ [scenario]: { [top]: { rps: 999 }, [bottom]: { rps: 1000 } } }));
    expect(goal(below, name).met).toBe(false);
    const equal = checkGoals(report({ [scenario]: { [top]: { rps: 1000 }, [bottom]: { rps: 1000 } } }));
    expect(goal(equal, name).met).toBe(true);
  });

  it('cache hits must be at least 20× the uncached nested throughput of this gateway', () => {
    const name = 'Cache hits / uncached (nested)';
    const uncached = 1234;
    const met = goal(checkGoals(report({ nested: { ours: { rps: uncached } }, 'cache-hit': { 'ours-cached': { rps: 20 * uncached, p99Ms: 5 } } })), name);
    expect(met.met).toBe(true);
    expect(met.target).toBe('≥ 20×');
    expect(met.measured).toContain(`${Math.round(20 * uncached)} vs ${uncached} req/s`);
    const missed = goal(checkGoals(report({ nested: { ours: { rps: uncached } }, 'cache-hit': { 'ours-cached': { rps: 19.9 * uncached, p99Ms: 5 } } })), name);
    expect(missed.met).toBe(false);
    expect(missed.measured).toMatch(/^19\.90×/);
  });

  it('cache hit p99 must be at most 20 ms, and the goal names the connection count', () => {
    const at = (p99Ms: number) => goal(checkGoals(report({ 'cache-hit': { 'ours-cached': { rps: 30_000, p99Ms } } })), /^Cache hits p99/);
    expect(at(20).met).toBe(true);
    expect(at(20.1).met).toBe(false);
    expect(at(20.1).measured).toBe('20.1 ms');
    expect(at(20).goal).toBe('Cache hits p99 at 50 connections');
    expect(at(20).target).toBe('≤ 20 ms');
  });

  it('SQL statements per nested request: flat in N is met, growing with N is missed, none measured is no goal', () => {
    const name = 'SQL statements per nested request, flat in N';
    const flat = goal(checkGoals(report()), name);
    expect(flat.met).toBe(true);
    expect(flat.measured).toBe('N=10: 3, N=50: 3, N=100: 3');
    const growing = goal(
      checkGoals(report({}, { sql: [{ n: 10, statementsPerRequest: 3 }, { n: 50, statementsPerRequest: 3 }, { n: 100, statementsPerRequest: 4 }] })),
      name,
    );
    expect(growing.met).toBe(false);
    expect(growing.measured).toBe('N=10: 3, N=50: 3, N=100: 4');
    const nPlusOne = goal(checkGoals(report({}, { sql: [{ n: 10, statementsPerRequest: 12 }, { n: 50, statementsPerRequest: 52 }] })), name);
    expect(nPlusOne.met).toBe(false);
    expect(hasGoal(checkGoals(report({}, { sql: [] })), name)).toBe(false);
  });

  it('subscription p99 at 1k subscribers must be at most 100 ms; memory at 10k at most 30 KB per subscriber', () => {
    const with1k = (p99Ms: number) => goal(checkGoals(report({}, { subscriptions: [{ subscribers: 1000, deliveries: 5000, p50Ms: 10, p99Ms, kbPerSubscriber: 50 }] })), 'Subscription p99, 1k subscribers');
    expect(with1k(100).met).toBe(true);
    expect(with1k(101).met).toBe(false);
    expect(with1k(101).measured).toBe('101 ms');
    const with10k = (kbPerSubscriber: number) =>
      goal(checkGoals(report({}, { subscriptions: [{ subscribers: 10_000, deliveries: 5000, p50Ms: 10, p99Ms: 500, kbPerSubscriber }] })), 'Memory per subscriber, 10k subscribers');
    expect(with10k(30).met).toBe(true);
    expect(with10k(30.1).met).toBe(false);
    expect(with10k(30.1).measured).toBe('30.1 KB');
    // Other sizes (as a quick smoke run uses) give neither goal: they measure something else.
    const other = checkGoals(report({}, { subscriptions: [{ subscribers: 20, deliveries: 100, p50Ms: 5000, p99Ms: 9000, kbPerSubscriber: 900 }] }));
    expect(hasGoal(other, /Subscription p99/)).toBe(false);
    expect(hasGoal(other, /Memory per subscriber/)).toBe(false);
  });

  it('peak RSS must be at most 400 MB for each of this gateway’s processes; the other gateways and the subgraphs get no goal', () => {
    const peakRssMb = { users: 900, orders: 950, ours: 400, 'ours-cached': 401, 'ours-dedupe': 12, apollo: 999, 'apollo-cached': 999, hive: 999, 'hive-dedupe': 999, 'hive-router': 999 };
    const goals = checkGoals(report({}, { peakRssMb }));
    const memory = goals.filter((candidate) => candidate.goal.startsWith('Peak RSS') && candidate.target === '≤ 400 MB');
    expect(memory.map((candidate) => candidate.goal).sort()).toEqual(['Peak RSS, ours', 'Peak RSS, ours-cached', 'Peak RSS, ours-dedupe']);
    expect(goal(goals, 'Peak RSS, ours')).toMatchObject({ met: true, measured: '400 MB', target: '≤ 400 MB' });
    expect(goal(goals, 'Peak RSS, ours-cached')).toMatchObject({ met: false, measured: '401 MB' });
    expect(goal(goals, 'Peak RSS, ours-dedupe').met).toBe(true);
  });

  it('a gateway that did not run gives no goal rather than a false miss', () => {
    // As with `--gateways ours`: no Hive rows, no cache-hit scenario.
    const partial = report({}, {});
    partial.scenarios = partial.scenarios
      .filter((scenario) => scenario.name !== 'cache-hit')
      .map((scenario) => ({ ...scenario, rows: scenario.rows.filter((r) => !r.gateway.startsWith('hive')) }));
    const goals = checkGoals(partial);
    expect(goals.some((candidate) => /Hive|hive-router|Cache hits/.test(candidate.goal))).toBe(false);
    // Bare Apollo still ran, so the CPU goals against it remain.
    expect(goal(goals, 'Gateway CPU per request, deep: this gateway / bare Apollo').met).toBe(true);
    expect(goal(goals, 'Uncached nested: this gateway / bare Apollo').met).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------------

/** The cells of every table row under the `## title` heading (header and separator rows left out). */
/** Every table of a section, in order: each its body rows' cells (the header and separator lines left out). */
function tablesUnder(markdown: string, title: string): string[][][] {
  const sections = markdown.split(/^## /m);
  const section = sections.find((candidate) => candidate.startsWith(`${title}\n`));
  expect(section, `a section "## ${title}"`).toBeDefined();
  const tables: string[][] = [];
  let current: string[] | undefined;
  for (const line of section!.split('\n')) {
    if (!line.startsWith('|')) current = undefined;
    else if (current) current.push(line);
    else tables.push((current = [line]));
  }
  return tables.map((rows) => rows.slice(2).map((line) => line.slice(1, -1).split('|').map((cell) => cell.trim())));
}

/** The first table of a section. */
const tableUnder = (markdown: string, title: string): string[][] => tablesUnder(markdown, title)[0] ?? [];

describe('withRatios', () => {
  const rows = [measured('ours', 1200, 10, 40, 0.6), measured('apollo', 1000, 12, 50, 2.4), measured('hive-router', 800, 15, 60, 1.5)];

  it('divides each row’s throughput and gateway CPU per request by bare Apollo’s and hive-router’s, to two decimals', () => {
    const [ours, apollo, router] = withRatios(rows);
    expect(ours).toMatchObject({ ratioToApollo: 1.2, ratioToHiveRouter: 1.5, cpuRatioToApollo: 0.25, cpuRatioToHiveRouter: 0.4 });
    expect(apollo).toMatchObject({ ratioToApollo: 1, ratioToHiveRouter: 1.25, cpuRatioToApollo: 1, cpuRatioToHiveRouter: 1.6 });
    expect(router).toMatchObject({ ratioToApollo: 0.8, ratioToHiveRouter: 1, cpuRatioToApollo: 0.63, cpuRatioToHiveRouter: 1 });
    // The measured figures pass through unchanged.
    expect(ours).toMatchObject({ gateway: 'ours', rps: 1200, p50Ms: 10, p99Ms: 40, cpuMsPerRequest: 0.6, runs: rows[0]!.runs });
  });

  it('without hive-router its ratios are null; without bare Apollo, the fallback (its nested run) is the reference', () => {
    const [cached] = withRatios([measured('ours-cached', 30_000, 1, 5, 0.12)], { rps: 1000, cpuMsPerRequest: 2.4 });
    expect(cached).toMatchObject({ ratioToApollo: 30, cpuRatioToApollo: 0.05, ratioToHiveRouter: null, cpuRatioToHiveRouter: null });
    const [alone] = withRatios([measured('ours-cached', 30_000, 1, 5, 0.12)]);
    expect(alone).toMatchObject({ ratioToApollo: null, cpuRatioToApollo: null });
    // A scenario's own bare Apollo row wins over the fallback.
    expect(withRatios(rows, { rps: 1, cpuMsPerRequest: 1 })[0]).toMatchObject({ ratioToApollo: 1.2, cpuRatioToApollo: 0.25 });
  });

  it('gives no ratio to a reference that measured zero (no Infinity, no NaN)', () => {
    const [ours] = withRatios([measured('ours', 1200, 10, 40, 0.6), measured('apollo', 1000, 12, 50, 0), measured('hive-router', 0, 15, 60, 1.5)]);
    expect(ours).toMatchObject({ ratioToApollo: 1.2, cpuRatioToApollo: null, ratioToHiveRouter: null, cpuRatioToHiveRouter: 0.4 });
  });
});

describe('checkGoals, the own executor’s goals (issue 20)', () => {
  const cpuToApollo = (scenario: ScenarioName) => `Gateway CPU per request, ${scenario}: this gateway / bare Apollo`;
  const cpuToRouter = (scenario: ScenarioName) => `Gateway CPU per request, ${scenario}: this gateway / hive-router`;
  const rpsToRouter = (scenario: ScenarioName) => `Uncached ${scenario}: this gateway / hive-router`;

  it.each([
    ['nested', 0.35],
    ['deep', 0.35],
    ['entity', 0.5],
    ['mix', 0.5],
  ] as const)('%s: gateway CPU per request at most %s× bare Apollo’s', (scenario, target) => {
    const at = (ours: number) => goal(checkGoals(report({ [scenario]: { ours: { rps: 1000, cpuMsPerRequest: ours }, apollo: { rps: 900, cpuMsPerRequest: 4 } } })), cpuToApollo(scenario));
    const met = at(4 * target);
    expect(met).toMatchObject({ met: true, target: `≤ ${target}×` });
    expect(met.measured).toBe(`${target.toFixed(2)}× (${(4 * target).toFixed(2)} vs 4.00 ms)`);
    expect(at(4 * target + 0.04).met).toBe(false);
    expect(at(4 * target + 0.04).measured).toMatch(new RegExp(`^${(target + 0.01).toFixed(2)}×`));
  });

  it.each(['nested', 'deep', 'entity', 'mix'] as const)('%s: gateway CPU per request at most 0.6× hive-router’s, and throughput at least 1× its', (scenario) => {
    const cpuAt = (ours: number) => goal(checkGoals(report({ [scenario]: { ours: { rps: 1000, cpuMsPerRequest: ours }, 'hive-router': { rps: 900, cpuMsPerRequest: 2 } } })), cpuToRouter(scenario));
    expect(cpuAt(1.2)).toMatchObject({ met: true, target: '≤ 0.6×', measured: '0.60× (1.20 vs 2.00 ms)' });
    expect(cpuAt(1.22).met).toBe(false);
    const rpsAt = (ours: number) => goal(checkGoals(report({ [scenario]: { ours: { rps: ours }, 'hive-router': { rps: 1000 } } })), rpsToRouter(scenario));
    expect(rpsAt(1000)).toMatchObject({ met: true, target: '≥ 1×', measured: '1.00× (1000 vs 1000 req/s)' });
    expect(rpsAt(999).met).toBe(false);
  });

  it('only where this gateway ran uncached: cache hits get none of them, and a scenario without hive-router gets only the bare Apollo one', () => {
    const goals = checkGoals(report({}));
    expect(hasGoal(goals, /cache-hit: this gateway/)).toBe(false);
    const withoutRouter = report();
    withoutRouter.scenarios = withoutRouter.scenarios.map((scenario) => (scenario.name === 'deep' ? { ...scenario, rows: scenario.rows.filter((r) => r.gateway !== 'hive-router') } : scenario));
    const partial = checkGoals(withoutRouter);
    expect(hasGoal(partial, cpuToApollo('deep'))).toBe(true);
    expect(hasGoal(partial, cpuToRouter('deep'))).toBe(false);
    expect(hasGoal(partial, rpsToRouter('deep'))).toBe(false);
    expect(hasGoal(partial, rpsToRouter('nested'))).toBe(true);
  });

  it('a reference that measured no CPU gives a missed goal that says n/a, not a met one', () => {
    const found = goal(checkGoals(report({ deep: { ours: { rps: 300, cpuMsPerRequest: 0.5 }, apollo: { rps: 100, cpuMsPerRequest: 0 } } })), cpuToApollo('deep'));
    expect(found.met).toBe(false);
    expect(found.measured).toMatch(/^n\/a/);
  });

  it('peak RSS of each of this gateway’s processes at most 310 MB (before the executor), beside the 400 MB goal', () => {
    const peakRssMb = { users: 900, orders: 950, ours: 310, 'ours-dedupe': 311, 'ours-cached': 250, apollo: 999, 'hive-router': 999 };
    const goals = checkGoals(report({}, { peakRssMb }));
    const executor = goals.filter((candidate) => candidate.goal.startsWith('Peak RSS') && candidate.target === '≤ 310 MB');
    expect(executor.map((candidate) => candidate.goal).sort()).toEqual(['Peak RSS, ours, with the own executor', 'Peak RSS, ours-cached, with the own executor', 'Peak RSS, ours-dedupe, with the own executor']);
    expect(goal(goals, 'Peak RSS, ours, with the own executor')).toMatchObject({ met: true, measured: '310 MB' });
    expect(goal(goals, 'Peak RSS, ours-dedupe, with the own executor')).toMatchObject({ met: false, measured: '311 MB' });
    // The earlier goal is still there, and still met at 311 MB.
    expect(goal(goals, 'Peak RSS, ours-dedupe')).toMatchObject({ met: true, target: '≤ 400 MB' });
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('renderMarkdown', () => {
  const partial = report({ nested: { ours: { rps: 1234.4 }, apollo: { rps: 1001.6 } } });
  const full = complete(partial);
  const markdown = renderMarkdown(full);

  it('states the machine: cores, CPU, Node version, load average at start and end, and the date', () => {
    const { machine } = full;
    const line = markdown.split('\n').find((candidate) => candidate.includes(' cores '));
    expect(line, 'a machine line').toBeDefined();
    expect(line).toContain(`${machine.cores} cores (${machine.cpu})`);
    expect(line).toContain(`Node ${machine.node}`);
    expect(line).toContain(`load average ${machine.loadAverageAtStart.join(' ')} at the start, ${machine.loadAverageAtEnd.join(' ')} at the end`);
    expect(markdown.split('\n')[0]).toBe(`# Gateway benchmark, ${full.date.slice(0, 10)}`);
  });

  it('has a row per gateway per scenario, with its median req/s, its ratio to bare Apollo and its latencies', () => {
    for (const scenario of full.scenarios) {
      const rows = tableUnder(markdown, scenario.title);
      expect(rows.map((cells) => cells[0])).toEqual(scenario.rows.map((r) => r.gateway));
      for (const [index, r] of scenario.rows.entries()) {
        const cells = rows[index]!;
        const times = (ratio: number | null) => (ratio === null ? '' : `${ratio.toFixed(2)}×`);
        expect(cells[1]).toBe(String(Math.round(r.rps)));
        expect(cells[2]).toBe(`${r.ratioToApollo!.toFixed(2)}×`);
        expect(cells[3]).toBe(times(r.ratioToHiveRouter));
        expect(cells[4]).toBe(r.p50Ms.toFixed(1));
        expect(cells[5]).toBe(r.p99Ms.toFixed(1));
        expect(cells[6]).toBe(r.cpuMsPerRequest.toFixed(2));
        expect(cells[7]).toBe(times(r.cpuRatioToApollo));
        expect(cells[8]).toBe(times(r.cpuRatioToHiveRouter));
      }
    }
    // The ratio is the report's own, not recomputed from rounded figures.
    const nested = tableUnder(markdown, full.scenarios[0]!.title);
    expect(nested.find((cells) => cells[0] === 'ours')![2]).toBe(`${(1234.4 / 1001.6).toFixed(2)}×`);
  });

  it('states the size of bare Apollo’s answer and sums up this gateway against bare Apollo and hive-router under each scenario', () => {
    const deep = full.scenarios.find((scenario) => scenario.name === 'deep')!;
    const section = markdown.split(/^## /m).find((candidate) => candidate.startsWith(`${deep.title}\n`))!;
    expect(section).toContain("Bare Apollo Gateway's answer: 100.0 KB of JSON per request (mean).");
    // Its runs were longer than the settings' 4 s; the other scenarios' were not, and say nothing.
    expect(section).toContain('Runs of 8 s in this scenario');
    expect(markdown.match(/Runs of \d+ s in this scenario/g)).toHaveLength(1);
    const ours = deep.rows.find((r) => r.gateway === 'ours')!;
    expect(section).toContain(
      `This gateway (\`ours\`): ${ours.ratioToApollo!.toFixed(2)}× bare Apollo's throughput at ${ours.cpuRatioToApollo!.toFixed(2)}× its gateway CPU per request; ${ours.ratioToHiveRouter!.toFixed(2)}× hive-router's throughput at ${ours.cpuRatioToHiveRouter!.toFixed(2)}× its gateway CPU per request.`,
    );
    // Cache hits have no `ours` row, hence no summary; a scenario without a measured size has no size line.
    const hits = markdown.split(/^## /m).find((candidate) => candidate.startsWith('Title of cache-hit\n'))!;
    expect(hits).not.toContain('This gateway (`ours`)');
    const unsized = complete(report());
    unsized.scenarios = unsized.scenarios.map((scenario) => ({ ...scenario, answerBytes: null }));
    expect(renderMarkdown(unsized)).not.toContain("Bare Apollo Gateway's answer");
  });

  it('under every scenario, a second table gives each gateway’s row the CPU per request of every process and their sum', () => {
    for (const scenario of full.scenarios) {
      const cpu = tablesUnder(markdown, scenario.title)[1]!;
      expect(cpu.map((cells) => cells[0])).toEqual(scenario.rows.map((r) => r.gateway));
      for (const [index, r] of scenario.rows.entries()) {
        const expected = PROCESSES.map((part) => r.cpuMsPerRequestOf[part]!);
        expect(cpu[index]!.slice(1)).toEqual([...expected.map((ms) => ms.toFixed(2)), expected.reduce((sum, ms) => sum + ms, 0).toFixed(2)]);
      }
    }
    // The columns are named, the gateway first.
    expect(markdown).toContain('| Gateway | gateway | users | orders | postgres | redis | all |');
  });

  it('shows each subgraph-only scenario: throughput and latencies per target, then the CPU per request of every process, the subgraph under load first', () => {
    const [scenario] = full.subgraphScenarios;
    const [row] = scenario!.rows;
    const [throughput, cpu] = tablesUnder(markdown, scenario!.title);
    expect(throughput).toEqual([['orders', '640', '70.0', '120.0']]);
    expect(markdown).toContain('| Target | orders | users | postgres | redis | all |');
    expect(cpu).toEqual([['orders', '1.50', '0.00', '0.40', '0.01', '1.91']]);
    expect(row!.cpuMsPerRequestOf.orders).toBe(1.5);
    expect(markdown).toContain("The subgraph's answer: 12.0 KB of JSON per request.");
  });

  it('a row without a ratio shows an empty ratio cell, not "null×"', () => {
    const withNull = complete(partial);
    withNull.scenarios[0]!.rows[0]!.ratioToApollo = null;
    const text = renderMarkdown(withNull);
    expect(text).not.toContain('null');
    expect(tableUnder(text, withNull.scenarios[0]!.title)[0]![2]).toBe('');
  });

  it('lists every goal with met or a bold no, the SQL counts, the fan-out runs and every process’s peak RSS', () => {
    const missed = complete(report({ nested: { ours: { rps: 500 }, apollo: { rps: 1000 } } }));
    const text = renderMarkdown(missed);
    const goals = tableUnder(text, 'Goals');
    expect(goals.map((cells) => cells[0])).toEqual(missed.goals.map((g) => g.goal));
    expect(goals.map((cells) => cells[3])).toEqual(missed.goals.map((g) => (g.met ? 'yes' : '**no**')));
    expect(goals.find((cells) => cells[0] === 'Uncached nested: this gateway / bare Apollo')![3]).toBe('**no**');
    expect(tableUnder(text, 'SQL statements per nested request (both subgraphs)')).toEqual(missed.sql.map(({ n, statementsPerRequest }) => [String(n), String(statementsPerRequest)]));
    const fanOut = tableUnder(text, 'Subscription fan-out (this gateway; bare Apollo Gateway cannot execute subscriptions)');
    expect(fanOut.map((cells) => Number(cells[0]))).toEqual(missed.subscriptions.map((run) => run.subscribers));
    expect(tableUnder(text, 'Peak RSS per process under the HTTP scenarios (50 connections)')).toEqual(Object.entries(missed.peakRssMb).map(([name, mb]) => [name, String(mb)]));
  });
});

describe('renderChart', () => {
  const full = complete(report({ nested: { ours: { rps: 1000, p99Ms: 30 }, 'ours-dedupe': { rps: 250, p99Ms: 90 }, apollo: { rps: 500, p99Ms: 45 } } }));

  it('the parser used here rejects what is not well-formed (so that the checks below can fail)', () => {
    expect(() => parseXml('<svg><rect></svg>')).toThrow(/closes/);
    expect(() => parseXml('<svg><text>a < b</text></svg>')).toThrow();
    expect(() => parseXml('<svg><text>R&D</text></svg>')).toThrow(/&/);
    expect(() => parseXml('<svg></svg><svg></svg>')).toThrow(/second root/);
    expect(() => parseXml('<svg><g>')).toThrow(/unclosed/);
    expect(textOf(parseXml('<svg><text>a &lt; b &amp; c</text></svg>'))).toBe('a < b & c');
  });

  it('is one well-formed <svg> element with finite, non-negative sizes on every <rect>', () => {
    const svg = renderChart(full);
    const root = parseXml(svg);
    expect(root.name).toBe('svg');
    expect(root.attributes.xmlns).toBe('http://www.w3.org/2000/svg');
    for (const size of ['width', 'height'] as const) {
      expect(Number(root.attributes[size])).toBeGreaterThan(0);
    }
    const rects = root.children.filter((child): child is XmlElement => typeof child !== 'string' && child.name === 'rect');
    // The background plus two bars (throughput, p99) per gateway per scenario.
    const bars = full.scenarios.reduce((total, scenario) => total + 2 * scenario.rows.length, 0);
    expect(rects).toHaveLength(1 + bars);
    for (const rect of rects) {
      for (const size of ['width', 'height'] as const) {
        const value = rect.attributes[size];
        expect(value, `${size} of ${JSON.stringify(rect.attributes)}`).toBeDefined();
        const number = value!.endsWith('%') ? Number(value!.slice(0, -1)) : Number(value);
        expect(Number.isFinite(number), `${size}="${value}"`).toBe(true);
        expect(number).toBeGreaterThanOrEqual(0);
      }
    }
    // Every bar lies inside the picture.
    for (const rect of rects.slice(1)) {
      expect(Number(rect.attributes.x) + Number(rect.attributes.width)).toBeLessThanOrEqual(Number(root.attributes.width));
      expect(Number(rect.attributes.y) + Number(rect.attributes.height)).toBeLessThanOrEqual(Number(root.attributes.height));
    }
  });

  it('labels every scenario and every gateway in it, and states the date, cores, Node version and load generator', () => {
    const root = parseXml(renderChart(full));
    const texts = root.children.filter((child): child is XmlElement => typeof child !== 'string' && child.name === 'text').map(textOf);
    for (const scenario of full.scenarios) {
      expect(texts).toContain(scenario.name);
      const at = texts.indexOf(scenario.name);
      const next = full.scenarios[full.scenarios.indexOf(scenario) + 1];
      const group = texts.slice(at, next ? texts.indexOf(next.name) : undefined);
      for (const r of scenario.rows) expect(group).toContain(r.gateway);
    }
    const caption = texts.at(-1)!;
    expect(caption).toContain(full.date.slice(0, 10));
    expect(caption).toContain(`${full.machine.cores} cores`);
    expect(caption).toContain(`Node ${full.machine.node}`);
    expect(caption).toContain(full.settings.loadGenerator);
  });

  it('escapes text: names with <, > and & stay well-formed and read back unchanged', () => {
    const odd = complete(report());
    odd.scenarios[0]!.name = 'a<b>&c' as ScenarioName;
    odd.settings.loadGenerator = 'wrk <patched> & co';
    const root = parseXml(renderChart(odd));
    const texts = root.children.filter((child): child is XmlElement => typeof child !== 'string' && child.name === 'text').map(textOf);
    expect(texts).toContain('a<b>&c');
    expect(texts.at(-1)).toContain('wrk <patched> & co');
  });

  it('bar lengths are proportional to the values, on each scenario’s own scale, with the value printed next to each', () => {
    const root = parseXml(renderChart(full));
    const elements = root.children.filter((child): child is XmlElement => typeof child !== 'string');
    const scenarioNames = new Set<string>(full.scenarios.map((scenario) => scenario.name));
    /** `scenario:gateway` → [throughput bar width, p99 bar width] */
    const widths = new Map<string, [number, number]>();
    let scenario: (typeof full.scenarios)[number] | undefined;
    for (const [index, element] of elements.entries()) {
      if (element.name !== 'text') continue;
      const label = textOf(element);
      if (scenarioNames.has(label) && element.attributes['font-weight'] === 'bold') {
        scenario = full.scenarios.find((candidate) => candidate.name === label);
        continue;
      }
      const r = scenario?.rows.find((candidate) => candidate.gateway === label);
      if (!scenario || !r) continue;
      // A gateway's label is followed by its throughput bar and value, then its p99 bar and value.
      const [rpsBar, rpsValue, p99Bar, p99Value] = elements.slice(index + 1, index + 5);
      expect([rpsBar?.name, rpsValue?.name, p99Bar?.name, p99Value?.name]).toEqual(['rect', 'text', 'rect', 'text']);
      expect(textOf(rpsValue!)).toBe(String(Math.round(r.rps)));
      expect(Number(textOf(p99Value!))).toBeCloseTo(r.p99Ms, 1);
      // Same row: both bars on the same line.
      expect(rpsBar!.attributes.y).toBe(p99Bar!.attributes.y);
      widths.set(`${scenario.name}:${r.gateway}`, [Number(rpsBar!.attributes.width), Number(p99Bar!.attributes.width)]);
    }
    expect(widths.size).toBe(full.scenarios.reduce((total, s) => total + s.rows.length, 0));
    // The longest bar of each panel is equally long in every scenario: each scenario has its own scale.
    const longest = (panel: 0 | 1) =>
      new Set(
        full.scenarios.map((s) => {
          const top = Math.max(...s.rows.map((r) => (panel === 0 ? r.rps : r.p99Ms)));
          return widths.get(`${s.name}:${s.rows.find((r) => (panel === 0 ? r.rps : r.p99Ms) === top)!.gateway}`)![panel];
        }),
      );
    expect(longest(0).size).toBe(1);
    expect(longest(1).size).toBe(1);
    const [rpsFull] = [...longest(0)];
    const [p99Full] = [...longest(1)];
    expect(rpsFull).toBeGreaterThan(100);
    expect(p99Full).toBeGreaterThan(100);
    for (const s of full.scenarios) {
      const maxRps = Math.max(...s.rows.map((r) => r.rps));
      const maxP99 = Math.max(...s.rows.map((r) => r.p99Ms));
      for (const r of s.rows) {
        const [rpsWidth, p99Width] = widths.get(`${s.name}:${r.gateway}`)!;
        // Widths are printed to 0.1 px.
        expect(Math.abs(rpsWidth - (rpsFull! * r.rps) / maxRps), `${s.name}/${r.gateway} throughput bar`).toBeLessThanOrEqual(0.051);
        expect(Math.abs(p99Width - (p99Full! * r.p99Ms) / maxP99), `${s.name}/${r.gateway} p99 bar`).toBeLessThanOrEqual(0.051);
      }
    }
    // In the nested scenario ours has 4× the throughput of ours-dedupe and a third of its p99: so are its bars.
    const [oursRps, oursP99] = widths.get('nested:ours')!;
    const [dedupeRps, dedupeP99] = widths.get('nested:ours-dedupe')!;
    expect(oursRps / dedupeRps).toBeCloseTo(4, 2);
    expect(dedupeP99 / oursP99).toBeCloseTo(3, 2);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Issue 22: @defer's first part against the complete query, and the fan-out over SSE beside graphql-ws.
// ---------------------------------------------------------------------------------------------------------------

const partsRun = (firstPartP50Ms: number, lastPartP50Ms: number, rps = 200) => ({
  requests: rps * 4,
  rps,
  firstPartP50Ms,
  firstPartP99Ms: firstPartP50Ms * 3,
  lastPartP50Ms,
  lastPartP99Ms: lastPartP50Ms * 3,
  gatewayCpuMsPerRequest: 2.5,
});

function deferReport(firstPartP50Ms: number, completeP50Ms: number): NonNullable<BenchReport['defer']> {
  const deferred = partsRun(firstPartP50Ms, completeP50Ms * 1.1);
  const complete = partsRun(completeP50Ms, completeP50Ms);
  return {
    gateway: 'ours',
    connections: 50,
    runs: 1,
    secondsPerRun: 4,
    query: 'query NestedDeferred { … }',
    firstPartBytes: 1536,
    completeBytes: 22_733,
    deferred,
    complete,
    firstPartToComplete: Number((firstPartP50Ms / completeP50Ms).toFixed(2)),
    deferredRuns: [{ ...deferred, seconds: 4 }],
    completeRuns: [{ ...complete, seconds: 4 }],
  };
}

const DEFER_GOAL = "Deferred nested: time to the first part p50 / the complete query's p50 (50 connections)";

describe('checkGoals and renderMarkdown, issue 22', () => {
  it('the first part’s median must be at most half the complete query’s; no defer run, no goal', () => {
    expect(goal(checkGoals(report({}, { defer: deferReport(50, 100) })), DEFER_GOAL)).toEqual({ goal: DEFER_GOAL, target: '≤ 0.5×', measured: '0.50× (50.0 vs 100.0 ms)', met: true });
    expect(goal(checkGoals(report({}, { defer: deferReport(51, 100) })), DEFER_GOAL)).toMatchObject({ met: false, measured: '0.51× (51.0 vs 100.0 ms)' });
    expect(goal(checkGoals(report({}, { defer: { ...deferReport(51, 0), firstPartToComplete: null } })), DEFER_GOAL)).toMatchObject({ met: false, measured: 'n/a (51.0 vs 0.0 ms)' });
    expect(hasGoal(checkGoals(report({}, { defer: null })), /Deferred/)).toBe(false);
    expect(hasGoal(checkGoals(report()), /Deferred/)).toBe(false);
  });

  it('the SSE fan-out has goals of its own (issue 22: p99 and memory at 10k), and leaves the websocket ones as they were', () => {
    const subscriptions = [
      { transport: 'graphql-ws' as const, subscribers: 1000, deliveries: 5000, p50Ms: 10, p99Ms: 40, kbPerSubscriber: 12 },
      { transport: 'sse' as const, subscribers: 1000, deliveries: 5000, p50Ms: 10, p99Ms: 60, kbPerSubscriber: 12 },
      { transport: 'graphql-ws' as const, subscribers: 10_000, deliveries: 50_000, p50Ms: 100, p99Ms: 300, kbPerSubscriber: 14.1 },
      { transport: 'sse' as const, subscribers: 10_000, deliveries: 50_000, p50Ms: 100, p99Ms: 101, kbPerSubscriber: 30 },
    ];
    const goals = checkGoals(report({}, { subscriptions }));
    expect(goal(goals, 'Subscription p99, 1k subscribers')).toMatchObject({ met: true, measured: '40 ms' });
    expect(goal(goals, 'SSE: Subscription p99, 10k subscribers')).toMatchObject({ met: false, measured: '101 ms', target: '≤ 100 ms' });
    expect(hasGoal(goals, /^SSE: Subscription p99, 1k/)).toBe(false);
    expect(goal(goals, 'Memory per subscriber, 10k subscribers')).toMatchObject({ met: true, measured: '14.1 KB' });
    expect(goal(goals, 'SSE: Memory per subscriber, 10k subscribers')).toMatchObject({ met: true, measured: '30.0 KB', target: '≤ 30 KB' });
    // A report from before SSE (no transport) is graphql-ws, and has no SSE goal.
    const old = checkGoals(report());
    expect(goal(old, 'Subscription p99, 1k subscribers').met).toBe(true);
    expect(hasGoal(old, /^SSE/)).toBe(false);
  });

  it('bench.md shows the defer run (first and last part of the deferred query, the complete one, the ratio) and the fan-out rows by transport', () => {
    const subscriptions = [
      { transport: 'graphql-ws' as const, subscribers: 1000, deliveries: 5000, p50Ms: 10, p99Ms: 40, kbPerSubscriber: 12 },
      { transport: 'sse' as const, subscribers: 1000, deliveries: 5000, p50Ms: 11, p99Ms: 45, kbPerSubscriber: 9.5 },
    ];
    const markdown = renderMarkdown(complete(report({}, { defer: deferReport(40, 160), subscriptions })));
    expect(tableUnder(markdown, '@defer: time to the first part of the nested query, its orders deferred (`ours`)')).toEqual([
      ['orders deferred', '200', '40.0', '120.0', '176.0', '528.0', '2.50'],
      ['complete', '200', '–', '–', '160.0', '480.0', '2.50'],
    ]);
    expect(markdown).toContain('The first part comes at 0.25× the complete answer\'s median (goal ≤ 0.5×).');
    expect(tableUnder(markdown, 'Goals').find((cells) => cells[0] === DEFER_GOAL)).toEqual([DEFER_GOAL, '≤ 0.5×', '0.25× (40.0 vs 160.0 ms)', 'yes']);
    expect(tableUnder(markdown, 'Subscription fan-out (this gateway; bare Apollo Gateway cannot execute subscriptions)')).toEqual([
      ['1000', 'graphql-ws', '5000', '10', '40', '12'],
      ['1000', 'sse', '5000', '11', '45', '9.5'],
    ]);
    // Without a defer run, no section.
    expect(renderMarkdown(complete(report()))).not.toContain('@defer');
  });
});
