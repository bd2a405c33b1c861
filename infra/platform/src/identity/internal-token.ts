import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { isRole, type Viewer } from './viewer.ts';

/**
 * The header that carries a caller's signed identity to a subgraph. Clients never set it; the gateway (or a
 * service calling another one) signs it with the receiving subgraph's own secret.
 */
export const IDENTITY_HEADER = 'x-fed-identity';

/** How long a signature stays valid. Short, because it only has to survive one hop. */
export const IDENTITY_TTL_SECONDS = 30;

// A standard HS256 JWS, so any JWT tool can read it. The verifier accepts exactly this header and nothing
// else, so there is no algorithm to negotiate: no `none`, no RS/HS confusion.
const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

interface Claims {
  /** The caller: `gateway`, or the service making a service-to-service call. */
  iss: string;
  /** The subgraph it was signed for. */
  aud: string;
  iat: number;
  exp: number;
  /** SHA-256 of the exact request body: a captured signature cannot carry another query. */
  bh: string;
  sub?: string;
  role?: string;
}

/** What a subgraph knows about a verified request. */
export interface CallerIdentity {
  caller: string;
  /** The end user the caller acts for; null for an anonymous viewer or a service acting as itself. */
  viewer: Viewer | null;
}

export interface SignIdentityOptions {
  /** The receiving subgraph's secret. */
  secret: string;
  caller: string;
  /** The receiving subgraph's name. */
  audience: string;
  viewer: Viewer | null;
  /** The exact body that will be sent. */
  body: string;
  now?: number;
}

const bodyHash = (body: string) => createHash('sha256').update(body).digest('base64url');
const hmac = (secret: string, input: string) => createHmac('sha256', secret).update(input);

// node:crypto HMAC is synchronous and ~5 µs; jose's WebCrypto path costs ~100 µs per call, paid on every
// subgraph fetch.
export function signIdentity({ secret, caller, audience, viewer, body, now = Date.now() }: SignIdentityOptions): string {
  const iat = Math.floor(now / 1000);
  const claims: Claims = { iss: caller, aud: audience, iat, exp: iat + IDENTITY_TTL_SECONDS, bh: bodyHash(body) };
  if (viewer) Object.assign(claims, { sub: viewer.userId, role: viewer.role });
  const signingInput = `${HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${signingInput}.${hmac(secret, signingInput).digest('base64url')}`;
}

/** Why a signature was refused: for the logs only, never for the client. */
export class InvalidIdentityError extends Error {
  override name = 'InvalidIdentityError';
}

export interface IdentityVerifierOptions {
  /** This subgraph's name: signatures made for another subgraph are refused. */
  audience: string;
  secret: string;
  clockToleranceSeconds?: number;
}

export type IdentityVerifier = (token: string | undefined, body: string, now?: number) => CallerIdentity;

const USER_ID = /^[1-9]\d{0,14}$/;

export function createIdentityVerifier({ audience, secret, clockToleranceSeconds = 5 }: IdentityVerifierOptions): IdentityVerifier {
  return (token, body, now = Date.now()) => {
    const fail = (reason: string): never => {
      throw new InvalidIdentityError(reason);
    };
    if (!token) return fail('no identity header');
    const [header, payload, signature, ...rest] = token.split('.');
    if (header !== HEADER || !payload || !signature || rest.length > 0) return fail('malformed token');
    const expected = hmac(secret, `${header}.${payload}`).digest();
    const given = Buffer.from(signature, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return fail('bad signature');

    let claims: Claims;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Claims;
    } catch {
      return fail('unreadable claims');
    }
    const nowSeconds = now / 1000;
    if (claims.aud !== audience) return fail(`signed for ${String(claims.aud)}`);
    if (typeof claims.iss !== 'string' || typeof claims.iat !== 'number' || typeof claims.exp !== 'number') return fail('missing claims');
    // Even a holder of the secret cannot mint a long-lived signature.
    if (claims.exp - claims.iat > IDENTITY_TTL_SECONDS) return fail('lifetime too long');
    if (claims.iat > nowSeconds + clockToleranceSeconds) return fail('issued in the future');
    if (claims.exp < nowSeconds - clockToleranceSeconds) return fail('expired');
    if (claims.bh !== bodyHash(body)) return fail('body does not match the signature');

    if (claims.sub === undefined && claims.role === undefined) return { caller: claims.iss, viewer: null };
    if (typeof claims.sub !== 'string' || !USER_ID.test(claims.sub) || !isRole(claims.role)) return fail('bad viewer claims');
    return { caller: claims.iss, viewer: { userId: claims.sub, role: claims.role } };
  };
}
