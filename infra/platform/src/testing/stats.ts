import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The middle value (the mean of the two middle ones for an even count): robust to one noisy run. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

// Asked once, on first use: not by every test process that imports the testing helpers.
let clockTicksPerSecond: number | undefined;
const ticksPerSecond = () => (clockTicksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()));

/** User plus system CPU time of a process so far, in ms (/proc/PID/stat fields 14 and 15; Linux). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond();
}

/** The value at percentile `p` of values sorted ascending (nearest rank); NaN for none. */
export const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
