import { randomUUID } from 'node:crypto';
import { and, asc, gt, inArray, isNull, sql } from 'drizzle-orm';
import { bigint, index, jsonb, pgTable, timestamp } from 'drizzle-orm/pg-core';
import { pgErrorCode, type Database } from '../db/index.ts';
import { publicError } from '../errors.ts';
import type { Viewer } from '../identity/viewer.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { DomainEvent, NewDomainEvent } from './index.ts';
import type { CausalFence, EventStream } from './stream.ts';
import {
  createIdempotencyRepository,
  decodeResult,
  encodeResult,
  fieldFingerprint,
  IDEMPOTENCY_KEY_IN_PROGRESS,
  IDEMPOTENCY_KEY_REUSED,
  IDEMPOTENCY_WAIT_MS,
  type IdempotencyClaim,
  type IdempotentWrite,
  type MutationField,
  type RequestWrites,
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
  /** Told which source it serves (a test may pass a bare `flush`, which orders nothing across sources). */
  relay: { flush(timeoutMs?: number): Promise<unknown>; serve?: OutboxRelay['serve'] };
  /**
   * How long a committed write waits for its events to reach the stream before it answers anyway. The relay
   * orders other sources' later events behind such a write (see createOutboxRelay).
   */
  flushTimeoutMs?: number;
}

/** Who a request writes for, and the idempotency key the caller signed into it, if any. */
export interface WriteIdentity {
  viewer: Viewer | null;
  idempotency?: IdempotencyClaim;
}

