import { randomUUID } from 'node:crypto';
import { and, asc, inArray, isNull, sql } from 'drizzle-orm';
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
  /**
   * Called inside a pass, around the append: crash tests stop the process at these points. `phase` hears how
   * long each step of a pass took (the bench's per-pass profile).
   */
  hooks?: { beforeAppend?(): Promise<void> | void; afterAppend?(): Promise<void> | void; phase?(name: PassPhase, ms: number, events: number): void };
  /** Counts events relayed (`events_relayed_total`) and failed passes. */
  metrics?: Metrics;
  /** The most two services' clocks may differ by (ms): a clearance is claimed that much shorter, twice over. */
  maxClockSkewMs?: number;
  /** How long another source may hold this one's events back before it is presumed gone (see CausalFence). */
  maxStallMs?: number;
  /** While the stream holds events back, how often the relay tries them again. */
  holdRetryMs?: number;
  /**
   * How many passes run at once, each over its share of the outbox's lanes (1 to MAX_RELAY_PASSES;
   * EVENT_RELAY_PASSES). Default: the partitions the stream spreads new users over.
   */
  passes?: number;
}

// Any constants work as long as every relay of the same database agrees on them. Relays before lanes took
// RELAY_LOCK_KEY exclusively for each pass; lane passes take it shared, so a relay of either kind never runs a
// pass beside one of the other during a rolling upgrade.
const RELAY_LOCK_KEY = 727_002;
const RELAY_LANE_LOCK_CLASS = 727_003;
/**
 * Every outbox row belongs to one of this many lanes, by a hash of its user id that Postgres computes
 * (`hashtext(userId) & 63`), so every relay of a database agrees on it whatever its own settings. A pass takes
 * the locks of the lanes it serves: one user's rows are only ever sent by one pass at a time, in order.
 */
export const RELAY_LANES = 64;
/** The most passes one relay runs at once (each holds a database connection while it runs). */
export const MAX_RELAY_PASSES = 16;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** The steps of a pass, as `hooks.phase` hears them. */
export type PassPhase = 'lock' | 'claim' | 'append' | 'commit';

/** One pass's outcome: events that went in, whether the stream held some back, whether more rows wait. */
interface Pass {
  sent: number;
  held: boolean;
  more: boolean;
}

