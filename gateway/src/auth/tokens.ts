import { SignJWT } from 'jose';
import type { Role } from '@fed/platform';

export interface DevTokenOptions {
  secret: string;
  issuer: string;
  audience: string;
  sub: string;
  role?: Role;
  /** The `scope` claim, space-separated as OAuth 2 writes it. */
  scopes?: readonly string[];
  ttlSeconds?: number;
  /** Seconds since the epoch; tests back-date tokens with it. */
  issuedAt?: number;
}

/** An HS256 token the gateway accepts when it runs on a shared secret (development, tests, `npm run token`). */
export function mintToken({ secret, issuer, audience, sub, role = 'user', scopes, ttlSeconds = 3600, issuedAt }: DevTokenOptions): Promise<string> {
  const iat = issuedAt ?? Math.floor(Date.now() / 1000);
  return new SignJWT(scopes?.length ? { role, scope: scopes.join(' ') } : { role })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttlSeconds)
    .sign(new TextEncoder().encode(secret));
}
