import { Cluster } from 'ioredis';
import { slotOf, type RedisClient } from '../redis.ts';
import {
  expired,
  PURGE_WAIT_MS,
  ResponseStoreUnavailableError,
  sleep,
  stampLifetimeMs,
  ttlOf,
  type CachedHit,
  type CachedResponse,
  type Lookup,
  type ResponseStore,
  type ResponseStoreOptions,
  type StoreTicket,
} from './contract.ts';
import { INVALIDATE, INVALIDATE_ALL, LOOKUP, PURGED_SINCE, STORE } from './redis-scripts.ts';

type ScriptedRedis = RedisClient & {
  /** Bulk replies as Buffers (ioredis defines the `…Buffer` twin of every scripted command). */
  responseCacheLookupBuffer(...args: (string | number)[]): Promise<Buffer[]>;
  responseCacheStore(...args: (string | number)[]): Promise<number>;
  responseCachePurgedSince(...args: (string | number)[]): Promise<number>;
  responseCacheInvalidate(...args: (string | number)[]): Promise<number>;
  responseCacheInvalidateAll(...args: (string | number)[]): Promise<number>;
};

interface Meta {
  /** The ticket's sequence. */
  s: number;
  a: number;
  p: CachedResponse['scope'];
  t: number;
}

/** A LOOKUP reply for a valid entry: `{ meta, body, index }`. */
const hitOf = (reply: Buffer[]): CachedHit => {
  const meta = JSON.parse(String(reply[0])) as Meta;
  return { body: reply[1] as Buffer, maxAge: meta.a, scope: meta.p, storedAt: meta.t };
};

/** How many buckets entries are spread over on a cluster: enough that every primary of a usual cluster holds several. */
export const CLUSTER_BUCKETS = 16;

/** A bucket's keys, all under one hash tag on a cluster. */
interface Bucket {
  seq: string;
  floor: string;
  stamps: string;
  stampExpiry: string;
  entry: string;
}

/**
 * The hash tags of `count` buckets: each the first name whose slot falls in its own 1/count of the slot range.
 * Clusters assign slots in contiguous ranges, so evenly spread slots land evenly on the primaries. Derived, not
 * random: every replica must agree on them.
 */
function bucketTags(count: number): string[] {
  const width = 16_384 / count;
  return Array.from({ length: count }, (_, bucket) => {
    for (let attempt = 0; ; attempt += 1) {
      const tag = `rc${bucket}.${attempt}`;
      if (Math.floor(slotOf(tag) / width) === bucket) return tag;
    }
  });
}

/**
 * Shared by every gateway replica: one sequence, tags and entries in Redis, so a purge by any replica is seen
 * by all.
 *
 * On a cluster, entries are spread over CLUSTER_BUCKETS buckets by key, each bucket one hash tag (one slot), and
 * every bucket keeps its own copy of the purge stamps, its floor and the newest sequence it heard. A lookup or a
 * store is then one script on the entry's bucket, whatever shards its tags' other entries live on; a purge takes
 * its number from bucket 0 and stamps every bucket, and resolves only once all of them have it. On one server
 * there is one bucket, named as before (`responses:seq`, `responses:entry:<key>`, ...), and a purge is one
 * script as before.
 *
 * Whenever the connection drops, or a purge fails, this replica may have missed purges (its own failed ones,
 * or events it did not hear), so it invalidates everything, retrying until that lands, and serves nothing
 * until it has. Tickets from before a drop are refused: Redis may have restarted empty, and its sequence with
 * it. The first connection of a fresh process flushes nothing by itself (a deploy must not empty every
 * replica's cache); whether anything was missed while no replica listened is the caller's call (see
 * invalidateAll).
 */
export class RedisResponseStore implements ResponseStore {
  private readonly redis: ScriptedRedis;
  private usable = false;
  private epoch = 0;
  /** Set by a drop or a failed purge: a full invalidation must land before anything is served. */
  private missedPurges = false;
  /** Counts those failures: a full invalidation sent before the latest one does not cover it. */
  private failures = 0;
  private recovering: Promise<void> | undefined;
  /** Failed purges waiting for the full invalidation that covers them: true once it landed, false if never. */
  private readonly waiters = new Set<(covered: boolean) => void>();

  private readonly buckets: Bucket[];

