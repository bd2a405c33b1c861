// Structured logs end to end: the stack writes every service's lines to one captured stream (the stack's
// logger is `.child({ service })` per service), and the tests read them as JSON, as a log pipeline would.
import type { IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import { createLogger, IDENTITY_HEADER } from '@fed/platform';
import { graphql, waitFor } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import { startTestStack, tokenFor, type TestStack } from './harness.ts';

interface LogLine {
  level: number;
  msg: string;
  service?: string;
  requestId?: string;
  status?: number;
  durationMs?: number;
  operationName?: string;
  errorCodes?: string[];
}

/** A destination for pino that keeps each line, raw (for leak checks) and parsed. */
function captureLogs() {
  const raw: string[] = [];
  let partial = '';
  const destination = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      partial += chunk.toString();
      const complete = partial.split('\n');
      partial = complete.pop() ?? '';
      raw.push(...complete.filter((line) => line.length > 0));
      done();
    },
  });
  return { destination, raw, lines: () => raw.map((line) => JSON.parse(line) as LogLine) };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const SERVICES = ['gateway', 'orders', 'users'];

const nested = (name: string, first: number) =>
  `query ${name} { users(first: ${first}) { edges { node { id name orders(first: 2) { edges { node { id items { sku quantity } } } } } } } }`;