/** The key, the viewer and the mutation field a write is for; undefined when the write is not idempotent. */
function idempotentWrite(identity: WriteIdentity | undefined, field: MutationField | undefined): IdempotentWrite | undefined {
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
 * there. If the stream is down the write still succeeds, after `flushTimeoutMs`; its events wait in the outbox,
 * and no other source's event sent after the answer gets into the stream before them (see createOutboxRelay).
 *
 * With `identity` carrying an idempotency key, a transaction run for a mutation field also stores the field's
 * result under the key, in the same transaction: the write and its record commit together or not at all. A
 * retry with the key replays that result (it writes and emits nothing), so the field runs once.
 */
export function createUnitOfWork<TDatabase extends AnyDatabase>({ db, source, relay, flushTimeoutMs = 1_000 }: UnitOfWorkOptions<TDatabase>) {
  // A write whose events are not in the stream answers only after flushTimeoutMs: the relay vouches for no more.
  relay.serve?.({ source, ackWaitMs: flushTimeoutMs });
  // The first keyed write of a process prunes, then one a minute at most.
  let prunedAt = 0;
  const pruneKeys = () => {
    if (Date.now() - prunedAt < PRUNE_KEYS_EVERY_MS) return;
    prunedAt = Date.now();
    // Expired keys are already ignored; deleting them only reclaims space, so a failure waits for the next try.
    void createIdempotencyRepository(db).prune().catch(() => {});
  };
  return (writes?: RequestWrites, identity?: WriteIdentity): Transact<TDatabase> =>
    async <T>(work: (tx: TDatabase, emit: Emit) => Promise<T>) => {
      const write = idempotentWrite(identity, writes?.field);
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
      if (events.length > 0) writes?.committed(events);
      if (write) pruneKeys();
      // A replay answers for the first request's write: its events may still be waiting in the outbox.
      if (events.length > 0 || outcome.replayed) await relay.flush(flushTimeoutMs);
      return outcome.value;
    };
}

export interface OutboxRelay {
  /**
   * Sends everything committed before the call. Resolves true once it is all in the stream; false after
   * `timeoutMs` (if given) when it is not, because the stream or the database cannot be reached, or because the
   * stream holds it back behind an event another source acknowledged earlier (see CausalFence).
   */
  flush(timeoutMs?: number): Promise<boolean>;
  /**
   * Called by each unit of work that writes through this relay, before it starts: the relay's events come from
   * `source`, and its writers acknowledge a write whose events are not in the stream only after `ackWaitMs`.
   * From then on its appends are fenced: they keep every user's timeline in causal order across sources.
   */
  serve(writers: { source: string; ackWaitMs: number }): void;
  /** Polls for rows committed by processes that died before sending them, and renews its clearance. */
  start(): void;
  /** Stops; after sending everything it could, it withdraws its clearance, so it holds no other source back. */
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
  /** The most two services' clocks may differ by (ms): a clearance is claimed that much shorter, twice over. */
  maxClockSkewMs?: number;
  /** How long another source may hold this one's events back before it is presumed gone (see CausalFence). */
  maxStallMs?: number;
  /** While the stream holds events back, how often the relay tries them again. */
  holdRetryMs?: number;
}

// Any constant works as long as every relay of the same database agrees on it.
const RELAY_LOCK_KEY = 727_002;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** One pass's outcome: events that went in, whether the stream held some back, whether more rows wait. */
interface Pass {
  sent: number;
  held: boolean;
  more: boolean;
}

/**
 * Moves outbox rows to the stream, oldest first, then marks them sent, in one transaction that holds an
 * advisory lock: with several replicas one relays at a time, which keeps each user's events in commit order.
 * A crash anywhere rolls the transaction back and releases the lock; the rows are sent again, and the stream
 * drops the repeats by event id. So every committed event reaches the stream exactly once.
 *
 * Causal order across sources (once a unit of work called `serve`): a write is acknowledged either with its
 * events in the stream, or, when they could not get there, only `ackWaitMs` after its commit. So a pass that
 * started at `p` and sent every row it found vouches that every event of its source acknowledged before
 * `p + ackWaitMs` is in the stream: that is its clearance (less the clock skew allowance), renewed by every pass,
 * idle ones included (they run at least three times per `ackWaitMs`). The stream appends an event of another
 * source stamped `t` only once this source's clearance reaches `t`, so a write acknowledged here before another
 * was sent anywhere is in every timeline first. While the stream or this database is unreachable the clearance
 * stops moving and other sources' newer events wait; see CausalFence for how long.
 */
export function createOutboxRelay({
  db,
  stream,
  logger,
  batchSize = 500,
  pollMs = 1_000,
  keepSentMs = 3_600_000,
  hooks,
  metrics,
  maxClockSkewMs = 50,
  maxStallMs = 10_000,
  holdRetryMs = 100,
}: OutboxRelayOptions): OutboxRelay {
  const relayed = metrics?.counter({ name: 'events_relayed_total', help: 'Events moved from the outbox to the event stream (committed)' });
  const failures = metrics?.counter({ name: 'events_relay_failures_total', help: 'Outbox relay passes that failed (events stay in the outbox)' });
  const holds = metrics?.counter({
    name: 'events_relay_holds_total',
    help: 'Outbox relay passes whose events the stream held back behind an earlier acknowledged event of another source',
  });
  const instance = randomUUID();
  let fenced: { source: string; ackWaitMs: number } | undefined;
  let reachableSince: number | undefined;
  let requested = 0;
  let attempted = 0;
  let running: Promise<void> | undefined;
  let stopped = false;
  let failing = false;
  let holding = false;
  let poll: NodeJS.Timeout | undefined;
  let retry: NodeJS.Timeout | undefined;
  let prunedAt = 0;
  const waiters = new Set<{ ticket: number; resolve(sent: boolean): void }>();

  const release = (upTo: number, sent: boolean) => {
    for (const waiter of [...waiters]) {
      if (waiter.ticket > upTo) continue;
      waiters.delete(waiter);
      waiter.resolve(sent);
    }
  };

  /**
   * One batch. It waits for the lock rather than trying it: the holder's pass is a few milliseconds, and the
   * rows this call was asked for are then either sent by the holder or found by this pass. lock_timeout bounds
   * the wait behind a holder that hangs.
   */
  const pass = (): Promise<Pass> => {
    // Before the transaction's first snapshot: every row committed before this instant is seen by this pass.
    const startedAt = Date.now();
    return db.transaction(async (tx) => {
      await tx.execute(sql`set local lock_timeout = '2s'`);
      await tx.execute(sql`select pg_advisory_xact_lock(${RELAY_LOCK_KEY})`);
      const rows = await tx.select({ seq: outbox.seq, event: outbox.event }).from(outbox).where(isNull(outbox.sentAt)).orderBy(asc(outbox.seq)).limit(batchSize);
      if (rows.length === 0 && !fenced) return { sent: 0, held: false, more: false };
      let fence: CausalFence | undefined;
      if (fenced) {
        let clearance = startedAt + fenced.ackWaitMs - 2 * maxClockSkewMs;
        if (rows.length === batchSize) {
          // Rows beyond this batch are not sent yet: the clearance cannot pass the oldest stamp among them.
          const [oldest] = await tx
            .select({ stamp: sql<string | null>`min(${outbox.event}->>'occurredAt')` })
            .from(outbox)
            .where(and(isNull(outbox.sentAt), gt(outbox.seq, (rows.at(-1) as { seq: number }).seq)));
          if (oldest?.stamp) clearance = Math.min(clearance, Date.parse(oldest.stamp));
        }
        fence = { source: fenced.source, instance, now: Date.now(), clearance, reachableSince: reachableSince ?? Date.now(), maxStallMs };
      }
      await hooks?.beforeAppend?.();
      const positions = await stream.append(
        rows.map((row) => row.event),
        fence,
      );
      await hooks?.afterAppend?.();
      const sent = rows.slice(0, positions.length);
      if (sent.length > 0) {
        await tx
          .update(outbox)
          .set({ sentAt: sql`now()` })
          .where(inArray(outbox.seq, sent.map((row) => row.seq)));
      }
      if (Date.now() - prunedAt > 60_000) {
        prunedAt = Date.now();
        await tx.delete(outbox).where(sql`${outbox.sentAt} < now() - make_interval(secs => ${keepSentMs / 1000})`);
      }
      return { sent: sent.length, held: sent.length < rows.length, more: rows.length === batchSize };
    });
  };

  /** Passes until the outbox is drained (true), the stream holds events back, or a pass fails (false). */
  const drain = async (): Promise<boolean> => {
    let outcome: Pass;
    do {
      outcome = await pass();
      relayed?.inc(outcome.sent);
    } while (outcome.more && !outcome.held && !stopped);
    return !outcome.held && !outcome.more;
  };

  const run = async () => {
    while (attempted < requested && !stopped) {
      const target = requested;
      let drained = false;
      try {
        drained = await drain();
        reachableSince ??= Date.now();
        if (failing) logger.info('outbox relay recovered');
        failing = false;
      } catch (error) {
        // The events stay in the outbox; the next poll sends them. Writers must not wait on an outage.
        if (!failing) logger.warn({ err: error }, 'outbox relay failed; retrying');
        failures?.inc();
        failing = true;
        reachableSince = undefined;
      }
      attempted = target;
      if (drained) {
        release(target, true);
        if (holding) logger.info('outbox relay: held events went in');
        holding = false;
        continue;
      }
      if (!failing) {
        // Held back behind another source's earlier event: try again soon, it moves as soon as that one is in.
        if (!holding) logger.info('outbox relay: the stream holds events back behind an earlier write of another service');
        holding = true;
        holds?.inc();
        retry ??= setTimeout(() => {
          retry = undefined;
          request();
        }, holdRetryMs).unref();
      }
      break;
    }
  };

  const request = () => {
    if (stopped) return;
    requested += 1;
    running ??= run().finally(() => {
      running = undefined;
      if (attempted < requested && !stopped && !failing && !holding) request();
    });
  };

  // Renewing the clearance well within the writers' wait keeps other sources from ever waiting on an idle one.
  const pollEvery = () => (fenced ? Math.min(pollMs, Math.max(10, Math.floor(fenced.ackWaitMs / 3))) : pollMs);

  const flush = (timeoutMs?: number): Promise<boolean> => {
    if (stopped) return Promise.resolve(false);
    const done = new Promise<boolean>((resolve) => waiters.add({ ticket: requested + 1, resolve }));
    request();
    return timeoutMs === undefined ? done : Promise.race([done, delay(timeoutMs).then(() => false)]);
  };

  return {
    flush,
    serve: (writers) => {
      if (fenced && fenced.source !== writers.source) throw new Error(`outbox relay serves ${fenced.source}, not ${writers.source}`);
      fenced = { source: writers.source, ackWaitMs: Math.min(writers.ackWaitMs, fenced?.ackWaitMs ?? Infinity) };
      if (poll) {
        clearInterval(poll);
        poll = setInterval(request, pollEvery()).unref();
      }
    },
    start: () => {
      poll ??= setInterval(request, pollEvery()).unref();
      request();
    },
    stop: async () => {
      stopped = true;
      clearInterval(poll);
      clearTimeout(retry);
      await running;
      if (fenced) {
        // A last drain: if everything went in, this instance vouches for nothing any more and withdraws.
        const { source } = fenced;
        // Pass after pass (a full batch, or one held behind another source): a relay that stops without
        // withdrawing holds every other source back until it is presumed gone.
        const last = (async () => {
          for (const deadline = Date.now() + 2_000; Date.now() < deadline; await delay(holdRetryMs)) {
            if (await drain()) return stream.withdraw(source, instance);
          }
        })().catch(() => {});
        await Promise.race([last, delay(2_000)]);
      }
      release(Infinity, false);
    },
  };
}
