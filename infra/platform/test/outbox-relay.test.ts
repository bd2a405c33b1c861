import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql, type SQL } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDatabase, type DatabaseHandle } from '../src/db/index.ts';
import {
  createOutboxRelay,
  createUnitOfWork,
  outbox,
  RedisEventStream,
  type DomainEvent,
  type NewDomainEvent,
  type OutboxRelay,
  type OutboxRelayOptions,
} from '../src/events/index.ts';
import { createRedis, waitForRedis } from '../src/redis.ts';
import { createTestDatabase, testRedisUrl, uniqueName, type TestDatabase } from '../src/testing/services.ts';
import { captureLogger, deleteRedisKeys, startTcpProxy, timed, waitFor } from './support.ts';

/** Every Redis key this file writes starts with this; afterAll deletes exactly those keys. */
const RUN_PREFIX = `${uniqueName('platform_outbox_test')}:`;
const PLATFORM_DIR = fileURLToPath(new URL('..', import.meta.url));

const schema = { outbox };
type Db = DatabaseHandle<typeof schema>['db'];

// The DDL of the drizzle `outbox` table, as a subgraph's migration creates it, and a business table the units
// of work write next to their events.
const DDL = [
  `create table outbox (
     seq bigint generated always as identity primary key,
     event jsonb not null,
     created_at timestamptz not null default now(),
     sent_at timestamptz
   )`,
  `create index outbox_unsent_idx on outbox (seq) where sent_at is null`,
  `create table notes (id serial primary key, user_id text not null, body text not null)`,
];

let database: TestDatabase;
let main: DatabaseHandle<typeof schema>;
let redis: Redis;
const openHandles: DatabaseHandle<typeof schema>[] = [];
const openClients: Redis[] = [];
const relays: OutboxRelay[] = [];
let prefix: string;
let prefixCounter = 0;

async function openDatabase(): Promise<DatabaseHandle<typeof schema>> {
  const handle = await createDatabase({ location: { url: database.url }, schema });
  openHandles.push(handle);
  return handle;
}

async function connectedRedis(url = testRedisUrl()): Promise<Redis> {
  const client = createRedis(url);
  openClients.push(client);
  client.on('error', () => {});
  await waitForRedis(client);
  return client;
}

beforeAll(async () => {
  database = await createTestDatabase('platform_outbox');
  main = await openDatabase();
  for (const statement of DDL) await main.db.execute(sql.raw(statement));
  redis = await connectedRedis();
});

afterAll(async () => {
  for (const handle of openHandles) await handle.close();
  for (const client of openClients) client.disconnect();
  await database?.drop();
  await deleteRedisKeys(RUN_PREFIX);
});

beforeEach(async () => {
  await main.db.execute(sql`truncate outbox, notes restart identity`);
  // Each test relays into a stream of its own.
  prefix = `${RUN_PREFIX}${++prefixCounter}:`;
});

afterEach(async () => {
  for (const relay of relays.splice(0)) await relay.stop();
});

const rows = async <T>(query: SQL, db: Db = main.db) => (await db.execute(query)) as unknown as T[];

interface OutboxRow {
  seq: number;
  id: string;
  user_id: string;
  sent: boolean;
}
const outboxRows = () =>
  rows<OutboxRow>(sql`select seq::int as seq, event->>'id' as id, event->>'userId' as user_id, sent_at is not null as sent from outbox order by seq`);
const unsentCount = async () => (await outboxRows()).filter((row) => !row.sent).length;

/** What a consumer of the stream sees: the whole log, oldest first. */
const logOf = async (stream = new RedisEventStream(redis, prefix)) => stream.read({}, null, 100_000);

function relay(
  options: Pick<OutboxRelayOptions, 'batchSize' | 'pollMs' | 'passes' | 'poolSize' | 'hooks' | 'keepSentMs'> & { db?: Db; stream?: RedisEventStream; logger?: ReturnType<typeof captureLogger>['logger'] } = {},
) {
  const created = createOutboxRelay({
    db: options.db ?? main.db,
    stream: options.stream ?? new RedisEventStream(redis, prefix),
    logger: options.logger ?? captureLogger().logger,
    batchSize: options.batchSize,
    pollMs: options.pollMs,
    passes: options.passes,
    hooks: options.hooks,
    poolSize: options.poolSize,
    keepSentMs: options.keepSentMs,
  });
  relays.push(created);
  return created;
}

