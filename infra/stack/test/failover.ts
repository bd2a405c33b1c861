// Issue 25's failover scenario, shared by the failover tests (redis-failover.test.ts) and the by-hand measurement
// of the asynchronous-replication window (replication-loss.ts): the stack on a Redis that replicates, a write load
// through the gateway (updateUser and placeOrder by turns, one writer per user) with resuming subscribers on those
// users, and the primary holding the event stream killed with SIGKILL. It measures; the callers judge.
import { createLogger, createRedisClient, RedisEventStream, slotOf, waitForRedis, type RedisClient, type RedisNode, type Retention } from '@fed/platform';
import { startRedisCluster, startRedisSentinel, waitFor, type PrivateRedisCluster, type PrivateRedisSentinel } from '@fed/platform/testing';
import { sql } from 'drizzle-orm';
import { analyseStream, type StreamFindings, type Write } from '../../chaos/src/analysis.ts';
import { subscribe, type Received, type Subscriber } from '../../chaos/src/subscriber.ts';
import { seed } from '../src/seed.ts';
import { signedInAs, socketClient, startTestStack, type TestStack } from './harness.ts';

const FOLLOWED = ['2', '3', '4', '5'];
const PROBE_USER = '6';
/** Acknowledged writes each writer makes before the crash, and again once the stack has recovered. */
const WRITES_PER_PHASE = 4;
const WRITE_PAUSE_MS = 20;

const UPDATE = 'mutation ($id: ID!, $name: String!) { updateUser(id: $id, input: { name: $name }) { id } }';
const PLACE = 'mutation ($userId: ID!) { placeOrder(input: { userId: $userId, items: [{ sku: "F", quantity: 1, unitPriceCents: 1 }] }) { id } }';
const FOLLOW = 'subscription ($userId: ID!, $after: ID) { userEvents(userId: $userId, after: $after) { id kind order { id } user { name } } }';

export interface Failure {
  code: string | undefined;
  message: string;
}

export interface Figures {
  scenario: string;
  writes: { sent: number; acknowledged: number; failed: number; failedByCode: Record<string, number>; slowestMs: number };
  /** New subscriptions refused while the stream was away (the probe's), by code. */
  subscriptionsRefused: Record<string, number>;
  /** From the kill to the replica's promotion (as the Sentinels or the cluster report it). */
  promotedAfterMs: number;
  /** From the kill to the first write through the gateway whose event a new subscription heard. */
  recoveredAfterMs: number;
  /** Per followed user, live and replayed: events lost, repeated, reordered. */
  users: { user: string; live: [number, number, number]; replay: [number, number, number]; resumes: number }[];
}

/** Where the crash lands and how promotion is told; the rest of the scenario is the same on both set-ups. */
export interface Topology {
  name: string;
  url: string;
  /**
   * Kills the primary that holds the event stream; resolves with it once its process is gone. `ackedWrites` counts
   * the writes acknowledged so far, for a crash that waits for some first.
   */
  crashStreamPrimary(load: { ackedWrites(): number }): Promise<RedisNode>;
  /** Throws until a node other than `crashed` serves the stream as a primary. */
  promoted(crashed: RedisNode): Promise<void>;
  stop(): Promise<void>;
}

/** Throws `message` unless `condition` holds: what waitFor retries on. */
const check = (condition: boolean, message: string) => {
  if (!condition) throw new Error(message);
};
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const tally = (codes: readonly string[]) => {
  const counts: Record<string, number> = {};
  for (const code of codes) counts[code] = (counts[code] ?? 0) + 1;
  return counts;
};
const count = (findings: StreamFindings): [number, number, number] => [findings.lost.length, findings.duplicated.length, findings.outOfOrder.length];

export async function sentinelTopology(): Promise<Topology> {
  const sentinel: PrivateRedisSentinel = await startRedisSentinel();
  return {
    name: 'Sentinel (1 primary, 2 replicas, 3 sentinels)',
    url: sentinel.url,
    crashStreamPrimary: async () => {
      const primary = await sentinel.currentPrimary();
      await sentinel.crash(primary);
      return primary;
    },
    promoted: async (crashed) => {
      const now = await sentinel.currentPrimary();
      if (now.port === crashed.port) throw new Error(`the Sentinels still name ${crashed.port}`);
    },
    stop: () => sentinel.stop(),
  };
}