  constructor(
    redis: RedisClient,
    prefix: string,
    private readonly options: ResponseStoreOptions,
  ) {
    if (!('responseCacheLookup' in redis)) {
      redis.defineCommand('responseCacheLookup', { lua: LOOKUP });
      redis.defineCommand('responseCacheStore', { numberOfKeys: 3, lua: STORE });
      redis.defineCommand('responseCachePurgedSince', { numberOfKeys: 2, lua: PURGED_SINCE });
      redis.defineCommand('responseCacheInvalidate', { numberOfKeys: 3, lua: INVALIDATE });
      redis.defineCommand('responseCacheInvalidateAll', { numberOfKeys: 2, lua: INVALIDATE_ALL });
    }
    this.redis = redis as ScriptedRedis;
    const spaces = redis instanceof Cluster ? bucketTags(CLUSTER_BUCKETS).map((tag) => `${prefix}{${tag}}:`) : [prefix];
    this.buckets = spaces.map((space) => ({
      seq: `${space}seq`,
      floor: `${space}floor`,
      stamps: `${space}stamps`,
      stampExpiry: `${space}stamp-expiry`,
      entry: `${space}entry:`,
    }));
    const dropped = () => {
      this.owe();
      this.epoch += 1;
      // Nothing lands until a reconnection, which may be long: waiting callers give up now.
      this.release(false);
    };
    redis.on('close', dropped);
    // A cluster stays up while one node's connection drops; that node may come back empty all the same.
    if (redis instanceof Cluster) redis.on('-node', dropped);
    redis.on('ready', () => this.connected());
    if (redis.status === 'ready') this.connected();
  }

  private bucketOf(key: string): number {
    return this.buckets.length === 1 ? 0 : slotOf(key) % this.buckets.length;
  }

  private bucket(index: number): Bucket {
    return this.buckets[index] as Bucket;
  }

  private connected(): void {
    if (this.missedPurges) this.recover();
    else this.usable = true;
  }

  /** A purge may have been lost: serve nothing until a full invalidation sent after this point has landed. */
  private owe(): void {
    this.usable = false;
    this.missedPurges = true;
    this.failures += 1;
  }

  private release(covered: boolean): void {
    for (const waiter of this.waiters) waiter(covered);
    this.waiters.clear();
  }

  /**
   * Invalidates everything until it lands, at once and then with backoff, without waiting for a request to
   * ask: other replicas serve from the same entries meanwhile. While disconnected, the next 'ready' restarts it.
   */
  private recover(): void {
    this.recovering ??= (async () => {
      for (let attempt = 0; this.missedPurges && this.redis.status === 'ready'; attempt += 1) {
        await this.invalidateAll().catch(() => undefined);
        // Landed but overtaken (a purge failed meanwhile) backs off too: a struggling Redis gets no tight loop.
        if (this.missedPurges) await sleep(Math.min(50 * 2 ** attempt, 1_000));
      }
    })().finally(() => {
      this.recovering = undefined;
    });
  }

  /** Until then, reads and writes fail at once: a Redis that times out must not cost every request the timeout. */
  private brokenUntil = 0;

