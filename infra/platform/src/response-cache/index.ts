import { InMemoryLRUCache } from '@apollo/utils.keyvaluecache';
import { expired, stampLifetimeMs, ttlOf, type CachedHit, type CachedResponse, type Lookup, type ResponseStore, type ResponseStoreOptions, type StoreTicket } from './contract.ts';

export {
  MAX_TICKET_AGE_MS,
  PURGE_WAIT_MS,
  ResponseStoreUnavailableError,
  type CachedHit,
  type CachedResponse,
  type Lookup,
  type ResponseStore,
  type ResponseStoreOptions,
  type StoreTicket,
} from './contract.ts';
export { RedisResponseStore } from './redis-store.ts';

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

