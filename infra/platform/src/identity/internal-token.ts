import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { IDEMPOTENCY_KEY_PATTERN, type IdempotencyClaim } from '../events/idempotency.ts';
import { tryParseId } from '../pagination.ts';
import { MemoryRateLimiter, type RateLimiter } from '../rate-limit/index.ts';
import { isRole, type Viewer } from './viewer.ts';

/**
 * The header that carries a caller's signed identity to a subgraph. Clients never set it; the gateway, or a
 * service calling another one, signs it with the secret the receiving subgraph holds for that caller.
 */
export const IDENTITY_HEADER = 'x-fed-identity';

/** How long a signature stays valid. Short, because it only has to survive one hop. */
export const IDENTITY_TTL_SECONDS = 30;

// A standard HS256 JWS, so any JWT tool can read it. The verifier accepts exactly this header and nothing
// else, so there is no algorithm to negotiate (no `none`, no RS/HS confusion), and its own `typ` keeps it
// apart from client tokens.
const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'fed-identity+jwt' })).toString('base64url');

// An HMAC-SHA256 in unpadded base64url; anything else (padding, stray characters) is a different token.
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;

interface Claims {
  /** The caller: `gateway`, or the service making a service-to-service call. */
  iss: string;
  /** The subgraph it was signed for. */
  aud: string;
  iat: number;
  exp: number;
  /** SHA-256 of the exact request body: a captured signature cannot carry another query. */
  bh: string;
  /** Unique per signature, so a subgraph can refuse a write signed once from being run twice. */
  jti: string;
  sub?: string;
  role?: string;
  /** Read from the primary database: the caller's operation writes, or must see what was just written. */
  rp?: true;
  /** The client's Idempotency-Key and the fingerprint of its request: only the signer can attach them. */
  idk?: string;
  idr?: string;
}

/** What a subgraph knows about a verified request. */
export interface CallerIdentity {
  caller: string;
  /** The end user the caller acts for; null for an anonymous viewer or a service acting as itself. */
  viewer: Viewer | null;
  /** The signature's own id (`jti`). */
  tokenId: string;
  /**
   * Reads must come from the primary, not a read replica that may lag: the caller's operation is a write (a
   * mutation, whose later fetches must see it), or acts on an event that was just committed.
   */
  readPrimary: boolean;
  /** The client's Idempotency-Key for this operation's writes, with its request's fingerprint. */
  idempotency?: IdempotencyClaim;
}

export interface SignIdentityOptions {
  /** The secret the receiving subgraph holds for this caller. */
  secret: string;
  caller: string;
  /** The receiving subgraph's name. */
  audience: string;
  viewer: Viewer | null;
  /** The exact body that will be sent. */
  body: string;
  /** See CallerIdentity.readPrimary. */
  readPrimary?: boolean;
  /** See CallerIdentity.idempotency. */
  idempotency?: IdempotencyClaim;
  now?: number;
}

const bodyHash = (body: string) => createHash('sha256').update(body).digest('base64url');
const hmac = (secret: string, input: string) => createHmac('sha256', secret).update(input);

// node:crypto HMAC is synchronous and ~5 µs; jose's WebCrypto path costs ~100 µs per call, paid on every
// subgraph fetch. The id is a random UUID: Node draws those from a pool of entropy it refills in batches,
// where randomBytes(16) asked the system for every signature (2 % of the gateway's CPU under load).
export function signIdentity({ secret, caller, audience, viewer, body, readPrimary, idempotency, now = Date.now() }: SignIdentityOptions): string {
  const iat = Math.floor(now / 1000);
  const claims: Claims = { iss: caller, aud: audience, iat, exp: iat + IDENTITY_TTL_SECONDS, bh: bodyHash(body), jti: randomUUID() };
  if (viewer) Object.assign(claims, { sub: viewer.userId, role: viewer.role });
  if (readPrimary) claims.rp = true;
  if (idempotency) Object.assign(claims, { idk: idempotency.key, idr: idempotency.request });
  const signingInput = `${HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${signingInput}.${hmac(secret, signingInput).digest('base64url')}`;
}

/** Why a signature was refused: for the logs only, never for the client. */
export class InvalidIdentityError extends Error {
  override name = 'InvalidIdentityError';
}

