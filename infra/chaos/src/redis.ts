import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, waitFor } from '@fed/platform/testing';

/**
 * A Redis server of the suite's own, on a free port: pausing or restarting it never touches the machine's Redis at
 * 6379, which other suites use. It keeps an append-only file synced on every write, as production should run it
 * (the README: "Redis must keep its data"), so a restart loses nothing.
 */
export interface ChaosRedis {
  url: string;
  /** CLIENT PAUSE ALL: every client's commands wait `ms`, connections stay up. Resolves when the pause ends. */
  pause(ms: number): Promise<void>;
  /** DEBUG SLEEP: the server itself blocks for `ms`, answering nothing. Resolves when it answers again. */
  sleep(ms: number): Promise<void>;
  /** SIGKILL, `downMs` with nothing listening, then the same server on the same port and files. Resolves once it answers. */
  restart(downMs: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startChaosRedis(): Promise<ChaosRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'chaos-redis-'));
  const url = `redis://127.0.0.1:${port}/0`;
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir, '--enable-debug-command', 'yes'];
  let server: ChildProcess | undefined;
  const launch = async () => {
    server = spawn('redis-server', args, { stdio: 'ignore' });
    await waitFor(async () => {
      const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => {});
      try {
        await probe.connect();
        await probe.ping();
      } finally {
        probe.disconnect();
      }
    }, 30_000, 25);
  };
  const kill = async () => {
    const current = server;
    if (!current || current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise((resolve) => current.once('exit', resolve));
    current.kill('SIGKILL');
    await exited;
  };
  /** A connection of its own for each command: a paused or sleeping server stalls only that one. */
  const command = async (...argv: string[]) => {
    const control = new Redis(url, { maxRetriesPerRequest: 0, commandTimeout: 120_000 });
    control.on('error', () => {});
    try {
      await control.call(argv[0]!, ...argv.slice(1));
    } finally {
      control.disconnect();
    }
  };
  await launch();
  return {
    url,
    pause: async (ms) => {
      await command('CLIENT', 'PAUSE', String(ms), 'ALL');
      await new Promise((resolve) => setTimeout(resolve, ms));
    },
    sleep: (ms) => command('DEBUG', 'SLEEP', String(ms / 1000)),
    restart: async (downMs) => {
      await kill();
      await new Promise((resolve) => setTimeout(resolve, downMs));
      await launch();
    },
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
