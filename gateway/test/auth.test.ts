import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpError, listen } from '@fed/platform';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../src/auth/authenticate.ts';
import { mintToken } from '../src/auth/tokens.ts';

const SECRET = 's'.repeat(40);
const CLAIMS = { issuer: 'https://issuer.test', audience: 'graph-test' };
const now = () => Math.floor(Date.now() / 1000);

/** What a refused token must look like: HTTP 401, UNAUTHENTICATED, and a Bearer challenge. */
async function expectRefused(attempt: Promise<unknown>, message = /not valid/) {
  const error = await attempt.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(HttpError);
  const refusal = error as HttpError;
  expect({ status: refusal.status, code: refusal.code }).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
  expect(refusal.headers['www-authenticate']).toMatch(/^Bearer error=/);
  expect(refusal.message).toMatch(message);
}

describe('HS256 tokens', () => {
  const authenticate = createAuthenticator({ ...CLAIMS, secret: SECRET });
  const token = (overrides: Partial<Parameters<typeof mintToken>[0]> = {}) => mintToken({ ...CLAIMS, secret: SECRET, sub: '42', ...overrides });

  it('make a viewer from sub and role; no header at all is an anonymous viewer', async () => {
    expect(await authenticate(`Bearer ${await token({ role: 'admin' })}`)).toEqual({ userId: '42', role: 'admin' });
    expect(await authenticate(`Bearer ${await token()}`)).toEqual({ userId: '42', role: 'user' });
    expect(await authenticate(undefined)).toBeNull();
  });

  it('read the scope claim as OAuth 2 writes it (space-separated), or as an scp array; refuse any other shape', async () => {
    expect(await authenticate(`Bearer ${await token({ scopes: ['users:admin', 'orders:read'] })}`)).toEqual({ userId: '42', role: 'user', scopes: ['users:admin', 'orders:read'] });
    const signed = (claims: Record<string, unknown>) =>
      new SignJWT({ role: 'user', ...claims }).setProtectedHeader({ alg: 'HS256' }).setSubject('42').setIssuer(CLAIMS.issuer).setAudience(CLAIMS.audience).setExpirationTime(now() + 60).sign(new TextEncoder().encode(SECRET));
    expect(await authenticate(`Bearer ${await signed({ scp: ['a', 'b'] })}`)).toEqual({ userId: '42', role: 'user', scopes: ['a', 'b'] });
    expect(await authenticate(`Bearer ${await signed({ scope: '  ' })}`)).toEqual({ userId: '42', role: 'user' });
    await expectRefused(authenticate(`Bearer ${await signed({ scope: 7 })}`));
    await expectRefused(authenticate(`Bearer ${await signed({ scp: ['a', 1] })}`));
  });

  it('refuse an expired token, saying so, but allow a few seconds of clock skew', async () => {
    await expectRefused(authenticate(`Bearer ${await token({ issuedAt: now() - 7200, ttlSeconds: 3600 })}`), /expired/);
    expect(await authenticate(`Bearer ${await token({ issuedAt: now() - 63, ttlSeconds: 60 })}`)).toEqual({ userId: '42', role: 'user' });
  });

  it('stop accepting a token the moment it expires, even one verified (and remembered) before', async () => {
    // exp is whole seconds (iat + 2): valid for at least a second, and surely past once that second is over.
    const shortLived = `Bearer ${await token({ ttlSeconds: 2 })}`;
    const latestExpiryMs = (Math.floor(Date.now() / 1000) + 2) * 1000;
    const strict = createAuthenticator({ ...CLAIMS, secret: SECRET, clockToleranceSeconds: 0 });
    expect(await strict(shortLived)).toEqual({ userId: '42', role: 'user' });
    expect(await strict(shortLived)).toEqual({ userId: '42', role: 'user' });
    await new Promise((resolve) => setTimeout(resolve, latestExpiryMs - Date.now() + 50));
    await expectRefused(strict(shortLived), /expired/);
  });

  it('refuse a token signed with another key, or with alg none', async () => {
    await expectRefused(authenticate(`Bearer ${await mintToken({ ...CLAIMS, secret: 'x'.repeat(40), sub: '42', role: 'admin' })}`));
    const unsigned = new UnsecuredJWT({ role: 'admin' }).setSubject('42').setIssuer(CLAIMS.issuer).setAudience(CLAIMS.audience).setExpirationTime('1h').encode();
    await expectRefused(authenticate(`Bearer ${unsigned}`));
  });

  it('refuse a token for another issuer or audience', async () => {
    await expectRefused(authenticate(`Bearer ${await token({ issuer: 'https://elsewhere.test' })}`));
    await expectRefused(authenticate(`Bearer ${await token({ audience: 'another-graph' })}`));
  });

  it('refuse claims this graph does not know: a role beyond user/admin, a sub that is no user id, no expiry', async () => {
    const signed = (claims: Record<string, unknown>, build: (jwt: SignJWT) => SignJWT) =>
      build(new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer(CLAIMS.issuer).setAudience(CLAIMS.audience)).sign(new TextEncoder().encode(SECRET));
    await expectRefused(authenticate(`Bearer ${await signed({ role: 'root' }, (jwt) => jwt.setSubject('42').setExpirationTime('1h'))}`));
    await expectRefused(authenticate(`Bearer ${await signed({}, (jwt) => jwt.setSubject('admin').setExpirationTime('1h'))}`));
    await expectRefused(authenticate(`Bearer ${await signed({}, (jwt) => jwt.setSubject('42'))}`));
  });

  it('refuse a header that is not "Bearer <token>" rather than treating it as anonymous', async () => {
    for (const header of ['Basic YWRtaW46YWRtaW4=', 'Bearer', 'Bearer not a token', `bearer${await token()}`, 'garbage']) {
      await expectRefused(authenticate(header), /Bearer|not valid/);
    }
  });
});

