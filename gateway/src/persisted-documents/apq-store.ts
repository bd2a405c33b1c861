import type { KeyValueCache, Logger, RateLimiter } from '@fed/platform';

/** How much automatic persisted queries may keep in the shared cache (Redis when scaled out). */
export interface ApqPolicy {
  /** Each stored document expires after this long; a client re-registers it on its next miss. */
  ttlSeconds: number;
  /** Documents longer than this (UTF-8 bytes) run, but are not stored. */
  maxBytes: number;
  /** At most this many registrations per `ttlSeconds`, across every replica and client. */
  maxEntries: number;
}

/**
 * An hour, 16 KiB, 1 000 registrations an hour. Since every entry expires within the hour and the budget
 * refills at most once per hour after its first burst, at most 2 × 1 000 documents of 16 KiB (32 MiB) are
 * ever stored, whoever sends them. The largest operation of the contract is about 1 KiB.
 */
export const DEFAULT_APQ_POLICY: ApqPolicy = { ttlSeconds: 3_600, maxBytes: 16 * 1024, maxEntries: 1_000 };

/** The registration budget's key in the rate limiter: no client key looks like it (they are `sub:` and `addr:`). */
export const APQ_BUDGET_KEY = 'apq-registrations';

/**
 * The store Apollo's APQ writes to, bounded: a TTL on every entry, a size cap per document, and a budget of
 * registrations shared by all replicas (the rate limiter's GCRA, so it is one Redis key, kept by Redis's clock).
 * A registration over a bound is skipped, not refused: the request still runs, and the client just sends the
 * full document again next time, exactly as after an expiry.
 */
export function boundedApqStore(cache: KeyValueCache<string>, policy: ApqPolicy, limiter: RateLimiter, logger: Logger): KeyValueCache<string> {
  const budget = { limit: policy.maxEntries, windowMs: policy.ttlSeconds * 1000 };
  let lastWarned = -Infinity;
  return {
    get: (key) => cache.get(key),
    delete: (key) => cache.delete(key),
    async set(key, value) {
      if (Buffer.byteLength(value, 'utf8') > policy.maxBytes) return;
      // A client re-sending a document that is already stored spends no budget (and needs no write).
      if ((await cache.get(key)) === value) return;
      const decision = await limiter.consume(APQ_BUDGET_KEY, budget);
      if (!decision.allowed) {
        // Someone is registering documents by the thousand; once a minute is enough to say so.
        if (performance.now() - lastWarned > 60_000) {
          lastWarned = performance.now();
          logger.warn({ maxEntries: policy.maxEntries, ttlSeconds: policy.ttlSeconds }, 'APQ registration budget spent; new documents are not stored until it refills');
        }
        return;
      }
      // Apollo's own ttl option is ignored: this store's policy is the one bound.
      await cache.set(key, value, { ttl: policy.ttlSeconds });
    },
  };
}
