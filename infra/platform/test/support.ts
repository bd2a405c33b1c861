import { randomUUID } from 'node:crypto';
import type { DomainEvent } from '../src/events/index.ts';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export { waitFor } from '../src/testing/wait.ts';
export { deleteRedisKeys } from '../src/testing/services.ts';

/** Times one call, so a test can bound how long a degraded dependency makes a caller wait. */
export async function timed<T>(call: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await call();
  return { value, ms: performance.now() - started };
}

export interface CapturedLog {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A real pino logger whose output lands in memory as parsed JSON lines. */
export function captureLogger(): { logger: Logger; lines: CapturedLog[] } {
  const lines: CapturedLog[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line) as CapturedLog);
      }
      callback();
    },
  });
  return { logger: pino({ level: 'trace' }, stream), lines };
}

export { startTcpProxy, type TcpProxy } from '../src/testing/tcp-proxy.ts';

/** A committed change of one user, as the users subgraph announces it: for tests that only need some event. */
export const userEvent = (userId: string): DomainEvent => ({
  id: randomUUID(),
  kind: 'USER_UPDATED',
  userId,
  occurredAt: new Date().toISOString(),
  source: 'users',
  changed: [`User:${userId}`],
});