describe('a remote JWKS (production)', () => {
  let server: Server;
  let jwksUrl: string;
  let served: JWK[] = [];
  type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  const keys: Record<string, { privateKey: PrivateKey; jwk: JWK; pem: string }> = {};

  beforeAll(async () => {
    for (const kid of ['old', 'new']) {
      const { privateKey, publicKey } = await generateKeyPair('RS256');
      keys[kid] = { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }, pem: await exportSPKI(publicKey) };
    }
    served = [keys.old!.jwk];
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: served }));
    });
    await listen(server, 0, '127.0.0.1');
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  afterAll(() => {
    server?.closeAllConnections();
    server?.close();
  });

  const signedWith = (kid: string, sub = '7') =>
    new SignJWT({ role: 'user' })
      .setProtectedHeader({ alg: 'RS256', kid })
      .setSubject(sub)
      .setIssuer(CLAIMS.issuer)
      .setAudience(CLAIMS.audience)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(keys[kid]!.privateKey);

  it('verifies with the published key, picks up a rotated key without a restart, and drops the retired one', async () => {
    const authenticate = createAuthenticator({ ...CLAIMS, jwksUrl, jwks: { cooldownMs: 0 } });
    expect(await authenticate(`Bearer ${await signedWith('old')}`)).toEqual({ userId: '7', role: 'user' });

    served = [keys.new!.jwk];
    // A token naming a key the cached set lacks makes the gateway fetch the set again.
    expect(await authenticate(`Bearer ${await signedWith('new', '8')}`)).toEqual({ userId: '8', role: 'user' });
    await expectRefused(authenticate(`Bearer ${await signedWith('old')}`));
    served = [keys.old!.jwk];
  });

  it('refuses an HS256 token that uses a published public key as its secret (algorithm confusion)', async () => {
    const authenticate = createAuthenticator({ ...CLAIMS, jwksUrl });
    // The classic forgery: HMAC-sign with the public key, in the forms a careless verifier would use as a secret.
    for (const publicKeyAsSecret of [keys.old!.pem, JSON.stringify(keys.old!.jwk)]) {
      const forged = await new SignJWT({ role: 'admin' })
        .setProtectedHeader({ alg: 'HS256', kid: 'old' })
        .setSubject('1')
        .setIssuer(CLAIMS.issuer)
        .setAudience(CLAIMS.audience)
        .setExpirationTime('10m')
        .sign(new TextEncoder().encode(publicKeyAsSecret));
      await expectRefused(authenticate(`Bearer ${forged}`));
    }
  });

  it('answers 503 AUTH_UNAVAILABLE, not 401, when the key set cannot be fetched', async () => {
    const authenticate = createAuthenticator({ ...CLAIMS, jwksUrl: 'http://127.0.0.1:9/jwks.json', jwks: { timeoutMs: 500 } });
    const error = await authenticate(`Bearer ${await signedWith('old')}`).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(HttpError);
    expect({ status: (error as HttpError).status, code: (error as HttpError).code }).toEqual({ status: 503, code: 'AUTH_UNAVAILABLE' });
  });
});