export async function clusterTopology(): Promise<Topology> {
  const cluster: PrivateRedisCluster = await startRedisCluster();
  // Every stream key carries the {events} hash tag on a cluster, whatever the prefix.
  const slot = slotOf('{events}');
  return {
    name: 'Redis Cluster (3 primaries, 3 replicas), the stream primary killed',
    url: cluster.url,
    crashStreamPrimary: async () => {
      const primary = await cluster.primaryOf(slot);
      await cluster.crash(primary);
      return primary;
    },
    promoted: async (crashed) => {
      const survivor = cluster.nodes.find((node) => node.port !== crashed.port) as RedisNode;
      const now = await cluster.primaryOf(slot, survivor);
      if (now.port === crashed.port) throw new Error(`slot ${slot} is still served by ${crashed.port}`);
    },
    stop: () => cluster.stop(),
  };
}

/** Any hint of where the services run: a failed request must say what failed, never where. */
export const LEAK = /127\.0\.0\.1|localhost|redis:\/\/|redis\+|sentinel|:\d{4,5}\b/i;

export interface FailoverOutcome {
  figures: Figures;
  /** Events lost, repeated or out of order, one line each, live and replayed. */
  problems: string[];
  /** Errors of the load's writes that failed. */
  failures: Failure[];
  /** Codes new subscriptions were refused with while the stream was away. */
  probeRefusals: string[];
  /** Events each followed user's subscriber received during the load. */
  eventsHeard: number[];
}

export interface FailoverStack {
  stack: TestStack;
  /** Runs the scenario once: load, crash, recovery, settling, analysis. */
  run(): Promise<FailoverOutcome>;
  teardown(): Promise<void>;
}

/**
 * The stack on `topology`, seeded with the followed users and the probe user. `retention` adds to the stream's
 * settings (a replica wait, partitions).
 */
