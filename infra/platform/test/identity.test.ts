import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  createIdentityVerifier,
  createReplayGuard,
  InvalidIdentityError,
  signIdentity,
  type SignIdentityOptions,
} from '../src/identity/internal-token.ts';
import { MemoryRateLimiter, type RateLimiter } from '../src/rate-limit/index.ts';
import { assertAdmin, assertSelfOrAdmin, isSelfOrAdmin, type Viewer } from '../src/identity/viewer.ts';

const SECRET = 'q'.repeat(43);
const ORDERS_SECRET = 'o'.repeat(43);
const BODY = '{"query":"{ users { totalCount } }"}';
const ALICE: Viewer = { userId: '7', role: 'user' };
const verify = createIdentityVerifier({
  audience: 'users',
  callers: { gateway: { secret: SECRET, actsForViewers: true }, orders: { secret: ORDERS_SECRET, actsForViewers: false } },
});
const sign = (overrides: Partial<SignIdentityOptions> = {}) =>
  signIdentity({ secret: SECRET, caller: 'gateway', audience: 'users', viewer: ALICE, body: BODY, ...overrides });

const refusal = (attempt: () => unknown) => {
  try {
    attempt();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidIdentityError);
    return (error as Error).message;
  }
  throw new Error('expected a refusal');
};

