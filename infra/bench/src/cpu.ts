import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { cpuMs } from '@fed/platform/testing';

/**
 * CPU time of one part of the system (a process, or a set of processes such as the Postgres backends of the bench
 * databases), sampled before and after a run. A sample is per pid, so that a process that appears during the run
 * (a pool opening another connection) counts from zero rather than from whatever it had before.
 */
export interface CpuWatch {
  name: string;
  sample(): Promise<Map<number, number>>;
}

/** The CPU `watch` spent between two of its samples, in ms; a pid gone by `after` is not counted (its last slice is lost). */
export function cpuBetween(before: ReadonlyMap<number, number>, after: ReadonlyMap<number, number>): number {
  let total = 0;
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0);
  return total;
}

const cpuOf = (pids: Iterable<number>) => {
  const sampled = new Map<number, number>();
  for (const pid of pids) {
    // A backend can end between the listing and the read.
    try {
      if (existsSync(`/proc/${pid}/stat`)) sampled.set(pid, cpuMs(pid));
    } catch {
      // it exited in between
    }
  }
  return sampled;
};

/** One process by pid: a gateway, a subgraph. */
export const processCpu = (name: string, pid: number): CpuWatch => ({ name, sample: async () => cpuOf([pid]) });

/**
 * Every Postgres backend connected to `databases` (pg_stat_activity), summed: the server's work for the
 * subgraphs, and nothing of the other databases on the same server. Postgres must run on this machine (its
 * backends' /proc entries are read). The monitoring connection goes to `adminUrl`'s database, so it is not counted.
 */
export function postgresBackendsCpu(adminUrl: string, databases: readonly string[]): CpuWatch & { close(): Promise<void> } {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  return {
    name: 'postgres',
    sample: async () => cpuOf((await sql<{ pid: number }[]>`select pid from pg_stat_activity where datname = any(${databases as string[]})`).map((row) => row.pid)),
    close: () => sql.end({ timeout: 1 }),
  };
}

/**
 * The Redis server process (its pid from INFO). Redis is shared with whatever else runs on this machine, so its
 * figure is an upper bound of the bench's share. Must run on this machine.
 */
export async function redisCpu(url: string): Promise<CpuWatch> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const pid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]);
    if (!Number.isInteger(pid) || !existsSync(`/proc/${pid}/stat`)) throw new Error(`Redis at ${url} is not a process of this machine (process_id ${pid})`);
    return processCpu('redis', pid);
  } finally {
    redis.disconnect();
  }
}
