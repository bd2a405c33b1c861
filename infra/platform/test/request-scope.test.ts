import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { IDENTITY_HEADER } from '../src/identity/internal-token.ts';
import { createLogger } from '../src/logger.ts';
import { acceptRequestId, isProbeRequest, probeRequestId } from '../src/observability/request-scope.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('acceptRequestId', () => {
  it('keeps a sane caller id', () => {
    for (const id of ['test-abc-123', 'a', 'x'.repeat(128), 'trace:1/2+3=4@host.example_5']) expect(acceptRequestId(id)).toBe(id);
    expect(acceptRequestId(['first-id', 'second-id'])).toBe('first-id');
  });

  it('replaces a missing, overlong or odd id with a fresh UUID', () => {
    for (const id of [undefined, '', 'x'.repeat(129), 'has space', 'line\nbreak', '{"json":1}', 'caf\u00e9', '<script>']) {
      const accepted = acceptRequestId(id);
      expect(accepted, JSON.stringify(id)).toMatch(UUID);
    }
    expect(acceptRequestId(undefined)).not.toBe(acceptRequestId(undefined));
  });

  it('keeps a probe: id only from callers trusted to send one', () => {
    const probe = probeRequestId();
    expect(isProbeRequest(probe)).toBe(true);
    expect(acceptRequestId(probe, { probes: true })).toBe(probe);
    expect(acceptRequestId(probe)).toMatch(UUID);
    expect(acceptRequestId('probe:made-up-by-a-client')).toMatch(UUID);
  });
});

describe('createLogger', () => {
  function capture() {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    return { logger: createLogger({ name: 'test', level: 'info', destination }), lines };
  }

  it('redacts credentials wherever a log call puts them', () => {
    const { logger, lines } = capture();
    logger.info({ req: { headers: { authorization: 'Bearer eyJ.secret.token', cookie: 'session=abc', [IDENTITY_HEADER]: 'signed.identity' } } }, 'incoming');
    logger.info({ headers: { authorization: 'Bearer eyJ.secret.token' }, connectionParams: { authorization: 'Bearer ws.secret' } }, 'socket');
    logger.info({ config: { password: 'hunter2', secret: 'shh', token: 'tok' } }, 'config');
    const text = JSON.stringify(lines);
    for (const secret of ['eyJ.secret.token', 'session=abc', 'signed.identity', 'ws.secret', 'hunter2', 'shh', '"tok"']) expect(text).not.toContain(secret);
    expect(lines[0]).toMatchObject({ req: { headers: { authorization: '[redacted]', cookie: '[redacted]', [IDENTITY_HEADER]: '[redacted]' } } });
  });
});
