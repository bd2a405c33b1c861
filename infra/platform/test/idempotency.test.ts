import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  decodeResult,
  encodeResult,
  InvalidIdempotencyKeyError,
  parseIdempotencyKey,
  requestFingerprint,
} from '../src/events/idempotency.ts';
import { createIdentityVerifier, InvalidIdentityError, signIdentity } from '../src/identity/internal-token.ts';

const SECRET = 'k'.repeat(43);
const BODY = '{"query":"mutation { deleteUser(id: \\"1\\") }"}';
const verify = createIdentityVerifier({ audience: 'users', callers: { gateway: { secret: SECRET, actsForViewers: true } } });
const sign = (idempotency?: { key: string; request: string }) =>
  signIdentity({ secret: SECRET, caller: 'gateway', audience: 'users', viewer: { userId: '7', role: 'user' }, body: BODY, readPrimary: true, idempotency });

describe('idempotency keys', () => {
  it('accepts 8 to 128 characters of A-Z a-z 0-9 . _ : - and nothing else', () => {
    expect(parseIdempotencyKey(undefined)).toBeUndefined();
    for (const key of ['0f8fe1d2-6c1e-4c39-9c43-5d1e0d8e3b1a', '01HZX3K5W6Y7Z8A9B0C1D2E3F4', 'order:42.retry_1', 'a'.repeat(128)]) {
      expect(parseIdempotencyKey(key)).toBe(key);
    }
    for (const key of ['', 'short', 'a'.repeat(129), 'with space', 'two-keys-1, two-keys-2', 'slash/separated', 'naïve-key-1']) {
      expect(() => parseIdempotencyKey(key)).toThrow(InvalidIdempotencyKeyError);
    }
    expect(() => parseIdempotencyKey(['key-number-1', 'key-number-2'])).toThrow(InvalidIdempotencyKeyError);
  });

  it('fingerprints a request by its document, operation name and variables, whatever the order of their keys', () => {
    const base = { queryHash: 'h', operationName: 'Place', variables: { input: { userId: '1', items: [{ sku: 'A', quantity: 1 }] } } };
    const reordered = { queryHash: 'h', operationName: 'Place', variables: { input: { items: [{ quantity: 1, sku: 'A' }], userId: '1' } } };
    expect(requestFingerprint(reordered)).toBe(requestFingerprint(base));
    expect(requestFingerprint({ ...base, variables: { input: { ...base.variables.input, userId: '2' } } })).not.toBe(requestFingerprint(base));
    expect(requestFingerprint({ ...base, queryHash: 'other' })).not.toBe(requestFingerprint(base));
    expect(requestFingerprint({ ...base, operationName: 'Other' })).not.toBe(requestFingerprint(base));
    // Items are a list: their order is part of the request.
    const swapped = { ...base, variables: { input: { userId: '1', items: [{ sku: 'B', quantity: 1 }, { sku: 'A', quantity: 1 }] } } };
    const straight = { ...base, variables: { input: { userId: '1', items: [{ sku: 'A', quantity: 1 }, { sku: 'B', quantity: 1 }] } } };
    expect(requestFingerprint(swapped)).not.toBe(requestFingerprint(straight));
  });

  it('stores a result as JSON and replays it with the same types (dates stay dates)', () => {
    const row = { order: { id: 3, createdAt: new Date('2026-12-01T10:00:00.000Z'), status: 'PENDING' }, items: [{ sku: 'A', quantity: 2 }], none: null };
    const stored = JSON.parse(JSON.stringify(encodeResult(row))) as unknown;
    expect(decodeResult(stored)).toEqual(row);
    expect(decodeResult(encodeResult(42))).toBe(42);
    expect(decodeResult(encodeResult(undefined))).toBeNull();
  });

  it('travels to the subgraph inside the signed identity, where no one without the secret can add or change it', () => {
    const claim = { key: 'client-key-0001', request: 'fingerprint' };
    expect(verify(sign(claim), BODY).idempotency).toEqual(claim);
    expect(verify(sign(), BODY).idempotency).toBeUndefined();

    const [header, payload, signature] = sign().split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, idk: 'client-key-0001', idr: 'x' })).toString('base64url')}.${signature}`;
    expect(() => verify(forged, BODY)).toThrow(InvalidIdentityError);

    // Even a holder of the secret cannot smuggle in a key the gateway would have refused.
    const input = `${header}.${Buffer.from(JSON.stringify({ ...claims, idk: 'bad key', idr: 'x' })).toString('base64url')}`;
    const resigned = `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
    expect(() => verify(resigned, BODY)).toThrow(/idempotency/);
  });
});
