import { InMemoryLRUCache } from '@apollo/utils.keyvaluecache';
import type { Redis } from 'ioredis';

/** A whole GraphQL response as it was sent, with what HTTP needs to serve it again. */
export interface CachedResponse {
  /** The exact response body. */
  body: string;
  /** Seconds it may be served for, from when it was stored. */
  maxAge: number;
  scope: 'PUBLIC' | 'PRIVATE';
  /** When it was computed (ms since the epoch), for the Age header. */
  storedAt: number;
}

/**
 * A stored response as a lookup finds it: the body as the bytes to send. From Redis they go to the socket as
 * they came, never decoded into a string and encoded again (on a 40 KB answer that was most of a hit's CPU).
 */
export interface CachedHit extends Omit<CachedResponse, 'body'> {
  body: Uint8Array;
}

/**
 * Where a miss stands in the order of invalidations. A response computed after the lookup may be stored with
 * it: if anything it is tagged with is invalidated after this point, the entry is never served.
 */
export interface StoreTicket {
  readonly seq: number;
  readonly epoch: number;
  /** When it was issued (ms): a ticket older than MAX_TICKET_AGE_MS stores nothing. */
  readonly issuedAt: number;
}

/**
 * A response computed for longer than this is not stored. Purge stamps outlive the longest TTL by this much,
 * so a purge that lands while a slow request runs is still there whenever that request's entry could be read.
 */
export const MAX_TICKET_AGE_MS = 30_000;
const stampLifetimeMs = (maxTtlSeconds: number) => maxTtlSeconds * 1000 + MAX_TICKET_AGE_MS + 1_000;
/**
 * How long a failed purge keeps its caller waiting for its retry (a full invalidation) to land, while the
 * connection stays up. A mutation's answer waits for its purge: until then another replica could still serve
 * the old answer. A stall of a few hundred milliseconds (a fork, a starved CPU) is covered; an outage is not
 * waited for (a dropped connection gives up at once).
 */
export const PURGE_WAIT_MS = 2_000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
const expired = (ticket: StoreTicket) => Date.now() - ticket.issuedAt > MAX_TICKET_AGE_MS;

export type Lookup = { hit: CachedHit } | { hit?: undefined; ticket: StoreTicket };

/**
 * The response-cache edge: whole responses, tagged with the entities and lists they contain, purged by tag.
 *
 * Invalidation is by sequence, not deletion: each purge takes the next number and stamps it on its tags, and
 * an entry is valid only while none of its tags carries a stamp newer than the lookup that preceded it. So a
 * response whose data was read before a commit can never be stored "after" the purge that commit caused and
 * then served: the race between a slow read and a fast write is closed by construction, and a purge costs the
 * same whatever the number of entries.
 */
export interface ResponseStore {
  /** The first key (in order) holding a valid entry; on a miss, a ticket to store the response with. */
  lookup(keys: readonly string[]): Promise<Lookup>;
  /** Stores a response computed after `ticket` was issued, for `maxAge` seconds (capped by the store). */
  store(key: string, response: CachedResponse, tags: readonly string[], ticket: StoreTicket): Promise<void>;
  /** Whether anything tagged with one of `tags` was purged after `ticket` (an answer computed since is stale). */
  purgedSince(tags: readonly string[], ticket: StoreTicket): Promise<boolean>;
  /**
   * Entries tagged with any of `tags`, stored or still being computed, are never served from now on, by any
   * replica. Resolves once that holds (the purge landed, or a full invalidation after it did); rejects when it
   * could not be made to hold soon (PURGE_WAIT_MS at most), and the store then serves nothing until it does.
   */
  invalidate(tags: readonly string[]): Promise<void>;
  /** No entry stored or being computed before now is ever served (after missed invalidations). */
  invalidateAll(): Promise<void>;
}

/** The store cannot answer now (Redis down or recovering); callers treat it as a miss and carry on. */
export class ResponseStoreUnavailableError extends Error {
  override name = 'ResponseStoreUnavailableError';
}

export interface ResponseStoreOptions {
  /** No entry lives longer than this (seconds); tags are remembered this long after their last purge. */
  maxTtlSeconds: number;
}

const ttlOf = (response: CachedResponse, maxTtlSeconds: number) => Math.min(response.maxAge, maxTtlSeconds);

interface MemoryEntry {
  /** Encoded once, when stored. */
  hit: CachedHit;
  tags: readonly string[];
  seq: number;
}