/** Re-signs a token whose claims were edited, as someone holding the secret could. */
function resign(token: string, edit: (claims: Record<string, unknown>) => void, secret = SECRET): string {
  const [header, payload] = token.split('.') as [string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  edit(claims);
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

describe('the signed identity a subgraph receives', () => {
  it('carries the caller, the viewer (none for an anonymous request or a service acting as itself) and its own id', () => {
    expect(verify(sign(), BODY)).toEqual({ caller: 'gateway', viewer: ALICE, tokenId: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/), readPrimary: false });
    expect(verify(sign({ viewer: null, caller: 'orders', secret: ORDERS_SECRET }), BODY)).toMatchObject({ caller: 'orders', viewer: null });
    expect(verify(sign(), BODY).tokenId).not.toBe(verify(sign(), BODY).tokenId);
  });

  it('says when reads must come from the primary, and nobody without the key can say so', () => {
    expect(verify(sign({ readPrimary: true }), BODY).readPrimary).toBe(true);
    expect(verify(sign({ readPrimary: false }), BODY).readPrimary).toBe(false);
    // Claims are covered by the signature: adding the flag to a captured token breaks it.
    const [header, payload, signature] = sign().split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, rp: true })).toString('base64url')}.${signature}`;
    expect(refusal(() => verify(forged, BODY))).toMatch(/signature/);
  });

  it('is an HS256 JWS of its own type that names its audience and expires 30 s after it was issued', () => {
    const [header, payload] = sign().split('.') as [string, string];
    expect(JSON.parse(Buffer.from(header, 'base64url').toString())).toEqual({ alg: 'HS256', typ: 'fed-identity+jwt' });
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { aud: string; iat: number; exp: number };
    expect(claims.aud).toBe('users');
    expect(claims.exp - claims.iat).toBe(30);
  });

  it('is checked with the key of the caller it names: a service cannot pose as the gateway, nor act for a user', () => {
    // orders knows only its own key: signing as "gateway" with it fails, and with its own name it names no viewer.
    expect(refusal(() => verify(sign({ caller: 'gateway', secret: ORDERS_SECRET }), BODY))).toMatch(/signature/);
    expect(refusal(() => verify(sign({ caller: 'orders', secret: ORDERS_SECRET, viewer: ALICE }), BODY))).toMatch(/may not act for a user/);
    expect(refusal(() => verify(sign({ caller: 'payments' }), BODY))).toMatch(/unknown caller/);
  });

  it('accepts a signature in exactly one spelling: padding or stray characters make it another token', () => {
    const token = sign();
    expect(verify(token, BODY).viewer).toEqual(ALICE);
    for (const variant of [`${token}=`, `${token}!!`, `${token}é`, `${token}A`]) {
      expect(refusal(() => verify(variant, BODY))).toMatch(/malformed/);
    }
  });

  it('is refused when missing, malformed, signed with another secret, or for another subgraph', () => {
    expect(refusal(() => verify(undefined, BODY))).toMatch(/no identity/);
    expect(refusal(() => verify('a.b', BODY))).toMatch(/malformed/);
    expect(refusal(() => verify(sign({ secret: 'z'.repeat(43) }), BODY))).toMatch(/signature/);
    expect(refusal(() => verify(sign({ audience: 'orders' }), BODY))).toMatch(/signed for orders/);
  });

  it('is refused when its payload was edited (a role raised to admin) without the secret', () => {
    const [header, , signature] = sign().split('.') as [string, string, string];
    const raised = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(sign().split('.')[1]!, 'base64url').toString()), role: 'admin' })).toString('base64url');
    expect(refusal(() => verify(`${header}.${raised}.${signature}`, BODY))).toMatch(/signature/);
  });

  it('accepts no other header: alg none, or a payload under another header, is refused', () => {
    const [, payload, signature] = sign().split('.') as [string, string, string];
    const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    expect(refusal(() => verify(`${none}.${payload}.`, BODY))).toMatch(/malformed/);
    expect(refusal(() => verify(`${none}.${payload}.${signature}`, BODY))).toMatch(/malformed/);
  });

  it('is refused once expired (beyond 5 s of skew), when issued in the future, or when it claims a long life', () => {
    expect(refusal(() => verify(sign({ now: Date.now() - 36_000 }), BODY))).toMatch(/expired/);
    expect(verify(sign({ now: Date.now() - 33_000 }), BODY).viewer).toEqual(ALICE);
    expect(refusal(() => verify(sign({ now: Date.now() + 60_000 }), BODY))).toMatch(/future/);
    expect(refusal(() => verify(resign(sign(), (claims) => (claims.exp = (claims.iat as number) + 3600)), BODY))).toMatch(/lifetime/);
  });

  it('is bound to the exact body: a captured signature cannot carry another query', () => {
    expect(refusal(() => verify(sign(), BODY.replace('users', 'orders')))).toMatch(/body/);
    expect(refusal(() => verify(sign(), `${BODY} `))).toMatch(/body/);
  });

  it('is refused when its viewer claims are not a user id and a known role', () => {
    expect(refusal(() => verify(resign(sign(), (claims) => (claims.role = 'root')), BODY))).toMatch(/viewer/);
    expect(refusal(() => verify(resign(sign(), (claims) => (claims.sub = 'admin')), BODY))).toMatch(/viewer/);
    expect(refusal(() => verify(resign(sign(), (claims) => delete claims.role), BODY))).toMatch(/viewer/);
  });
});

describe('the replay guard', () => {
  it('lets a signature run a write once, per subgraph', async () => {
    const firstUse = createReplayGuard(new MemoryRateLimiter(), 'orders');
    expect(await firstUse('token-a')).toBe(true);
    expect(await firstUse('token-a')).toBe(false);
    expect(await firstUse('token-b')).toBe(true);
    expect(await createReplayGuard(new MemoryRateLimiter(), 'users')('token-a')).toBe(true);
  });

  it('still refuses a replay to the same replica while the shared store lets everything through (Redis down)', async () => {
    const failingOpen: RateLimiter = { consume: async () => ({ allowed: true, remaining: 1, retryAfterMs: 0 }) };
    const firstUse = createReplayGuard(failingOpen, 'orders');
    expect(await firstUse('token-c')).toBe(true);
    expect(await firstUse('token-c')).toBe(false);
  });
});

describe('self-or-admin rules', () => {
  const ADMIN: Viewer = { userId: '1', role: 'admin' };
  it('let the user themselves and admins through, and nobody else', () => {
    expect([isSelfOrAdmin(ALICE, 7), isSelfOrAdmin(ALICE, '7'), isSelfOrAdmin(ADMIN, 7)]).toEqual([true, true, true]);
    expect([isSelfOrAdmin(ALICE, 8), isSelfOrAdmin(null, 7)]).toEqual([false, false]);
  });

  it('fail with FORBIDDEN and a message that says who would be allowed', () => {
    expect(() => assertSelfOrAdmin(ALICE, 8, 'read email')).toThrow(expect.objectContaining({ extensions: { code: 'FORBIDDEN' }, message: 'Only the user it belongs to or an admin may read email' }));
    expect(() => assertAdmin(ALICE, 'delete users')).toThrow(expect.objectContaining({ extensions: { code: 'FORBIDDEN' }, message: 'Only an admin may delete users' }));
    expect(() => assertAdmin(ADMIN, 'delete users')).not.toThrow();
  });
});
