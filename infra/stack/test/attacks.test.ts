// The attack matrix: hostile requests through the real gateway (and straight at the subgraphs) on loopback.
// Each row asserts the exact HTTP status and error code and, where the request must not get through, that
// no subgraph received anything.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { createAuthenticator, createGateway, mintToken, type GatewayDeps } from '@fed/gateway';
import { gatewayConfigSchema, gatewaySettings } from '@fed/gateway/config';
import { createInfrastructure, createLogger, createRedisClient, IDENTITY_HEADER, isProbeRequest, listen, signIdentity, waitForRedis, type RedisClient } from '@fed/platform';
import { deleteRedisKeys, recordStream, redisKeys, testRedisUrl, uniqueName, waitFor } from '@fed/platform/testing';
import { createClient, type Client, type FormattedExecutionResult } from 'graphql-ws';
import { UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { seed } from '../src/seed.ts';
import { signedInAs, silentLogger, startTestStack, supergraphSdl, TEST_AUTH, tokenFor, type TestStack } from './harness.ts';

interface Outcome {
  status: number;
  code: unknown;
  body: { data?: Record<string, unknown> | null; errors?: { message: string; path?: unknown[]; extensions?: Record<string, unknown> }[] };
  headers: Headers;
  /** Requests the subgraphs received while this one was handled. */
  reached: number;
}

let stack: TestStack;
let subgraphRequests = 0;
let userToken: Record<string, string>;

beforeAll(async () => {
  stack = await startTestStack();
  await seed(stack.databases, { users: 5, ordersPerUser: 2 });
  for (const server of [stack.httpServers.users, stack.httpServers.orders]) server.on('request', (req: IncomingMessage) => isProbeRequest(req.headers['x-request-id']) || subgraphRequests++);
  userToken = await signedInAs('1');
});
afterAll(() => stack?.teardown());

async function send(url: string, init: RequestInit): Promise<Outcome> {
  const before = subgraphRequests;
  const response = await fetch(url, init);
  const text = await response.text();
  const body = JSON.parse(text) as Outcome['body'];
  return { status: response.status, code: body.errors?.[0]?.extensions?.code, body, headers: response.headers, reached: subgraphRequests - before };
}

const post = (body: unknown, headers: Record<string, string> = {}, url = stack.urls.gateway) =>
  send(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

const query = (source: string, headers: Record<string, string> = userToken) => post({ query: source }, headers);

/** Refused at the gateway: exact status and code, and not one request reached a subgraph. */
function expectStopped(outcome: Outcome, status: number, code: string) {
  expect({ status: outcome.status, code: outcome.code, reached: outcome.reached }).toEqual({ status, code, reached: 0 });
  expect(outcome.body.data ?? null).toBeNull();
}

const repeat = (n: number, piece: (i: number) => string) => Array.from({ length: n }, (_, i) => piece(i)).join(' ');

describe('query-shape attacks are refused before any subgraph is called', () => {
  it('1. deep nesting: 400 DEPTH_LIMIT_EXCEEDED', async () => {
    const cycle = (inner: string) => `user { orders(first: 1) { edges { node { ${inner} } } } }`;
    let inner = 'id';
    for (let i = 0; i < 5; i++) inner = cycle(inner);
    expectStopped(await query(`{ order(id: "1") { ${inner} } }`), 400, 'DEPTH_LIMIT_EXCEEDED');
    // Sent again, the parsed document comes from Apollo's cache and its measure from the limits' own: still refused.
    expectStopped(await query(`{ order(id: "1") { ${inner} } }`), 400, 'DEPTH_LIMIT_EXCEEDED');
  });

  it('2. alias amplification: 400 ALIAS_LIMIT_EXCEEDED, aliased __typename included', async () => {
    expectStopped(await query(`{ ${repeat(100, (i) => `a${i}: users(first: 1) { totalCount }`)} }`), 400, 'ALIAS_LIMIT_EXCEEDED');
    // 3 000 aliases on each of 100 users: a 4 MB response from 53 KB, if __typename were not counted.
    const bomb = `{ users(first: 100) { edges { node { ${repeat(3_000, (i) => `a${i}: __typename`)} } } } }`;
    expectStopped(await post({ query: bomb }, {}), 400, 'ALIAS_LIMIT_EXCEEDED');
  });

  it('3. a batched JSON array: 400 BAD_REQUEST', async () => {
    expectStopped(await post([{ query: '{ users { totalCount } }' }, { query: '{ users { totalCount } }' }], userToken), 400, 'BAD_REQUEST');
  });

  it('4. circular fragments: 400 GRAPHQL_VALIDATION_FAILED', async () => {
    const outcome = await query('{ me { ...A } } fragment A on User { name ...B } fragment B on User { id ...A }');
    expectStopped(outcome, 400, 'GRAPHQL_VALIDATION_FAILED');
    expect(outcome.body.errors?.[0]?.message).toMatch(/cannot spread fragment "A" within itself/i);
  });

  it('5. a fragment explosion (2^20 selections from a few hundred bytes): 400 COST_LIMIT_EXCEEDED', async () => {
    const fragments = repeat(20, (i) => `fragment F${i} on User { name ...F${i + 1} ...F${i + 1} }`);
    expectStopped(await query(`{ me { ...F0 } } ${fragments} fragment F20 on User { id }`), 400, 'COST_LIMIT_EXCEEDED');
  });

  it('6. a token flood: 400 GRAPHQL_PARSE_FAILED', async () => {
    const outcome = await query(`{ users { totalCount ${repeat(12_000, () => '__typename')} } }`);
    expectStopped(outcome, 400, 'GRAPHQL_PARSE_FAILED');
    expect(outcome.body.errors?.[0]?.message).toMatch(/more that 10000 tokens|more than 10000 tokens/);
  });

  it('7. a directive flood: on one field 400 GRAPHQL_VALIDATION_FAILED, spread over fields 400 DIRECTIVE_LIMIT_EXCEEDED', async () => {
    expectStopped(await query(`{ me { name ${repeat(50, () => '@include(if: true)')} } }`), 400, 'GRAPHQL_VALIDATION_FAILED');
    expectStopped(await query(`{ me { ${repeat(25, () => 'name @include(if: true)')} } }`), 400, 'DIRECTIVE_LIMIT_EXCEEDED');
  });

  it('8. introspection in production mode: 400 GRAPHQL_VALIDATION_FAILED', async () => {
    expectStopped(await query('{ __schema { types { name } } }'), 400, 'GRAPHQL_VALIDATION_FAILED');
    expectStopped(await query('{ __type(name: "User") { fields { name } } }'), 400, 'GRAPHQL_VALIDATION_FAILED');
  });

  it('9. field-suggestion probing: 400 GRAPHQL_VALIDATION_FAILED, with no "Did you mean"', async () => {
    const outcome = await query('{ users { edges { node { emai passwrd } } } }');
    expectStopped(outcome, 400, 'GRAPHQL_VALIDATION_FAILED');
    expect(JSON.stringify(outcome.body)).not.toMatch(/did you mean|email/i);
  });

  it('10. _entities and _service through the gateway: 400 GRAPHQL_VALIDATION_FAILED', async () => {
    const entities = await post({
      query: 'query ($r: [_Any!]!) { _entities(representations: $r) { ... on User { email } } }',
      variables: { r: [{ __typename: 'User', id: '1' }] },
    }, userToken);
    expectStopped(entities, 400, 'GRAPHQL_VALIDATION_FAILED');
    expectStopped(await query('{ _service { sdl } }'), 400, 'GRAPHQL_VALIDATION_FAILED');
  });

  it('15. first: 1000000: 400 COST_LIMIT_EXCEEDED', async () => {
    expectStopped(await query('{ users(first: 1000000) { edges { node { id } } } }'), 400, 'COST_LIMIT_EXCEEDED');
    expectStopped(await post({ query: 'query ($n: Int) { users(first: $n) { edges { node { id } } } }', variables: { n: 1_000_000 } }, userToken), 400, 'COST_LIMIT_EXCEEDED');
    // An operation with variables is measured for each request's values: the same text with a small page runs.
    const small = await post({ query: 'query ($n: Int) { users(first: $n) { edges { node { id } } } }', variables: { n: 2 } }, userToken);
    expect(small.status).toBe(200);
  });
});

describe('protocol attacks', () => {
  it('13. CSRF: a simple content type, and a GET without a preflight header: 400 BAD_REQUEST', async () => {
    const simple = await send(stack.urls.gateway, { method: 'POST', headers: { 'content-type': 'text/plain', ...userToken }, body: '{"query":"{ me { email } }"}' });
    expectStopped(simple, 400, 'BAD_REQUEST');
    expect(simple.body.errors?.[0]?.message).toMatch(/Cross-Site Request Forgery/);
    const get = await send(`${stack.urls.gateway}?query=${encodeURIComponent('{ me { email } }')}`, { headers: userToken });
    expectStopped(get, 400, 'BAD_REQUEST');
  });

  it('14. a mutation over GET: 405 BAD_REQUEST, Allow: POST, and nothing is written', async () => {
    const mutation = encodeURIComponent('mutation { deleteUser(id: "2") }');
    const outcome = await send(`${stack.urls.gateway}?query=${mutation}`, { headers: { ...stack.admin, 'apollo-require-preflight': 'true' } });
    expectStopped(outcome, 405, 'BAD_REQUEST');
    expect(outcome.headers.get('allow')).toBe('POST');
    const still = await stack.request<{ user: { id: string } }>('{ user(id: "2") { id } }');
    expect(still.data?.user.id).toBe('2');
  });

  it('17. an oversized body: 413 PAYLOAD_TOO_LARGE', async () => {
    expectStopped(await post({ query: `{ me { id } }${' '.repeat(2 * 1024 * 1024)}` }, userToken), 413, 'PAYLOAD_TOO_LARGE');
  });

  it('18. a subscription over HTTP: 400 SUBSCRIPTION_OVER_HTTP', async () => {
    expectStopped(await query('subscription { userEvents { kind } }'), 400, 'SUBSCRIPTION_OVER_HTTP');
  });
});

describe('identity attacks', () => {
  it('19. an expired token: 401 UNAUTHENTICATED, never a downgrade to anonymous', async () => {
    const expired = await mintToken({ ...TEST_AUTH, sub: '1', role: 'admin', issuedAt: Math.floor(Date.now() / 1000) - 7200, ttlSeconds: 3600 });
    const outcome = await query('{ users { totalCount } }', { authorization: `Bearer ${expired}` });
    expectStopped(outcome, 401, 'UNAUTHENTICATED');
    expect(outcome.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expect(outcome.body.errors?.[0]?.message).toMatch(/expired/);
  });

  it('20. a token with alg none, or signed with the wrong key: 401 UNAUTHENTICATED', async () => {
    const none = new UnsecuredJWT({ role: 'admin' }).setSubject('1').setIssuer(TEST_AUTH.issuer).setAudience(TEST_AUTH.audience).setExpirationTime('1h').encode();
    expectStopped(await query('{ me { email } }', { authorization: `Bearer ${none}` }), 401, 'UNAUTHENTICATED');
    const wrongKey = await mintToken({ ...TEST_AUTH, secret: 'attacker'.repeat(5), sub: '1', role: 'admin' });
    expectStopped(await query('{ me { email } }', { authorization: `Bearer ${wrongKey}` }), 401, 'UNAUTHENTICATED');
  });

  it('12. a forged identity header: the gateway ignores it and signs only what it verified', async () => {
    const forged = signIdentity({ secret: 'guessed'.repeat(6), caller: 'gateway', audience: 'users', viewer: { userId: '1', role: 'admin' }, body: '' });
    const outcome = await query('{ me { id email } }', {
      'x-user-id': '1',
      'x-user-role': 'admin',
      [IDENTITY_HEADER]: forged,
      // The gateway's own in-process hand-off header, guessed: it is never taken from a client.
      'x-fed-viewer-unsigned': JSON.stringify({ userId: '1', role: 'admin' }),
    });
    expect({ status: outcome.status, errors: outcome.body.errors }).toEqual({ status: 200, errors: undefined });
    expect(outcome.body.data).toEqual({ me: null });

    // Sent straight to the subgraph instead, the forgery is refused.
    const body = JSON.stringify({ query: '{ me { id email } }' });
    const direct = await post(body, { 'x-user-id': '1', [IDENTITY_HEADER]: forged }, stack.urls.users);
    expect({ status: direct.status, code: direct.code }).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
  });

  it('11. a direct subgraph call without a signature: 401 UNAUTHENTICATED, for _entities and _service alike', async () => {
    for (const body of [
      { query: '{ _service { sdl } }' },
      { query: 'query ($r: [_Any!]!) { _entities(representations: $r) { ... on User { email } } }', variables: { r: [{ __typename: 'User', id: '1' }] } },
    ]) {
      for (const url of [stack.urls.users, stack.urls.orders]) {
        const outcome = await post(body, {}, url);
        expect({ status: outcome.status, code: outcome.code, data: outcome.body.data }).toEqual({ status: 401, code: 'UNAUTHENTICATED', data: undefined });
      }
    }
  });

  /** Captures the next signed request the gateway sends to the users subgraph. */
  const captureNext = () =>
    new Promise<{ identity: string; body: string }>((resolve) => {
      stack.httpServers.users.once('request', (req) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => resolve({ identity: String(req.headers[IDENTITY_HEADER]), body: Buffer.concat(chunks).toString() }));
      });
    });

  it('21. a replayed subgraph signature: refused with another body, refused once it is 30 s old, and a write runs once', async () => {
    let captured: { identity: string; body: string } | undefined;
    void captureNext().then((request) => (captured = request));
    const admin = await query('{ users(first: 5) { edges { node { email } } } }', stack.admin);
    expect(admin.status).toBe(200);
    expect(captured).toBeDefined();
    const { identity, body } = captured!;

    const swapped = await post(JSON.stringify({ query: '{ users(first: 5) { edges { node { id email name } } } }' }), { [IDENTITY_HEADER]: identity }, stack.urls.users);
    expect({ status: swapped.status, code: swapped.code }).toEqual({ status: 401, code: 'UNAUTHENTICATED' });

    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 36_000);
      const replayed = await post(body, { [IDENTITY_HEADER]: identity }, stack.urls.users);
      expect({ status: replayed.status, code: replayed.code }).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
    } finally {
      vi.useRealTimers();
    }

    // Within its lifetime, a captured write is refused the second time, and changes nothing.
    const write = captureNext();
    const renamed = await query('mutation { updateUser(id: "3", input: { name: "Renamed Once" }) { name } }', stack.admin);
    expect(renamed.body.data).toEqual({ updateUser: { name: 'Renamed Once' } });
    const { identity: writeIdentity, body: writeBody } = await write;
    await stack.request('mutation { updateUser(id: "3", input: { name: "Changed Since" }) { name } }');
    const again = await post(writeBody, { [IDENTITY_HEADER]: writeIdentity }, stack.urls.users);
    expect({ status: again.status, code: again.code }).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
    const name = await stack.request<{ user: { name: string } }>('{ user(id: "3") { name } }');
    expect(name.data?.user.name).toBe('Changed Since');
  });

  it('16. one user reading another’s private fields: null plus FORBIDDEN at those fields, the rest intact', async () => {
    type Users = { user: { id: string; name: string; email: string | null; orderCount: number | null; orders: unknown } };
    const outcome = await query('{ user(id: "2") { id name email orderCount orders(first: 1) { totalCount } } }', userToken);
    expect(outcome.status).toBe(200);
    const { user } = outcome.body.data as Users;
    expect(user).toEqual({ id: '2', name: expect.any(String), email: null, orderCount: null, orders: null });
    expect(outcome.body.errors?.map((error) => [error.path?.join('.'), error.extensions?.code])).toEqual(
      expect.arrayContaining([
        ['user.email', 'FORBIDDEN'],
        ['user.orderCount', 'FORBIDDEN'],
        ['user.orders', 'FORBIDDEN'],
      ]),
    );
    // Their own, the same request shows in full.
    const own = await query('{ user(id: "1") { email orderCount } }', userToken);
    expect(own.body.errors).toBeUndefined();
    expect(own.body.data).toEqual({ user: { email: expect.stringContaining('@'), orderCount: 2 } });
  });
});

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const persisted = (hash: string) => ({ persistedQuery: { version: 1, sha256Hash: hash } });