/** The embedded default: one process, so one sequence in memory. Entries live in a size-bounded LRU. */
export class MemoryResponseStore implements ResponseStore {
  private seq = 0;
  private floor = 0;
  private readonly entries: InMemoryLRUCache<MemoryEntry>;
  /** Tag → the sequence of its last purge and when that stops mattering (every entry from before has expired). */
  private readonly stamps = new Map<string, { seq: number; until: number }>();
  private lastSweep = 0;

  constructor(
    private readonly options: ResponseStoreOptions,
    maxSizeBytes = 64 * 1024 * 1024,
  ) {
    this.entries = new InMemoryLRUCache<MemoryEntry>({
      maxSize: maxSizeBytes,
      sizeCalculation: (entry) => entry.hit.body.byteLength + entry.tags.length * 32 + 64,
    });
  }

  async lookup(keys: readonly string[]): Promise<Lookup> {
    const now = Date.now();
    for (const key of keys) {
      const entry = await this.entries.get(key);
      if (entry && this.isValid(entry, now)) return { hit: entry.hit };
    }
    return { ticket: { seq: this.seq, epoch: 0, issuedAt: now } };
  }

  private isValid(entry: Pick<MemoryEntry, 'tags' | 'seq'>, now: number): boolean {
    if (entry.seq < this.floor) return false;
    for (const tag of entry.tags) {
      const stamp = this.stamps.get(tag);
      if (stamp && stamp.until > now && stamp.seq > entry.seq) return false;
    }
    return true;
  }

  async store(key: string, response: CachedResponse, tags: readonly string[], ticket: StoreTicket): Promise<void> {
    const ttl = ttlOf(response, this.options.maxTtlSeconds);
    const entry = { hit: { ...response, body: Buffer.from(response.body) }, tags: [...tags], seq: ticket.seq };
    // Stale already: refused now, because the purge's stamp may expire before this entry would.
    if (ttl <= 0 || expired(ticket) || !this.isValid(entry, Date.now())) return;
    await this.entries.set(key, entry, { ttl });
  }

  async purgedSince(tags: readonly string[], ticket: StoreTicket): Promise<boolean> {
    return !this.isValid({ tags, seq: ticket.seq }, Date.now());
  }

  async invalidate(tags: readonly string[]): Promise<void> {
    const seq = ++this.seq;
    const now = Date.now();
    // Stamps older than the longest TTL protect nothing any more; dropping them keeps the map bounded. One
    // sweep a second at most, so a burst of writes does not scan the map once per purge.
    if (this.stamps.size > 10_000 && now - this.lastSweep > 1_000) {
      this.lastSweep = now;
      for (const [tag, stamp] of this.stamps) if (stamp.until <= now) this.stamps.delete(tag);
    }
    for (const tag of tags) this.stamps.set(tag, { seq, until: now + stampLifetimeMs(this.options.maxTtlSeconds) });
  }

  async invalidateAll(): Promise<void> {
    this.floor = ++this.seq;
  }
}

// Entries are `meta \n tags \n body`: the scripts read the tags, Node reads the meta, nobody parses the body.
const LOOKUP = `
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
for i = 3, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if value then
    local a = string.find(value, '\\n', 1, true)
    local b = string.find(value, '\\n', a + 1, true)
    local meta = string.sub(value, 1, a - 1)
    local seq = cjson.decode(meta).s
    -- An entry from "the future" means the sequence went back (a failover): no purge could reach it.
    local valid = seq >= floor and seq <= current
    if valid then
      -- One MGET per thousand tags: far cheaper than a call per tag.
      local tags = cjson.decode(string.sub(value, a + 1, b - 1))
      for first = 1, #tags, 1000 do
        local names = {}
        for j = first, math.min(first + 999, #tags) do names[#names + 1] = ARGV[1] .. tags[j] end
        for _, stamp in ipairs(redis.call('MGET', unpack(names))) do
          if stamp and tonumber(stamp) > seq then
            valid = false
            break
          end
        end
        if not valid then break end
      end
    end
    if valid then return { meta, string.sub(value, b + 1) } end
    redis.call('DEL', KEYS[i])
  end
end
return { tostring(current) }
`;

// Stores only if nothing the entry is tagged with was purged after its ticket: checked and written in one step.
// The tags travel inside the value (one argument: a command with hundreds costs more to write than to run).
const STORE = `
local seq = tonumber(ARGV[3])
if seq < tonumber(redis.call('GET', KEYS[2]) or '0') then return 0 end
local value = ARGV[1]
local a = string.find(value, '\\n', 1, true)
local b = string.find(value, '\\n', a + 1, true)
for _, tag in ipairs(cjson.decode(string.sub(value, a + 1, b - 1))) do
  local stamp = redis.call('GET', ARGV[4] .. tag)
  if stamp and tonumber(stamp) > seq then return 0 end
end
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return 1
`;

