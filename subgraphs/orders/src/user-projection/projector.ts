import { randomUUID } from 'node:crypto';
import { comparePositions, CursorExpiredError, InvalidCursorError, tryParseId, type EventStream, type Logger, type Metrics, type StoredEvent, type Transact } from '@fed/platform';
import type { OrdersDatabase } from '../db/index.ts';
import { orderEvent } from '../order/events.ts';
import { createOrderRepository } from '../order/repository.ts';
import { createKnownUserRepository, type KnownUser } from './repository.ts';
import type { UserSnapshot } from './snapshot.ts';

/** The projection's name in `projections`, and its consumer group on the event log. */
export const USER_PROJECTION = 'orders-user-projection';

export interface UserProjection {
  /**
   * Builds the projection if this database never had it, then consumes the stream until stopped. Resolves after
   * the first attempt to build; a failed one is retried in the background.
   */
  start(): Promise<void>;
  /**
   * Waits (up to `timeoutMs`) until every users event now in the stream was applied, by any replica: a user
   * created or deleted a moment ago, or while this replica was down, is then known.
   */
  settle(timeoutMs?: number): Promise<void>;
  /** False until this database's projection was built (from a snapshot); until then no one can tell who exists. */
  built(): boolean;
  stop(): Promise<void>;
}

export interface UserProjectionOptions {
  db: OrdersDatabase;
  stream: EventStream;
  /** Transactions whose events (ORDER_CANCELLED for a deleted user's orders) go to the outbox. */
  transact: Transact<OrdersDatabase>;
  snapshot: UserSnapshot;
  logger: Logger;
  /** How long a group read waits for an event; stop() waits at most this long. */
  blockMs?: number;
  /** Events a consumer took but did not acknowledge for this long are handed to another (it died). */
  claimIdleMs?: number;
  /** Counts events applied (`events_consumed_total`). */
  metrics?: Metrics;
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Orders' own view of which users exist, fed from the event log through a consumer group: each event reaches
 * one replica, and is acknowledged only after its transaction committed, so a crash means a redelivery, never
 * a loss. Each row keeps the position of the event it reflects and ignores older ones, so redeliveries and
 * events that two replicas apply out of order leave the same result.
 *
 * Applying USER_DELETED cancels the user's pending orders in the same transaction, with their ORDER_CANCELLED
 * events in the outbox.
 */
export function createUserProjection({ db, stream, transact, snapshot, logger, blockMs = 500, claimIdleMs = 10_000, metrics }: UserProjectionOptions): UserProjection {
  const consumed = metrics?.counter({ name: 'events_consumed_total', help: 'Events applied by a consumer group, acknowledged after commit', labelNames: ['group'] as const });
  const group = stream.group(USER_PROJECTION);
  const consumer = randomUUID();
  let running = false;
  let built = false;
  let loop: Promise<void> | undefined;

  /** A new deployment takes a snapshot from the users subgraph; every later start finds it built. */
  const build = () =>
    db.transaction(async (tx) => {
      const projection = createKnownUserRepository(tx as unknown as OrdersDatabase);
      await projection.lockBuild();
      const builtAt = await projection.builtAt(USER_PROJECTION);
      if (builtAt !== undefined) {
        // Built, and the group is there: carry on where it is.
        if (!(await group.ensure(builtAt))) return;
        // The group was missing (a first start after seeding, a new Redis, the embedded default's restart). It
        // now starts after the position the projection was built at, unless the stream no longer has every event
        // since then: rebuild from a snapshot rather than skip some.
        try {
          await stream.read({}, builtAt, 1);
          return;
        } catch (error) {
          if (!(error instanceof CursorExpiredError || error instanceof InvalidCursorError)) throw error;
          logger.warn({ builtAt }, 'the event log no longer reaches back to the user projection; rebuilding it');
        }
      }
      // Events after this position may be missing from the snapshot; the group delivers exactly those.
      const position = await stream.last({});
      const userIds = await snapshot();
      // Over several partitions the position is a cursor naming each; a row compares with its own user's events
      // only, every one of which the group delivers after the snapshot, so the start of the stream stands for it.
      await projection.replaceAll(userIds, position.includes(',') ? '0-0' : position);
      await projection.markBuilt(USER_PROJECTION, position);
      await group.reset(position);
      logger.info({ users: userIds.length, position }, 'built the user projection from a snapshot');
    });

  const apply = (events: readonly StoredEvent[]) =>
    transact(async (tx, emit) => {
      // The newest event of each user in the batch; the database keeps whichever is newest of it and the row.
      const latest = new Map<number, KnownUser>();
      for (const event of events) {
        const userId = tryParseId(event.userId);
        if (!event.kind.startsWith('USER_') || userId === undefined) continue;
        const known = latest.get(userId);
        if (known && comparePositions(event.position, known.position) <= 0) continue;
        latest.set(userId, { userId, deleted: event.kind === 'USER_DELETED', position: event.position });
      }
      if (latest.size === 0) return;
      const applied = await createKnownUserRepository(tx).upsertNewer([...latest.values()]);
      const deleted = applied.filter((row) => row.deleted).map((row) => row.userId);
      if (deleted.length === 0) return;
      // Cancelling is idempotent: a deletion applied twice finds no PENDING order the second time.
      for (const order of await createOrderRepository(tx).cancelPendingOf(deleted)) emit(orderEvent('ORDER_CANCELLED', order));
    });

  const consume = async () => {
    let batch: StoredEvent[] = [];
    let claimedAt = 0;
    let failing = false;
    while (running) {
      try {
        if (batch.length === 0 && Date.now() - claimedAt > claimIdleMs / 2) {
          claimedAt = Date.now();
          batch = await group.claim(consumer, claimIdleMs, 100);
        }
        if (batch.length === 0) batch = await group.read(consumer, 100, blockMs);
        // A batch that failed is retried as it is: the events stay pending for this consumer until acknowledged.
        if (batch.length > 0) {
          await apply(batch);
          await group.ack(batch.map((event) => event.position));
          consumed?.inc({ group: USER_PROJECTION }, batch.length);
          batch = [];
        }
        if (failing) logger.info('user projection recovered');
        failing = false;
      } catch (error) {
        if (!failing) logger.warn({ err: error }, 'user projection failed; retrying');
        failing = true;
        await delay(500);
        // Redis lost the group (or all its data): set it up again from where the projection is.
        if (/NOGROUP/.test((error as Error).message)) await build().catch(() => {});
      }
    }
  };

  return {
    start: async () => {
      if (running) return;
      running = true;
      let attempted: () => void = () => {};
      const firstAttempt = new Promise<void>((resolve) => (attempted = resolve));
      loop = (async () => {
        // Until it is built there is nothing to consume into. Keep trying in the background (the users subgraph
        // may be starting too), but let the process serve meanwhile.
        for (let attempt = 0; running; attempt++) {
          try {
            await build();
            built = true;
            break;
          } catch (error) {
            logger.warn({ err: error, attempt }, 'could not build the user projection; retrying');
            attempted();
            await delay(Math.min(5_000, 250 * 2 ** attempt));
          }
        }
        attempted();
        await consume();
      })();
      await firstAttempt;
    },
    settle: async (timeoutMs = 250) => {
      const deadline = Date.now() + timeoutMs;
      try {
        const tail = await stream.lastFrom('users');
        while (!(await group.caughtUp(tail)) && Date.now() < deadline) await delay(10);
      } catch {
        // With the stream down the projection is all there is to go by.
      }
    },
    built: () => built,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
