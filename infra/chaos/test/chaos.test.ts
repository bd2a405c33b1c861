// The chaos suite: the product as separate processes (two gateways, two users replicas behind a balancer, orders)
// on a Redis and a Postgres of its own, with subscribers following users through both gateways and writers
// updating users and placing orders through both, while faults hit: Redis paused, blocked and restarted, Postgres
// restarted, a users replica and a gateway killed. It asserts what a client may rely on (README, "Durable events" and "Response
// cache"): no event lost, repeated or out of causal order, no stale read after an acknowledged write, no process
// dead; and it prints how long the system took to recover from each fault. Times are printed, never asserted.
import { randomBytes } from 'node:crypto';
import { mintToken } from '@fed/gateway';
import { DEVELOPMENT_AUTH } from '@fed/gateway/config';
import { freePort } from '@fed/platform/testing';
import { openDatabases } from '@fed/stack/databases';
import { seed } from '@fed/stack/seed';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyseStream, compareIds, summarise, type StreamFindings, type Write } from '../src/analysis.ts';
import { startBalancer, type Balancer } from '../src/balancer.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../src/postgres.ts';
import { startChaosRedis, type ChaosRedis } from '../src/redis.ts';
import { startService, type ServiceProcess } from '../src/services.ts';
import { subscribe, type Subscriber } from '../src/subscriber.ts';

const FOLLOWED = ['2', '3', '4', '5'];
const PROBE_USER = '6';
/** Quiet time before each fault, so that each recovery is measured from a healthy system. */
const CALM_MS = 3_000;
/**
 * A fault the system has not recovered from after this long counts as not recovered: a hang detector, far above
 * the second or two a recovery takes here, and small enough that six hung faults still end within CI's budget.
 */
const RECOVERY_BOUND_MS = 60_000;
const REQUEST_TIMEOUT_MS = 30_000;

const inherited = { PATH: process.env.PATH, HOME: process.env.HOME };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const secret = () => randomBytes(32).toString('base64url');

interface Answer<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

interface StaleRead {
  user: string;
  wrote: string;
  via: string;
  readVia: string;
  expected: string;
  got: string;
}

interface FaultResult {
  name: string;
  /** From injecting the fault to lifting it. */
  faultMs: number;
  /** From lifting it to the first probe that wrote through both gateways, read each write back through the other, and saw both events arrive; null if none did. */
  recoveryMs: number | null;
  lastProblem?: string;
  failedWrites: number;
}

interface Outcome {
  faults: FaultResult[];
  writes: Map<string, Write[]>;
  stale: StaleRead[];
  failedReads: string[];
  findings: StreamFindings[];
  subscribers: Subscriber[];
  deaths: string[];
  notRunning: string[];
  /** The suite's own failures (a writer that threw): the run is incomplete, whatever the counts say. */
  harnessErrors: string[];
  setupError?: string;
}

async function request<T>(url: string, authorization: string, query: string, variables: Record<string, unknown> = {}): Promise<Answer<T>> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await response.text();
    try {
      return JSON.parse(text) as Answer<T>;
    } catch {
      return { errors: [{ message: `HTTP ${response.status}: ${text.slice(0, 200)}` }] };
    }
  } catch (error) {
    return { errors: [{ message: `no answer: ${(error as Error).message}` }] };
  }
}

const problem = (answer: Answer<unknown>) => (answer.errors ? answer.errors.map((error) => `${error.extensions?.code ?? ''} ${error.message}`.trim()).join('; ') : undefined);

