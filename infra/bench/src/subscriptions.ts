import { Agent, request as httpRequest } from 'node:http';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { cpuMs, percentile } from '@fed/platform/testing';
import { rssMb, type BenchProcess } from './processes.ts';
import { SseReader } from './sse.ts';
import { sleep, until } from './wait.ts';

// Fields from both subgraphs: every event is completed by an _entities fetch to users and one to orders.
const SUBSCRIPTION = 'subscription { userEvents(userId: "1") { kind occurredAt user { name orders(first: 3) { totalCount } } } }';

export interface FanOut {
  /** graphql-ws (absent in reports from before SSE was measured) or SSE. */
  transport?: Transport;
  subscribers: number;
  deliveries: number;
  /** Commit (the event's `occurredAt`, stamped by the subgraph) → the client has it; same machine, same clock. */
  p50Ms: number;
  p99Ms: number;
  /** The fastest delivery: the way from commit to the gateway and back out, with no queue of clients before it. */
  minMs?: number;
  /**
   * CPU per event while the events were measured: the gateway's, and the subscribers' (this process, which reads
   * every client's socket). On a 2-core machine the two share the cores, so either can be what the p99 waits on.
   */
  gatewayCpuMsPerEvent?: number;
  clientCpuMsPerEvent?: number;
  /** The gateway's RSS growth with every subscriber connected and idle, per subscriber. */
  kbPerSubscriber: number;
}

// Bounds that catch a hang, not a slow machine: 10 000 handshakes on a busy 2-core machine take a while.
const LIVE_BOUND_MS = 300_000;

/** How the subscribers reach the gateway: graphql-ws sockets, or graphql-sse (distinct connections). */
export type Transport = 'graphql-ws' | 'sse';

/** One subscriber, as a transport opens it: it reports each result, its failure, and when it is live. */
type Subscribe = (handlers: { next: (result: { data?: Record<string, unknown> | null }) => void; fail: (reason: string) => void; connected: () => void }) => {
  dispose(): Promise<void> | void;
};

/** A graphql-ws client on its own socket. */
const overWebSocket =
  (gateway: BenchProcess, authorization: string): Subscribe =>
  ({ next, fail, connected }) => {
    const client: Client = createClient({
      url: gateway.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      lazy: false,
      connectionParams: { authorization },
      // A socket refused or closed before any subscription: counted, so that the run fails saying why.
      onNonLazyError: (error) => fail(closeReason(error)),
    });
    client.on('connected', connected);
    client.subscribe({ query: SUBSCRIPTION }, { next, error: (error) => fail(closeReason(error)), complete: () => {} });
    return { dispose: () => client.dispose() };
  };

/**
 * A graphql-sse client in distinct-connections mode: `POST /graphql` with `Accept: text/event-stream` on a
 * connection of its own (no keep-alive, no pooling), reading `event: next` until it is disposed.
 */
const overServerSentEvents = (gateway: BenchProcess, authorization: string): Subscribe => {
  const url = new URL(gateway.url);
  // One socket per subscriber, never reused: the stream holds it for as long as the subscription lives.
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const body = JSON.stringify({ query: SUBSCRIPTION });
  return ({ next, fail, connected }) => {
    let disposed = false;
    const req = httpRequest(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization, 'content-length': Buffer.byteLength(body) } }, (res) => {
      const type = res.headers['content-type'] ?? '';
      if (res.statusCode !== 200 || !type.startsWith('text/event-stream')) {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.once('end', () => fail(`the stream was answered ${res.statusCode} (${type}): ${text.slice(0, 200)}`));
        return;
      }
      connected();
      const reader = new SseReader();
      res.on('data', (chunk: Buffer) => {
        for (const event of reader.push(chunk)) {
          if (event.event === 'next') next(JSON.parse(event.data) as { data?: Record<string, unknown> | null });
          else if (event.event === 'complete') fail('the server completed the subscription');
        }
      });
      res.once('end', () => !disposed && fail('the server ended the stream'));
      res.once('error', (error) => !disposed && fail(`stream error: ${error.message}`));
    });
    req.once('error', (error) => !disposed && fail(`stream error: ${error.message}`));
    req.end(body);
    return {
      dispose: () => {
        disposed = true;
        req.destroy();
      },
    };
  };
};

/**
 * `size` clients over `transport`, each on its own connection, follow user 1's events through `gateway`; `events`
 * writes through the gateway, 200 ms apart, are each timed at every subscriber.
 */