/** A service allowed to call a subgraph, and the secret the two share (no other caller knows it). */
export interface TrustedCaller {
  secret: string;
  /** Only the gateway verifies end users; a service calling another acts as itself and names no viewer. */
  actsForViewers: boolean;
}

export interface IdentityVerifierOptions {
  /** This subgraph's name: signatures made for another subgraph are refused. */
  audience: string;
  /** By caller name (the `iss` a signature carries). */
  callers: Record<string, TrustedCaller>;
  clockToleranceSeconds?: number;
}

export type IdentityVerifier = (token: string | undefined, body: string, now?: number) => CallerIdentity;

export function createIdentityVerifier({ audience, callers, clockToleranceSeconds = 5 }: IdentityVerifierOptions): IdentityVerifier {
  return (token, body, now = Date.now()) => {
    const fail = (reason: string): never => {
      throw new InvalidIdentityError(reason);
    };
    if (!token) return fail('no identity header');
    const [header, payload, signature, ...rest] = token.split('.');
    if (header !== HEADER || !payload || !signature || !SIGNATURE.test(signature) || rest.length > 0) return fail('malformed token');

    // The caller's name picks the key; nothing else is trusted until that key has checked the signature.
    let claims: Claims;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Claims;
    } catch {
      return fail('unreadable claims');
    }
    const caller = typeof claims.iss === 'string' && Object.hasOwn(callers, claims.iss) ? callers[claims.iss] : undefined;
    if (!caller) return fail(`unknown caller ${String(claims.iss)}`);
    const expected = hmac(caller.secret, `${header}.${payload}`).digest();
    if (!timingSafeEqual(Buffer.from(signature, 'base64url'), expected)) return fail('bad signature');

    const nowSeconds = now / 1000;
    if (claims.aud !== audience) return fail(`signed for ${String(claims.aud)}`);
    if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number' || typeof claims.jti !== 'string') return fail('missing claims');
    // Even a holder of the secret cannot mint a long-lived signature.
    if (claims.exp - claims.iat > IDENTITY_TTL_SECONDS) return fail('lifetime too long');
    if (claims.iat > nowSeconds + clockToleranceSeconds) return fail('issued in the future');
    if (claims.exp < nowSeconds - clockToleranceSeconds) return fail('expired');
    if (claims.bh !== bodyHash(body)) return fail('body does not match the signature');

    if (claims.idk !== undefined && (typeof claims.idk !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(claims.idk) || typeof claims.idr !== 'string')) {
      return fail('bad idempotency claims');
    }
    const identity = {
      caller: claims.iss,
      tokenId: claims.jti,
      readPrimary: claims.rp === true,
      ...(claims.idk !== undefined && { idempotency: { key: claims.idk, request: claims.idr as string } }),
    };
    if (claims.sub === undefined && claims.role === undefined) return { ...identity, viewer: null };
    if (!caller.actsForViewers) return fail(`${claims.iss} may not act for a user`);
    if (typeof claims.sub !== 'string' || tryParseId(claims.sub) === undefined || !isRole(claims.role)) return fail('bad viewer claims');
    return { ...identity, viewer: { userId: claims.sub, role: claims.role } };
  };
}

/** How long a used signature is remembered: as long as any verifier could still accept it. */
const REMEMBER_MS = (IDENTITY_TTL_SECONDS + 2 * 5) * 1000;

/**
 * Remembers which signatures have already been used (to run a write, or to open a subscription or its
 * connection), on the rate-limit edge (Redis across replicas): a signature seen twice within its lifetime is a
 * replay, and a key allowed once per window is exactly that.
 * That edge lets everything through while Redis is down, so this replica also remembers on its own.
 */
export function createReplayGuard(store: RateLimiter, audience: string) {
  const local = new MemoryRateLimiter();
  const once = { limit: 1, windowMs: REMEMBER_MS };
  return async (tokenId: string): Promise<boolean> => {
    const key = `replay:${audience}:${tokenId}`;
    const [here, shared] = await Promise.all([local.consume(key, once), store.consume(key, once)]);
    return here.allowed && shared.allowed;
  };
}

export type ReplayGuard = ReturnType<typeof createReplayGuard>;
