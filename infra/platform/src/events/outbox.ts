import { randomUUID } from 'node:crypto';
import { asc, inArray, isNull, sql } from 'drizzle-orm';
import { bigint, index, jsonb, pgTable, timestamp } from 'drizzle-orm/pg-core';
import { pgErrorCode, type Database } from '../db/index.ts';
import { publicError } from '../errors.ts';
import type { Viewer } from '../identity/viewer.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { DomainEvent, NewDomainEvent } from './index.ts';
import type { EventStream } from './stream.ts';
import {
  createIdempotencyRepository,
  currentMutationField,
  decodeResult,
  encodeResult,
  fieldFingerprint,
  IDEMPOTENCY_KEY_IN_PROGRESS,
  IDEMPOTENCY_KEY_REUSED,
  IDEMPOTENCY_WAIT_MS,
  type IdempotencyClaim,
  type IdempotentWrite,
} from './idempotency.ts';

/**
 * Each subgraph's outbox: its events, written in the transaction of the change they describe, so an event
 * exists exactly when its change does. Subgraphs re-export this table from their schema, which puts it in
 * their migrations.
 */
export const outbox = pgTable(
  'outbox',
  {
    seq: bigint('seq', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    event: jsonb('event').$type<DomainEvent>().notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    sentAt: timestamp('sent_at', { withTimezone: true }),
  },
  (table) => [index('outbox_unsent_idx').on(table.seq).where(sql`${table.sentAt} is null`)],
);

type AnyDatabase = Database<Record<string, unknown>>;

/** Records an event of the running transaction; it is written with the transaction's other rows. */
export type Emit = (change: NewDomainEvent) => void;
/** Runs `work` in one transaction that also writes the events it emits. A throw rolls back both. */
export type Transact<TDatabase> = <T>(work: (tx: TDatabase, emit: Emit) => Promise<T>) => Promise<T>;

export interface UnitOfWorkOptions<TDatabase> {
  db: TDatabase;
  /** The subgraph that commits the events. */
  source: string;
  relay: Pick<OutboxRelay, 'flush'>;
  /** How long a committed write waits for its events to reach the stream before it answers anyway. */
  flushTimeoutMs?: number;
}

/** Who a request writes for, and the idempotency key the caller signed into it, if any. */
export interface WriteIdentity {
  viewer: Viewer | null;
  idempotency?: IdempotencyClaim;
}

/** The key, the viewer and the mutation field a write is for; undefined when the write is not idempotent. */
function idempotentWrite(identity: WriteIdentity | undefined): IdempotentWrite | undefined {
  const field = currentMutationField();
  if (!identity?.idempotency || !identity.viewer || !field) return undefined;
  // One key row per field, taken by the field's transaction: a second transaction of the same field would find
  // the first one's row and replay it instead of writing. No mutation does that; one that did is a bug here.
  if (field.claimed) throw new Error(`mutation field ${field.name} wrote in two transactions; an idempotency key covers one`);
  field.claimed = true;
  return {
    subject: identity.viewer.userId,
    key: identity.idempotency.key,
    field: field.field,
    request: identity.idempotency.request,
    fingerprint: fieldFingerprint(field),
  };
}

const reused = () =>
  publicError(IDEMPOTENCY_KEY_REUSED, 'This Idempotency-Key was already used for a different request; nothing was written. Use a new key for a new request.');

/**
 * Inside the write's transaction, before the write: takes the key, or returns what the first request with it
 * stored. A twin still in flight holds the key's row, so this waits for it to commit (then replays it) or roll
 * back (then writes), at most IDEMPOTENCY_WAIT_MS.
 */
async function claimOrReplay(tx: AnyDatabase, write: IdempotentWrite): Promise<{ stored: unknown } | undefined> {
  const keys = createIdempotencyRepository(tx);
  // Only this statement waits on a twin; the write's own statements keep the server's lock_timeout.
  await tx.execute(sql.raw(`set local lock_timeout = '${IDEMPOTENCY_WAIT_MS}ms'`));
  let mine: boolean;
  try {
    mine = await keys.claim(write);
  } catch (error) {
    if (pgErrorCode(error) !== '55P03') throw error;
    throw publicError(IDEMPOTENCY_KEY_IN_PROGRESS, 'A request with this Idempotency-Key is still running; retry it later with the same key.');
  }
  await tx.execute(sql.raw('set local lock_timeout to default'));
  if (mine) {
    if (await keys.usedByAnotherRequest(write)) throw reused();
    return undefined;
  }
  const found = await keys.find(write);
  if (!found) throw new Error('an idempotency key row that conflicted is gone');
  if (found.request !== write.request || found.fingerprint !== write.fingerprint) throw reused();
  return { stored: found.result };
}

/** How often, at most, a process deletes expired idempotency keys (after one of its keyed writes). */
const PRUNE_KEYS_EVERY_MS = 60_000;

/**
 * Transactions that write their events to the outbox. After the commit the write hands its events to
 * `committed` (the subgraph returns them to the gateway, which purges its cache before it answers) and asks
 * the relay to send them, waiting briefly: a client that reads the stream right after a mutation finds it
 * there. If the stream is down the write still succeeds; its events wait in the outbox.
 *
 * With `identity` carrying an idempotency key, a transaction run for a mutation field also stores the field's
 * result under the key, in the same transaction: the write and its record commit together or not at all. A
 * retry with the key replays that result (it writes and emits nothing), so the field runs once.
 */
export function createUnitOfWork<TDatabase extends AnyDatabase>({ db, source, relay, flushTimeoutMs = 1_000 }: UnitOfWorkOptions<TDatabase>) {
  // The first keyed write of a process prunes, then one a minute at most.
  let prunedAt = 0;
  const pruneKeys = () => {
    if (Date.now() - prunedAt < PRUNE_KEYS_EVERY_MS) return;
    prunedAt = Date.now();
    // Expired keys are already ignored; deleting them only reclaims space, so a failure waits for the next try.
    void createIdempotencyRepository(db).prune().catch(() => {});
  };
  return (committed: (events: DomainEvent[]) => void = () => {}, identity?: WriteIdentity): Transact<TDatabase> =>
    async <T>(work: (tx: TDatabase, emit: Emit) => Promise<T>) => {
      const write = idempotentWrite(identity);
      const events: DomainEvent[] = [];
      const emit: Emit = (change) => events.push({ id: randomUUID(), occurredAt: new Date().toISOString(), source, ...change });
      const outcome = await db.transaction(async (tx): Promise<{ value: T; replayed: boolean }> => {
        if (write) {
          const replay = await claimOrReplay(tx, write);
          // What the same code returned for the first request, so it has the type `work` returns.
          if (replay) return { value: decodeResult(replay.stored) as T, replayed: true };
        }
        const value = await work(tx as unknown as TDatabase, emit);
        if (events.length > 0) await tx.insert(outbox).values(events.map((event) => ({ event })));
        if (write) await createIdempotencyRepository(tx).complete(write, encodeResult(value));
        return { value, replayed: false };
      });
      if (events.length > 0) committed(events);
      if (write) pruneKeys();
      // A replay answers for the first request's write: its events may still be waiting in the outbox.
      if (events.length > 0 || outcome.replayed) await relay.flush(flushTimeoutMs);
      return outcome.value;
    };
}

export interface OutboxRelay {
  /** Sends everything committed before the call; resolves when sent, or after `timeoutMs` if given. */
  flush(timeoutMs?: number): Promise<void>;
  /** Polls for rows committed by processes that died before sending them. */
  start(): void;
  stop(): Promise<void>;
}

export interface OutboxRelayOptions {
  db: AnyDatabase;
  stream: EventStream;
  logger: Logger;
  batchSize?: number;
  pollMs?: number;
  /** How long sent rows are kept (for inspection) before they are deleted. */
  keepSentMs?: number;
  /** Called inside a pass, around the append: crash tests stop the process at these points. */
  hooks?: { beforeAppend?(): Promise<void> | void; afterAppend?(): Promise<void> | void };
  /** Counts events relayed (`events_relayed_total`) and failed passes. */
  metrics?: Metrics;
}

// Any constant works as long as every relay of the same database agrees on it.
const RELAY_LOCK_KEY = 727_002;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/**
 * Moves outbox rows to the stream, oldest first, then marks them sent, in one transaction that holds an
 * advisory lock: with several replicas one relays at a time, which keeps each user's events in commit order.
 * A crash anywhere rolls the transaction back and releases the lock; the rows are sent again, and the stream
 * drops the repeats by event id. So every committed event reaches the stream exactly once.
 */
export function createOutboxRelay({ db, stream, logger, batchSize = 500, pollMs = 1_000, keepSentMs = 3_600_000, hooks, metrics }: OutboxRelayOptions): OutboxRelay {
  const relayed = metrics?.counter({ name: 'events_relayed_total', help: 'Events moved from the outbox to the event stream (committed)' });
  const failures = metrics?.counter({ name: 'events_relay_failures_total', help: 'Outbox relay passes that failed (events stay in the outbox)' });
  let requested = 0;
  let completed = 0;
  let running: Promise<void> | undefined;
  let stopped = false;
  let failing = false;
  let poll: NodeJS.Timeout | undefined;
  let prunedAt = 0;
  const waiters = new Set<{ ticket: number; resolve(): void }>();

  const release = (upTo: number) => {
    for (const waiter of [...waiters]) {
      if (waiter.ticket > upTo) continue;
      waiters.delete(waiter);
      waiter.resolve();
    }
  };

  /**
   * One batch. It waits for the lock rather than trying it: the holder's pass is a few milliseconds, and the
   * rows this call was asked for are then either sent by the holder or found by this pass. lock_timeout bounds
   * the wait behind a holder that hangs.
   */
  const pass = (): Promise<number> =>
    db.transaction(async (tx) => {
      await tx.execute(sql`set local lock_timeout = '2s'`);
      await tx.execute(sql`select pg_advisory_xact_lock(${RELAY_LOCK_KEY})`);
      const rows = await tx.select({ seq: outbox.seq, event: outbox.event }).from(outbox).where(isNull(outbox.sentAt)).orderBy(asc(outbox.seq)).limit(batchSize);
      if (rows.length === 0) return 0;
      await hooks?.beforeAppend?.();
      await stream.append(rows.map((row) => row.event));
      await hooks?.afterAppend?.();
      await tx
        .update(outbox)
        .set({ sentAt: sql`now()` })
        .where(inArray(outbox.seq, rows.map((row) => row.seq)));
      if (Date.now() - prunedAt > 60_000) {
        prunedAt = Date.now();
        await tx.delete(outbox).where(sql`${outbox.sentAt} < now() - make_interval(secs => ${keepSentMs / 1000})`);
      }
      return rows.length;
    });

  const run = async () => {
    while (completed < requested && !stopped) {
      const target = requested;
      try {
        let sent: number;
        do {
          sent = await pass();
          relayed?.inc(sent);
        } while (sent === batchSize && !stopped);
        if (failing) logger.info('outbox relay recovered');
        failing = false;
      } catch (error) {
        // The events stay in the outbox; the next poll sends them. Writers must not wait on an outage.
        if (!failing) logger.warn({ err: error }, 'outbox relay failed; retrying');
        failures?.inc();
        failing = true;
      }
      completed = target;
      release(target);
      if (failing) break;
    }
  };

  const flush = (timeoutMs?: number): Promise<void> => {
    if (stopped) return Promise.resolve();
    const ticket = ++requested;
    const done = new Promise<void>((resolve) => waiters.add({ ticket, resolve }));
    running ??= run().finally(() => {
      running = undefined;
      if (completed < requested && !stopped && !failing) void flush();
    });
    return timeoutMs === undefined ? done : Promise.race([done, delay(timeoutMs)]);
  };

  return {
    flush,
    start: () => {
      poll ??= setInterval(() => void flush(), pollMs).unref();
      void flush();
    },
    stop: async () => {
      stopped = true;
      clearInterval(poll);
      await running;
      release(Infinity);
    },
  };
}
