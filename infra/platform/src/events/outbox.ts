import { randomUUID } from 'node:crypto';
import { and, asc, isNull, sql } from 'drizzle-orm';
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
/** How often the relay deletes the rows it sent long ago. */
const PRUNE_EVERY_MS = 60_000;

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
  /**
   * The connections of the pool `db` draws on. Each pass holds one for its transaction, so the relay runs at most
   * half as many passes: during a backlog the service's requests still get connections.
   */
  poolSize?: number;
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

/** The steps of a round, as `hooks.phase` hears them: `select` once per round, the others once per pass. */
export type PassPhase = 'select' | 'lock' | 'claim' | 'append' | 'commit';

/** A round's or a pass's outcome: events that went in, whether the stream held some back, whether more rows wait. */
interface Pass {
  sent: number;
  held: boolean;
  more: boolean;
}

/**
 * Moves outbox rows to the stream, oldest first, in rounds. A round reads which rows are unsent (the oldest, by
 * `seq`, and each one's lane), then sends them in passes. A pass claims its rows (marks them sent if they still
 * are unsent), appends them and commits, in one transaction that holds advisory locks on their lanes: with several
 * replicas one pass at a time sends a given user's rows, which keeps each user's events in commit order. A crash
 * anywhere rolls the transaction back and releases the locks; the rows are sent again, and the stream drops the
 * repeats by event id. So every committed event reaches the stream exactly once.
 *
 * Lanes: every row falls into one of RELAY_LANES lanes by its user, and a pass over lane group g of `of` locks
 * the lanes l with l % of = g, in ascending order, so relays with any `of` wait on each other and never deadlock.
 * A round's first pass covers every lane (one transaction per flush while writes trickle in); once a round finds
 * a full batch (a backlog), the next rounds read `passes` batches at once and send each lane group's share in a
 * pass of its own, at once, so Postgres and the stream's partitions work on several batches together. A round
 * reads a user's rows in `seq` order, and a row its read missed committed after the ones it saw, so a pass never
 * sends a user's row before an older one. Relays of one database may run with different `passes` (a deployment
 * changing it): lanes are the database's, not the relay's.
 *
 * Causal order across sources (once a unit of work called `serve`): a write is acknowledged either with its
 * events in the stream, or, when they could not get there, only `ackWaitMs` after its commit. So a round that
 * started at `p` and sent every row of a lane group it found vouches that every event of its source in those
 * lanes acknowledged before `p + ackWaitMs` is in the stream. The relay's clearance is the least of its lane
 * groups' latest vouchers (less the clock skew allowance), claimed with every append; an idle round renews it in
 * every partition (idle rounds run at least three times per `ackWaitMs`), and so does every round's pass over all
 * lanes or over group 0. The stream appends an event of another source stamped `t` only once this source's
 * clearance reaches `t`, so a write acknowledged here before another was sent anywhere is in every timeline first.
 * While the stream or this database is unreachable the clearance stops moving and other sources' newer events
 * wait; see CausalFence for how long.
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
  // One per partition by default, within the bound: a stream of up to 64 partitions must still start its relay.
  passes: asked = Math.min(stream.writerPartitions ?? 1, MAX_RELAY_PASSES),
  poolSize,
}: OutboxRelayOptions): OutboxRelay {
  if (!Number.isInteger(asked) || asked < 1 || asked > MAX_RELAY_PASSES) throw new Error(`passes must be 1 to ${MAX_RELAY_PASSES}`);
  const passes = poolSize === undefined ? asked : Math.min(asked, Math.max(1, Math.floor(poolSize / 2)));
  if (passes < asked) logger.info({ passes, asked, poolSize }, 'outbox relay: fewer passes at once than asked, to leave half the database pool to requests');
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

  /**
   * Deletes the rows sent more than keepSentMs ago, once a minute at most, after a drain, beside the passes: in a
   * pass it held the lanes' locks and the appended events' commit for as long as the delete took, and awaited
   * between drains it would hold the next writes' flushes.
   */
  let pruning: Promise<void> | undefined;
  const prune = () => {
    if (pruning || Date.now() - prunedAt < PRUNE_EVERY_MS) return;
    prunedAt = Date.now();
    pruning = db
      .delete(outbox)
      .where(sql`${outbox.sentAt} < now() - make_interval(secs => ${keepSentMs / 1000})`)
      .then(
        () => undefined,
        (error: unknown) => logger.warn({ err: error }, 'outbox relay: deleting sent rows failed; trying again in a minute'),
      )
      .finally(() => {
        pruning = undefined;
      });
  };

  const seqList = (rows: readonly { seq: number }[]) => `{${rows.map((row) => row.seq).join(',')}}`;

  /**
   * One pass: lane group `group` of `of` (0 of 1: every lane) sends `seqs`, those of them still unsent once it
   * holds the lanes' locks, claiming `claim` as the relay's clearance. It waits for the locks rather than trying
   * them: a holder's pass is a few milliseconds. lock_timeout bounds the wait behind a holder that hangs.
   * It marks the rows sent as it reads them (one statement), then appends them, and unmarks what the stream held
   * back; all in its transaction, so a crash or a failed append leaves every row unsent.
   */
  const pass = (group: number, of: number, seqs: string, fence: CausalFence | undefined): Promise<Pass & { heldFrom?: number }> => {
    let committing = 0;
    return db
      .transaction(async (tx) => {
        // One round trip: the timeout, then the old relays' lock (shared), then the group's lanes in ascending order.
        await timed('lock', 0, () =>
          tx.execute(
            sql`select set_config('lock_timeout', '2s', true), pg_advisory_xact_lock_shared(${RELAY_LOCK_KEY}), (select count(pg_advisory_xact_lock(${RELAY_LANE_LOCK_CLASS}, lane)) from generate_series(${group}::int, ${RELAY_LANES - 1}, ${of}::int) as lane)`,
          ),
        );
        const claimed = await timed('claim', 0, () =>
          tx
            .update(outbox)
            .set({ sentAt: sql`now()` })
            .where(and(sql`${outbox.seq} = any(${seqs}::bigint[])`, isNull(outbox.sentAt)))
            .returning({ seq: outbox.seq, event: outbox.event }),
        );
        const rows = claimed.sort((a, b) => a.seq - b.seq);
        // Another relay sent them all meanwhile; only a renewal has to append anyway.
        if (rows.length === 0 && !fence?.everywhere) return { sent: 0, held: false, more: false };
        await hooks?.beforeAppend?.();
        const positions = await timed('append', rows.length, () =>
          stream.append(
            rows.map((row) => row.event),
            fence,
          ),
        );
        await hooks?.afterAppend?.();
        const unsent = rows.slice(positions.length);
        // Held back: unsent again.
        if (unsent.length > 0) await tx.execute(sql`update ${outbox} set sent_at = null where ${outbox.seq} = any(${seqList(unsent)}::bigint[])`);
        committing = performance.now();
        const heldFrom = unsent.length > 0 ? Math.min(...unsent.map((row) => Date.parse(row.event.occurredAt))) : undefined;
        return { sent: positions.length, held: unsent.length > 0, more: false, heldFrom };
      })
      .then((outcome) => {
        if (committing) hooks?.phase?.('commit', performance.now() - committing, outcome.sent);
        relayed?.inc(outcome.sent);
        return outcome;
      });
  };

  /**
   * One round over the oldest `of` × batchSize unsent rows, in a pass per lane group of `of` that has any (with
   * `of` 1, one pass over every lane). Throws the first failure once every pass settled.
   */
  const round = async (of: number): Promise<Pass> => {
    // Before the read's snapshot: every row committed before this instant is seen by this round.
    const startedAt = Date.now();
    const window = of * batchSize;
    const lane = sql<number>`hashtext(${outbox.event}->>'userId') & ${RELAY_LANES - 1}`.mapWith(Number);
    const stamp = sql<string | null>`${outbox.event}->>'occurredAt'`;
    const rows = await timed('select', 0, () => db.select({ seq: outbox.seq, lane, stamp }).from(outbox).where(isNull(outbox.sentAt)).orderBy(asc(outbox.seq)).limit(window));
    const full = rows.length === window;
    // Each pass appends at most a batch, in one stream script: a backlog in few lanes (one busy user) waits for
    // the next rounds rather than making one script of `of` batches that blocks the stream's Redis.
    const groups = Array.from({ length: of }, () => [] as { seq: number }[]);
    let left = 0;
    let deferredFrom = Infinity;
    for (const row of rows) {
      const share = groups[row.lane % of]!;
      if (share.length < batchSize) share.push(row);
      else {
        left += 1;
        if (row.stamp) deferredFrom = Math.min(deferredFrom, Date.parse(row.stamp));
      }
    }
    const more = full || left > 0;
    let clearance: number | undefined;
    if (fenced) {
      clearance = startedAt + fenced.ackWaitMs - 2 * maxClockSkewMs;
      // The rows a share left for later are not sent yet either.
      clearance = Math.min(clearance, deferredFrom);
      if (full) {
        // Rows beyond this round are not sent yet: the clearance cannot pass the oldest stamp among them.
        const [beyond] = await db
          .select({ stamp: sql<string | null>`min(${outbox.event}->>'occurredAt')` })
          .from(outbox)
          .where(and(isNull(outbox.sentAt), sql`${outbox.seq} > ${(rows.at(-1) as { seq: number }).seq}`));
        if (beyond?.stamp) clearance = Math.min(clearance, Date.parse(beyond.stamp));
      }
    }
    const outcomes = await Promise.allSettled(
      groups.map(async (share, group) => {
        // The pass over every lane, or group 0's, renews the clearance in every partition, also when idle.
        const renews = group === 0 && fenced !== undefined && clearance !== undefined;
        if (share.length === 0 && !renews) return undefined;
        let fence: CausalFence | undefined;
        if (fenced && clearance !== undefined) {
          // The relay vouches only for what all its lane groups have: the others' latest, and this one's.
          const others = of === 1 ? [] : vouched.filter((_, g) => g !== group);
          const claim = others.some((value) => value === undefined) ? -1 : Math.min(clearance, ...(others as number[]));
          fence = { source: fenced.source, instance, now: Date.now(), clearance: claim, reachableSince: reachableSince ?? Date.now(), maxStallMs, everywhere: renews };
        }
        // Idle: nothing to claim, so no transaction; the round's read saw every row this renewal vouches for.
        if (share.length === 0) return { sent: (await stream.append([], fence)).length, held: false, more: false };
        return pass(group, of, seqList(share), fence);
      }),
    );
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    const passes = outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : undefined));
    if (clearance !== undefined) {
      for (let group = 0; group < of; group++) {
        // A group without rows in this round vouches as far as the round; one held back, to its oldest held event.
        const voucher = Math.min(clearance, passes[group]?.heldFrom ?? Infinity);
        if (of === 1) vouched.fill(voucher);
        else vouched[group] = voucher;
      }
    }
    return { sent: passes.reduce((sum, outcome) => sum + (outcome?.sent ?? 0), 0), held: passes.some((outcome) => outcome?.held), more };
  };

  /**
   * Rounds until the outbox is drained (true), the stream holds events back, or a pass fails (false). A round over
   * every lane first; after a full one, rounds of `passes` lane groups.
   */
  const drain = async (): Promise<boolean> => {
    let outcome = await round(1);
    while (outcome.more && !outcome.held && !stopped) outcome = await round(passes);
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
        prune();
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
      await pruning;
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
