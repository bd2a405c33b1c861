// A user's timeline is causally ordered across subgraphs: a write acknowledged before another was sent comes first
// in the user's stream and to subscribers, even when the first one's events could not reach Redis before it was
// acknowledged. Real Postgres, and a Redis server of this test's own (with an append-only file, as production
// runs it), stopped and started again by the test: the machine's shared Redis is never touched.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRedis, RedisEventStream, type StoredEvent } from '@fed/platform';
import { freePort, recordStream, waitFor, type RecordedStream } from '@fed/platform/testing';
import { createClient, type Client, type FormattedExecutionResult } from 'graphql-ws';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { seed } from '../src/seed.ts';
import { signedInAs, startTestStack, tokenFor, type TestStack } from './harness.ts';

/** A redis-server on a free port that keeps its data in an append-only file, so a restart loses nothing. */
async function startDurableRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'causal-order-redis-'));
  const url = `redis://127.0.0.1:${port}/0`;
  let server: ChildProcess | undefined;
  const answers = async () => {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    try {
      await probe.connect();
      return (await probe.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      probe.disconnect();
    }
  };
  const start = async () => {
    server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'], {
      stdio: 'ignore',
    });
    await waitFor(async () => expect(await answers()).toBe(true), 10_000, 25);
  };
  const stop = async () => {
    const running = server;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    url,
    start,
    stop,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const EVENTS = 'subscription ($userId: ID) { userEvents(userId: $userId) { id kind } }';
type Delivered = FormattedExecutionResult<{ userEvents: { id: string; kind: string } }, unknown>;

describe("a user's timeline across subgraphs when Redis restarts", () => {
  let redis: Awaited<ReturnType<typeof startDurableRedis>>;
  let stack: TestStack;
  let reader: RedisEventStream;
  let readerRedis: Redis;
  let client: Client;

  beforeAll(async () => {
    redis = await startDurableRedis();
    stack = await startTestStack({ redisUrl: redis.url });
    await seed(stack.databases, { users: 3, ordersPerUser: 0 });
    readerRedis = createRedis(redis.url);
    readerRedis.on('error', () => {});
    reader = new RedisEventStream(readerRedis, stack.keyPrefix);
  });
  afterAll(async () => {
    await client?.dispose();
    readerRedis?.disconnect();
    await stack?.teardown();
    await redis?.close();
  });

  it('delivers a write acknowledged while Redis was down before a later write of another subgraph, every time', async () => {
    const userId = '2';
    const viewer = await signedInAs(userId);
    client = createClient({
      url: stack.urls.gateway.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${await tokenFor(userId)}` },
    });
    const live: RecordedStream<Delivered> = recordStream();
    live.stop = client.subscribe({ query: EVENTS, variables: { userId } }, live.sink);
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(1));

    const userStream = async () => (await reader.read({ userId }, null, 1_000)).map((event: StoredEvent) => event.kind);
    const heard = () => live.results.map((result) => result.data?.userEvents.kind);
    const rounds = 5;
    for (let round = 0; round < rounds; round++) {
      await redis.stop();
      // Both answer: their events wait in each subgraph's outbox.
      const updated = await stack.request('mutation ($id: ID!, $name: String!) { updateUser(id: $id, input: { name: $name }) { id } }', { id: userId, name: `Round ${round}` }, viewer);
      expect(updated.errors).toBeUndefined();
      // Sent after the update was acknowledged.
      const placed = await stack.request('mutation ($userId: ID!) { placeOrder(input: { userId: $userId, items: [{ sku: "R", quantity: 1, unitPriceCents: 1 }] }) { id } }', { userId }, viewer);
      expect(placed.errors).toBeUndefined();

      await redis.start();
      // Orders is nudged first (an order for another user), so its relay tries its backlog before users' next poll.
      const nudge = await stack.request('mutation { placeOrder(input: { userId: "3", items: [{ sku: "N", quantity: 1, unitPriceCents: 1 }] }) { id } }');
      expect(nudge.errors).toBeUndefined();

      await waitFor(async () => expect(await userStream()).toHaveLength(2 * (round + 1)), 60_000);
      expect((await userStream()).slice(2 * round)).toEqual(['USER_UPDATED', 'ORDER_PLACED']);
    }
    const expected = Array.from({ length: rounds }, () => ['USER_UPDATED', 'ORDER_PLACED']).flat();
    expect(await userStream()).toEqual(expected);
    // A subscriber that stayed connected heard them in the same order.
    await waitFor(() => expect(heard()).toHaveLength(2 * rounds), 60_000);
    expect(heard()).toEqual(expected);
    expect(live.results.flatMap((result) => result.errors ?? [])).toEqual([]);
  });
});
