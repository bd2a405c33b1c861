import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';

/** `limit` requests per `windowMs`: that many may come in a burst, then one more every windowMs / limit. */
export interface RateLimitPolicy {
  limit: number;
  windowMs: number;
}

export interface RateLimitDecision {
  allowed: boolean;
  /** Requests still allowed right now. */
  remaining: number;
  /** When refused: how long until one more request is allowed. */
  retryAfterMs: number;
}

/**
 * The rate-limit edge. Both implementations run GCRA (a token bucket that needs one timestamp per key), so
 * they give the same answers; the Redis one is shared by every replica.
 */
export interface RateLimiter {
  consume(key: string, policy: RateLimitPolicy): Promise<RateLimitDecision>;
}

// Sums of windowMs / limit drift by a few ulps; without slack the last request of a full burst is refused.
const EPSILON_MS = 1e-6;

/** One GCRA step: `tat` is the key's theoretical arrival time (undefined: never seen or expired). */
function gcra(tat: number | undefined, now: number, { limit, windowMs }: RateLimitPolicy) {
  const interval = windowMs / limit;
  const next = Math.max(tat ?? now, now) + interval;
  const ahead = next - now;
  if (ahead > windowMs + EPSILON_MS) return { allowed: false, remaining: 0, retryAfterMs: Math.ceil(ahead - windowMs), next: undefined };
  return { allowed: true, remaining: Math.floor((windowMs - ahead + EPSILON_MS) / interval), retryAfterMs: 0, next };
}

export class MemoryRateLimiter implements RateLimiter {
  private readonly tats = new Map<string, number>();
  private calls = 0;

  async consume(key: string, policy: RateLimitPolicy): Promise<RateLimitDecision> {
    const now = performance.timeOrigin + performance.now();
    // A key whose time has passed holds no state; dropping them now and then keeps memory bounded by the
    // clients seen within one window.
    if (++this.calls % 1024 === 0) {
      for (const [stale, tat] of this.tats) if (tat <= now) this.tats.delete(stale);
    }
    const { next, ...decision } = gcra(this.tats.get(key), now, policy);
    if (next !== undefined) this.tats.set(key, next);
    return decision;
  }
}

// The same step in Lua, atomic per key, on Redis's clock so that replicas with skewed clocks still agree.
const GCRA_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local window = tonumber(ARGV[1])
local interval = window / tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + interval
local ahead = next - now
if ahead > window + ${EPSILON_MS} then
  return {0, 0, math.ceil(ahead - window)}
end
-- At a very high limit the step is below the clock's precision: still set an expiry Redis accepts.
redis.call('SET', KEYS[1], string.format('%.3f', next), 'PX', math.max(1, math.ceil(ahead)))
return {1, math.floor((window - ahead + ${EPSILON_MS}) / interval), 0}
`;

type RedisWithGcra = Redis & { fedRateLimit(key: string, windowMs: number, limit: number): Promise<[number, number, number]> };

export class RedisRateLimiter implements RateLimiter {
  private readonly redis: RedisWithGcra;

  constructor(
    redis: Redis,
    private readonly prefix: string,
  ) {
    // defineCommand sends EVALSHA and falls back to EVAL once when Redis does not know the script yet.
    if (!('fedRateLimit' in redis)) redis.defineCommand('fedRateLimit', { numberOfKeys: 1, lua: GCRA_SCRIPT });
    this.redis = redis as RedisWithGcra;
  }

  async consume(key: string, { limit, windowMs }: RateLimitPolicy): Promise<RateLimitDecision> {
    const [allowed, remaining, retryAfterMs] = await this.redis.fedRateLimit(this.prefix + key, windowMs, limit);
    return { allowed: allowed === 1, remaining, retryAfterMs };
  }
}

/**
 * A rate limit protects the service; it is not worth refusing traffic for. While the store is down every
 * request is allowed, and the outage is logged at most every few seconds rather than once per request.
 */
export function failOpenRateLimiter(limiter: RateLimiter, logger: Logger, logEveryMs = 5_000): RateLimiter {
  let lastLogged = -Infinity;
  let suppressed = 0;
  return {
    async consume(key, policy) {
      try {
        return await limiter.consume(key, policy);
      } catch (error) {
        const now = performance.now();
        if (now - lastLogged >= logEveryMs) {
          logger.warn({ err: error, suppressed }, 'rate-limit store unavailable; allowing requests');
          lastLogged = now;
          suppressed = 0;
        } else {
          suppressed++;
        }
        return { allowed: true, remaining: policy.limit, retryAfterMs: 0 };
      }
    },
  };
}
