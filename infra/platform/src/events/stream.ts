import { DOMAIN_EVENTS_CHANNEL, userEventsChannel, type DomainEvent } from './index.ts';
import type { PubSub } from '../pubsub/index.ts';
import { compareIds, locate, partitionDomainChannel } from './partitions.ts';

/** An event as the durable stream holds it: `position` orders it among every event, and so within its user's. */
export interface StoredEvent extends DomainEvent {
  /** `<ms>-<seq>`, like a Redis stream id. Assigned once, when the event first reaches the stream. */
  position: string;
  /**
   * Read from every user's events over several partitions: the cursor (see partitions.ts) that resumes right
   * after this event. Absent where `position` itself is that cursor.
   */
  cursor?: string;
}

/** Which events a reader follows: one user's, every user's, or (inside the stream) one partition's log. */
export interface Feed {
  userId?: string;
  partition?: number;
}

/** How many events the stream keeps: per user (what `after` can resume from) and overall (the consumers' log). */
export interface Retention {
  perUser: number;
  /** Per partition, when there are several (see `partitions`). */
  log: number;
  /**
   * Redis only, and a shape rather than a retention, but set in the same place for a deployment: how many
   * partitions new users' events are spread over (EVENT_STREAM_PARTITIONS; see the README, "A partitioned event stream"). Default 1.
   */
  partitions?: number;
  /** Redis only: how long an append waits for a replica to confirm it (EVENT_STREAM_REPLICA_WAIT_MS; 0: no wait). */
  replicaWaitMs?: number;
}

export const DEFAULT_RETENTION: Retention = { perUser: 1_000, log: 100_000 };

/** How long a relayed event's id is remembered, so a re-sent outbox row never becomes a second entry. */
export const DEDUPLICATION_SECONDS = 24 * 3600;

/** `after` names a position whose successors were trimmed: the reader may have missed events and must refetch. */
export class CursorExpiredError extends Error {}
/** `after` is not a position this stream could have handed out. */
export class InvalidCursorError extends Error {}

/**
 * What a relay vouches for when it appends, so that the stream can keep each user's timeline in causal order
 * across sources (subgraphs): an event acknowledged to a client before another write was sent comes first.
 *
 * Each relay instance keeps a *clearance* in the stream: a time T (ms) such that every event of its source
 * acknowledged before T is already in the stream. A write whose events could not reach the stream is only
 * acknowledged once its source's clearance can no longer cover it (see createOutboxRelay), so an event stamped
 * at `t` may go in once every other source has a clearance of at least `t`. A source's clearance is the highest
 * of its instances'.
 */
export interface CausalFence {
  /** The source of every event appended, and the relay instance appending them. */
  source: string;
  instance: string;
  /** The relay's clock (ms). */
  now: number;
  /** This instance's clearance if every event goes in; the stream lowers it to the oldest event it holds back. */
  clearance: number;
  /**
   * Since when (ms) this relay has been reaching the stream without failing. An instance whose clearance is more
   * than `maxStallMs` old, while the caller has been reaching the stream for longer than that, is presumed gone
   * (it crashed, or cannot reach its database) and is forgotten: it holds nobody back any more. After an outage
   * of the stream itself every relay starts counting again, so nobody is forgotten for the outage.
   */
  reachableSince: number;
  maxStallMs: number;
  /**
   * A partitioned stream renews the clearance in every partition (true, the default), or only in those this
   * batch has events for (false: another pass of the same relay renews it everywhere).
   */
  everywhere?: boolean;
}

/** The time (ms) an event's causal position is judged by: when its write stamped it, on its source's clock. */
export const stampOf = (event: DomainEvent) => Date.parse(event.occurredAt);

/**
 * The durable event edge: an ordered log of every committed event, a stream per user cut from it, consumer
 * groups with acknowledgements, and a doorbell on pub/sub for live readers. In memory for the embedded default,
 * Redis Streams when scaled out.
 */
