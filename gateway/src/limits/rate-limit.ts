import type { IncomingMessage } from 'node:http';
import { HttpError, type RateLimiter, type RateLimitPolicy, type Viewer } from '@fed/platform';
import { ErrorCode } from '../errors/codes.ts';

/** 600 requests a minute per client: a burst of 600, then 10 a second. */
export const DEFAULT_RATE_LIMIT: RateLimitPolicy = { limit: 600, windowMs: 60_000 };

/**
 * The key of an address: IPv4 as it is, IPv6 by its /64, since one client usually holds a whole /64 and could
 * otherwise take a fresh allowance from each address in it.
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!address.includes(':')) return address;
  const [head = '', tail = ''] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((group) => group.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/**
 * The client's address. Behind `trustedHops` proxies (a load balancer, say) it is the entry that many places
 * from the end of X-Forwarded-For; entries further left were written by the client and prove nothing.
 */
export function clientAddress(req: IncomingMessage, trustedHops: number): string {
  const socket = req.socket.remoteAddress ?? 'unknown';
  if (trustedHops <= 0) return socket;
  const header = req.headers['x-forwarded-for'];
  const hops = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',').map((hop) => hop.trim()).filter(Boolean);
  return hops[hops.length - trustedHops] ?? socket;
}

export interface RateLimitGateOptions {
  limiter: RateLimiter;
  policy: RateLimitPolicy;
  trustedHops: number;
}

/**
 * Per client: the verified `sub` when there is one, else the address. A refusal is HTTP 429 with
 * Retry-After (whole seconds, rounded up) and code RATE_LIMITED.
 */
export function createRateLimitGate({ limiter, policy, trustedHops }: RateLimitGateOptions) {
  return async (req: IncomingMessage, viewer: Viewer | null): Promise<void> => {
    const key = viewer ? `sub:${viewer.userId}` : `addr:${addressKey(clientAddress(req, trustedHops))}`;
    const decision = await limiter.consume(key, policy);
    if (decision.allowed) return;
    const seconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
    throw new HttpError(429, ErrorCode.RateLimited, `Too many requests; retry in ${seconds} s`, { 'retry-after': String(seconds) });
  };
}