export async function fanOut(gateway: BenchProcess, authorization: string, size: number, events: number, log: (line: string) => void, transport: Transport = 'graphql-ws'): Promise<FanOut> {
  let writes = 0;
  const write = async () => {
    const response = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization },
      body: JSON.stringify({ query: `mutation { updateUser(id: "1", input: { name: "Fan-out ${++writes}" }) { id } }` }),
    });
    if (!response.ok) throw new Error(`the write answered ${response.status}`);
  };
  const subscribe = transport === 'sse' ? overServerSentEvents(gateway, authorization) : overWebSocket(gateway, authorization);
  await sleep(500);
  const before = rssMb(gateway.pid);
  const subscribers: ReturnType<Subscribe>[] = [];
  const received = new Array<number>(size).fill(0);
  const latencies: number[] = [];
  let measuring = false;
  const failures: string[] = [];
  let connected = 0;
  try {
    for (let i = 0; i < size; i += 1) {
      subscribers.push(
        subscribe({
          next: (result) => {
            received[i] = (received[i] ?? 0) + 1;
            const occurredAt = (result.data?.userEvents as { occurredAt?: string } | undefined)?.occurredAt;
            if (measuring && occurredAt) latencies.push(Date.now() - Date.parse(occurredAt));
          },
          fail: (reason) => failures.push(reason),
          connected: () => (connected += 1),
        }),
      );
      // Paced handshakes: a burst of 10 000 at once measures the accept queue, not the gateway (past its backlog
      // the kernel resets connections). Each batch of 200 is acknowledged, or has failed, before the next opens.
      if (i % 200 === 199) await until(() => connected + failures.length > i, 'the handshakes', LIVE_BOUND_MS);
    }
    // Every subscriber is live once a probe write reaches all of them.
    const deadline = Date.now() + LIVE_BOUND_MS;
    for (;;) {
      if (failures.length > 0) throw new Error(`${failures.length} ${transport} subscribers failed, e.g. ${failures[0]}`);
      await write();
      try {
        await until(() => received.every((count) => count > 0), 'the probe event', 3_000);
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
      }
    }
    await sleep(1_000);
    const idle = rssMb(gateway.pid);
    log(`  ${size} ${transport} subscribers live; gateway RSS ${before} → ${idle} MB`);
    measuring = true;
    const cpuBefore = { gateway: cpuMs(gateway.pid), client: process.cpuUsage() };
    const target = received.map((count) => count + events);
    for (let e = 0; e < events; e += 1) {
      await write();
      await sleep(200);
    }
    await until(() => received.every((count, i) => count >= target[i]!), 'every event at every subscriber', LIVE_BOUND_MS);
    measuring = false;
    const client = process.cpuUsage(cpuBefore.client);
    const gatewayCpuMsPerEvent = Number(((cpuMs(gateway.pid) - cpuBefore.gateway) / events).toFixed(1));
    const clientCpuMsPerEvent = Number(((client.user + client.system) / 1000 / events).toFixed(1));
    if (failures.length > 0) throw new Error(`${failures.length} ${transport} subscribers failed, e.g. ${failures[0]}`);
    latencies.sort((a, b) => a - b);
    return {
      transport,
      subscribers: size,
      deliveries: latencies.length,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      minMs: latencies[0] ?? NaN,
      gatewayCpuMsPerEvent,
      clientCpuMsPerEvent,
      kbPerSubscriber: Number((((idle - before) * 1024) / size).toFixed(1)),
    };
  } finally {
    await Promise.all(subscribers.map((subscriber) => subscriber.dispose()));
  }
}

/** A readable reason for a graphql-ws failure: an Error's message, or a close event's code and reason. */
function closeReason(error: unknown): string {
  if (error instanceof Error) return error.message;
  const close = error as { code?: unknown; reason?: unknown };
  if (typeof close?.code === 'number') return `socket closed ${close.code}${close.reason ? `: ${String(close.reason)}` : ''}`;
  // A refused subscribe: graphql-ws hands over the server's errors as they came.
  if (Array.isArray(error)) return error.map((each: { message?: unknown; extensions?: { code?: unknown } }) => `${String(each.extensions?.code)}: ${String(each.message)}`).join('; ');
  // The socket's own failure (an ErrorEvent: a reset, a refused connection).
  const failed = error as { message?: unknown; error?: unknown };
  if (typeof failed?.message === 'string') return `socket error: ${failed.message}`;
  if (failed?.error instanceof Error) return `socket error: ${failed.error.message}`;
  return JSON.stringify(error) ?? String(error);
}
