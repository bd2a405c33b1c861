import { groupByNode, type RedisClient } from '../redis.ts';
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

type Gcra = [allowed: number, remaining: number, retryAfterMs: number];
type RedisWithGcra = RedisClient & { fedRateLimit(key: string, windowMs: number, limit: number): Promise<Gcra> };
type PipelineWithGcra = ReturnType<RedisClient['pipeline']> & { fedRateLimit(key: string, windowMs: number, limit: number): unknown };

interface Pending {
  key: string;
  policy: RateLimitPolicy;
  resolve: (decision: RateLimitDecision) => void;
  reject: (error: unknown) => void;
}

const decision = ([allowed, remaining, retryAfterMs]: Gcra): RateLimitDecision => ({ allowed: allowed === 1, remaining, retryAfterMs });

export class RedisRateLimiter implements RateLimiter {
  private readonly redis: RedisWithGcra;
  private pending: Pending[] = [];

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
  ) {
    // defineCommand sends EVALSHA and falls back to EVAL once when Redis does not know the script yet.
    if (!('fedRateLimit' in redis)) redis.defineCommand('fedRateLimit', { numberOfKeys: 1, lua: GCRA_SCRIPT });
    this.redis = redis as RedisWithGcra;
  }

  /**
   * Every request asks Redis, and each ask is a write to its socket: under load that system call was most of
   * what the limit cost. The requests that arrive in one turn of the event loop are sent as one pipeline, each
   * still its own atomic script with its own answer.
   */
  consume(key: string, policy: RateLimitPolicy): Promise<RateLimitDecision> {
    return new Promise((resolve, reject) => {
      if (this.pending.push({ key, policy, resolve, reject }) === 1) setImmediate(() => this.flush());
    });
  }

  /**
   * Each key is its own slot (a script touches one key), so on a cluster one pipeline per node: a cluster
   * pipeline must stay on one node, and the keys of a batch are spread over all of them.
   */
  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    for (const group of groupByNode(this.redis, batch, ({ key }) => this.prefix + key)) this.send(group);
  }

  private send(batch: Pending[]): void {
    if (batch.length === 1) {
      const [{ key, policy, resolve, reject }] = batch as [Pending];
      this.redis.fedRateLimit(this.prefix + key, policy.windowMs, policy.limit).then((answer) => resolve(decision(answer)), reject);
      return;
    }
    const pipeline = this.redis.pipeline() as PipelineWithGcra;
    for (const { key, policy } of batch) pipeline.fedRateLimit(this.prefix + key, policy.windowMs, policy.limit);
    pipeline.exec().then(
      (answers) =>
        batch.forEach(({ resolve, reject }, index) => {
          const [error, answer] = answers?.[index] ?? [new Error('Redis sent no answer')];
          if (error) reject(error);
          else resolve(decision(answer as Gcra));
        }),
      (error: unknown) => batch.forEach(({ reject }) => reject(error)),
    );
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