const change = (userId: string, n: number): NewDomainEvent => ({ kind: 'ORDER_PLACED', userId, orderId: `order-${n}`, changed: [`Order:${n}`, `User:${userId}`] });

/** Commits `count` events in as many transactions, without sending them: a service that died after its commits. */
async function commitUnsent(count: number, userOf = (i: number) => `u${i % 3}`): Promise<DomainEvent[]> {
  const committed: DomainEvent[] = [];
  const transact = createUnitOfWork({ db: main.db, source: 'orders', relay: { flush: async () => {} } })({ committed: (events) => committed.push(...events) });
  for (let i = 0; i < count; i++) {
    await transact(async (tx, emit) => {
      await tx.execute(sql`insert into notes (user_id, body) values (${userOf(i)}, ${`note ${i}`})`);
      emit(change(userOf(i), i));
    });
  }
  return committed;
}

/**
 * A relay process (test/fixtures/relay-crash.ts) that SIGKILLs itself at `killAt`; `settings` are its other
 * variables (PARTITIONS, PASSES, BATCH, KILL_ON).
 */
function runCrashingRelay(killAt: 'beforeAppend' | 'afterAppend', settings: Record<string, string> = {}) {
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/relay-crash.ts'], {
      cwd: PLATFORM_DIR,
      env: { ...process.env, DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), KEY_PREFIX: prefix, KILL_AT: killAt, ...settings },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), 20_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

describe('a unit of work', () => {
  it('writes its events with its changes when it commits, and hands them over', async () => {
    const handedOver: DomainEvent[][] = [];
    const transact = createUnitOfWork({ db: main.db, source: 'orders', relay: relay() })({ committed: (events) => handedOver.push(events) });

    const result = await transact(async (tx, emit) => {
      await tx.execute(sql`insert into notes (user_id, body) values ('u1', 'placed')`);
      emit(change('u1', 1));
      emit(change('u2', 2));
      return 'placed';
    });
    expect(result).toBe('placed');
    expect(handedOver).toHaveLength(1);
    const [events] = handedOver as [DomainEvent[]];
    expect(events).toEqual([
      { ...change('u1', 1), id: expect.any(String), occurredAt: expect.any(String), source: 'orders' },
      { ...change('u2', 2), id: expect.any(String), occurredAt: expect.any(String), source: 'orders' },
    ]);
    expect(new Set(events.map((event) => event.id)).size).toBe(2);
    expect((await outboxRows()).map((row) => row.id)).toEqual(events.map((event) => event.id));

    // The write waited for its events to reach the stream: a client reading right after finds them there.
    expect(await logOf()).toEqual(events.map((event) => ({ ...event, position: expect.stringMatching(/^\d+-\d+$/) })));
    expect(await unsentCount()).toBe(0);
  });

  it('writes no event, and hands none over, when the work throws', async () => {
    const handedOver: DomainEvent[][] = [];
    const transact = createUnitOfWork({ db: main.db, source: 'orders', relay: relay() })({ committed: (events) => handedOver.push(events) });

    await expect(
      transact(async (tx, emit) => {
        await tx.execute(sql`insert into notes (user_id, body) values ('u1', 'doomed')`);
        emit(change('u1', 1));
        throw new Error('payment declined');
      }),
    ).rejects.toThrow('payment declined');

    expect(handedOver).toEqual([]);
    expect(await outboxRows()).toEqual([]);
    expect(await rows(sql`select * from notes`)).toEqual([]);
    expect(await logOf()).toEqual([]);
  });
});