export async function startFailoverStack(topology: Topology, retention: Partial<Retention> = {}): Promise<FailoverStack> {
  const stack = await startTestStack({
    redisUrl: topology.url,
    // The load sends far more than the default 600 a minute from one address; the limiter still runs on Redis.
    gateway: { rateLimit: { limit: 1_000_000, windowMs: 60_000 } },
    // The load's events stay in the replay window whatever it ends up writing.
    retention: { perUser: 100_000, log: 1_000_000, ...retention },
  });
  const streamReader: RedisClient = createRedisClient(topology.url, { patient: true });
  streamReader.on('error', () => {});
  try {
    await seed(stack.databases, { users: 6, ordersPerUser: 0 });
    await waitForRedis(streamReader, 30_000);
  } catch (error) {
    streamReader.disconnect();
    await stack.teardown();
    throw error;
  }
  const subscribers: Subscriber[] = [];
  // A run that fails mid-load must not leave its writers hammering a stack that is being torn down.
  const state = { writing: false };

  const run = async (): Promise<FailoverOutcome> => {
    const writes = new Map<string, Write[]>(FOLLOWED.map((user) => [user, []]));
    const failures: Failure[] = [];
    const stream = new RedisEventStream(streamReader, stack.keyPrefix);

    for (const user of FOLLOWED) {
      subscribers.push(subscribe({ name: `user ${user}`, url: stack.urls.gateway, authorization: (await signedInAs(user)).authorization, userId: user }));
    }
    await waitFor(() => check(stack.usersSubscriptions() >= FOLLOWED.length, 'the subscribers are not all following yet'));
    // One event each before the load: the subscribers then have a position to resume from, and the load's
    // events are exactly those after it.
    for (const user of FOLLOWED) {
      const answer = await stack.request(UPDATE, { id: user, name: `baseline ${user}` });
      check(!answer.errors, `the baseline write failed: ${JSON.stringify(answer.errors)}`);
    }
    await waitFor(() => check(subscribers.every((subscriber) => subscriber.received.length >= 1), 'a subscriber has not heard its baseline event'));
    const baseline = new Map(subscribers.map((subscriber) => [subscriber.userId, (subscriber.received[0] as Received).id]));

    state.writing = true;
    let sequence = 0;
    // A write whose events cannot reach the stream answers after its flush wait: the outage shows here.
    let slowestMs = 0;
    const writer = async (user: string) => {
      const mine = writes.get(user) as Write[];
      while (state.writing) {
        // A steady load rather than a flood: each writer leaves the event loop a moment between writes.
        await sleep(WRITE_PAUSE_MS);
        const kind = mine.length % 2 === 0 ? 'USER_UPDATED' : 'ORDER_PLACED';
        const write: Write = { userId: user, kind, outcome: 'unknown', gateway: 'gateway' };
        mine.push(write);
        const sentAt = Date.now();
        try {
          const answer =
            kind === 'USER_UPDATED'
              ? await stack.request<{ updateUser: { id: string } }>(UPDATE, { id: user, name: `write ${(sequence += 1)}` })
              : await stack.request<{ placeOrder: { id: string } }>(PLACE, { userId: user });
          if (answer.errors || !answer.data) {
            for (const error of answer.errors ?? [{ message: `HTTP ${answer.status} without data or errors` }]) {
              failures.push({ code: error.extensions?.code as string | undefined, message: error.message });
            }
            write.error = answer.errors?.map((error) => error.message).join('; ');
          } else {
            write.outcome = 'acked';
            if ('placeOrder' in answer.data) write.orderId = answer.data.placeOrder.id;
          }
        } catch (error) {
          failures.push({ code: undefined, message: (error as Error).message });
          write.error = (error as Error).message;
        }
        slowestMs = Math.max(slowestMs, Date.now() - sentAt);
      }
    };
    const acked = (user: string) => (writes.get(user) as Write[]).filter((write) => write.outcome === 'acked').length;
    const writers = FOLLOWED.map(writer);

    await waitFor(() => check(FOLLOWED.every((user) => acked(user) >= WRITES_PER_PHASE), 'the writers are not under way yet'));
    await waitFor(() => check(subscribers.every((subscriber) => subscriber.received.length >= 3), 'the subscribers are not hearing the load yet'));

    const killedAt = Date.now();
    const crashed = await topology.crashStreamPrimary({ ackedWrites: () => FOLLOWED.reduce((sum, user) => sum + acked(user), 0) });
    await waitFor(() => topology.promoted(crashed), 120_000, 100);
    const promotedAfterMs = Date.now() - killedAt;

    // Recovered: a new subscription hears the event of a write made through the gateway. Each attempt is a
    // fresh socket and subscription, so one opened while Redis was away cannot make a later attempt pass; an
    // attempt whose subscription was refused (EVENTS_UNAVAILABLE while the stream is away) ends there.
    let probes = 0;
    const probeRefusals: string[] = [];
    const probe = async () => {
      const client = await socketClient(stack.urls.gateway, PROBE_USER, 'user');
      const names = new Set<string>();
      let heard = false;
      let ended = false;
      const stop = client.subscribe<{ userEvents: { user: { name: string } | null } }>(
        { query: FOLLOW, variables: { userId: PROBE_USER } },
        {
          next: ({ data, errors }) => {
            if (errors) probeRefusals.push(errors.map((error) => String(error.extensions?.code)).join(','));
            if (names.has(data?.userEvents.user?.name ?? '')) heard = true;
          },
          error: () => void (ended = true),
          complete: () => void (ended = true),
        },
      );
      try {
        await waitFor(
          async () => {
            if (ended) return;
            const name = `probe ${(probes += 1)}`;
            // Named before it is sent: the event is in the stream before the mutation answers.
            names.add(name);
            const answer = await stack.request(UPDATE, { id: PROBE_USER, name });
            if (answer.errors) throw new Error(`probe write failed: ${JSON.stringify(answer.errors)}`);
            await waitFor(() => check(heard || ended, 'not heard yet'), 1_000, 20);
          },
          5_000,
          0,
        );
        if (!heard) throw new Error('the new subscription heard none of its writes');
      } finally {
        stop();
        await client.dispose();
      }
    };
    await waitFor(probe, 120_000, 100);
    const recoveredAfterMs = Date.now() - killedAt;

    const ackedAtRecovery = new Map(FOLLOWED.map((user) => [user, acked(user)]));
    await waitFor(() => check(FOLLOWED.every((user) => acked(user) >= (ackedAtRecovery.get(user) as number) + WRITES_PER_PHASE), 'the writers have not written enough since the recovery'));
    state.writing = false;
    await Promise.all(writers);

    // Settled: both outboxes sent, then every subscriber has reached its user's newest event in the stream.
    await waitFor(async () => {
      for (const db of [stack.databases.users.db, stack.databases.orders.db]) {
        const [row] = (await db.execute(sql`select count(*)::int as unsent from outbox where sent_at is null`)) as unknown as { unsent: number }[];
        check(row?.unsent === 0, `${String(row?.unsent)} outbox rows unsent`);
      }
    });
    const newest = new Map<string, string>();
    for (const user of FOLLOWED) newest.set(user, await stream.last({ userId: user }));
    // A lost event never arrives: the wait ends at its bound, and the findings below say what is missing.
    await waitFor(() => check(subscribers.every((subscriber) => subscriber.received.at(-1)?.id === newest.get(subscriber.userId)), 'a subscriber has not reached the newest event')).catch(() => {});

    // The replay a client resuming from before the load gets, through the gateway.
    const replays = await Promise.all(
      FOLLOWED.map(async (user) => {
        const client = await socketClient(stack.urls.gateway, user, 'user');
        const received: Received[] = [];
        const stop = client.subscribe<{ userEvents: { id: string; kind: string; order: { id: string } | null } }>(
          { query: FOLLOW, variables: { userId: user, after: baseline.get(user) } },
          {
            next: ({ data }) => {
              const event = data?.userEvents;
              if (event) received.push({ id: event.id, kind: event.kind, ...(event.order && { orderId: event.order.id }), attempt: 1 });
            },
            error: () => {},
            complete: () => {},
          },
        );
        await waitFor(() => check(received.at(-1)?.id === newest.get(user), 'the replay has not reached the newest event')).catch(() => {});
        // Nothing may follow the newest event: give a repeat a moment to show.
        await sleep(200);
        stop();
        await client.dispose();
        return { name: `replay of user ${user}`, received };
      }),
    );

    const live = subscribers.map((subscriber) => analyseStream(subscriber, writes.get(subscriber.userId) as Write[], baseline.get(subscriber.userId)));
    const replayed = replays.map((replay, index) => analyseStream(replay, writes.get(FOLLOWED[index] as string) as Write[], baseline.get(FOLLOWED[index] as string)));
    const all = [...writes.values()].flat();
    const figures: Figures = {
      scenario: topology.name,
      writes: { sent: all.length, acknowledged: all.filter((write) => write.outcome === 'acked').length, failed: all.filter((write) => write.outcome !== 'acked').length, failedByCode: tally(failures.map((failure) => failure.code ?? 'none')), slowestMs },
      subscriptionsRefused: tally(probeRefusals),
      promotedAfterMs,
      recoveredAfterMs,
      users: FOLLOWED.map((user, index) => ({
        user,
        live: count(live[index] as StreamFindings),
        replay: count(replayed[index] as StreamFindings),
        resumes: (subscribers[index] as Subscriber).resumes.length,
      })),
    };
    // The figures issue 25 asks for, one line a scenario: [lost, repeated, reordered] per user, live and replayed.
    createLogger({ name: 'redis-failover', level: 'info' }).info({ figures }, 'failover figures');
    const problems = [...live, ...replayed].flatMap((findings) => [...findings.lost, ...findings.duplicated, ...findings.outOfOrder].map((line) => `${findings.subscriber}: ${line}`));
    return { figures, problems, failures, probeRefusals, eventsHeard: live.map((findings) => findings.events) };

  };

  return {
    stack,
    run,
    teardown: async () => {
      state.writing = false;
      for (const subscriber of subscribers) subscriber.stop();
      streamReader.disconnect();
      await stack.teardown();
    },
  };
}