const PURGED_SINCE = `
local seq = tonumber(ARGV[1])
if seq < tonumber(redis.call('GET', KEYS[1]) or '0') then return 1 end
for _, tag in ipairs(cjson.decode(ARGV[3])) do
  local stamp = redis.call('GET', ARGV[2] .. tag)
  if stamp and tonumber(stamp) > seq then return 1 end
end
return 0
`;

const INVALIDATE = `
local seq = redis.call('INCR', KEYS[1])
for i = 3, #ARGV do redis.call('SET', ARGV[1] .. ARGV[i], seq, 'PX', ARGV[2]) end
return seq
`;

const INVALIDATE_ALL = `
local seq = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], seq)
return seq
`;

type ScriptedRedis = Redis & {
  /** Bulk replies as Buffers (ioredis defines the `…Buffer` twin of every scripted command). */
  responseCacheLookupBuffer(...args: (string | number)[]): Promise<(Buffer | number)[]>;
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

/**
 * Shared by every gateway replica: one sequence, tags and entries in Redis, so a purge by any replica is seen
 * by all. The scripts read keys they are not handed, which a standalone Redis (or a primary with replicas)
 * allows and Redis Cluster does not.
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

  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly options: ResponseStoreOptions,
  ) {
    if (!('responseCacheLookup' in redis)) {
      redis.defineCommand('responseCacheLookup', { lua: LOOKUP });
      redis.defineCommand('responseCacheStore', { numberOfKeys: 2, lua: STORE });
      redis.defineCommand('responseCachePurgedSince', { numberOfKeys: 1, lua: PURGED_SINCE });
      redis.defineCommand('responseCacheInvalidate', { numberOfKeys: 1, lua: INVALIDATE });
      redis.defineCommand('responseCacheInvalidateAll', { numberOfKeys: 2, lua: INVALIDATE_ALL });
    }
    this.redis = redis as ScriptedRedis;
    redis.on('close', () => {
      this.owe();
      this.epoch += 1;
      // Nothing lands until a reconnection, which may be long: waiting callers give up now.
      this.release(false);
    });
    redis.on('ready', () => this.connected());
    if (redis.status === 'ready') this.connected();
  }

  private connected(): void {
    if (this.missedPurges) this.recover();
    else this.usable = true;
  }

  private get keys() {
    return { seq: `${this.prefix}seq`, floor: `${this.prefix}floor`, tag: `${this.prefix}tag:`, entry: `${this.prefix}entry:` };
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
    const { seq, floor, tag, entry } = this.keys;
    const reply = await this.tripping(() => this.redis.responseCacheLookupBuffer(2 + keys.length, seq, floor, ...keys.map((key) => entry + key), tag));
    if (reply.length === 1) return { ticket: { seq: Number(String(reply[0])), epoch, issuedAt: Date.now() } };
    const meta = JSON.parse(String(reply[0])) as Meta;
    return { hit: { body: reply[1] as Buffer, maxAge: meta.a, scope: meta.p, storedAt: meta.t } };
  }

  async store(key: string, response: CachedResponse, tags: readonly string[], ticket: StoreTicket): Promise<void> {
    this.ensureUsable();
    if (ticket.epoch !== this.epoch || expired(ticket)) return;
    const ttl = ttlOf(response, this.options.maxTtlSeconds);
    if (ttl <= 0) return;
    const meta: Meta = { s: ticket.seq, a: response.maxAge, p: response.scope, t: response.storedAt };
    const value = `${JSON.stringify(meta)}\n${JSON.stringify(tags)}\n${response.body}`;
    // A failed write loses no purge (the ticket guards that); it only trips the breaker.
    await this.tripping(() =>
      this.redis.responseCacheStore(this.keys.entry + key, this.keys.floor, value, Math.ceil(ttl * 1000), ticket.seq, this.keys.tag),
    );
  }

  async purgedSince(tags: readonly string[], ticket: StoreTicket): Promise<boolean> {
    this.ensureUsable();
    if (ticket.epoch !== this.epoch) return true;
    return (await this.tripping(() => this.redis.responseCachePurgedSince(this.keys.floor, ticket.seq, this.keys.tag, JSON.stringify(tags)))) === 1;
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
      await this.redis.responseCacheInvalidate(this.keys.seq, this.keys.tag, stampLifetimeMs(this.options.maxTtlSeconds), ...tags);
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
      await this.redis.responseCacheInvalidateAll(this.keys.seq, this.keys.floor);
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
}