/**
 * Moves outbox rows to the stream, oldest first, then marks them sent, in one transaction that holds advisory
 * locks: with several replicas one pass at a time sends a given user's rows, which keeps each user's events in
 * commit order. A crash anywhere rolls the transaction back and releases the locks; the rows are sent again, and
 * the stream drops the repeats by event id. So every committed event reaches the stream exactly once.
 *
 * Concurrent passes (`passes`, by default the stream's partition count): the outbox's rows fall into
 * RELAY_LANES lanes by user, and pass g of `passes` serves the lanes l with l % passes = g, taking each one's lock
 * (in ascending order, so relays with other `passes` wait on each other and never deadlock). Each pass runs in a
 * transaction of its own and drains its lanes at its own pace, so Postgres and the stream's partitions work on
 * several batches at once. Relays of one database may run with different `passes` (a deployment changing it):
 * lanes are the database's, not the relay's, so they still exclude each other user by user.
 *
 * Causal order across sources (once a unit of work called `serve`): a write is acknowledged either with its
 * events in the stream, or, when they could not get there, only `ackWaitMs` after its commit. So a pass that
 * started at `p` and sent every row of its lanes it found vouches that every event of its source in those lanes
 * acknowledged before `p + ackWaitMs` is in the stream. The relay's clearance is the least of its passes' latest
 * vouchers (less the clock skew allowance), claimed by each pass, idle ones included (they run at least three
 * times per `ackWaitMs`); the first pass renews it on every partition, the others only where they append. The
 * stream appends an event of another source stamped `t` only once this source's clearance reaches `t`, so a
 * write acknowledged here before another was sent anywhere is in every timeline first. While the stream or this
 * database is unreachable the clearance stops moving and other sources' newer events wait; see CausalFence for
 * how long.
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
  passes = stream.writerPartitions ?? 1,
}: OutboxRelayOptions): OutboxRelay {
  if (!Number.isInteger(passes) || passes < 1 || passes > MAX_RELAY_PASSES) throw new Error(`passes must be 1 to ${MAX_RELAY_PASSES}`);
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
  /** Per pass (lane group), what its latest complete pass vouched for; undefined until it has passed once. */
  const vouched: (number | undefined)[] = Array.from({ length: passes }, () => undefined);

  const release = (upTo: number, sent: boolean) => {
    for (const waiter of [...waiters]) {
      if (waiter.ticket > upTo) continue;
      waiters.delete(waiter);
      waiter.resolve(sent);
    }
  };

  const timed = async <T>(phase: PassPhase, events: number, step: () => Promise<T>): Promise<T> => {
    if (!hooks?.phase) return step();
    const started = performance.now();
    const value = await step();
    hooks.phase(phase, performance.now() - started, events);
    return value;
  };

  /** The lanes of group `group` of `of`: every row when `of` is 1 (no filter at all). */
  const lanes = (group: number, of: number) => (of === 1 ? sql`true` : sql`(hashtext(${outbox.event}->>'userId') & ${RELAY_LANES - 1}) % ${of} = ${group}`);

  /**
   * One batch of lane group `group` of `of` (0 of 1: the whole outbox). It waits for the locks rather than trying
   * them: a holder's pass is a few milliseconds, and the rows this call was asked for are then either sent by the
   * holder or found by this pass. lock_timeout bounds the wait behind a holder that hangs.
   *
   * It marks its batch sent as it selects it (one statement), then appends it, and unmarks what the stream held
   * back; all in its transaction, so a crash or a failed append leaves every row unsent.
   */
  const pass = (group: number, of: number): Promise<Pass> => {
    // Before the transaction's first snapshot: every row committed before this instant is seen by this pass.
    const startedAt = Date.now();
    let committing = 0;
    return db
      .transaction(async (tx) => {
        // One round trip: the timeout, then the old relays' lock (shared), then this group's lanes in ascending order.
        await timed('lock', 0, () =>
          tx.execute(
            sql`select set_config('lock_timeout', '2s', true), pg_advisory_xact_lock_shared(${RELAY_LOCK_KEY}), (select count(pg_advisory_xact_lock(${RELAY_LANE_LOCK_CLASS}, lane)) from generate_series(${group}::int, ${RELAY_LANES - 1}, ${of}::int) as lane)`,
          ),
        );
        const mine = and(isNull(outbox.sentAt), lanes(group, of));
        const claimed = await timed('claim', 0, async () => {
          const oldest = tx.select({ seq: outbox.seq }).from(outbox).where(mine).orderBy(asc(outbox.seq)).limit(batchSize);
          return tx.update(outbox).set({ sentAt: sql`now()` }).where(inArray(outbox.seq, oldest)).returning({ seq: outbox.seq, event: outbox.event });
        });
        const rows = claimed.sort((a, b) => a.seq - b.seq);
        let clearance = fenced ? startedAt + fenced.ackWaitMs - 2 * maxClockSkewMs : undefined;
        // Nothing to send: only a pass over every lane or the first lane group appends anyway, to renew the
        // relay's clearance in every partition.
        const renews = group === 0;
        if (rows.length === 0 && !(fenced && renews)) return { sent: 0, held: false, more: false, clearance };
        let fence: CausalFence | undefined;
        if (fenced && clearance !== undefined) {
          if (rows.length === batchSize) {
            // Rows beyond this batch are not sent yet: the clearance cannot pass the oldest stamp among them.
            const [beyond] = await tx.select({ stamp: sql<string | null>`min(${outbox.event}->>'occurredAt')` }).from(outbox).where(mine);
            if (beyond?.stamp) clearance = Math.min(clearance, Date.parse(beyond.stamp));
          }
          // The relay vouches only for what all its lane groups have: the others' latest, and this one's.
          const others = of === 1 ? [] : vouched.filter((_, g) => g !== group);
          const claim = others.some((value) => value === undefined) ? -1 : Math.min(clearance, ...(others as number[]));
          fence = { source: fenced.source, instance, now: Date.now(), clearance: claim, reachableSince: reachableSince ?? Date.now(), maxStallMs, everywhere: renews };
        }
        await hooks?.beforeAppend?.();
        const positions = await timed('append', rows.length, () =>
          stream.append(
            rows.map((row) => row.event),
            fence,
          ),
        );
        await hooks?.afterAppend?.();
        const unsent = rows.slice(positions.length);
        if (unsent.length > 0) {
          // Held back: unsent again, and this group vouches no further than its oldest event among them.
          await tx.execute(sql`update ${outbox} set sent_at = null where ${outbox.seq} = any(${`{${unsent.map((row) => row.seq).join(',')}}`}::bigint[])`);
          if (clearance !== undefined) clearance = Math.min(clearance, ...unsent.map((row) => Date.parse(row.event.occurredAt)));
        }
        if (group === 0 && Date.now() - prunedAt > 60_000) {
          prunedAt = Date.now();
          await tx.delete(outbox).where(sql`${outbox.sentAt} < now() - make_interval(secs => ${keepSentMs / 1000})`);
        }
        committing = performance.now();
        return { sent: positions.length, held: unsent.length > 0, more: rows.length === batchSize, clearance };
      })
      .then(({ clearance, ...outcome }) => {
        if (committing) hooks?.phase?.('commit', performance.now() - committing, outcome.sent);
        if (clearance !== undefined) {
          if (of === 1) vouched.fill(clearance);
          else vouched[group] = clearance;
        }
        return outcome;
      });
  };

  /** Passes of one lane group until its lanes are drained (true), the stream holds events back, or a pass fails (false). */
  const drainGroup = async (group: number, of: number): Promise<Pass> => {
    let outcome: Pass;
    do {
      outcome = await pass(group, of);
      relayed?.inc(outcome.sent);
    } while (outcome.more && !outcome.held && !stopped);
    return outcome;
  };

  /**
   * Drains the outbox (true), unless the stream holds events back or a pass fails (false). Passes over the whole
   * outbox first: one transaction per flush while writes trickle in. Once one finds a full batch (a backlog), the
   * lane groups' passes drain the rest at once, each at its own pace; it throws the first failure once all settled.
   */
  const drain = async (): Promise<boolean> => {
    const whole = passes === 1 ? await drainGroup(0, 1) : await pass(0, 1);
    if (passes > 1) relayed?.inc(whole.sent);
    if (!whole.more || whole.held || stopped) return !whole.held && !whole.more;
    const settled = await Promise.allSettled(Array.from({ length: passes }, (_, group) => drainGroup(group, passes)));
    const failed = settled.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    return settled.every((result) => result.status === 'fulfilled' && !result.value.held && !result.value.more);
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
