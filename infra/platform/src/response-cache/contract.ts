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
export const stampLifetimeMs = (maxTtlSeconds: number) => maxTtlSeconds * 1000 + MAX_TICKET_AGE_MS + 1_000;
/**
 * How long a failed purge keeps its caller waiting for its retry (a full invalidation) to land, while the
 * connection stays up. A mutation's answer waits for its purge: until then another replica could still serve
 * the old answer. A stall of a few hundred milliseconds (a fork, a starved CPU) is covered; an outage is not
 * waited for (a dropped connection gives up at once).
 */
export const PURGE_WAIT_MS = 2_000;
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
export const expired = (ticket: StoreTicket) => Date.now() - ticket.issuedAt > MAX_TICKET_AGE_MS;

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

export const ttlOf = (response: CachedResponse, maxTtlSeconds: number) => Math.min(response.maxAge, maxTtlSeconds);