export interface EventStream {
  /**
   * Appends each event whose id it has not seen, in order, to the log and to its user's stream, and rings the
   * pub/sub doorbell with the stored event. Returns each event's position (the first one, for a repeat), so a
   * relay that re-sends after a crash creates no second entry.
   *
   * With a fence, it stops before the first new event that another source's clearance does not cover yet (that
   * event and every later one are held back: the relay sends them again), and records the instance's clearance,
   * lowered to the oldest stamp held back. It returns the positions of what went in: a prefix of `events`.
   */
  append(events: readonly DomainEvent[], fence?: CausalFence): Promise<string[]>;
  /** Forgets a relay instance's clearance: it stopped after sending everything, so it holds nobody back. */
  withdraw(source: string, instance: string): Promise<void>;
  /**
   * Up to `limit` retained events of `feed` after `after` (exclusive; null: from the oldest retained), oldest
   * first. Throws CursorExpiredError when events after `after` were trimmed, InvalidCursorError when `after`
   * is malformed or beyond the newest position.
   */
  read(feed: Feed, after: string | null, limit: number): Promise<StoredEvent[]>;
  /** The newest position of `feed` ('0-0' when it has none). */
  last(feed: Feed): Promise<string>;
  /** The newest position of an event from `source` ('0-0' when none): how far a consumer of it must have got. */
  lastFrom(source: string): Promise<string>;
  /** A consumer group on the whole log: each event goes to one consumer, and stays pending until acknowledged. */
  group(name: string): ConsumerGroup;
  /**
   * How many partitions the log is split into (1 in memory and by default). Every user's events are in one of
   * them; a reader of every user's events reads them all.
   */
  partitions(): Promise<number>;
  /**
   * How many partitions this process spreads new users over (its configuration; `partitions()` is what the
   * stream has): how many passes a relay runs at once by default.
   */
  readonly writerPartitions?: number;
  /** The pub/sub channel whose doorbell announces the events of `feed` (a user's, or one partition's log). */
  channel(feed: Feed): Promise<string>;
  close(): Promise<void>;
}

export interface ConsumerGroup {
  /** Creates the group at `from` (it receives what follows; '$': from now) unless it exists; true when it created it. */
  ensure(from: string): Promise<boolean>;
  /** Moves an existing group to `from`: a projection rebuilt from a snapshot taken at `from`. */
  reset(from: string): Promise<void>;
  /** Up to `count` events no consumer has received yet, waiting up to `blockMs` for one. */
  read(consumer: string, count: number, blockMs: number): Promise<StoredEvent[]>;
  ack(positions: readonly string[]): Promise<void>;
  /**
   * Takes over up to `count` events received but left unacknowledged for `minIdleMs`: their consumer died, or
   * could not acknowledge them.
   */
  claim(consumer: string, minIdleMs: number, count: number): Promise<StoredEvent[]>;
  /** True once every event up to `position` was delivered to a consumer and acknowledged. */
  caughtUp(position: string): Promise<boolean>;
}

/** The channel of an unpartitioned stream's feed (and of partition 0's). */
export const channelOf = (feed: Feed) =>
  feed.userId !== undefined ? userEventsChannel(feed.userId) : feed.partition ? partitionDomainChannel(feed.partition) : DOMAIN_EVENTS_CHANNEL;

const POSITION = /^(\d{1,15})-(\d{1,15})$/;

/** Parses a position; undefined for anything else. */
export function parsePosition(position: string): [number, number] | undefined {
  const match = POSITION.exec(position);
  return match ? [Number(match[1]), Number(match[2])] : undefined;
}

/**
 * Orders two well-formed positions: negative, zero or positive. Positions of one partition (all of one user's
 * are) compare in stream order; across partitions the order means nothing beyond being total.
 */
export function comparePositions(a: string, b: string): number {
  const la = locate(a) ?? { partition: 0, id: '0-0' };
  const lb = locate(b) ?? { partition: 0, id: '0-0' };
  return la.partition !== lb.partition ? la.partition - lb.partition : compareIds(la.id, lb.id);
}

export function isStoredEvent(value: unknown): value is StoredEvent {
  return typeof (value as Partial<StoredEvent> | null)?.position === 'string';
}

interface Group {
  lastDelivered: string;
  pending: Map<string, { consumer: string; deliveredAt: number }>;
}

/**
 * The stream in this process, for the embedded default: the same contract as Redis, positions included, so
 * the relay, resumable subscriptions and the orders projection run unchanged on it.
 */
