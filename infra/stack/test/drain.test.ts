// Graceful drain of a real gateway process: SIGTERM while a load of queries runs against it. Readiness turns
// 503 first, then the listener stops accepting while the requests it accepted finish, websockets close with
// 1001, and the process exits 0. Also what readiness depends on: a subgraph's database, never Redis.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startRedisBehindProxies, waitFor, type RedisBehindProxies } from '@fed/platform/testing';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { seed } from '../src/seed.ts';
import { signedInAs, startTestStack, type TestStack } from './harness.ts';
import { startHttpFaultProxy, type HttpFaultProxy } from './http-proxy.ts';

const GATEWAY_DIR = fileURLToPath(new URL('../../../gateway', import.meta.url));
const RESULTS_DIR = fileURLToPath(new URL('../test-results', import.meta.url));

const DRAIN_DELAY_MS = 500;
const DRAIN_GRACE_MS = 10_000;
/** Every orders fetch takes at least this long, so requests are always in flight. */
const ORDERS_DELAY_MS = 150;
const LOOPS = 20;

const QUERY = `query DrainLoad {
  users(first: 10) { edges { node { id name orders(first: 5) { edges { node { id status totalCents items { sku quantity } } } } } } }
}`;

interface Nested {
  users: { edges: { node: { id: string; name: string; orders: { edges: { node: { id: string; items: unknown[] } }[] } | null } }[] };
}

interface LogLine {
  msg?: string;
  requestId?: string;
  path?: string;
  status?: number;
  aborted?: boolean;
  port?: number;
}

/** What one request of the load saw at the client. */
interface Outcome {
  id: string;
  startedAt: number;
  endedAt: number;
  /** A complete 200 with data and no errors. */
  ok: boolean;
  /** Set when there was a response at all. */
  status?: number;
  /** For failures: the error code, and whether any response (headers) had arrived before it. */
  failure?: { code: string; afterResponse: boolean };
  users?: number;
}

interface GatewayProcess {
  child: ChildProcess;
  url: string;
  port: number;
  lines: LogLine[];
  output(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** The standalone gateway (gateway/src/index.ts) as its own process; resolves once it logs that it listens. */
async function spawnGateway(env: Record<string, string>): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/index.ts'], {
    cwd: GATEWAY_DIR,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let pending = '';
  const lines: LogLine[] = [];
  child.stdout?.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    output += text;
    pending += text;
    const complete = pending.split('\n');
    pending = complete.pop() ?? '';
    for (const line of complete) {
      if (!line.startsWith('{')) continue;
      lines.push(JSON.parse(line) as LogLine);
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() })),
  );
  const port = await Promise.race([
    waitFor(() => {
      const ready = lines.find((line) => line.msg?.startsWith('gateway ready at'));
      if (!ready?.port) throw new Error('not listening yet');
      return ready.port;
    }, 60_000, 50),
    exit.then(({ code }) => {
      throw new Error(`the gateway exited with ${code}:\n${output}`);
    }),
  ]);
  return { child, url: `http://127.0.0.1:${port}/graphql`, port, lines, output: () => output, exit };
}

const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

const errorCode = (error: unknown): string => {
  const cause = (error as { cause?: { code?: unknown } }).cause;
  const code = cause?.code ?? (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : String(error);
};

/** One query of the load, told apart by its request id; never throws. */
async function send(url: string, id: string, headers: Record<string, string>): Promise<Outcome> {
  const startedAt = performance.now();
  let status: number | undefined;
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': id, ...headers },
      body: JSON.stringify({ query: QUERY }),
    });
    status = response.status;
    const body = (await response.json()) as { data?: Nested | null; errors?: unknown[] };
    const users = body.data?.users.edges;
    const ok = status === 200 && body.errors === undefined && users !== undefined && users.every((edge) => edge.node.orders !== null);
    return { id, startedAt, endedAt: performance.now(), ok, status, users: users?.length };
  } catch (error) {
    return { id, startedAt, endedAt: performance.now(), ok: false, status, failure: { code: errorCode(error), afterResponse: status !== undefined } };
  }
}

/** Whether a new TCP connection to the port is accepted right now. */
const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

interface ReadyzAnswer {
  at: number;
  status?: number;
  body?: { status: string; checks: Record<string, boolean> };
  refused?: boolean;
}

const readyz = async (base: string): Promise<ReadyzAnswer> => {
  const at = performance.now();
  try {
    const response = await fetch(new URL('/readyz', base));
    return { at, status: response.status, body: (await response.json()) as ReadyzAnswer['body'] };
  } catch {
    return { at, refused: true };
  }
};