describe('the outbox relay', () => {
  it('sends every committed row to the stream exactly once, in commit order, and marks it sent', async () => {
    const committed = await commitUnsent(120);
    expect(await unsentCount()).toBe(120);
    expect(await logOf()).toEqual([]);

    const sender = relay({ batchSize: 50 });
    await sender.flush();
    const log = await logOf();
    expect(log.map((event) => event.id)).toEqual(committed.map((event) => event.id));
    expect(log).toEqual(committed.map((event) => ({ ...event, position: expect.any(String) })));
    expect(await unsentCount()).toBe(0);

    // Nothing is sent twice, by this relay or another.
    await sender.flush();
    await relay().flush();
    expect(await logOf()).toHaveLength(120);
  });

  it('deletes the rows it sent once they are older than keepSentMs, after the pass, and never one still unsent', async () => {
    const committed = await commitUnsent(10);
    let late: DomainEvent[] = [];
    // Rows committed while the pass appends are unsent when the prune that follows it runs.
    const sender = relay({ keepSentMs: 0, hooks: { afterAppend: async () => void (late.length === 0 && (late = await commitUnsent(3))) } });
    await sender.flush();
    await waitFor(async () => expect(await outboxRows()).toHaveLength(3));
    expect((await outboxRows()).map((row) => [row.id, row.sent])).toEqual(late.map((event) => [event.id, false]));
    expect((await logOf()).map((event) => event.id)).toEqual(committed.map((event) => event.id));
  });

  it('once started, picks up rows committed by writers that never flushed', async () => {
    const sender = relay({ pollMs: 50 });
    sender.start();
    const committed = await commitUnsent(7);
    await waitFor(async () => expect((await logOf()).map((event) => event.id)).toEqual(committed.map((event) => event.id)), 5_000, 25);
    await waitFor(async () => expect(await unsentCount()).toBe(0));
  });

  it("with three relays on three connections and 300 concurrent commits, the log holds each event once, each user's in commit order", async () => {
    const handles = await Promise.all([openDatabase(), openDatabase(), openDatabase()]);
    // Three replicas: each its own database pool, Redis connection and relay.
    const replicas = await Promise.all(
      handles.map(async (handle) => {
        const sender = relay({ db: handle.db, stream: new RedisEventStream(await connectedRedis(), prefix), batchSize: 20 });
        sender.start();
        return { handle, sender };
      }),
    );
    const users = Array.from({ length: 10 }, (_, i) => `user-${i}`);
    const commitOrder = new Map<string, string[]>(users.map((user) => [user, []]));

    // Each user's writes one after another (that is what orders them); the users' writes all at once,
    // spread over the three replicas.
    await Promise.all(
      users.map(async (user, u) => {
        for (let i = 0; i < 30; i++) {
          const { handle, sender } = replicas[(u + i) % 3]!;
          const transact = createUnitOfWork({ db: handle.db, source: 'orders', relay: sender })({
            committed: (events) => commitOrder.get(user)!.push(...events.map((event) => event.id)),
          });
          await transact(async (tx, emit) => {
            await tx.execute(sql`insert into notes (user_id, body) values (${user}, ${`write ${i}`})`);
            emit(change(user, u * 100 + i));
          });
        }
      }),
    );

    await Promise.all(replicas.map(({ sender }) => sender.flush()));
    await waitFor(async () => expect(await unsentCount()).toBe(0), 10_000, 50);
    const log = await logOf();
    const ids = log.map((event) => event.id);
    expect(ids).toHaveLength(300);
    expect(new Set(ids).size).toBe(300);
    expect(new Set(ids)).toEqual(new Set([...commitOrder.values()].flat()));
    for (const user of users) {
      expect(log.filter((event) => event.userId === user).map((event) => event.id), user).toEqual(commitOrder.get(user));
      expect((await new RedisEventStream(redis, prefix).read({ userId: user }, null, 1_000)).map((event) => event.id), user).toEqual(commitOrder.get(user));
    }
  });

  describe('killed in the middle of a pass', () => {
    it('before the append: nothing reached the stream, and a relay later sends every event once', async () => {
      const committed = await commitUnsent(12);
      const crash = await runCrashingRelay('beforeAppend');
      expect(crash, crash.stderr).toMatchObject({ code: null, signal: 'SIGKILL' });
      expect(await logOf()).toEqual([]);
      expect(await unsentCount()).toBe(12);

      const { ms } = await timed(() => relay().flush());
      expect((await logOf()).map((event) => event.id)).toEqual(committed.map((event) => event.id));
      expect(await unsentCount()).toBe(0);
      // The dead relay's lock went with its connection: nobody waited on it for long.
      expect(ms).toBeLessThan(5_000);
    });

    it('after the append: the stream has the events but the rows are unsent; the resend adds no second entry', async () => {
      const committed = await commitUnsent(12);
      const crash = await runCrashingRelay('afterAppend');
      expect(crash, crash.stderr).toMatchObject({ code: null, signal: 'SIGKILL' });
      const appended = await logOf();
      expect(appended.map((event) => event.id)).toEqual(committed.map((event) => event.id));
      expect(await unsentCount()).toBe(12);

      await relay().flush();
      const log = await logOf();
      // Exactly once, at the positions the first attempt gave them.
      expect(log).toEqual(appended);
      expect(await unsentCount()).toBe(0);
    });
  });

  it('keeps the rows while Redis is unreachable without holding writes up, and sends them once it is back', async () => {
    const proxy = await startTcpProxy(testRedisUrl());
    try {
      const viaProxy = await connectedRedis(proxy.url);
      const { logger, lines } = captureLogger();
      const sender = relay({ stream: new RedisEventStream(viaProxy, prefix), logger });
      const handedOver: DomainEvent[] = [];
      const transact = createUnitOfWork({ db: main.db, source: 'orders', relay: sender, flushTimeoutMs: 300 })({ committed: (events) => handedOver.push(...events) });

      await proxy.setListening(false);
      await waitFor(() => expect(viaProxy.status).not.toBe('ready'));

      // The write succeeds, and answers within its flush timeout.
      for (let i = 0; i < 3; i++) {
        const write = await timed(() =>
          transact(async (tx, emit) => {
            await tx.execute(sql`insert into notes (user_id, body) values ('u1', ${`offline ${i}`})`);
            emit(change('u1', i));
            return i;
          }),
        );
        expect(write.value).toBe(i);
        expect(write.ms).toBeLessThan(1_000);
      }
      const flushed = await timed(() => sender.flush(300));
      expect(flushed.ms).toBeLessThan(1_000);
      expect(await unsentCount()).toBe(3);
      expect(await logOf()).toEqual([]);
      expect(lines.some((line) => line.msg === 'outbox relay failed; retrying')).toBe(true);

      await proxy.setListening(true);
      await waitFor(() => expect(viaProxy.status).toBe('ready'), 5_000);
      await sender.flush();
      expect((await logOf()).map((event) => event.id)).toEqual(handedOver.map((event) => event.id));
      expect(await unsentCount()).toBe(0);
      expect(lines.some((line) => line.msg === 'outbox relay recovered')).toBe(true);
    } finally {
      await proxy.close();
    }
  });
});