export class MemoryEventStream implements EventStream {
  private readonly log: StoredEvent[] = [];
  private readonly users = new Map<string, StoredEvent[]>();
  private readonly seen = new Map<string, { position: string; at: number }>();
  private readonly groups = new Map<string, Group>();
  private readonly trimmed = { log: '0-0', users: new Map<string, string>() };
  private readonly waiters = new Set<() => void>();
  private readonly sources = new Map<string, string>();
  /** `source/instance` → clearance (ms), as CausalFence describes. */
  private readonly clearances = new Map<string, number>();
  private lastPosition = '0-0';
  /**
   * The first position this stream handed out. A cursor older than it comes from an earlier stream (the process
   * restarted): whatever that one held after it is gone, so the cursor has expired (see RedisEventStream's READ).
   */
  private epoch: string | undefined;

  constructor(
    private readonly pubsub: PubSub,
    private readonly retention: Retention = DEFAULT_RETENTION,
  ) {}

  private nextPosition(): string {
    const [lastMs, lastSeq] = parsePosition(this.lastPosition) ?? [0, 0];
    const now = Date.now();
    this.lastPosition = now > lastMs ? `${now}-0` : `${lastMs}-${lastSeq + 1}`;
    return this.lastPosition;
  }

  async append(events: readonly DomainEvent[], fence?: CausalFence): Promise<string[]> {
    const positions: string[] = [];
    const notify: Promise<void>[] = [];
    const covering = fence ? this.otherClearances(fence) : [];
    let heldFrom: number | undefined;
    for (const event of events) {
      const known = this.seen.get(event.id);
      if (heldFrom !== undefined) {
        heldFrom = Math.min(heldFrom, stampOf(event));
        continue;
      }
      if (known) {
        positions.push(known.position);
        continue;
      }
      if (covering.some((clearance) => clearance < stampOf(event))) {
        heldFrom = stampOf(event);
        continue;
      }
      const stored: StoredEvent = { ...event, position: this.nextPosition() };
      this.epoch ??= stored.position;
      this.seen.set(event.id, { position: stored.position, at: Date.now() });
      this.sources.set(event.source, stored.position);
      this.log.push(stored);
      const own = this.users.get(event.userId) ?? [];
      this.users.set(event.userId, own);
      own.push(stored);
      this.trim(event.userId);
      positions.push(stored.position);
      notify.push(this.pubsub.publish(userEventsChannel(event.userId), stored), this.pubsub.publish(DOMAIN_EVENTS_CHANNEL, stored));
    }
    if (fence) {
      const key = `${fence.source}/${fence.instance}`;
      const claim = Math.min(fence.clearance, heldFrom ?? Infinity);
      // As in Redis: a claim of -1 (a relay whose passes have not all vouched yet) records nothing.
      if (claim > (this.clearances.get(key) ?? -1)) this.clearances.set(key, claim);
    }
    for (const wake of [...this.waiters]) wake();
    await Promise.all(notify);
    return positions;
  }

  /** Each other source's clearance (its instances' highest), forgetting instances presumed gone. */
  private otherClearances({ source, now, reachableSince, maxStallMs }: CausalFence): number[] {
    const bySource = new Map<string, number>();
    for (const [key, clearance] of this.clearances) {
      if (now - clearance > maxStallMs && now - reachableSince > maxStallMs) {
        this.clearances.delete(key);
        continue;
      }
      const of = key.slice(0, key.lastIndexOf('/'));
      if (of !== source) bySource.set(of, Math.max(bySource.get(of) ?? -Infinity, clearance));
    }
    return [...bySource.values()];
  }

  async withdraw(source: string, instance: string): Promise<void> {
    this.clearances.delete(`${source}/${instance}`);
  }

  /** Trims the log and the user just appended to (no other user's stream grew). */
  private trim(userId: string): void {
    while (this.log.length > this.retention.log) this.trimmed.log = (this.log.shift() as StoredEvent).position;
    // Ids outlive their events, as in Redis: a relay that re-sends a trimmed event must not append it again.
    const forgetBefore = Date.now() - DEDUPLICATION_SECONDS * 1_000;
    for (const [id, seen] of this.seen) {
      if (seen.at > forgetBefore) break;
      this.seen.delete(id);
    }
    const own = this.users.get(userId) ?? [];
    while (own.length > this.retention.perUser) this.trimmed.users.set(userId, (own.shift() as StoredEvent).position);
  }