describe('chaos: two gateways, two users replicas, orders, subscribers and writes, through Redis, Postgres, replica and gateway faults', () => {
  let postgres: PrivatePostgres | undefined;
  let redis: ChaosRedis | undefined;
  let balancer: Balancer | undefined;
  const services: ServiceProcess[] = [];
  const outcome: Outcome = { faults: [], writes: new Map(), stale: [], failedReads: [], findings: [], subscribers: [], deaths: [], notRunning: [], harnessErrors: [] };

  beforeAll(async () => {
    try {
      await run();
    } catch (error) {
      outcome.setupError = (error as Error).stack ?? String(error);
    }
    report();
  });

  afterAll(async () => {
    for (const subscriber of outcome.subscribers) subscriber.stop();
    await Promise.all(services.map((service) => service.stop().catch(() => undefined)));
    await balancer?.close().catch(() => undefined);
    await redis?.stop().catch(() => undefined);
    await postgres?.stop().catch(() => undefined);
  });

  async function run() {
    postgres = await startPrivatePostgres({ binDir: process.env.PG_BINDIR });
    redis = await startChaosRedis();
    await postgres.createDatabase('users');
    await postgres.createDatabase('orders');
    const databases = await openDatabases({ users: { url: postgres.url('users') }, orders: { url: postgres.url('orders') } });
    try {
      await seed(databases, { users: 12, ordersPerUser: 1 });
    } finally {
      await databases.close();
    }

    const secrets = { users: secret(), orders: secret(), ordersToUsers: secret(), jwt: secret() };
    const shared = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'chaos:', USERS_SUBGRAPH_SECRET: secrets.users, ORDERS_SUBGRAPH_SECRET: secrets.orders, ORDERS_TO_USERS_SECRET: secrets.ordersToUsers };
    const users = await Promise.all([1, 2].map(async (replica) => {
      const port = await freePort();
      return startService({ inherited, name: `users-${replica}`, entry: 'subgraphs/users/src/index.ts', port, env: { ...shared, USERS_PORT: String(port), USERS_DATABASE_URL: postgres!.url('users') } });
    }));
    services.push(...users);
    balancer = await startBalancer(users.map((service) => service.url));
    const ordersPort = await freePort();
    const orders = await startService({
      inherited,
      name: 'orders',
      entry: 'subgraphs/orders/src/index.ts',
      port: ordersPort,
      env: { ...shared, ORDERS_PORT: String(ordersPort), ORDERS_DATABASE_URL: postgres.url('orders'), USERS_URL: balancer.url },
    });
    services.push(orders);
    const gateways = await Promise.all(['A', 'B'].map(async (name) => {
      const port = await freePort();
      return startService({
        inherited,
        name: `gateway-${name}`,
        entry: 'gateway/src/index.ts',
        port,
        env: {
          GATEWAY_PORT: String(port),
          HOST: '127.0.0.1',
          REDIS_URL: redis!.url,
          REDIS_KEY_PREFIX: 'chaos:',
          JWT_SECRET: secrets.jwt,
          SUBGRAPH_URLS: `users=${balancer!.url},orders=${orders.url}`,
          SUBGRAPH_SECRETS: `users=${secrets.users},orders=${secrets.orders}`,
          // Every writer, reader and subscriber signs in as one admin: the rate limit is not under test here.
          RATE_LIMIT_MAX: '1000000000',
        },
      });
    }));
    services.push(...gateways);
    const [gatewayA, gatewayB] = gateways as [ServiceProcess, ServiceProcess];
    const other = (gateway: ServiceProcess) => (gateway === gatewayA ? gatewayB : gatewayA);
    const authorization = `Bearer ${await mintToken({ ...DEVELOPMENT_AUTH, secret: secrets.jwt, sub: '1', role: 'admin' })}`;
    const ask = <T>(gateway: ServiceProcess, query: string, variables?: Record<string, unknown>) => request<T>(gateway.url, authorization, query, variables);
    const rename = (gateway: ServiceProcess, user: string, name: string) =>
      ask<{ updateUser: { id: string } }>(gateway, 'mutation ($id: ID!, $name: String!) { updateUser(id: $id, input: { name: $name }) { id } }', { id: user, name });
    const nameOf = (gateway: ServiceProcess, user: string) => ask<{ user: { name: string } | null }>(gateway, 'query ($id: ID!) { user(id: $id) { name } }', { id: user });

    // Two subscribers per followed user, one through each gateway; and two on the probe user.
    const follow = (user: string) =>
      gateways.map((gateway) => subscribe({ name: `user ${user} via ${gateway.name}`, url: gateway.url, authorization, userId: user }));
    const subscribers = FOLLOWED.flatMap(follow);
    const probes = follow(PROBE_USER);
    outcome.subscribers.push(...subscribers, ...probes);

    // Live once a write reaches every subscriber: a subscription without `after` starts at the newest event.
    const everyone = [...subscribers, ...probes];
    for (let round = 1; everyone.some((subscriber) => subscriber.received.length === 0); round += 1) {
      if (round > 300) throw new Error(`subscribers never all received an event: ${everyone.filter((s) => s.received.length === 0).map((s) => s.name).join(', ')}`);
      await Promise.all([...FOLLOWED, PROBE_USER].map((user) => rename(gatewayA, user, `warm-up ${round}`)));
      await sleep(500);
    }
    // Then quiet, so that no warm-up event is still on its way; what came so far is the baseline.
    let settledAt = everyone.reduce((sum, subscriber) => sum + subscriber.received.length, 0);
    for (;;) {
      await sleep(1_000);
      const now = everyone.reduce((sum, subscriber) => sum + subscriber.received.length, 0);
      if (now === settledAt) break;
      settledAt = now;
    }
    const baseline = new Map(FOLLOWED.map((user) => [user, subscribers.filter((s) => s.userId === user).flatMap((s) => s.received.map((event) => event.id)).sort(compareIds).at(-1)]));

    // The write load: one sequential writer per followed user, alternating updateUser and placeOrder and the
    // gateway, each acknowledged write read back at once through the other gateway.
    let running = true;
    let failedWrites = 0;
    const writers = FOLLOWED.map(async (user) => {
      const log: Write[] = [];
      outcome.writes.set(user, log);
      // What this user's latest acknowledged writes left; undefined once a write got no answer (it may or may not
      // have committed). This writer is the user's only one, so nothing else moves them meanwhile.
      let latest: { name?: string; order?: string; by: string } = { by: '' };
      for (let i = 0; running; i += 1) {
        const via = Math.floor(i / 2) % 2 === 0 ? gatewayA : gatewayB;
        const readVia = other(via);
        // Before each write, the last one read again through one gateway or the other: an entry cached before an
        // outage that missed the write's purge would answer here, after Redis is back.
        const again = i % 2 === 0 ? gatewayA : gatewayB;
        const read = await ask<{ user: { name: string; orders: { edges: { node: { id: string } }[] } | null } | null }>(again, 'query ($id: ID!) { user(id: $id) { name orders(first: 1) { edges { node { id } } } } }', { id: user });
        if (problem(read)) outcome.failedReads.push(`user ${user} via ${again.name} before write #${i}: ${problem(read)}`);
        else {
          const got = { name: read.data?.user?.name, order: read.data?.user?.orders?.edges[0]?.node.id };
          if (latest.name !== undefined && got.name !== latest.name) outcome.stale.push({ user, wrote: `${latest.by} (read again later)`, via: '', readVia: again.name, expected: latest.name, got: String(got.name) });
          if (latest.order !== undefined && got.order !== latest.order) outcome.stale.push({ user, wrote: `placeOrder → order ${latest.order} (read again later)`, via: '', readVia: again.name, expected: latest.order, got: String(got.order) });
        }
        if (i % 2 === 0) {
          const name = `chaos ${user} #${i}`;
          const answer = await rename(via, user, name);
          const error = problem(answer) ?? (answer.data?.updateUser ? undefined : 'no data');
          log.push({ userId: user, kind: 'USER_UPDATED', outcome: error ? 'unknown' : 'acked', gateway: via.name, ...(error && { error }) });
          latest = { ...latest, name: error ? undefined : name, by: `updateUser(name: "${name}") through ${via.name}` };
          if (error) failedWrites += 1;
          else await checkRead(user, `updateUser(name: "${name}")`, via, readVia, name, async () => {
            const read = await nameOf(readVia, user);
            return { error: problem(read), value: read.data?.user?.name };
          });
        } else {
          const answer = await ask<{ placeOrder: { id: string } }>(via, 'mutation ($u: ID!) { placeOrder(input: { userId: $u, items: [{ sku: "CHAOS", quantity: 1, unitPriceCents: 100 }] }) { id } }', { u: user });
          const orderId = answer.data?.placeOrder?.id;
          const error = problem(answer) ?? (orderId ? undefined : 'no data');
          log.push({ userId: user, kind: 'ORDER_PLACED', outcome: error ? 'unknown' : 'acked', gateway: via.name, ...(orderId && !error && { orderId }), ...(error && { error }) });
          latest = { ...latest, order: error ? undefined : orderId };
          if (error || !orderId) failedWrites += 1;
          else await checkRead(user, `placeOrder → order ${orderId}`, via, readVia, orderId, async () => {
            const read = await ask<{ user: { orders: { edges: { node: { id: string } }[] } | null } | null }>(readVia, 'query ($id: ID!) { user(id: $id) { orders(first: 1) { edges { node { id } } } } }', { id: user });
            return { error: problem(read), value: read.data?.user?.orders?.edges[0]?.node.id };
          });
        }
        await sleep(50);
      }
    }).map((writer, index) => writer.catch((error: unknown) => void outcome.harnessErrors.push(`the writer of user ${FOLLOWED[index]} stopped: ${(error as Error).stack ?? String(error)}`)));

    async function checkRead(user: string, wrote: string, via: ServiceProcess, readVia: ServiceProcess, expected: string, read: () => Promise<{ error?: string; value?: string }>) {
      const { error, value } = await read();
      if (error) outcome.failedReads.push(`user ${user} via ${readVia.name} after ${wrote}: ${error}`);
      else if (value !== expected) outcome.stale.push({ user, wrote, via: via.name, readVia: readVia.name, expected, got: String(value) });
    }

    // Healthy: a write through each gateway is acknowledged, read back through the other, and its event reaches
    // both probe subscribers.
    let probeRound = 0;
    const probe = async (): Promise<string | undefined> => {
      for (const via of gateways) {
        const name = `probe ${(probeRound += 1)}`;
        const before = probes.map((subscriber) => subscriber.received.length);
        const written = await rename(via, PROBE_USER, name);
        if (problem(written)) return `write via ${via.name}: ${problem(written)}`;
        const read = await nameOf(other(via), PROBE_USER);
        if (problem(read)) return `read via ${other(via).name}: ${problem(read)}`;
        if (read.data?.user?.name !== name) {
          outcome.stale.push({ user: PROBE_USER, wrote: `updateUser(name: "${name}") (probe)`, via: via.name, readVia: other(via).name, expected: name, got: String(read.data?.user?.name) });
          return `read via ${other(via).name} was stale`;
        }
        const deadline = Date.now() + 3_000;
        while (probes.some((subscriber, i) => subscriber.received.length <= before[i]!)) {
          if (Date.now() > deadline) return `the event of a write via ${via.name} did not reach ${probes.filter((subscriber, i) => subscriber.received.length <= before[i]!).map((s) => s.name).join(', ')}`;
          await sleep(20);
        }
      }
      return undefined;
    };

    const faults: { name: string; inject: () => Promise<void> }[] = [
      { name: 'Redis paused 3 s (CLIENT PAUSE ALL)', inject: () => redis!.pause(3_000) },
      { name: 'Redis blocked 2 s (DEBUG SLEEP)', inject: () => redis!.sleep(2_000) },
      { name: 'Redis killed, restarted 2 s later', inject: () => redis!.restart(2_000) },
      { name: 'Postgres restarted (pg_ctl restart -m fast)', inject: () => postgres!.restart() },
      {
        name: 'users-1 killed (SIGKILL), restarted 2 s later',
        inject: async () => {
          await users[0]!.kill();
          await sleep(2_000);
          await users[0]!.start();
        },
      },
      {
        // Its subscribers lose their sockets and resume with `after` through it once it is back: the README's recipe.
        name: 'gateway-B killed (SIGKILL), restarted 2 s later',
        inject: async () => {
          await gatewayB.kill();
          await sleep(2_000);
          await gatewayB.start();
        },
      },
    ];
    try {
      for (const fault of faults) {
        await sleep(CALM_MS);
        const failedBefore = failedWrites;
        const injected = Date.now();
        await fault.inject();
        const lifted = Date.now();
        let recoveryMs: number | null = null;
        let lastProblem: string | undefined;
        while (Date.now() - lifted < RECOVERY_BOUND_MS) {
          lastProblem = await probe();
          if (!lastProblem) {
            recoveryMs = Date.now() - lifted;
            break;
          }
          await sleep(100);
        }
        outcome.faults.push({ name: fault.name, faultMs: lifted - injected, recoveryMs, ...(recoveryMs === null && { lastProblem }), failedWrites: failedWrites - failedBefore });
      }
      await sleep(CALM_MS);
    } finally {
      running = false;
      await Promise.all(writers);
    }

    // Every acknowledged write's event may still be on its way: wait until none is missing, or give up and report.
    const analyse = () => subscribers.map((subscriber) => analyseStream(subscriber, outcome.writes.get(subscriber.userId) ?? [], baseline.get(subscriber.userId)));
    const deadline = Date.now() + RECOVERY_BOUND_MS;
    while (analyse().some((findings) => findings.lost.length > 0) && Date.now() < deadline) await sleep(250);
    outcome.findings = analyse();
    outcome.deaths = services.flatMap((service) => service.deaths);
    outcome.notRunning = services.filter((service) => service.pid() === undefined || !isRunning(service.pid()!)).map((service) => service.name);
  }

  function report() {
    const lines = ['', 'Chaos suite', '', '| Fault | fault lasted | recovered after | failed writes meanwhile |', '|---|---:|---:|---:|'];
    for (const fault of outcome.faults) {
      lines.push(`| ${fault.name} | ${fault.faultMs} ms | ${fault.recoveryMs === null ? `NOT within ${RECOVERY_BOUND_MS / 1000} s (${fault.lastProblem})` : `${fault.recoveryMs} ms`} | ${fault.failedWrites} |`);
    }
    const writes = [...outcome.writes.values()].flat();
    const sum = (pick: (findings: StreamFindings) => number) => outcome.findings.reduce((total, findings) => total + pick(findings), 0);
    lines.push(
      '',
      `writes: ${writes.filter((write) => write.outcome === 'acked').length} acknowledged, ${writes.filter((write) => write.outcome === 'unknown').length} failed or unanswered`,
      `events received by ${outcome.findings.length} subscribers: ${sum((findings) => findings.events)}; resubscriptions: ${outcome.subscribers.reduce((total, subscriber) => total + subscriber.resumes.length, 0)}`,
      `lost: ${sum((findings) => findings.lost.length)}, duplicated: ${sum((findings) => findings.duplicated.length)}, out of causal order: ${sum((findings) => findings.outOfOrder.length)}`,
      `stale reads after an acknowledged write: ${outcome.stale.length} (reads that failed outright: ${outcome.failedReads.length})`,
      `processes dead: ${outcome.deaths.length}${outcome.notRunning.length > 0 ? `; not running at the end: ${outcome.notRunning.join(', ')}` : ''}`,
      '',
    );
    // Failed reads are not asserted (a fault may refuse them), but their reasons say what the faults did.
    const reasons = new Map<string, number>();
    for (const failed of outcome.failedReads) {
      const reason = failed.replace(/^user \d+ via (\S+) [^:]*: /, '$1: ').replace(/\d+/g, 'N').slice(0, 160);
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    }
    for (const [reason, count] of [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 5)) lines.push(`  failed read ×${count}: ${reason}`);
    if (outcome.setupError) lines.push(`the run itself failed: ${outcome.setupError}`);
    for (const error of outcome.harnessErrors) lines.push(error);
    process.stdout.write(`${lines.join('\n')}\n`);
  }

  const details = (pick: (findings: StreamFindings) => string[]) =>
    summarise(outcome.findings.flatMap((findings) => pick(findings).map((line) => `${findings.subscriber}: ${line}`))).join('\n');

  it('ran the whole scenario: every fault injected, writes acknowledged through both gateways, events at every subscriber', () => {
    expect(outcome.setupError, outcome.setupError).toBeUndefined();
    expect(outcome.harnessErrors.join('\n')).toBe('');
    expect(outcome.faults).toHaveLength(6);
    const acked = [...outcome.writes.values()].flat().filter((write) => write.outcome === 'acked');
    expect(new Set(acked.map((write) => write.gateway))).toEqual(new Set(['gateway-A', 'gateway-B']));
    for (const findings of outcome.findings) expect(findings.events, findings.subscriber).toBeGreaterThan(0);
  });

  it('recovers from every fault: writes through both gateways, read back through the other, and their events delivered', () => {
    const unrecovered = outcome.faults.filter((fault) => fault.recoveryMs === null).map((fault) => `${fault.name}: still failing after ${RECOVERY_BOUND_MS / 1000} s: ${fault.lastProblem}`);
    expect(unrecovered.join('\n')).toBe('');
  });

  it('loses no event: every acknowledged write reaches every subscriber of its user', () => {
    expect(details((findings) => findings.lost)).toBe('');
  });

  it('duplicates no event: no subscriber gets one twice, across every resubscription', () => {
    expect(details((findings) => findings.duplicated)).toBe('');
  });

  it('keeps causal order: ids only grow, and an update acknowledged before an order is placed is announced before it', () => {
    expect(details((findings) => findings.outOfOrder)).toBe('');
  });

  it('serves no stale read: after an acknowledged write, the other gateway answers with it', () => {
    const lines = outcome.stale.map((read) => `user ${read.user}: ${read.wrote}${read.via && ` through ${read.via}`}, then ${read.readVia} answered ${read.got} instead of ${read.expected}`);
    expect(summarise(lines).join('\n')).toBe('');
  });

  it('leaves no process dead: every service exit was one the suite caused', () => {
    expect(outcome.deaths.map((death) => death.slice(0, 1_500)).join('\n\n')).toBe('');
    expect(outcome.notRunning).toEqual([]);
  });
});

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