describe('the outbox relay over four partitions', () => {
  const partitioned = () => new RedisEventStream(redis, prefix, undefined, { partitions: 4 });

  it("sends every row exactly once, each user's events in commit order in their partition, and a re-send after a crash repeats none", async () => {
    // u0, u1 and u2 live in partitions 0, 3 and 2 of 4.
    const committed = await commitUnsent(120);
    const sender = relay({ stream: partitioned(), batchSize: 50 });
    await sender.flush();
    expect(await unsentCount()).toBe(0);
    const log = await logOf(partitioned());
    expect(log).toHaveLength(120);
    expect(new Set(log.map((event) => event.id))).toEqual(new Set(committed.map((event) => event.id)));
    const partitionsUsed = new Set<string>();
    for (const user of ['u0', 'u1', 'u2']) {
      const mine = committed.filter((event) => event.userId === user).map((event) => event.id);
      const feed = await partitioned().read({ userId: user }, null, 1_000);
      expect(feed.map((event) => event.id), user).toEqual(mine);
      expect(log.filter((event) => event.userId === user).map((event) => event.id), user).toEqual(mine);
      partitionsUsed.add(feed[0]!.position.includes(':') ? feed[0]!.position.split(':')[0]! : '0');
    }
    expect(partitionsUsed.size).toBe(3);

    // A relay that died after appending but before marking its rows sent: they all go again, and nothing repeats.
    await main.db.execute(sql`update outbox set sent_at = null`);
    await relay({ stream: partitioned(), batchSize: 50 }).flush();
    expect(await unsentCount()).toBe(0);
    expect(await logOf(partitioned())).toHaveLength(120);
  });
});