/** One more gateway on the stack's subgraphs, with a Redis prefix of its own and no per-client rate limit. */
async function startReplica(keyPrefix: string, deps: Partial<GatewayDeps>) {
  const infrastructure = await createInfrastructure({ redisUrl: testRedisUrl(), logger: silentLogger(), keyPrefix });
  const gateway = await createGateway({
    supergraphSdl,
    subgraphUrls: { users: stack.urls.users, orders: stack.urls.orders },
    subgraphSecrets: { users: stack.secrets.users, orders: stack.secrets.orders },
    logger: silentLogger(),
    cache: infrastructure.cache,
    rateLimiter: infrastructure.rateLimiter,
    rateLimit: null,
    authenticate: createAuthenticator(TEST_AUTH),
    ...deps,
  });
  const port = await listen(gateway.httpServer, 0, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    stop: async () => {
      await gateway.stop();
      await infrastructure.close();
    },
  };
}

describe('22. the rate limit holds across two gateway replicas sharing Redis', () => {
  const keyPrefix = `${uniqueName('ratelimit_replicas')}:`;
  const replicas: Awaited<ReturnType<typeof startReplica>>[] = [];

  beforeAll(async () => {
    // Each replica has its own Redis connection, exactly as two processes would.
    for (let i = 0; i < 2; i++) replicas.push(await startReplica(keyPrefix, { rateLimit: { limit: 4, windowMs: 60_000 } }));
  });
  afterAll(async () => {
    for (const replica of replicas) await replica.stop();
  });

  it('counts a client’s requests on both replicas together; past the limit it is 429 RATE_LIMITED with Retry-After', async () => {
    const headers = { authorization: `Bearer ${await tokenFor('3')}` };
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await post({ query: '{ me { id } }' }, headers, replicas[i % 2]!.url)).status);
    expect(statuses).toEqual([200, 200, 200, 200]);

    for (const { url } of replicas) {
      const refused = await post({ query: '{ me { id } }' }, headers, url);
      expectStopped(refused, 429, 'RATE_LIMITED');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(15);
    }
  });

  it('keys by verified sub: another user, and anonymous callers (by address), have their own allowance', async () => {
    const other = await post({ query: '{ me { id } }' }, { authorization: `Bearer ${await tokenFor('4')}` }, replicas[0]!.url);
    expect(other.status).toBe(200);
    expect(other.body.data).toEqual({ me: { id: '4' } });
    const anonymous = await post({ query: '{ users(first: 1) { totalCount } }' }, {}, replicas[1]!.url);
    expect(anonymous.status).toBe(200);
  });
});

