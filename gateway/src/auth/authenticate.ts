import { webcrypto } from 'node:crypto';
import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { HttpError, isRole, tryParseId, type Viewer } from '@fed/platform';
import { ErrorCode } from '../errors/codes.ts';

export interface AuthenticatorOptions {
  issuer: string;
  audience: string;
  /** HS256 with a shared secret: development, tests and the embedded default. */
  secret?: string;
  /** A remote JSON Web Key Set (production): cached, and refetched when a token names a key it lacks. */
  jwksUrl?: string;
  /** Algorithms a JWKS token may use. HS256 tokens only ever use HS256. */
  algorithms?: string[];
  clockToleranceSeconds?: number;
  /** jose's JWKS cache: how long a fetched set is trusted, and the least time between two fetches. */
  jwks?: { cacheMaxAgeMs?: number; cooldownMs?: number; timeoutMs?: number };
}

/** Reads a request's Authorization header: null means anonymous; a bad token is refused, never downgraded. */
export type Authenticator = (authorization: string | undefined) => Promise<Viewer | null>;

// The JWKS could not be fetched or read: the token may well be fine, so the client must not be told otherwise.
const KEYS_UNAVAILABLE = new Set(['ERR_JWKS_TIMEOUT', 'ERR_JWKS_INVALID', 'ERR_JOSE_GENERIC']);

/** Verified tokens remembered (static secret only), and for how long at most. */
const VERIFIED_TOKENS = 10_000;
const REVERIFY_AFTER_MS = 60_000;

const unauthenticated = (message: string, error: 'invalid_token' | 'invalid_request' = 'invalid_token') =>
  new HttpError(401, ErrorCode.Unauthenticated, message, { 'www-authenticate': `Bearer error="${error}"` });

export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const { issuer, audience, clockToleranceSeconds = 5 } = options;
  if (Boolean(options.secret) === Boolean(options.jwksUrl)) throw new Error('Configure exactly one of a JWT secret or a JWKS URL');

  let key: webcrypto.CryptoKey | JWTVerifyGetKey | Promise<webcrypto.CryptoKey>;
  let algorithms: string[];
  if (options.jwksUrl) {
    key = createRemoteJWKSet(new URL(options.jwksUrl), {
      cacheMaxAge: options.jwks?.cacheMaxAgeMs ?? 10 * 60_000,
      cooldownDuration: options.jwks?.cooldownMs ?? 30_000,
      timeoutDuration: options.jwks?.timeoutMs ?? 2_000,
    });
    algorithms = options.algorithms ?? ['RS256'];
  } else {
    // An imported CryptoKey verifies in ~85 µs; handing jose the raw bytes costs twice that on every request.
    key = webcrypto.subtle.importKey('raw', new TextEncoder().encode(options.secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    algorithms = ['HS256'];
  }

  // A client sends the same token with every request, and verifying it costs ~110 µs, a third of a cache
  // hit. With a static secret a verified token is remembered until it expires (a minute at most); a refused
  // one never is. Not with a JWKS: a key withdrawn from the set must stop its tokens at once.
  const verified = new Map<string, { viewer: Viewer; untilMs: number }>();
  const remember = !options.jwksUrl;

  return async (authorization) => {
    if (authorization === undefined) return null;
    const match = /^Bearer ([A-Za-z0-9\-_.]+)$/.exec(authorization.trim());
    if (!match?.[1]) throw unauthenticated('The Authorization header must be "Bearer <token>"', 'invalid_request');
    const token = match[1];
    const known = verified.get(token);
    if (known && Date.now() < known.untilMs) return known.viewer;
    if (known) verified.delete(token);

    let payload;
    try {
      ({ payload } = await jwtVerify(token, typeof key === 'function' ? key : await key, {
        algorithms,
        issuer,
        audience,
        clockTolerance: clockToleranceSeconds,
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (error) {
      if (!(error instanceof errors.JOSEError) || KEYS_UNAVAILABLE.has(error.code)) {
        throw new HttpError(503, ErrorCode.AuthUnavailable, 'Tokens cannot be verified right now; try again shortly', { 'retry-after': '5' });
      }
      if (error instanceof errors.JWTExpired) throw unauthenticated('The token has expired');
      throw unauthenticated('The token is not valid');
    }

    const role = payload.role === undefined ? 'user' : payload.role;
    if (typeof payload.sub !== 'string' || tryParseId(payload.sub) === undefined || !isRole(role)) {
      throw unauthenticated('The token is not valid');
    }
    // OAuth 2's `scope` is one space-separated string; some providers send `scp` as an array instead.
    const scope = payload.scope ?? payload.scp;
    if (scope !== undefined && typeof scope !== 'string' && !(Array.isArray(scope) && scope.every((item) => typeof item === 'string'))) {
      throw unauthenticated('The token is not valid');
    }
    const scopes = typeof scope === 'string' ? scope.split(' ').filter(Boolean) : (scope as string[] | undefined);
    const viewer: Viewer = scopes?.length ? { userId: payload.sub, role, scopes } : { userId: payload.sub, role };
    if (!remember) return viewer;
    if (verified.size >= VERIFIED_TOKENS) verified.delete(verified.keys().next().value!);
    // Never past its expiry, whatever the clock tolerance allowed at verification.
    verified.set(token, { viewer, untilMs: Math.min((payload.exp ?? 0) * 1000, Date.now() + REVERIFY_AFTER_MS) });
    return viewer;
  };
}