describe('the outbox relay in concurrent lane passes', () => {
  const partitioned = (client: Redis = redis, partitions = 4) => new RedisEventStream(client, prefix, undefined, { partitions });
  const users = Array.from({ length: 24 }, (_, i) => `lane-user-${i}`);
  const ofUser = (events: readonly { id: string; userId: string }[], user: string) => events.filter((event) => event.userId === user).map((event) => event.id);

  /** Everything a consumer group is handed, read to the end (a group made now starts at the beginning). */
  async function consumed(stream: RedisEventStream, name: string): Promise<DomainEvent[]> {
    const taken: DomainEvent[] = [];
    await stream.group(name).ensure('0-0');
    for (let page = await stream.group(name).read('c1', 1_000, 0); page.length > 0; page = await stream.group(name).read('c1', 1_000, 0)) taken.push(...page);
    return taken;
  }

  /** The stream holds each committed event once, each user's in commit order, in the log, in each feed and in the group. */
  async function expectExactlyOnceInOrder(stream: RedisEventStream, committed: readonly DomainEvent[], group: string) {
    const log = await logOf(stream);
    expect(log.map((event) => event.id).sort()).toEqual(committed.map((event) => event.id).sort());
    const taken = await consumed(stream, group);
    expect(taken.map((event) => event.id).sort()).toEqual(committed.map((event) => event.id).sort());
    for (const user of new Set(committed.map((event) => event.userId))) {
      const expected = ofUser(committed, user);
      expect(ofUser(log, user), user).toEqual(expected);
      expect(ofUser(taken, user), user).toEqual(expected);
      expect((await stream.read({ userId: user }, null, 1_000)).map((event) => event.id), user).toEqual(expected);
    }
    expect(await unsentCount()).toBe(0);
  }

  it("drains a backlog in concurrent passes while relays with 1, 2 and 4 passes (N changed between deployments) relay live writes: each event once, each user's in commit order", async () => {
    await partitioned().group('projection').ensure('0-0');
    const backlog = await commitUnsent(600, (i) => users[i % users.length]!);
    // The previous deployment: one partition, one pass. The new one: four partitions, two and four passes.
    const replicas = await Promise.all(
      [
        { partitions: 1, passes: 1 },
        { partitions: 4, passes: 2 },
        { partitions: 4, passes: 4 },
      ].map(async ({ partitions, passes }) => {
        const handle = await openDatabase();
        const sender = relay({ db: handle.db, stream: partitioned(await connectedRedis(), partitions), batchSize: 25, passes });
        sender.start();
        return { handle, sender };
      }),
    );
    const live: DomainEvent[] = [];
    // Each user's writes one after another, spread over the three replicas; the users' writes all at once.
    await Promise.all(
      users.map(async (user, u) => {
        for (let i = 0; i < 8; i++) {
          const { handle, sender } = replicas[(u + i) % 3]!;
          const transact = createUnitOfWork({ db: handle.db, source: 'orders', relay: sender })({ committed: (events) => live.push(...events) });
          await transact(async (tx, emit) => {
            await tx.execute(sql`insert into notes (user_id, body) values (${user}, ${`live ${i}`})`);
            emit(change(user, 1_000 + u * 100 + i));
          });
        }
      }),
    );
    await Promise.all(replicas.map(({ sender }) => sender.flush()));
    await waitFor(async () => expect(await unsentCount()).toBe(0), 10_000, 50);
    // A user's backlog was committed before any of their live writes.
    await expectExactlyOnceInOrder(partitioned(), [...backlog, ...live], 'projection');
  });

  it.each(['beforeAppend', 'afterAppend'] as const)(
    'killed %s in its third concurrent append: a relay with other passes later sends the rest, and consumers get every event once, in order',
    async (killAt) => {
      await partitioned().group('projection').ensure('0-0');
      const committed = await commitUnsent(400, (i) => users[i % users.length]!);
      // The first append is the pass over the whole outbox; the lane groups' passes follow, four at once.
      const crash = await runCrashingRelay(killAt, { PARTITIONS: '4', PASSES: '4', BATCH: '20', KILL_ON: '3' });
      expect(crash, crash.stderr).toMatchObject({ code: null, signal: 'SIGKILL' });
      expect(await unsentCount()).toBeGreaterThan(0);

      await relay({ stream: partitioned(), batchSize: 30, passes: 3 }).flush();
      await expectExactlyOnceInOrder(partitioned(), committed, 'projection');
    },
  );

  it("sends one user's backlog (one lane) in appends of at most a batch each, in order, however many passes the relay runs", async () => {
    const stream = partitioned();
    await stream.group('one-lane').ensure('0-0');
    const committed = await commitUnsent(90, () => 'u0');
    const appended: number[] = [];
    const sender = relay({ stream, batchSize: 10, passes: 4, hooks: { phase: (name, _ms, events) => name === 'append' && appended.push(events) } });
    expect(await sender.flush()).toBe(true);
    expect(appended.reduce((sum, events) => sum + events, 0)).toBe(90);
    expect(Math.max(...appended)).toBeLessThanOrEqual(10);
    await expectExactlyOnceInOrder(stream, committed, 'one-lane');
  });

  it('runs at most half its database pool of passes at once, whatever passes it was given', async () => {
    const appendsAtOnce = async (poolSize: number | undefined) => {
      const stream = new RedisEventStream(redis, `${prefix}pool-${poolSize}:`, undefined, { partitions: 4 });
      const committed = await commitUnsent(160, (i) => users[i % users.length]!);
      let inFlight = 0;
      let most = 0;
      const hooks = {
        beforeAppend: async () => {
          most = Math.max(most, ++inFlight);
          // Long enough that passes started together overlap, on a busy machine too.
          await new Promise((resolve) => setTimeout(resolve, 200));
        },
        afterAppend: () => void inFlight--,
      };
      expect(await relay({ stream, batchSize: 10, passes: 4, poolSize, hooks }).flush()).toBe(true);
      await expectExactlyOnceInOrder(stream, committed, `pool-${poolSize}`);
      return most;
    };
    expect(await appendsAtOnce(undefined)).toBe(4);
    await main.db.execute(sql`delete from outbox`);
    expect(await appendsAtOnce(5)).toBe(2);
  });

  it('starts on a stream of more partitions than passes can run (one per partition, up to the bound), and sends everything', async () => {
    const stream = partitioned(redis, 32);
    const committed = await commitUnsent(40, (i) => users[i % users.length]!);
    const started = relay({ stream });
    await started.flush();
    await expectExactlyOnceInOrder(stream, committed, 'wide');
  });

  it('runs no pass beside a relay of the previous version (its exclusive lock), and sends once that one is done', async () => {
    const committed = await commitUnsent(40, (i) => users[i % users.length]!);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const locked = new Promise<void>((resolve) => {
      // The previous version's pass: the relay lock, taken exclusively for the length of its transaction.
      void main.db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(727002)`);
        resolve();
        await released;
      });
    });
    await locked;
    const sender = relay({ stream: partitioned(), batchSize: 10, passes: 4 });
    expect(await sender.flush(300)).toBe(false);
    expect(await unsentCount()).toBe(40);
    release();
    expect(await sender.flush()).toBe(true);
    await expectExactlyOnceInOrder(partitioned(), committed, 'lanes');
  });
});
