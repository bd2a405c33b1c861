import { spawn } from 'node:child_process';
import postgres from 'postgres';
import { createTestDatabase, testPostgresUrl, testRedisUrl, type TestDatabase } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuBetween, postgresBackendsCpu, processCpu, redisCpu } from '../src/cpu.ts';

describe('cpuBetween', () => {
  it('sums what each pid spent; a pid that appeared counts from zero, one that went is not counted', () => {
    const before = new Map([
      [10, 100],
      [11, 50],
    ]);
    const after = new Map([
      [10, 130],
      [12, 20],
    ]);
    expect(cpuBetween(before, after)).toBe(30 + 20);
    expect(cpuBetween(after, after)).toBe(0);
  });
});

describe('processCpu', () => {
  it('reads a busy process’s CPU growing, and nothing for a process that has exited', async () => {
    const busy = spawn(process.execPath, ['-e', 'const end = Date.now() + 5000; while (Date.now() < end) {}'], { stdio: 'ignore' });
    try {
      const watch = processCpu('busy', busy.pid!);
      const before = await watch.sample();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(cpuBetween(before, await watch.sample())).toBeGreaterThan(0);
    } finally {
      busy.kill();
      await new Promise((resolve) => busy.once('exit', resolve));
    }
    expect((await processCpu('gone', busy.pid!).sample()).size).toBe(0);
  });
});

describe('postgresBackendsCpu', () => {
  let database: TestDatabase;
  let other: TestDatabase;
  beforeAll(async () => {
    [database, other] = await Promise.all([createTestDatabase('bench_cpu'), createTestDatabase('bench_cpu_other')]);
  });
  afterAll(async () => {
    await Promise.all([database.drop(), other.drop()]);
  });

  it('sums the backends connected to the databases named, and only those', async () => {
    const watched = postgres(database.url, { max: 1, onnotice: () => {} });
    const unwatched = postgres(other.url, { max: 1, onnotice: () => {} });
    const watch = postgresBackendsCpu(testPostgresUrl(), [database.name]);
    try {
      await Promise.all([watched`select 1`, unwatched`select 1`]);
      const before = await watch.sample();
      const [ours] = await watched<{ pid: number }[]>`select pg_backend_pid() as pid`;
      const [theirs] = await unwatched<{ pid: number }[]>`select pg_backend_pid() as pid`;
      expect([...before.keys()]).toEqual([ours!.pid]);
      // Work in both: only the watched database's backend's counts.
      const burn = 'select count(*) from generate_series(1, 3000000)';
      await Promise.all([watched.unsafe(burn), unwatched.unsafe(burn)]);
      const after = await watch.sample();
      expect([...after.keys()]).not.toContain(theirs!.pid);
      expect(cpuBetween(before, after)).toBeGreaterThan(0);
    } finally {
      await Promise.all([watched.end({ timeout: 1 }), unwatched.end({ timeout: 1 }), watch.close()]);
    }
  });
});

describe('redisCpu', () => {
  it('watches the Redis server process of this machine', async () => {
    const watch = await redisCpu(testRedisUrl());
    expect(watch.name).toBe('redis');
    const [[pid, ms]] = [...(await watch.sample())] as [[number, number]];
    expect(pid).toBeGreaterThan(1);
    expect(ms).toBeGreaterThanOrEqual(0);
  });
});
