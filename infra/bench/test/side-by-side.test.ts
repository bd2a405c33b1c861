import { describe, expect, it } from 'vitest';
import type { LoadResult } from '../src/load.ts';
import { sideBySideReport, sideBySideTables, type Side, type Target } from '../src/side-by-side.ts';

// Tables only read the sides' and targets' names: the processes behind them are never touched here.
const side = (name: string) => ({ name, watch: [] }) as unknown as Side;
const target = (scenario: string) => ({ scenario, title: `${scenario}, as titled` }) as unknown as Target;

const run = (rps: number, cpuMsPerRequestOf: Record<string, number>): LoadResult => ({
  rps,
  p50Ms: 1000 / rps,
  p99Ms: 4000 / rps,
  requests: rps * 5,
  seconds: 5,
  cpuMsPerRequest: cpuMsPerRequestOf.gateway ?? 0,
  cpuMsPerRequestOf,
});

const sides = [side('one Redis'), side('cluster')];
const targets = [target('cache-hit')];
const results = new Map([
  // Medians 200 and 100 out of runs given out of order.
  ['cache-hit:one Redis', [run(300, { gateway: 0.2, redis: 0.1 }), run(100, { gateway: 0.4, redis: 0.1 }), run(200, { gateway: 0.3, redis: 0.1 })]],
  ['cache-hit:cluster', [run(100, { gateway: 0.3, redis: 0.2, pgbouncer: 0.5 }), run(50, { gateway: 0.6, redis: 0.2, pgbouncer: 0.5 }), run(150, { gateway: 0.3, redis: 0.2, pgbouncer: 0.5 })]],
]);

describe('side-by-side tables', () => {
  const lines = sideBySideTables(sides, targets, results);
  const row = (label: string) => lines.find((line) => line.startsWith(`| ${label} |`))?.split('|').map((cell) => cell.trim()).slice(1, -1);

  it('gives every side its median and every other side its ratio to the first', () => {
    expect(lines).toContain('| | one Redis | cluster | cluster / one Redis |');
    expect(row('req/s')).toEqual(['req/s', '200', '100', '0.50×']);
    // Round by round: 100/300, 50/100, 150/200.
    expect(row('req/s, same round: median ratio')).toEqual(['req/s, same round: median ratio', '', '', '0.50×']);
    expect(row('CPU ms/req: gateway')).toEqual(['CPU ms/req: gateway', '0.300', '0.300', '1.00×']);
  });

  it('lists a part only one side runs after the usual ones, and sums every part', () => {
    const parts = lines.filter((line) => line.startsWith('| CPU ms/req')).map((line) => line.split('|')[1]!.trim());
    expect(parts).toEqual(['CPU ms/req: gateway', 'CPU ms/req: redis', 'CPU ms/req: pgbouncer', 'CPU ms/req: all']);
    expect(row('CPU ms/req: all')).toEqual(['CPU ms/req: all', '0.400', '1.000', '2.50×']);
  });

  it('reports the load average at the start and the end, and every run', () => {
    const report = sideBySideReport({ title: 'A title', summary: 'What ran.', began: { at: '2026-12-05T01:00:00.000Z', load: '1.00 2.00 3.00' } }, sides, targets, results);
    expect(report).toMatch(/^# A title\n\nWhat ran\.\n\nStarted 2026-12-05T01:00:00.000Z, load average 1.00 2.00 3.00; ended .+, load average [\d.]+ [\d.]+ [\d.]+ /);
    expect(report.match(/^run \d cache-hit \[/gm)).toHaveLength(6);
  });
});
