import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@fed/platform';
import { configIssues } from '@fed/platform/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { gatewayConfigSchema, gatewaySettings } from '../src/config.ts';
import { parseTrustedManifest } from '../src/persisted-documents/manifest.ts';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const BODY = 'query UserName($id: ID!, $withEmail: Boolean = false) { user(id: $id) { name email @include(if: $withEmail) } }';
const manifest = (operations: unknown[]) => JSON.stringify({ format: 'apollo-persisted-query-manifest', version: 1, operations });

describe('trusted documents: the manifest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'manifest-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads what @apollo/generate-persisted-query-manifest writes, with each operation’s declared variables', () => {
    const documents = parseTrustedManifest(manifest([{ id: sha256(BODY), name: 'UserName', type: 'query', body: BODY }]));
    expect(documents.get(sha256(BODY))).toMatchObject({ name: 'UserName', type: 'query', body: BODY });
    expect([...(documents.get(sha256(BODY))?.declaredVariables ?? [])]).toEqual(['id', 'withEmail']);
  });

  it('refuses a manifest it cannot trust whole: another format, an id that is not its body’s sha256, a body that does not parse', () => {
    expect(() => parseTrustedManifest('{')).toThrow('not valid JSON');
    expect(() => parseTrustedManifest(JSON.stringify({ format: 'other', version: 1, operations: [] }))).toThrow('format');
    expect(() => parseTrustedManifest(manifest([{ id: sha256('{ a }'), name: 'UserName', type: 'query', body: BODY }]))).toThrow('its id is not the sha256 of its body');
    expect(() => parseTrustedManifest(manifest([{ id: sha256('{ a'), name: 'Broken', type: 'query', body: '{ a' }]))).toThrow('does not parse');
  });

  it('PERSISTED_QUERIES=trusted needs TRUSTED_DOCUMENTS_PATH, and an unreadable manifest stops the start with a clear message', () => {
    expect(configIssues(gatewayConfigSchema, { PERSISTED_QUERIES: 'trusted' })).toEqual(['TRUSTED_DOCUMENTS_PATH: is required with PERSISTED_QUERIES=trusted']);
    const missing = join(dir, 'missing.json');
    expect(() => gatewaySettings(parseConfig(gatewayConfigSchema, { PERSISTED_QUERIES: 'trusted', TRUSTED_DOCUMENTS_PATH: missing }))).toThrow(
      `TRUSTED_DOCUMENTS_PATH: cannot read ${missing} (ENOENT)`,
    );
    const path = join(dir, 'manifest.json');
    writeFileSync(path, manifest([{ id: sha256(BODY), name: 'UserName', type: 'query', body: BODY }]));
    const { gateway } = gatewaySettings(parseConfig(gatewayConfigSchema, { PERSISTED_QUERIES: 'trusted', TRUSTED_DOCUMENTS_PATH: path }));
    expect(gateway.persistedDocuments.mode).toBe('trusted');
  });

  it('defaults to bounded APQ: an hour, 16 KiB per document, 1 000 registrations an hour', () => {
    const { gateway } = gatewaySettings(parseConfig(gatewayConfigSchema, {}));
    expect(gateway.persistedDocuments).toEqual({ mode: 'apq', policy: { ttlSeconds: 3_600, maxBytes: 16_384, maxEntries: 1_000 } });
    expect(gateway.variableLimits).toEqual({ maxVariables: 100, maxValues: 10_000 });
    expect(gateway.httpTimeouts).toEqual({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 });
  });
});