describe('structured logs with request ids', () => {
  const logs = captureLogs();
  let stack: TestStack;
  /** Every x-fed-identity value the gateway signed for a subgraph: credentials that must never be logged. */
  const identities: string[] = [];
  const MAX_BODY = 16_384;

  /** The access-log lines ("request") of one request id, from every service. */
  const accessLines = (requestId: string) => logs.lines().filter((line) => line.msg === 'request' && line.requestId === requestId);
  /** Waits until each of `services` has written its access line for `requestId`, and returns them all. */
  const accessLinesFrom = (requestId: string, services: string[]) =>
    waitFor(() => {
      const lines = accessLines(requestId);
      expect(new Set(lines.map((line) => line.service))).toEqual(new Set(services));
      return lines;
    });

  beforeAll(async () => {
    // Debug, so that the leak check also reads the lines operators only see when they ask for them.
    stack = await startTestStack({ logger: createLogger({ name: 'test', level: 'debug', destination: logs.destination }), gateway: { maxBodyBytes: MAX_BODY } });
    await seed(stack.databases, { users: 3, ordersPerUser: 2 });
    for (const name of ['users', 'orders'] as const) {
      stack.httpServers[name].on('request', (req: IncomingMessage) => {
        const identity = req.headers[IDENTITY_HEADER];
        if (typeof identity === 'string') identities.push(identity);
      });
    }
  });
  afterAll(() => stack?.teardown());

  it('echoes x-request-id, and every service writes one access line for the request under that id', async () => {
    const response = await stack.request(nested('NestedLogs', 3), undefined, { ...stack.admin, 'x-request-id': 'test-abc-123' });
    expect(response.errors).toBeUndefined();
    expect(response.headers.get('x-request-id')).toBe('test-abc-123');

    const lines = await accessLinesFrom('test-abc-123', SERVICES);
    // Exactly one per service: users and orders are each fetched once for this query.
    expect(lines.map((line) => line.service).sort()).toEqual(SERVICES);
    const byService = Object.fromEntries(lines.map((line) => [line.service, line]));
    expect(byService.gateway?.operationName).toBe('NestedLogs');
    // The subgraphs see the operation the gateway generated from the client's, named after it.
    expect(byService.users?.operationName).toMatch(/^NestedLogs__users__\d+$/);
    expect(byService.orders?.operationName).toMatch(/^NestedLogs__orders__\d+$/);
    for (const line of lines) {
      expect(line).toMatchObject({ level: 30, status: 200, path: '/graphql', method: 'POST' });
      expect(typeof line.durationMs).toBe('number');
      expect(line.durationMs).toBeGreaterThanOrEqual(0);
      expect(line.errorCodes).toBeUndefined();
    }
    // The gateway waited for both subgraphs, so its request took longer than either of theirs.
    expect(byService.gateway?.durationMs).toBeGreaterThanOrEqual(Math.max(byService.users?.durationMs ?? 0, byService.orders?.durationMs ?? 0));
  });

  it('replaces an unacceptable x-request-id with a generated one, used everywhere the request goes', async () => {
    const unacceptable = ['has spaces in it', 'x'.repeat(500), '<script>alert(1)</script>', 'caf\u00e9', 'a'.repeat(129)];
    const generated = new Set<string>();
    for (const [index, sent] of unacceptable.entries()) {
      // A different page size each time, so that no answer comes from the response cache.
      const response = await stack.request(nested('BadRequestId', index + 1), undefined, { ...stack.admin, 'x-request-id': sent });
      expect(response.status).toBe(200);
      const id = response.headers.get('x-request-id') ?? '';
      expect(id, `for ${JSON.stringify(sent.slice(0, 20))}`).toMatch(UUID);
      generated.add(id);
      const lines = await accessLinesFrom(id, SERVICES);
      expect(lines).toHaveLength(3);
      expect(logs.raw.some((line) => line.includes(sent))).toBe(false);
    }
    expect(generated.size).toBe(unacceptable.length);
  });

  it('generates a fresh id for each request that sends none', async () => {
    const first = await stack.request('{ user(id: "1") { name } }');
    const second = await stack.request('{ user(id: "2") { name } }');
    const ids = [first.headers.get('x-request-id'), second.headers.get('x-request-id')];
    for (const id of ids) {
      expect(id).toMatch(UUID);
      await accessLinesFrom(id ?? '', ['gateway', 'users']);
    }
    expect(ids[0]).not.toBe(ids[1]);
  });

  it('does not let a client take its request out of the access log with a probe: id', async () => {
    // The gateway's own health probes of the subgraphs carry `probe:` ids and are logged at debug only.
    const response = await stack.request(nested('Hidden', 2), undefined, { ...stack.admin, 'x-request-id': 'probe:not-really' });
    const id = response.headers.get('x-request-id') ?? '';
    expect(id).toMatch(UUID);
    const lines = await accessLinesFrom(id, SERVICES);
    for (const line of lines) expect(line.level).toBe(30);
    expect(accessLines('probe:not-really')).toEqual([]);
  });

  it('lists the error codes of a failed request on its access line', async () => {
    const invalid = await fetch(stack.urls.gateway, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...stack.admin, 'x-request-id': 'codes-validation' },
      body: JSON.stringify({ query: 'query Broken { nope }', operationName: 'Broken' }),
    });
    expect(invalid.status).toBe(400);
    const [validation] = await accessLinesFrom('codes-validation', ['gateway']);
    expect(validation).toMatchObject({ level: 30, status: 400, operationName: 'Broken', errorCodes: ['GRAPHQL_VALIDATION_FAILED'] });

    const refused = await stack.request('{ user(id: "1") { name } }', undefined, { authorization: 'Bearer not.a.token', 'x-request-id': 'codes-auth' });
    expect(refused.status).toBe(401);
    const [unauthenticated] = await accessLinesFrom('codes-auth', ['gateway']);
    expect(unauthenticated).toMatchObject({ status: 401, errorCodes: ['UNAUTHENTICATED'] });

    const oversized = await graphql(stack.urls.gateway, `query Big { user(id: "1") { name } } # ${'x'.repeat(MAX_BODY)}`, undefined, { ...stack.admin, 'x-request-id': 'codes-size' });
    expect(oversized.status).toBe(413);
    const [tooLarge] = await accessLinesFrom('codes-size', ['gateway']);
    expect(tooLarge).toMatchObject({ status: 413, errorCodes: ['PAYLOAD_TOO_LARGE'] });
  });

  it('never writes a bearer token, a subgraph secret or a signed identity', async () => {
    const userToken = await tokenFor('2');
    const asUser = await stack.request(nested('AsUser', 2), undefined, { authorization: `Bearer ${userToken}`, 'x-request-id': 'leak-check' });
    expect(asUser.status).toBe(200);
    await accessLinesFrom('leak-check', SERVICES);
    // A subgraph called directly with a forged identity refuses it, and says so in a warning.
    const forged = 'forged-identity.eyJzdWIiOiIxIn0.c2lnbmF0dXJl';
    const direct = await fetch(stack.urls.users, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: forged, authorization: `Bearer ${userToken}`, 'x-request-id': 'leak-direct' },
      body: JSON.stringify({ query: '{ _service { sdl } }' }),
    });
    expect(direct.status).toBe(401);
    const warnings = await waitFor(() => {
      const found = logs.lines().filter((line) => line.requestId === 'leak-direct' && line.level === 40);
      expect(found.length).toBeGreaterThan(0);
      return found;
    });
    expect(warnings[0]?.service).toBe('users');

    const adminToken = (stack.admin.authorization ?? '').replace(/^Bearer /, '');
    expect(identities.length).toBeGreaterThan(0);
    const credentials = [adminToken, userToken, forged, ...Object.values(stack.secrets), ...identities];
    expect(logs.raw.length).toBeGreaterThan(20);
    for (const credential of credentials) {
      expect(credential.length).toBeGreaterThan(20);
      const leaking = logs.raw.filter((line) => line.includes(credential));
      expect(leaking, `a log line contains ${credential.slice(0, 12)}...`).toEqual([]);
    }
  });
});
