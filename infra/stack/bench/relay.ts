// `npm run -s bench:relay -w @fed/stack -- [--backlog 20000] [--writers 8] [--seconds 10]`: events per second
// through the outbox relay, on real Postgres and Redis.
//   backlog: `backlog` committed events wait in the outbox; one relay drains them into the stream.
//   steady:  `writers` concurrent writers commit one event per transaction (as updateUser does) for `seconds`,
//            each waiting for its relay as a mutation does; events/s committed and relayed, and the time each
//            write waited for its event to reach the stream.
// Three relays (three "replicas", each with its own pool) run in the steady case, as a scaled-out deployment.
// Results go to stdout as JSON, progress to stderr.
import { randomUUID } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createDatabase, createLogger, createOutboxRelay, createRedis, createUnitOfWork, migrateDatabase, outbox, RedisEventStream, type DomainEvent } from '@fed/platform';
import { createTestDatabase, percentile, testRedisUrl, uniqueName } from '@fed/platform/testing';
import { migrationsFolder, schema } from '@fed/users/db';
import { sql } from 'drizzle-orm';

const { values } = parseArgs({
  options: { backlog: { type: 'string', default: '20000' }, writers: { type: 'string', default: '8' }, seconds: { type: 'string', default: '10' } },
});
const log = (line: string) => process.stderr.write(`${line}\n`);
const logger = createLogger({ name: 'bench', level: 'silent' });

const database = await createTestDatabase('bench_relay');
const prefix = `${uniqueName('bench')}:`;
const redis = createRedis(testRedisUrl());
const handles = [] as Awaited<ReturnType<typeof createDatabase<typeof schema>>>[];
try {
  for (let index = 0; index < 3; index++) handles.push(await createDatabase({ location: { url: database.url }, schema }));
  const [primary] = handles as [(typeof handles)[0]];
  await migrateDatabase(primary, migrationsFolder);
  const stream = new RedisEventStream(redis, prefix);
  const event = (userId: number): DomainEvent => ({
    id: randomUUID(),
    kind: 'USER_UPDATED',
    userId: String(userId),
    occurredAt: new Date().toISOString(),
    source: 'users',
    changed: [`User:${userId}`],
  });

  // Backlog: rows committed while no relay ran.
  const backlog = Number(values.backlog);
  log(`backlog: writing ${backlog} outbox rows`);
  for (let start = 0; start < backlog; start += 1_000) {
    await primary.db.insert(outbox).values(Array.from({ length: Math.min(1_000, backlog - start) }, (_, index) => ({ event: event((start + index) % 500) })));
  }
  const drain = createOutboxRelay({ db: primary.db, stream, logger });
  let started = performance.now();
  await drain.flush();
  const drainMs = performance.now() - started;
  await drain.stop();
  const [{ unsent }] = (await primary.db.execute(sql`select count(*)::int as unsent from outbox where sent_at is null`)) as unknown as [{ unsent: number }];
  const streamed = await redis.xlen(`${prefix}events:log`);
  log(`backlog: ${backlog} events in ${Math.round(drainMs)} ms; ${unsent} left unsent; ${streamed} in the stream`);

  // Steady: concurrent writers, three relays.
  const relays = handles.map((handle) => createOutboxRelay({ db: handle.db, stream, logger }));
  for (const relay of relays) relay.start();
  const writers = Number(values.writers);
  const deadline = Date.now() + Number(values.seconds) * 1_000;
  const waits: number[] = [];
  let committed = 0;
  const before = await redis.xlen(`${prefix}events:log`);
  started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async (_, writer) => {
      const handle = handles[writer % handles.length]!;
      const relay = relays[writer % relays.length]!;
      let flushed = 0;
      const transact = createUnitOfWork({ db: handle.db, source: 'users', relay: { flush: (timeoutMs) => relay.flush(timeoutMs).then(() => void (flushed = performance.now())) } })();
      while (Date.now() < deadline) {
        const begun = performance.now();
        await transact(async (tx, emit) => {
          await tx.execute(sql`select 1`);
          emit({ kind: 'USER_UPDATED', userId: String(writer), changed: [`User:${writer}`] });
        });
        committed += 1;
        waits.push(flushed - begun);
      }
    }),
  );
  const steadyMs = performance.now() - started;
  for (const relay of relays) await relay.stop();
  const relayed = (await redis.xlen(`${prefix}events:log`)) - before;
  waits.sort((a, b) => a - b);
  const result = {
    machine: { cores: cpus().length, loadavg: loadavg().map((value) => Math.round(value * 100) / 100), node: process.version, date: new Date().toISOString() },
    backlog: { events: backlog, ms: Math.round(drainMs), eventsPerSecond: Math.round((backlog / drainMs) * 1_000), unsent, streamed },
    steady: {
      writers,
      relays: relays.length,
      committed,
      relayed,
      eventsPerSecond: Math.round((committed / steadyMs) * 1_000),
      writeWithRelayMs: { p50: Math.round(percentile(waits, 50) * 10) / 10, p99: Math.round(percentile(waits, 99) * 10) / 10 },
    },
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  for (const handle of handles) await handle.close();
  const keys = await redis.keys(`${prefix}*`);
  for (let start = 0; start < keys.length; start += 500) await redis.del(...keys.slice(start, start + 500));
  redis.disconnect();
  await database.drop();
}
