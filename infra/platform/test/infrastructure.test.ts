// createInfrastructure as each service's composition root calls it, on every REDIS_URL form: one server, a Redis
// Cluster and a Sentinel-watched primary (each a real set-up on loopback). Every edge is used once end to end, so
// what the factory builds, and how the stream's script and the pub/sub name the channels, agree on each.
import { afterAll, describe, expect, it } from 'vitest';
import { DOMAIN_EVENTS_CHANNEL, userEventsChannel } from '../src/events/index.ts';
import { createLogger } from '../src/logger.ts';
import { createInfrastructure, type Infrastructure } from '../src/runtime.ts';
import { startRedisSentinel, type PrivateRedisSentinel } from '../src/testing/redis-sentinel.ts';
import { testRedisUrl, uniqueName } from '../src/testing/services.ts';
import { clusterForThisFile } from './cluster.ts';
import { deleteRedisKeys, userEvent, waitFor } from './support.ts';

const RUN_PREFIX = `${uniqueName('platform_infrastructure_test')}:`;
const cluster = clusterForThisFile();
let sentinel: Promise<PrivateRedisSentinel> | undefined;
const opened: Infrastructure[] = [];

afterAll(async () => {
  for (const infrastructure of opened) await infrastructure.close();
  await deleteRedisKeys(RUN_PREFIX);
  if (sentinel) await (await sentinel).stop();
});

const targets: { name: string; url: () => Promise<string> }[] = [
  { name: 'one server (redis://)', url: async () => testRedisUrl() },
  { name: 'a Redis Cluster (redis+cluster://)', url: async () => (await cluster.cluster()).url },
  { name: 'Sentinels (redis+sentinel://)', url: async () => (await (sentinel ??= startRedisSentinel())).url },
];

const event = userEvent;

describe.each(targets)('createInfrastructure on $name', ({ url }) => {
  let counter = 0;
  const open = async () => {
    const infrastructure = await createInfrastructure({ redisUrl: await url(), keyPrefix: `${RUN_PREFIX}${++counter}:`, logger: createLogger({ name: 'test', level: 'silent' }) });
    opened.push(infrastructure);
    return infrastructure;
  };

  it('shares the cache, rate limits and response store between two processes', async () => {
    const a = await open();
    // Another process in the same namespace, as two replicas of one deployment are.
    const shared = await createInfrastructure({ redisUrl: await url(), keyPrefix: `${RUN_PREFIX}${counter}:`, logger: createLogger({ name: 'test', level: 'silent' }) });
    opened.push(shared);
    expect([a.kind, shared.kind]).toEqual(['redis', 'redis']);

    await waitFor(async () => {
      await a.cache.set('greeting', 'hello');
      expect(await shared.cache.get('greeting')).toBe('hello');
    });

    const policy = { limit: 1, windowMs: 60_000 };
    expect((await a.rateLimiter.consume('client', policy)).allowed).toBe(true);
    expect((await shared.rateLimiter.consume('client', policy)).allowed).toBe(false);

    const [writer, reader] = [a.createResponseStore({ maxTtlSeconds: 60 }), shared.createResponseStore({ maxTtlSeconds: 60 })];
    const miss = await waitFor(() => writer.lookup(['answer']));
    if (miss.hit) throw new Error('expected a miss');
    await writer.store('answer', { body: '{"data":{}}', maxAge: 60, scope: 'PUBLIC', storedAt: Date.now() }, ['users/User:1'], miss.ticket);
    await waitFor(async () => expect((await reader.lookup(['answer'])).hit).toBeDefined());
    await reader.invalidate(['users/User:1']);
    expect((await writer.lookup(['answer'])).hit).toBeUndefined();
  });

  it('appends to the durable stream, rings the user and firehose channels, and feeds a consumer group', async () => {
    const infrastructure = await open();
    const heardUser: unknown[] = [];
    const heardAll: unknown[] = [];
    const stopUser = await infrastructure.pubsub.subscribe(userEventsChannel('42'), (message) => heardUser.push(message));
    const stopAll = await infrastructure.pubsub.subscribe(DOMAIN_EVENTS_CHANNEL, (message) => heardAll.push(message));
    try {
      expect(await infrastructure.pubsub.subscribers(userEventsChannel('42'))).toBe(1);
      const group = infrastructure.events.group('projection');
      await group.ensure('0-0');
      const [position] = await infrastructure.events.append([event('42')]);
      await waitFor(() => expect(heardUser).toEqual([expect.objectContaining({ userId: '42', position })]));
      await waitFor(() => expect(heardAll).toHaveLength(1));
      expect((await infrastructure.events.read({ userId: '42' }, null, 10)).map((stored) => stored.position)).toEqual([position]);
      const delivered = await waitFor(async () => {
        const read = await group.read('consumer', 10, 100);
        expect(read).toHaveLength(1);
        return read;
      });
      await group.ack(delivered.map((stored) => stored.position));
      expect(await group.caughtUp(position as string)).toBe(true);
    } finally {
      await stopUser();
      await stopAll();
    }
  });
});