describe('a gateway process drains on SIGTERM under load', () => {
  let stack: TestStack;
  let slowOrders: HttpFaultProxy;
  let redis: RedisBehindProxies;
  let gateway: GatewayProcess;
  let admin: Record<string, string>;
  const outcomes: Outcome[] = [];
  const readyzAfterSigterm: ReadyzAnswer[] = [];
  let sigtermAt = 0;
  /** The listener closed between the last connection it accepted and the first one refused. */
  let lastAcceptedAt = 0;
  let listenerClosedAt = 0;
  let exit: { code: number | null; signal: NodeJS.Signals | null; at: number };
  let wsClose: { code: number; reason: string } | undefined;
  let wsEvents = 0;
  let ws: Client | undefined;
  let figures: Record<string, unknown> = {};

  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 10, ordersPerUser: 5 });
    slowOrders = await startHttpFaultProxy(stack.urls.orders);
    redis = await startRedisBehindProxies();
    admin = await signedInAs('1000000', 'admin');
    gateway = await spawnGateway({
      NODE_ENV: 'test',
      APOLLO_TELEMETRY_DISABLED: '1',
      GATEWAY_PORT: '0',
      HOST: '127.0.0.1',
      SUBGRAPH_URLS: `users=${stack.urls.users},orders=${slowOrders.url}`,
      SUBGRAPH_SECRETS: `users=${stack.secrets.users},orders=${stack.secrets.orders}`,
      REDIS_URL: redis.url,
      DRAIN_DELAY_MS: String(DRAIN_DELAY_MS),
      DRAIN_GRACE_MS: String(DRAIN_GRACE_MS),
      // Every request must reach the subgraphs (no cached answers, and no fetch shared with the other loops': the
      // 20 identical queries would move in lockstep behind one slow orders call), and the load must not be rate
      // limited.
      RESPONSE_CACHE: 'off',
      SUBGRAPH_DEDUPE: 'off',
      RATE_LIMIT_MAX: '0',
      LOG_LEVEL: 'info',
    });
  });

  afterAll(async () => {
    await ws?.dispose();
    if (gateway && gateway.child.exitCode === null && gateway.child.signalCode === null) {
      gateway.child.kill('SIGKILL');
      await gateway.exit;
    }
    await slowOrders?.close();
    await redis?.stop();
    await stack?.teardown();
  });

  it('is ready while Redis is down: Redis never gates readiness', async () => {
    // Ready once the supergraph is loaded and both subgraphs answered its first probes.
    await waitFor(
      async () => expect(await readyz(gateway.url)).toMatchObject({ status: 200, body: { status: 'ready', checks: { supergraph: true, users: true, orders: true } } }),
      5_000,
      50,
    );

    const errorsBefore = gateway.lines.filter((line) => line.msg === 'redis error').length;
    await redis.setListening(false);
    // The gateway noticed: its Redis client reports the connection refused.
    await waitFor(() => expect(gateway.lines.filter((line) => line.msg === 'redis error').length).toBeGreaterThan(errorsBefore), 5_000);
    const during = await readyz(gateway.url);
    expect(during).toMatchObject({ status: 200, body: { status: 'ready' } });
    const answer = await send(gateway.url, 'redis-down', admin);
    expect(answer).toMatchObject({ ok: true, users: 10 });
    await redis.setListening(true);
  });

  it('runs the load, SIGTERMs the process mid-load, and keeps sending after', async () => {
    // A live subscription through the gateway: an event arrives before the drain starts.
    ws = createClient({
      url: gateway.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: admin,
      on: { closed: (event) => (wsClose = { code: (event as { code: number }).code, reason: (event as { reason: string }).reason }) },
    });
    ws.subscribe({ query: 'subscription { userEvents { kind } }' }, { next: () => (wsEvents += 1), error: () => {}, complete: () => {} });
    // Events published before the gateway's upstream subscription is open are lost: rename until one arrives.
    await waitFor(async () => {
      const renamed = await fetch(gateway.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...admin },
        body: JSON.stringify({ query: 'mutation { updateUser(id: "1", input: { name: "Before Drain" }) { id } }' }),
      });
      expect(renamed.status).toBe(200);
      await waitFor(() => expect(wsEvents).toBeGreaterThan(0), 1_000);
    }, 10_000, 100);

    slowOrders.setDelay(ORDERS_DELAY_MS);
    let sending = true;
    const loops = Array.from({ length: LOOPS }, async (_, loop) => {
      for (let n = 0; sending; n += 1) {
        const outcome = await send(gateway.url, `drain-${loop}-${n}`, admin);
        outcomes.push(outcome);
        // Once refused, do not spin: a client would back off too.
        if (outcome.failure) await sleep(20);
      }
    });
    try {
      // Under load, at least as many completed requests as the checks below need, however busy the machine is.
      await sleep(1_500);
      await waitFor(() => expect(outcomes.length).toBeGreaterThan(LOOPS * 3), 30_000, 20);
      sigtermAt = performance.now();
      gateway.child.kill('SIGTERM');

      // From the signal on: what /readyz says, and (from the kernel, whatever the process is busy with)
      // whether new connections are still accepted.
      const watchingListener = (async () => {
        while (listenerClosedAt === 0) {
          const probedAt = performance.now();
          if (await accepts(gateway.port)) lastAcceptedAt = probedAt;
          else listenerClosedAt = probedAt;
          await sleep(5);
        }
      })();
      const watchingReadyz = (async () => {
        while (listenerClosedAt === 0) {
          readyzAfterSigterm.push(await readyz(gateway.url));
          await sleep(10);
        }
      })();

      exit = await Promise.race([
        gateway.exit,
        sleep(DRAIN_DELAY_MS + DRAIN_GRACE_MS + 5_000).then(() => {
          throw new Error(`the gateway did not exit:\n${gateway.output().slice(-2_000)}`);
        }),
      ]);
      await Promise.all([watchingListener, watchingReadyz]);
      // Clients keep calling for a moment after the process is gone.
      await sleep(300);
    } finally {
      sending = false;
      await Promise.all(loops);
    }

    const accepted = new Map(
      gateway.lines.filter((line) => line.msg === 'request' && line.path === '/graphql' && line.requestId?.startsWith('drain-')).map((line) => [line.requestId, line]),
    );
    const inFlight = (at: number) => outcomes.filter((outcome) => outcome.startedAt < at && outcome.endedAt > at);
    const finishedAfterClose = outcomes.filter((outcome) => accepted.has(outcome.id) && outcome.endedAt > listenerClosedAt);
    figures = {
      loops: LOOPS,
      ordersDelayMs: ORDERS_DELAY_MS,
      drainDelayMs: DRAIN_DELAY_MS,
      drainGraceMs: DRAIN_GRACE_MS,
      requestsSent: outcomes.length,
      requestsCompleted: outcomes.filter((outcome) => outcome.ok).length,
      acceptedByGateway: accepted.size,
      inFlightAtSigterm: inFlight(sigtermAt).length,
      inFlightAtSigtermCompleted: inFlight(sigtermAt).filter((outcome) => outcome.ok).length,
      acceptedStillInFlightAtListenerClose: finishedAfterClose.length,
      acceptedStillInFlightAtListenerCloseCompleted: finishedAfterClose.filter((outcome) => outcome.ok).length,
      refusedAfterClose: outcomes.filter((outcome) => outcome.failure?.code === 'ECONNREFUSED').length,
      // Connections in the listen backlog when it closed are reset by the kernel: never accepted either.
      otherFailures: outcomes.filter((outcome) => outcome.failure && outcome.failure.code !== 'ECONNREFUSED').map((outcome) => outcome.failure?.code),
      acceptedButNotAnswered: outcomes.filter((outcome) => accepted.has(outcome.id) && !outcome.ok).map((outcome) => ({ ...outcome, line: accepted.get(outcome.id) })),
      readyzDrainingMsAfterSigterm: Math.round((readyzAfterSigterm.find((answer) => answer.body?.status === 'draining')?.at ?? Number.NaN) - sigtermAt),
      listenerClosedMsAfterSigterm: [Math.round(lastAcceptedAt - sigtermAt), Math.round(listenerClosedAt - sigtermAt)],
      drainDurationMs: Math.round(exit.at - sigtermAt),
      exitCode: exit.code,
      websocketCloseCode: wsClose?.code,
    };
    console.log('drain figures', JSON.stringify(figures, null, 2));
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(`${RESULTS_DIR}/drain.json`, `${JSON.stringify(figures, null, 2)}\n`);

    expect(outcomes.length).toBeGreaterThan(LOOPS * 3);
  });

  it('answered every request it accepted completely: 200, data from both subgraphs, no errors', () => {
    const accepted = gateway.lines.filter((line) => line.msg === 'request' && line.path === '/graphql' && line.requestId?.startsWith('drain-'));
    expect(accepted.length).toBeGreaterThan(LOOPS * 3);
    const byId = new Map(outcomes.map((outcome) => [outcome.id, outcome]));
    for (const line of accepted) {
      expect(line).toMatchObject({ status: 200 });
      expect(line.aborted).toBeUndefined();
      expect(byId.get(line.requestId ?? '')).toMatchObject({ ok: true, status: 200, users: 10 });
    }
    // And the other way round: each answer the clients got is in the access log, written before the exit.
    const logged = new Set(accepted.map((line) => line.requestId));
    for (const outcome of outcomes.filter((o) => o.ok)) expect(logged.has(outcome.id)).toBe(true);
  });

  it('failed only requests it never accepted, at the connection, before any response', () => {
    const logged = new Set(gateway.lines.filter((line) => line.msg === 'request').map((line) => line.requestId));
    const failed = outcomes.filter((outcome) => !outcome.ok);
    for (const outcome of failed) {
      expect(outcome.failure?.afterResponse).toBe(false);
      expect(CONNECTION_ERRORS).toContain(outcome.failure?.code);
      expect(logged.has(outcome.id)).toBe(false);
      // Nothing was refused or cut while the listener still accepted.
      expect(outcome.endedAt).toBeGreaterThan(lastAcceptedAt);
    }
    // Clients kept calling after the close, and were refused.
    expect(failed.filter((outcome) => outcome.failure?.code === 'ECONNREFUSED').length).toBeGreaterThan(0);
  });

  it('finished the requests in flight at the signal, and those still in flight when the listener closed', () => {
    // Accepted before the close (in the access log), answered after it.
    const logged = new Set(gateway.lines.filter((line) => line.msg === 'request').map((line) => line.requestId));
    const afterClose = outcomes.filter((outcome) => logged.has(outcome.id) && outcome.endedAt > listenerClosedAt);
    expect(afterClose.length).toBeGreaterThan(0);
    expect(afterClose.every((outcome) => outcome.ok)).toBe(true);
    const atSigterm = outcomes.filter((outcome) => outcome.startedAt < sigtermAt && outcome.endedAt > sigtermAt);
    expect(atSigterm.length).toBeGreaterThan(0);
    expect(atSigterm.every((outcome) => outcome.ok)).toBe(true);
  });

  it('said 503 draining on /readyz from the signal on, before the listener closed', () => {
    const draining = readyzAfterSigterm.filter((answer) => answer.status === 503 && answer.body?.status === 'draining');
    expect(draining.length).toBeGreaterThan(0);
    // Within the drain delay: load balancers see it while the listener still accepts.
    expect(draining[0]!.at - sigtermAt).toBeLessThan(DRAIN_DELAY_MS);
    expect(draining[0]!.at).toBeLessThan(listenerClosedAt);
    // Never ready again once it said draining.
    const first = readyzAfterSigterm.indexOf(draining[0]!);
    expect(readyzAfterSigterm.slice(first).filter((answer) => answer.status === 200)).toEqual([]);
    // The listener kept accepting through the drain delay.
    expect(listenerClosedAt - sigtermAt).toBeGreaterThanOrEqual(DRAIN_DELAY_MS);
  });

  it('closed the websocket with 1001 and exited 0 within the grace period', () => {
    expect(wsClose?.code).toBe(1001);
    expect(exit.signal).toBeNull();
    expect(exit.code).toBe(0);
    expect(exit.at - sigtermAt).toBeLessThan(DRAIN_DELAY_MS + DRAIN_GRACE_MS);
  });
});

describe('subgraph readiness follows its database', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.teardown());

  it('is 200 while Postgres answers, 503 when it is gone, and 200 again when it is back', async () => {
    const users = new URL(stack.urls.users);
    expect(await readyz(users.toString())).toMatchObject({ status: 200, body: { status: 'ready' } });

    await stack.proxies.users.setListening(false);
    const down = await readyz(users.toString());
    expect(down).toMatchObject({ status: 503 });
    // The other subgraph is not affected.
    expect(await readyz(stack.urls.orders)).toMatchObject({ status: 200 });

    await stack.proxies.users.setListening(true);
    await waitFor(async () => expect(await readyz(users.toString())).toMatchObject({ status: 200, body: { status: 'ready' } }), 5_000, 50);
  });
});