  private async tripping<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      this.brokenUntil = Date.now() + 1_000;
      throw error;
    }
  }

  /** Fails at once while the connection is down or recovering, instead of queueing behind reconnects. */
  private ensureUsable(): void {
    if (this.brokenUntil > Date.now()) throw new ResponseStoreUnavailableError('the response cache is unavailable');
    if (this.usable) return;
    if (this.redis.status === 'ready') this.connected();
    throw new ResponseStoreUnavailableError('the response cache is unavailable');
  }

  async lookup(keys: readonly string[]): Promise<Lookup> {
    this.ensureUsable();
    const epoch = this.epoch;
    if (this.buckets.length === 1) {
      const { seq, floor, stamps, entry } = this.bucket(0);
      const reply = await this.tripping(() => this.redis.responseCacheLookupBuffer(3 + keys.length, seq, floor, stamps, ...keys.map((key) => entry + key), 1));
      return reply.length === 3 ? { hit: hitOf(reply) } : { ticket: { seq: Number(String(reply[0])), epoch, issuedAt: Date.now() } };
    }
    return this.tripping(() => this.lookupInBuckets(keys, epoch));
  }

  /** Each bucket is asked for its keys at once; the first key, in the caller's order, that holds a valid entry wins. */
  private async lookupInBuckets(keys: readonly string[], epoch: number): Promise<Lookup> {
    const asked = new Map<number, number[]>();
    keys.forEach((key, index) => {
      const bucket = this.bucketOf(key);
      asked.set(bucket, [...(asked.get(bucket) ?? []), index]);
    });
    const replies = await Promise.all(
      [...asked].map(async ([bucket, indexes]) => {
        const { seq, floor, stamps, entry } = this.bucket(bucket);
        const reply = await this.redis.responseCacheLookupBuffer(3 + indexes.length, seq, floor, stamps, ...indexes.map((index) => entry + keys[index]), bucket === 0 ? 1 : 0);
        return { bucket, indexes, reply };
      }),
    );
    let best: { index: number; reply: Buffer[] } | undefined;
    for (const { indexes, reply } of replies) {
      if (reply.length !== 3) continue;
      const index = indexes[Number(String(reply[2])) - 1] as number;
      if (!best || index < best.index) best = { index, reply };
    }
    if (best) return { hit: hitOf(best.reply) };
    // Any bucket's sequence numbers a ticket safely: it has heard of every purge that has resolved (each
    // resolves once all buckets have it), and of none numbered after this lookup. One it has not heard of yet
    // stamps past the ticket, and spoils the answer at worst. So a miss costs no trip to bucket 0.
    const seq = Math.max(...replies.map(({ reply }) => Number(String(reply[0]))));
    return { ticket: { seq, epoch, issuedAt: Date.now() } };
  }

  async store(key: string, response: CachedResponse, tags: readonly string[], ticket: StoreTicket): Promise<void> {
    this.ensureUsable();
    if (ticket.epoch !== this.epoch || expired(ticket)) return;
    const ttl = ttlOf(response, this.options.maxTtlSeconds);
    if (ttl <= 0) return;
    const meta: Meta = { s: ticket.seq, a: response.maxAge, p: response.scope, t: response.storedAt };
    const value = `${JSON.stringify(meta)}\n${JSON.stringify(tags)}\n${response.body}`;
    const { entry, floor, stamps } = this.bucket(this.bucketOf(key));
    // A failed write loses no purge (the ticket guards that); it only trips the breaker.
    await this.tripping(() => this.redis.responseCacheStore(entry + key, floor, stamps, value, Math.ceil(ttl * 1000), ticket.seq));
  }

  /** Every bucket holds every stamp once a purge has resolved: any one can answer, so the tags pick one. */
  async purgedSince(tags: readonly string[], ticket: StoreTicket): Promise<boolean> {
    this.ensureUsable();
    if (ticket.epoch !== this.epoch) return true;
    const { floor, stamps } = this.bucket(this.bucketOf(tags[0] ?? ''));
    return (await this.tripping(() => this.redis.responseCachePurgedSince(floor, stamps, ticket.seq, JSON.stringify(tags)))) === 1;
  }

  /**
   * Never behind the breaker, which guards reads: a purge skipped because a read timed out is a stale answer
   * on every replica until its TTL. A purge that fails (it may still have landed) is replaced by a full
   * invalidation, and the caller waits for that while the connection is up.
   */
  async invalidate(tags: readonly string[]): Promise<void> {
    if (tags.length === 0) return;
    try {
      // A stamp must outlive every entry it can make stale.
      const lifetime = stampLifetimeMs(this.options.maxTtlSeconds);
      await this.everyBucket((bucket, seq) => this.redis.responseCacheInvalidate(bucket.seq, bucket.stamps, bucket.stampExpiry, seq, lifetime, ...tags));
      return;
    } catch (error) {
      this.owe();
      this.recover();
      if (await this.covered()) return;
      throw new ResponseStoreUnavailableError('the response cache is unavailable', { cause: error });
    }
  }

  /** Whether the full invalidation that replaces a failed purge lands within PURGE_WAIT_MS. */
  private covered(): Promise<boolean> {
    if (this.redis.status !== 'ready') return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(false), PURGE_WAIT_MS);
      const settle = (covered: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(settle);
        resolve(covered);
      };
      this.waiters.add(settle);
    });
  }

  /** Also how this replica becomes usable again: after it, no purge it may have missed can matter. */
  async invalidateAll(): Promise<void> {
    if (this.redis.status !== 'ready') {
      // Owed, then: the next connection runs it before anything is served.
      this.owe();
      throw new ResponseStoreUnavailableError('the response cache is unavailable');
    }
    const epoch = this.epoch;
    const failures = this.failures;
    try {
      await this.everyBucket((bucket, seq) => this.redis.responseCacheInvalidateAll(bucket.seq, bucket.floor, seq));
    } catch (error) {
      this.owe();
      this.recover();
      throw error;
    }
    // A drop during the call means it may have run before a restart, and a purge that failed meanwhile may
    // have been sent after it: either way it covers nothing, and recovery goes on.
    if (epoch !== this.epoch || failures !== this.failures || this.redis.status !== 'ready') return;
    this.missedPurges = false;
    this.usable = true;
    this.release(true);
  }

  /** Bucket 0 numbers the change (`''`: take the next sequence), then every other bucket gets that number. */
  private async everyBucket(apply: (bucket: Bucket, seq: string) => Promise<number>): Promise<void> {
    const [first, ...others] = this.buckets as [Bucket, ...Bucket[]];
    const seq = String(await apply(first, ''));
    await Promise.all(others.map((bucket) => apply(bucket, seq)));
  }
}