describe('23–25. automatic persisted queries are bounded in Redis (a TTL, a size per document, a budget of registrations)', () => {
  const keyPrefix = `${uniqueName('apq')}:`;
  const apqKey = (hash: string) => `${keyPrefix}cache:apq:${hash}`;
  let redis: RedisClient;
  let replica: Awaited<ReturnType<typeof startReplica>>;

  beforeAll(async () => {
    // Of the topology TEST_REDIS_URL names (one server, Sentinels or a cluster); it only reads what the gateway wrote.
    redis = createRedisClient(testRedisUrl(), { patient: true });
    await waitForRedis(redis, 30_000);
    replica = await startReplica(keyPrefix, { persistedDocuments: { mode: 'apq', policy: { ttlSeconds: 120, maxBytes: 2048, maxEntries: 3 } } });
  });
  afterAll(async () => {
    await replica?.stop();
    redis?.disconnect();
    await deleteRedisKeys(keyPrefix);
  });

  /** Registers a document (its text and hash) the way Apollo Client does after a miss. */
  const register = (query: string) => post({ query, extensions: persisted(sha256(query)) }, {}, replica.url);
  const byHash = (query: string) => post({ extensions: persisted(sha256(query)) }, {}, replica.url);

  it('23. a registered document is stored with an expiry (APQ_TTL_S), and answers by hash', async () => {
    const query = 'query Apq1 { users(first: 1) { totalCount } }';
    const registered = await register(query);
    expect({ status: registered.status, errors: registered.body.errors }).toEqual({ status: 200, errors: undefined });
    await waitFor(async () => expect(await redis.get(apqKey(sha256(query)))).toBe(query));
    const ttl = await redis.pttl(apqKey(sha256(query)));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(120_000);
    const hit = await byHash(query);
    expect({ status: hit.status, data: hit.body.data }).toEqual({ status: 200, data: registered.body.data });
  });

  it('24. a document over APQ_MAX_BYTES runs but is never stored (1 MiB registrations filled Redis)', async () => {
    const query = `query Big { __typename }\n# ${'x'.repeat(4_000)}\n`;
    const registered = await register(query);
    expect({ status: registered.status, data: registered.body.data }).toEqual({ status: 200, data: { __typename: 'Query' } });
    const miss = await byHash(query);
    expect(miss.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect(await redis.exists(apqKey(sha256(query)))).toBe(0);
  });

  it('25. past APQ_MAX_ENTRIES registrations per TTL nothing more is stored, whoever sends them; every stored entry expires', async () => {
    const queries = Array.from({ length: 12 }, (_, i) => `query Flood${i} { __typename }`);
    for (const query of queries) expect((await register(query)).status).toBe(200);
    const stored = () => redisKeys(redis, `${keyPrefix}cache:apq:*`);
    // Apq1 (row 23) and two of the flood: the budget of 3 is shared by every document and client.
    await waitFor(async () => expect((await stored()).length).toBe(3));
    for (const key of await stored()) {
      expect(await redis.strlen(key)).toBeLessThanOrEqual(2048);
      expect(await redis.pttl(key)).toBeGreaterThan(0);
    }
    const answered = await Promise.all(queries.map(async (query) => (await byHash(query)).code));
    expect(answered.filter((code) => code === 'PERSISTED_QUERY_NOT_FOUND')).toHaveLength(10);
  });
});

describe('26–27. trusted documents (PERSISTED_QUERIES=trusted): only the manifest runs, over HTTP and graphql-ws', () => {
  const USER_NAME = 'query UserName($id: ID!) {\n  user(id: $id) {\n    name\n  }\n}';
  const FOLLOW = 'subscription Follow($userId: ID) {\n  userEvents(userId: $userId) {\n    kind\n  }\n}';
  const keyPrefix = `${uniqueName('trusted')}:`;
  let dir: string;
  let replica: Awaited<ReturnType<typeof startReplica>>;
  const clients: Client[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trusted-'));
    const manifest = {
      format: 'apollo-persisted-query-manifest',
      version: 1,
      operations: [
        { id: sha256(USER_NAME), name: 'UserName', type: 'query', body: USER_NAME },
        { id: sha256(FOLLOW), name: 'Follow', type: 'subscription', body: FOLLOW },
      ],
    };
    writeFileSync(join(dir, 'persisted-query-manifest.json'), JSON.stringify(manifest));
    // Through the configuration, as an operator sets it.
    const config = gatewayConfigSchema.parse({ PERSISTED_QUERIES: 'trusted', TRUSTED_DOCUMENTS_PATH: join(dir, 'persisted-query-manifest.json') });
    replica = await startReplica(keyPrefix, { persistedDocuments: gatewaySettings(config).gateway.persistedDocuments });
  });
  afterAll(async () => {
    for (const client of clients) await client.dispose();
    await replica?.stop();
    rmSync(dir, { recursive: true, force: true });
    await deleteRedisKeys(keyPrefix);
  });

  it('26. over HTTP: a manifest operation runs by hash, with its body, or by its body alone; anything else is 400 before any subgraph', async () => {
    const expected = { user: { name: expect.any(String) } };
    const byHash = await post({ extensions: persisted(sha256(USER_NAME)), variables: { id: '1' } }, {}, replica.url);
    expect({ status: byHash.status, data: byHash.body.data }).toEqual({ status: 200, data: expected });
    const both = await post({ query: USER_NAME, extensions: persisted(sha256(USER_NAME)), variables: { id: '1' } }, {}, replica.url);
    expect({ status: both.status, data: both.body.data }).toEqual({ status: 200, data: expected });
    const bodyOnly = await post({ query: USER_NAME, variables: { id: '1' } }, {}, replica.url);
    expect({ status: bodyOnly.status, data: bodyOnly.body.data }).toEqual({ status: 200, data: expected });
    const get = await send(`${replica.url}?${new URLSearchParams({ extensions: JSON.stringify(persisted(sha256(USER_NAME))), variables: '{"id":"1"}' })}`, {
      headers: { 'apollo-require-preflight': 'true' },
    });
    expect({ status: get.status, data: get.body.data }).toEqual({ status: 200, data: expected });

    expectStopped(await post({ query: '{ users(first: 1) { totalCount } }' }, {}, replica.url), 400, 'OPERATION_NOT_TRUSTED');
    // One space more is another document.
    expectStopped(await post({ query: `${USER_NAME} `, variables: { id: '1' } }, {}, replica.url), 400, 'OPERATION_NOT_TRUSTED');
    expectStopped(await post({ extensions: persisted(sha256('{ users(first: 1) { totalCount } }')) }, {}, replica.url), 400, 'PERSISTED_QUERY_NOT_FOUND');
    const smuggled = await post({ query: '{ users(first: 1) { totalCount } }', extensions: persisted(sha256(USER_NAME)) }, {}, replica.url);
    expectStopped(smuggled, 400, 'PERSISTED_QUERY_HASH_MISMATCH');
    const hiddenGet = await send(`${replica.url}?${new URLSearchParams({ query: '{ users(first: 1) { totalCount } }' })}`, { headers: { 'apollo-require-preflight': 'true' } });
    expectStopped(hiddenGet, 400, 'OPERATION_NOT_TRUSTED');
  });

  it('27. over graphql-ws: an untrusted subscription is refused; a trusted one runs by hash alone (empty query)', async () => {
    const client = createClient({
      url: replica.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${await tokenFor('2')}` },
    });
    clients.push(client);
    const untrusted = recordStream<FormattedExecutionResult>();
    client.subscribe({ query: 'subscription { userEvents(userId: "2") { kind user { email } } }' }, untrusted.sink);
    await waitFor(() => expect(untrusted.error).toBeDefined());
    expect((untrusted.error as { extensions?: { code?: string } }[])[0]?.extensions?.code).toBe('OPERATION_NOT_TRUSTED');

    const unknown = recordStream<FormattedExecutionResult>();
    client.subscribe({ query: '', extensions: persisted(sha256('subscription { userEvents { kind } }')) }, unknown.sink);
    await waitFor(() => expect(unknown.error).toBeDefined());
    expect((unknown.error as { extensions?: { code?: string } }[])[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');

    const trusted = recordStream<FormattedExecutionResult>();
    trusted.stop = client.subscribe({ query: '', variables: { userId: '2' }, extensions: persisted(sha256(FOLLOW)) }, trusted.sink);
    // Renamed until an event arrives: the upstream subscription may still be opening when the first write lands.
    let round = 0;
    await waitFor(async () => {
      await stack.request(`mutation { updateUser(id: "2", input: { name: "Trusted ${round++}" }) { id } }`);
      expect(trusted.results.length).toBeGreaterThan(0);
    });
    expect(trusted.error).toBeUndefined();
    expect(trusted.results[0]).toEqual({ data: { userEvents: { kind: 'USER_UPDATED' } } });
    trusted.stop();
  });
});

describe('28–36. what a request carries is bounded before anything parses it, and client mistakes are 400s with stable codes', () => {
  const keyPrefix = `${uniqueName('admission')}:`;
  /** What the replica logs at warn and above: a client's mistake must leave no error (and no stack) there. */
  const logged: { level: number; msg: string; err?: { stack?: string } }[] = [];
  let replica: Awaited<ReturnType<typeof startReplica>>;
  const clients: Client[] = [];

  beforeAll(async () => {
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) logged.push(JSON.parse(line) as (typeof logged)[number]);
        done();
      },
    });
    replica = await startReplica(keyPrefix, {
      logger: createLogger({ name: 'admission', level: 'warn', destination }),
      httpTimeouts: { headersTimeoutMs: 1_000, requestTimeoutMs: 2_000 },
    });
  });
  afterAll(async () => {
    for (const client of clients) await client.dispose();
    await replica?.stop();
    await deleteRedisKeys(keyPrefix);
  });

  const junk = (count: number, tag = '') => Object.fromEntries(Array.from({ length: count }, (_, i) => [`v${tag}${i}`, i]));

  it('28. 70 000 undeclared variables (40× the CPU of a request): 400 BAD_REQUEST before parsing, no subgraph called', async () => {
    const outcome = await post({ query: '{ users(first: 1) { totalCount } }', variables: junk(70_000) }, userToken);
    expectStopped(outcome, 400, 'BAD_REQUEST');
    expect(outcome.body.errors?.[0]?.message).toBe('A request may carry at most 100 variables');
    // The same through the replica, whose log must stay clean.
    expectStopped(await post({ query: '{ users(first: 1) { totalCount } }', variables: junk(70_000) }, {}, replica.url), 400, 'BAD_REQUEST');
  });

  it('29. within the bound, undeclared variables are dropped before anything uses them (the response cache key included)', async () => {
    const query = 'query Dropped($n: Int) { users(first: $n) { totalCount } }';
    const first = await post({ query, variables: { n: 3, ...junk(50, 'a') } }, {});
    expect({ status: first.status, errors: first.body.errors }).toEqual({ status: 200, errors: undefined });
    // Other junk each time: were it kept, no two requests would share an entry and no answer would be a hit.
    let round = 0;
    const hit = await waitFor(async () => {
      const again = await post({ query, variables: { n: 3, ...junk(50, `b${round++}_`) } }, {});
      expect(again.headers.get('age')).not.toBeNull();
      return again;
    });
    expect(hit.body).toEqual(first.body);
  });

  it('30. a declared variable with 20 000 values, or nested 40 deep: 400 BAD_REQUEST, no subgraph called', async () => {
    const query = 'mutation ($i: PlaceOrderInput!) { placeOrder(input: $i) { id } }';
    const items = Array.from({ length: 5_000 }, () => ({ sku: 'BOOK-1', quantity: 1, unitPriceCents: 1 }));
    const wide = await post({ query, variables: { i: { userId: '1', items } } }, userToken);
    expectStopped(wide, 400, 'BAD_REQUEST');
    expect(wide.body.errors?.[0]?.message).toBe('Variables may hold at most 10000 values in all');
    let deep: unknown = 'BOOK-1';
    for (let i = 0; i < 40; i++) deep = [deep];
    const nested = await post({ query, variables: { i: { userId: '1', items: [{ sku: deep, quantity: 1, unitPriceCents: 1 }] } } }, userToken);
    expectStopped(nested, 400, 'BAD_REQUEST');
  });

  it('31. over graphql-ws too: 70 000 undeclared variables refuse the subscription with BAD_REQUEST', async () => {
    const client = createClient({ url: replica.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: userToken });
    clients.push(client);
    const stream = recordStream<FormattedExecutionResult>();
    client.subscribe({ query: 'subscription { userEvents { kind } }', variables: junk(70_000) }, stream.sink);
    await waitFor(() => expect(stream.error).toBeDefined());
    expect((stream.error as { extensions?: { code?: string } }[])[0]?.extensions).toEqual({ code: 'BAD_REQUEST' });
  });

  it('32. variable coercion errors name no schema suggestion ("Did you mean …"), enum values or input fields', async () => {
    const field = await post({
      query: 'mutation ($i: PlaceOrderInput!) { placeOrder(input: $i) { id } }',
      variables: { i: { userId: '1', items: [{ sku: 'BOOK-1', quantty: 1, unitPriceCents: 1 }] } },
    }, {}, replica.url);
    expectStopped(field, 400, 'BAD_USER_INPUT');
    const enumValue = await post({ query: 'query ($s: OrderStatus) { orders(status: $s) { totalCount } }', variables: { s: 'SHIPPD' } }, {}, replica.url);
    expectStopped(enumValue, 400, 'BAD_USER_INPUT');
    for (const outcome of [field, enumValue]) expect(JSON.stringify(outcome.body)).not.toMatch(/did you mean|SHIPPED|"quantity"\?/i);
  });

  it('33. an unknown operationName, or several operations and none named: 400 OPERATION_RESOLUTION_FAILURE (was 500)', async () => {
    const unknown = await post({ query: 'query A { users(first: 1) { totalCount } }', operationName: 'B' }, {}, replica.url);
    expectStopped(unknown, 400, 'OPERATION_RESOLUTION_FAILURE');
    expect(unknown.body.errors?.[0]?.message).toBe('The document has no operation named "B"');
    const unnamed = await post({ query: 'query A { users(first: 1) { totalCount } } query B { users(first: 2) { totalCount } }' }, {}, replica.url);
    expectStopped(unnamed, 400, 'OPERATION_RESOLUTION_FAILURE');
  });

  it('34. an APQ hash that does not match its query, or a bad extension: 400 with a stable code (was INTERNAL_SERVER_ERROR)', async () => {
    const mismatch = await post({ query: '{ users(first: 1) { totalCount } }', extensions: persisted(sha256('{ users { totalCount } }')) }, {}, replica.url);
    expectStopped(mismatch, 400, 'PERSISTED_QUERY_HASH_MISMATCH');
    expectStopped(await post({ query: '{ __typename }', extensions: { persistedQuery: { version: 2, sha256Hash: sha256('{ __typename }') } } }, {}, replica.url), 400, 'BAD_REQUEST');
    expectStopped(await post({ extensions: persisted('not-a-hash') }, {}, replica.url), 400, 'BAD_REQUEST');
  });

  it('35. documents that overflowed the stack (a nested list in the parser, nested inline fragments in the planner): 400 GRAPHQL_PARSE_FAILED', async () => {
    const list = await post({ query: `{ user(id: ${'['.repeat(4_990)}1${']'.repeat(4_990)}) { id } }` }, {}, replica.url);
    expectStopped(list, 400, 'GRAPHQL_PARSE_FAILED');
    const fragments = await post({ query: `{ __typename ${'... on Query { '.repeat(1_600)}__typename${' }'.repeat(1_600)} }` }, {}, replica.url);
    expectStopped(fragments, 400, 'GRAPHQL_PARSE_FAILED');
    for (const outcome of [list, fragments]) expect(JSON.stringify(outcome.body)).not.toMatch(/call stack|RangeError/i);
  });

  /** Sends `head` and never the rest; resolves with what the server answered once it closed the socket. */
  const stall = (head: string) =>
    new Promise<string>((resolve, reject) => {
      const { port } = new URL(replica.url);
      const socket = connect(Number(port), '127.0.0.1', () => socket.write(head));
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
      socket.on('error', reject);
      socket.on('close', () => resolve(answer));
    });

  it('36. a body (or headers) never finished: 408 and the socket closes, after HTTP_REQUEST_TIMEOUT_MS (HTTP_HEADERS_TIMEOUT_MS), not 300 s', async () => {
    const before = subgraphRequests;
    const body = await stall(`POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{"query":"${'x'.repeat(1_000)}`);
    expect(body).toMatch(/^HTTP\/1\.1 408 /);
    const headers = await stall('POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: appl');
    expect(headers).toMatch(/^HTTP\/1\.1 408 /);
    expect(subgraphRequests - before).toBe(0);
  });

  it('leaves no error and no stack trace in the log for any of these client mistakes', () => {
    expect(logged.filter((line) => line.level >= 50)).toEqual([]);
    expect(logged.filter((line) => line.err?.stack)).toEqual([]);
  });
});
