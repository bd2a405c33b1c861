import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

/**
 * Polls `check` until it stops throwing (an `expect` inside it), or fails with its last error after `timeoutMs`.
 * Used instead of fixed sleeps: it returns as soon as the condition holds.
 */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 2_000, intervalMs = 5): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}

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

export interface TcpProxy {
  /** A URL like `target`, pointing at the proxy instead. */
  url: string;
  /** While down, the proxy accepts connections and closes them at once, like a service that is not there. */
  setUp(up: boolean): void;
  /** Cuts every open connection, like a server restart. */
  dropConnections(): void;
  close(): Promise<void>;
}

/** A loopback TCP proxy in front of a service, so a test can take the service "down" without touching it. */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const targetUrl = new URL(target);
  const sockets = new Set<Socket>();
  let up = true;
  const server = createServer((client) => {
    if (!up) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(targetUrl.port), targetUrl.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxyUrl = new URL(targetUrl);
  proxyUrl.hostname = '127.0.0.1';
  proxyUrl.port = String((server.address() as AddressInfo).port);
  const dropConnections = () => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    url: proxyUrl.toString(),
    setUp: (value) => {
      up = value;
    },
    dropConnections,
    close: async () => {
      dropConnections();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
