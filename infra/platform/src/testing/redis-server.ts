import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort } from './services.ts';
import { waitFor } from './wait.ts';

/** A Redis server of a test's own, so that stalling it never slows the tests that share the machine's Redis. */
export interface PrivateRedis {
  url: string;
  /**
   * Stalls every client for `ms` (CLIENT PAUSE ALL): their commands wait, connections stay up, exactly as a
   * Redis busy for that long (a fork, a slow script, a starved CPU) behaves. Resolves once the pause is set.
   */
  pause(ms: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedisServer(): Promise<PrivateRedis> {
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const url = `redis://127.0.0.1:${port}/0`;
  // Its own connection, outside whatever the pause stalls: it only ever sends the pause.
  const control = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  control.on('error', () => {});
  const stop = async () => {
    control.disconnect();
    server.kill('SIGKILL');
    await exited;
  };
  try {
    await waitFor(async () => {
      if (control.status !== 'ready') await control.connect();
      await control.ping();
    }, 10_000, 25);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    pause: async (ms) => {
      await control.call('CLIENT', 'PAUSE', String(ms), 'ALL');
    },
    stop,
  };
}