  async read(feed: Feed, after: string | null, limit: number): Promise<StoredEvent[]> {
    const events = this.eventsOf(feed);
    if (after !== null) {
      if (parsePosition(after) && after !== '0-0' && this.epoch && comparePositions(after, this.epoch) < 0) {
        throw new CursorExpiredError(`position ${after} is from before this stream began`);
      }
      if (!parsePosition(after) || comparePositions(after, this.lastPosition) > 0) throw new InvalidCursorError(`unknown position ${after}`);
      const trimmed = feed.userId === undefined ? this.trimmed.log : (this.trimmed.users.get(feed.userId) ?? '0-0');
      if (comparePositions(after, trimmed) < 0) throw new CursorExpiredError(`events after ${after} are no longer retained`);
    }
    const start = after === null ? 0 : events.findIndex((event) => comparePositions(event.position, after) > 0);
    return start < 0 ? [] : events.slice(start, start + limit).map((event) => structuredClone(event));
  }

  /** One partition here: partition 0's log is the log, any other is empty. */
  private eventsOf(feed: Feed): StoredEvent[] {
    if (feed.userId !== undefined) return this.users.get(feed.userId) ?? [];
    return feed.partition ? [] : this.log;
  }

  async last(feed: Feed): Promise<string> {
    const events = this.eventsOf(feed);
    return events.at(-1)?.position ?? (feed.userId === undefined && !feed.partition ? this.lastPosition : '0-0');
  }

  async lastFrom(source: string): Promise<string> {
    return this.sources.get(source) ?? '0-0';
  }

  async partitions(): Promise<number> {
    return 1;
  }

  async channel(feed: Feed): Promise<string> {
    return channelOf(feed);
  }

  group(name: string): ConsumerGroup {
    const state = () => {
      const group = this.groups.get(name);
      if (!group) throw new Error(`no consumer group ${name}`);
      return group;
    };
    const deliver = (consumer: string, events: StoredEvent[]) => {
      const group = state();
      for (const event of events) group.pending.set(event.position, { consumer, deliveredAt: Date.now() });
      return events.map((event) => structuredClone(event));
    };
    const fresh = (count: number) => {
      const group = state();
      const events = this.log.filter((event) => comparePositions(event.position, group.lastDelivered) > 0).slice(0, count);
      if (events.length > 0) group.lastDelivered = (events.at(-1) as StoredEvent).position;
      return events;
    };
    return {
      ensure: async (from) => {
        if (this.groups.has(name)) return false;
        this.groups.set(name, { lastDelivered: from === '$' ? this.lastPosition : from, pending: new Map() });
        return true;
      },
      reset: async (from) => {
        this.groups.set(name, { lastDelivered: from, pending: new Map() });
      },
      read: async (consumer, count, blockMs) => {
        let events = fresh(count);
        if (events.length === 0 && blockMs > 0) {
          await new Promise<void>((resolve) => {
            const wake = () => {
              clearTimeout(timer);
              this.waiters.delete(wake);
              resolve();
            };
            const timer = setTimeout(wake, blockMs);
            this.waiters.add(wake);
          });
          events = fresh(count);
        }
        return deliver(consumer, events);
      },
      ack: async (positions) => {
        const group = state();
        for (const position of positions) group.pending.delete(position);
      },
      claim: async (consumer, minIdleMs, count) => {
        const group = state();
        const idleSince = Date.now() - minIdleMs;
        const stale = [...group.pending]
          .filter(([, entry]) => entry.deliveredAt <= idleSince)
          .slice(0, count)
          .map(([position]) => position);
        const events = this.log.filter((event) => stale.includes(event.position));
        // Pending entries whose events were trimmed cannot be redelivered; drop them, as XAUTOCLAIM does.
        for (const position of stale) if (!events.some((event) => event.position === position)) group.pending.delete(position);
        return deliver(consumer, events);
      },
      caughtUp: async (position) => {
        const group = state();
        if (comparePositions(group.lastDelivered, position) < 0) return false;
        return [...group.pending.keys()].every((pending) => comparePositions(pending, position) > 0);
      },
    };
  }

  async close(): Promise<void> {
    for (const wake of [...this.waiters]) wake();
  }
}
