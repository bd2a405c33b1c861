// Subscriptions over Apollo's multipart HTTP protocol (`subscriptionSpec=1.0`) through the real gateway: Apollo
// Client 4's HttpLink, raw fetch for the framing, heartbeats and error codes, the budgets shared with server-sent
// events, the rate limit, token expiry and draining. Real Postgres, real Redis, real subgraphs on loopback.
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client/core';
import { waitFor } from '@fed/platform/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import { signedInAs, startGatewayTo, startTestStack, tokenFor, type TestStack } from './harness.ts';

/** What Apollo Client 4's HttpLink sends for a subscription. */
const APOLLO_ACCEPT = 'multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9';
const CONTENT_TYPE = 'multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"';
const BOUNDARY = '\r\n--graphql';
const PART_HEAD = '\r\ncontent-type: application/json; charset=utf-8\r\n\r\n';

const FOLLOW = `subscription Follow($userId: ID) { userEvents(userId: $userId) { kind user { name orders(first: 3) { totalCount } } } }`;

interface Error_ {
  message: string;
  extensions?: { code?: string };
}
/** A part as Apollo's protocol defines it: a heartbeat `{}`, an event, or a transport-level error. */
interface Part {
  payload?: { data?: Record<string, unknown> | null; errors?: Error_[] } | null;
  errors?: Error_[];
}

/** A raw multipart response: its parts as they arrive (each complete once the boundary after it is in), and how it ended. */
interface RawStream {
  status: number;
  headers: Headers;
  body: string;
  /** The closing boundary arrived. */
  closed: boolean;
  /** The response ended (closed, cut, or aborted by the test). */
  ended: boolean;
  abort(): void;
}

/**
 * The parts of a multipart body, checked against the framing byte for byte: the first boundary right after the
 * headers, then each part (`content-type` head, JSON) followed by a boundary, and at the end `--`.
 */
function partsOf(stream: RawStream): Part[] {
  if (stream.status !== 200) throw new Error(`status ${stream.status}: ${stream.body}`);
  const [before, ...segments] = stream.body.split(BOUNDARY);
  expect(before).toBe('');
  // The text after the last boundary: nothing yet, or the closing `--`.
  const last = segments.pop();
  expect(['', '--\r\n']).toContain(last);
  return segments.map((segment) => {
    expect(segment.startsWith(PART_HEAD)).toBe(true);
    return JSON.parse(segment.slice(PART_HEAD.length)) as Part;
  });
}
const events = (stream: RawStream) => partsOf(stream).filter((part) => Object.keys(part).length > 0);
const heartbeats = (stream: RawStream) => partsOf(stream).filter((part) => Object.keys(part).length === 0);
const codesOf = (errors: readonly Error_[] | undefined) => (errors ?? []).map((error) => error.extensions?.code);

async function openRaw(url: string, init: { method?: string; headers?: Record<string, string>; body?: string; search?: Record<string, string> } = {}): Promise<RawStream> {
  const control = new AbortController();
  const target = new URL(url);
  for (const [name, value] of Object.entries(init.search ?? {})) target.searchParams.set(name, value);
  const response = await fetch(target, { method: init.method ?? 'POST', headers: { accept: APOLLO_ACCEPT, ...init.headers }, body: init.body, signal: control.signal });
  const stream: RawStream = { status: response.status, headers: response.headers, body: '', closed: false, ended: false, abort: () => control.abort() };
  void (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        stream.body += decoder.decode(chunk, { stream: true });
        stream.closed = stream.body.endsWith(`${BOUNDARY}--\r\n`);
      }
    } catch {
      // aborted by the test
    }
    stream.ended = true;
  })();
  return stream;
}

const opened: RawStream[] = [];
const cleanups: (() => unknown)[] = [];
/** Ends what a test opened; then no upstream is left, so `usersSubscriptions` tells when the next test's is live. */
async function release(stack: TestStack | undefined) {
  for (const stream of opened.splice(0)) stream.abort();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  if (stack) await waitFor(() => expect(stack.usersSubscriptions()).toBe(0));
}

const post = (body: unknown, headers: Record<string, string> = {}) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const following = async (sub: string, query = FOLLOW, variables: Record<string, unknown> = { userId: '2' }) =>
  post({ query, variables }, { authorization: `Bearer ${await tokenFor(sub)}` });

describe('subscriptions over Apollo’s multipart HTTP protocol', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ retention: { perUser: 30, log: 1_000 } });
    await seed(stack.databases, { users: 3, ordersPerUser: 2 });
  });
  afterAll(() => stack?.teardown());
  afterEach(() => release(stack));

  const rename = async (name: string) => {
    const response = await stack.request('mutation ($name: String!) { updateUser(id: "2", input: { name: $name }) { id } }', { name }, await signedInAs('2'));
    expect(response.errors).toBeUndefined();
  };
  const raw = async (init: Parameters<typeof openRaw>[1], url = stack.urls.gateway) => {
    const stream = await openRaw(url, init);
    opened.push(stream);
    return stream;
  };
  const apolloClient = async (sub: string) => {
    const client = new ApolloClient({ link: new HttpLink({ uri: stack.urls.gateway, headers: { authorization: `Bearer ${await tokenFor(sub)}` } }), cache: new InMemoryCache() });
    cleanups.push(() => client.stop());
    return client;
  };

  describe('Apollo Client 4 (HttpLink, InMemoryCache, Node’s fetch)', () => {
    it('subscribes over HTTP and receives a federated event (fields of both subgraphs)', async () => {
      const client = await apolloClient('2');
      const results: { data?: unknown; error?: unknown }[] = [];
      const errors: unknown[] = [];
      const subscription = client.subscribe({ query: gql(FOLLOW), variables: { userId: '2' } }).subscribe({ next: (result) => results.push(result), error: (error) => errors.push(error) });
      cleanups.push(() => subscription.unsubscribe());
      await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThan(0));
      expect(stack.gateway.subscriptions?.multipartStreams).toBe(1);
      await rename('Over Multipart');
      await waitFor(() => expect(results).toHaveLength(1));
      expect(results[0]?.error).toBeUndefined();
      // InMemoryCache asks for every __typename.
      expect(results[0]?.data).toEqual({
        userEvents: { __typename: 'UserEvent', kind: 'USER_UPDATED', user: { __typename: 'User', name: 'Over Multipart', orders: { __typename: 'OrderConnection', totalCount: 2 } } },
      });
      subscription.unsubscribe();
      // The client left: the upstream subscription goes with it.
      await waitFor(() => expect(stack.usersSubscriptions()).toBe(0));
      expect(stack.gateway.subscriptions?.multipartStreams).toBe(0);
      expect(errors).toEqual([]);
    });

    it('sees a stream the owning subgraph refuses as an error carrying FORBIDDEN', async () => {
      const client = await apolloClient('3');
      const results: { data?: unknown; error?: unknown }[] = [];
      const errors: unknown[] = [];
      let completed = false;
      const subscription = client
        .subscribe({ query: gql(FOLLOW), variables: { userId: '2' }, fetchPolicy: 'no-cache' })
        .subscribe({ next: (result) => results.push(result), error: (error) => errors.push(error), complete: () => (completed = true) });
      cleanups.push(() => subscription.unsubscribe());
      await waitFor(() => expect(completed || errors.length > 0).toBe(true));
      const error = (results.find((result) => result.error)?.error ?? errors[0]) as { errors?: Error_[] } | undefined;
      expect(error?.constructor.name).toBe('CombinedProtocolErrors');
      expect(codesOf(error?.errors)).toEqual(['FORBIDDEN']);
      expect(results.every((result) => result.data === undefined)).toBe(true);
    });
  });

  describe('on the wire', () => {
    it('answers multipart/mixed with boundary "graphql", each event a part `{"payload": {"data": …}}` followed by the boundary', async () => {
      const stream = await raw(await following('2'));
      expect(stream.status).toBe(200);
      expect(stream.headers.get('content-type')).toBe(CONTENT_TYPE);
      expect(stream.headers.get('cache-control')).toBe('no-cache');
      await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThan(0));
      await rename('First');
      await waitFor(() => expect(events(stream)).toHaveLength(1));
      expect(stream.body).toBe(
        `${BOUNDARY}${PART_HEAD}${JSON.stringify({ payload: { data: { userEvents: { kind: 'USER_UPDATED', user: { name: 'First', orders: { totalCount: 2 } } } } } })}${BOUNDARY}`,
      );
      await rename('Second');
      await waitFor(() => expect(events(stream)).toHaveLength(2));
      expect(events(stream)[1]).toMatchObject({ payload: { data: { userEvents: { kind: 'USER_UPDATED', user: { orders: { totalCount: 2 } } } } } });
      expect(stream.closed).toBe(false);
    });

    it('shares one upstream among identical subscriptions, over multipart and server-sent events alike', async () => {
      const first = await raw(await following('2'));
      const second = await raw(await following('2'));
      const sse = await raw({ ...(await following('2')), headers: { ...(await following('2')).headers, accept: 'text/event-stream' } });
      expect([first.status, second.status, sse.status]).toEqual([200, 200, 200]);
      await waitFor(() => expect(stack.gateway.subscriptions).toMatchObject({ multipartStreams: 2, eventStreams: 1 }));
      await waitFor(() => expect(stack.usersSubscriptions()).toBe(1));
      await rename('Shared');
      await waitFor(() => expect([events(first).length, events(second).length]).toEqual([1, 1]));
      await waitFor(() => expect(sse.body).toContain('"Shared"'));
      expect(events(first)).toEqual(events(second));
      expect(stack.usersSubscriptions()).toBe(1);
    });

    it('resumes a resumable subscription after the `after` it names (durable events)', async () => {
      const query = 'subscription ($after: ID) { userEvents(userId: "2", after: $after) { id kind } }';
      const watcher = await raw(await following('2', query, {}));
      await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThan(0));
      await rename('A');
      await rename('B');
      await waitFor(() => expect(events(watcher)).toHaveLength(2));
      const [a, b] = events(watcher).map((part) => (part.payload?.data?.userEvents as { id: string }).id);
      const resumed = await raw(await following('2', query, { after: a }));
      await waitFor(() => expect(events(resumed)).toHaveLength(1));
      expect(events(resumed)[0]).toEqual({ payload: { data: { userEvents: { id: b, kind: 'USER_UPDATED' } } } });
    });

    it('ends another user’s stream with `{"payload": null, "errors": [FORBIDDEN]}` and the closing boundary', async () => {
      const stream = await raw(await following('3'));
      await waitFor(() => expect(stream.ended).toBe(true));
      expect(stream.status).toBe(200);
      expect(stream.closed).toBe(true);
      const parts = events(stream);
      expect(parts).toHaveLength(1);
      expect(parts[0]?.payload).toBeNull();
      expect(codesOf(parts[0]?.errors)).toEqual(['FORBIDDEN']);
      expect(stream.body.endsWith(`${BOUNDARY}--\r\n`)).toBe(true);
    });

    it('ends an `after` older than the retention window with CURSOR_EXPIRED as a transport-level error', async () => {
      const query = 'subscription ($after: ID) { userEvents(userId: "2", after: $after) { id kind } }';
      const watcher = await raw(await following('2', query, {}));
      await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThan(0));
      await rename('Oldest Kept');
      await waitFor(() => expect(events(watcher)).toHaveLength(1));
      const old = (events(watcher)[0]?.payload?.data?.userEvents as { id: string }).id;
      watcher.abort();
      // 30 events per user are kept: 31 more push `old`'s successor out.
      for (let index = 0; index < 31; index++) await rename(`Pushing ${index}`);
      const late = await raw(await following('2', query, { after: old }));
      await waitFor(() => expect(late.ended).toBe(true));
      expect(late.closed).toBe(true);
      expect(events(late)).toEqual([{ payload: null, errors: [expect.objectContaining({ extensions: expect.objectContaining({ code: 'CURSOR_EXPIRED' }) })] }]);
    });

    it('serves GET with the operation in the query string', async () => {
      const stream = await raw({ method: 'GET', headers: { authorization: `Bearer ${await tokenFor('2')}` }, search: { query: FOLLOW, variables: JSON.stringify({ userId: '2' }) } });
      expect(stream.status).toBe(200);
      await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThan(0));
      await rename('Got');
      await waitFor(() => expect(events(stream)).toHaveLength(1));
      expect(events(stream)[0]).toMatchObject({ payload: { data: { userEvents: { kind: 'USER_UPDATED', user: { name: 'Got' } } } } });
    });

    it('answers a query or mutation sent with the multipart subscription Accept header as any HTTP request', async () => {
      const query = '{ user(id: "2") { id name } }';
      const expected = await stack.request(query);
      const stream = await raw(post({ query }, stack.admin));
      await waitFor(() => expect(stream.ended).toBe(true));
      expect(stream.status).toBe(200);
      expect(stream.headers.get('content-type')).toMatch(/^application\/(graphql-response\+)?json/);
      expect(JSON.parse(stream.body)).toEqual({ data: expected.data });

      const mutation = await raw(post({ query: 'mutation { updateUser(id: "2", input: { name: "Mutated" }) { name } }' }, await signedInAs('2')));
      await waitFor(() => expect(mutation.ended).toBe(true));
      expect(JSON.parse(mutation.body)).toEqual({ data: { updateUser: { name: 'Mutated' } } });
    });

    it('keeps refusing a subscription sent without an event-stream or multipart subscription Accept header (400 SUBSCRIPTION_OVER_HTTP)', async () => {
      for (const accept of ['application/json', 'multipart/mixed;deferSpec=20220824,application/json']) {
        const stream = await raw({ ...(await following('2')), headers: { ...(await following('2')).headers, accept } });
        await waitFor(() => expect(stream.ended).toBe(true));
        expect(stream.status).toBe(400);
        expect(JSON.parse(stream.body)).toMatchObject({ errors: [{ extensions: { code: 'SUBSCRIPTION_OVER_HTTP' } }] });
      }
    });
  });

  describe('refuses before the stream starts, in JSON, with HTTP’s status and code', () => {
    const refused = async (init: Parameters<typeof openRaw>[1]) => {
      const stream = await raw(init);
      await waitFor(() => expect(stream.ended).toBe(true));
      const body = JSON.parse(stream.body) as { errors: { message: string; extensions: { code: string } }[] };
      const code = body.errors[0]?.extensions.code;
      // The stream's refusals are JSON; Apollo's own (OPERATION_RESOLUTION_FAILURE) follow the Accept header, as over HTTP.
      const contentType = code === 'OPERATION_RESOLUTION_FAILURE' ? 'application/graphql-response+json; charset=utf-8' : 'application/json; charset=utf-8';
      expect(stream.headers.get('content-type')).toBe(contentType);
      return { status: stream.status, code, body };
    };

    it('a bad token: 401 UNAUTHENTICATED', async () => {
      expect(await refused(post({ query: FOLLOW }, { authorization: 'Bearer not.a.token' }))).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    });
    it('no query, bad JSON, bad variables: 400 BAD_REQUEST', async () => {
      expect(await refused(post({}, stack.admin))).toMatchObject({ status: 400, code: 'BAD_REQUEST' });
      expect(await refused(post('{"query":', stack.admin))).toMatchObject({ status: 400, code: 'BAD_REQUEST' });
      expect(await refused({ method: 'GET', headers: stack.admin, search: { query: FOLLOW, variables: '{nope' } })).toMatchObject({ status: 400, code: 'BAD_REQUEST' });
    });
    it('an operationName the document does not have: 400 OPERATION_RESOLUTION_FAILURE', async () => {
      expect(await refused(post({ query: FOLLOW, operationName: 'Other' }, stack.admin))).toMatchObject({ status: 400, code: 'OPERATION_RESOLUTION_FAILURE' });
    });
    it('a document that does not parse: 400 GRAPHQL_PARSE_FAILED', async () => {
      expect(await refused(post({ query: 'subscription {' }, stack.admin))).toMatchObject({ status: 400, code: 'GRAPHQL_PARSE_FAILED' });
    });
    it('a field that does not exist: 400 GRAPHQL_VALIDATION_FAILED, without suggestions', async () => {
      const answer = await refused(post({ query: 'subscription { userEvent { kind } }' }, stack.admin));
      expect(answer).toMatchObject({ status: 400, code: 'GRAPHQL_VALIDATION_FAILED' });
      expect(answer.body.errors[0]?.message).not.toMatch(/Did you mean/);
    });
    it('a variable of the wrong type: 400 BAD_USER_INPUT', async () => {
      expect(await refused(post({ query: FOLLOW, variables: { userId: { not: 'an id' } } }, stack.admin))).toMatchObject({ status: 400, code: 'BAD_USER_INPUT' });
    });
    it('an operation past the depth limit: 400 DEPTH_LIMIT_EXCEEDED', async () => {
      // 2 + 4 × 4 levels, past the default 16.
      const nested = Array.from({ length: 4 }).reduce<string>((inner) => `user { orders(first: 1) { edges { node { ${inner} } } } }`, 'id');
      expect(await refused(post({ query: `subscription { userEvents { ${nested} } }` }, stack.admin))).toMatchObject({ status: 400, code: 'DEPTH_LIMIT_EXCEEDED' });
    });
  });
});

describe('multipart streams share the budgets of the other transports, the rate limit, token expiry and draining', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 2, ordersPerUser: 0 });
  });
  afterAll(() => stack?.teardown());
  afterEach(() => release(stack));

  const gatewayWith = async (deps: Parameters<typeof startGatewayTo>[2]) => {
    const gateway = await startGatewayTo(stack, stack.urls.users, deps);
    cleanups.push(() => gateway.stop());
    return gateway;
  };
  const open = async (url: string, init: Parameters<typeof openRaw>[1]) => {
    const stream = await openRaw(url, init);
    opened.push(stream);
    return stream;
  };

  it('counts an event stream and a multipart stream against the same per-user cap: 429 TOO_MANY_SUBSCRIPTIONS', async () => {
    const gateway = await gatewayWith({ subscriptions: { limits: { subscriptionsPerViewer: 1 } } });
    const init = await following('2');
    const sse = await open(gateway.url, { ...init, headers: { ...init.headers, accept: 'text/event-stream' } });
    expect(sse.status).toBe(200);
    await waitFor(() => expect(gateway.gateway.subscriptions?.eventStreams).toBe(1));

    const refused = await open(gateway.url, init);
    await waitFor(() => expect(refused.ended).toBe(true));
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(JSON.parse(refused.body)).toMatchObject({ errors: [{ extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } }] });

    // The event stream ends: its place is free for a multipart stream, which then holds it against SSE.
    sse.abort();
    await waitFor(() => expect(gateway.gateway.subscriptions?.active).toBe(0));
    const admitted = await open(gateway.url, init);
    expect(admitted.status).toBe(200);
    await waitFor(() => expect(gateway.gateway.subscriptions).toMatchObject({ active: 1, multipartStreams: 1 }));
    const sseRefused = await open(gateway.url, { ...init, headers: { ...init.headers, accept: 'text/event-stream' } });
    await waitFor(() => expect(sseRefused.ended).toBe(true));
    expect(sseRefused.status).toBe(429);
    expect(JSON.parse(sseRefused.body)).toMatchObject({ errors: [{ extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } }] });
  });

  it('counts each stream request against the rate limit: 429 RATE_LIMITED with Retry-After', async () => {
    const gateway = await gatewayWith({ rateLimit: { limit: 2, windowMs: 60_000 } });
    const statuses: number[] = [];
    for (let index = 0; index < 3; index++) {
      const stream = await open(gateway.url, await following('2'));
      statuses.push(stream.status);
      if (stream.status === 429) {
        await waitFor(() => expect(stream.ended).toBe(true));
        expect(JSON.parse(stream.body)).toMatchObject({ errors: [{ extensions: { code: 'RATE_LIMITED' } }] });
        expect(Number(stream.headers.get('retry-after'))).toBeGreaterThan(0);
      }
    }
    expect(statuses).toEqual([200, 200, 429]);
  });

  it('sends a heartbeat part `{}` every heartbeat interval while the stream is idle', async () => {
    const gateway = await gatewayWith({ subscriptions: { multipartHeartbeatMs: 20 } });
    const stream = await open(gateway.url, await following('2'));
    await waitFor(() => expect(heartbeats(stream).length).toBeGreaterThanOrEqual(2));
    expect(stream.body.startsWith(`${BOUNDARY}${PART_HEAD}{}${BOUNDARY}${PART_HEAD}{}${BOUNDARY}`)).toBe(true);
    expect(events(stream)).toEqual([]);
    expect(stream.closed).toBe(false);
  });

  it('ends a stream whose token expires with UNAUTHENTICATED as a transport-level error (subscribe again with a fresh token)', async () => {
    const stream = await open(stack.urls.gateway, post({ query: FOLLOW, variables: { userId: '2' } }, { authorization: `Bearer ${await tokenFor('2', 'user', 4)}` }));
    expect(stream.status).toBe(200);
    await waitFor(() => expect(stream.ended).toBe(true), 20_000);
    expect(stream.closed).toBe(true);
    const parts = events(stream);
    expect(parts).toHaveLength(1);
    expect(parts[0]?.payload).toBeNull();
    expect(codesOf(parts[0]?.errors)).toEqual(['UNAUTHENTICATED']);
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(0));
  });

  it('delivers an event whose orders are down with orders null and SUBGRAPH_UNAVAILABLE inside the payload, masked as over HTTP', async () => {
    const stream = await open(stack.urls.gateway, await following('2'));
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(1));
    await stack.stopSubgraph('orders');
    try {
      const renamed = await stack.request('mutation { updateUser(id: "2", input: { name: "Without Orders" }) { id } }', {}, await signedInAs('2'));
      expect(renamed.errors).toBeUndefined();
      await waitFor(() => expect(events(stream)).toHaveLength(1));
    } finally {
      await stack.restartOrders();
    }
    const [part] = events(stream);
    expect(part?.payload?.data).toEqual({ userEvents: { kind: 'USER_UPDATED', user: { name: 'Without Orders', orders: null } } });
    expect(codesOf(part?.payload?.errors)).toEqual(['SUBGRAPH_UNAVAILABLE']);
    // The partial event is not the stream's end, and nothing of the subgraph's address reaches the client.
    expect(part?.errors).toBeUndefined();
    expect(stream.closed).toBe(false);
    expect(stream.body).not.toContain(new URL(stack.urls.orders).host);
    expect(stream.body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
  });

  it('ends its streams with STREAM_UNAVAILABLE and the closing boundary when the gateway drains; Apollo Client sees the error', async () => {
    const gateway = await gatewayWith({});
    const stream = await open(gateway.url, await following('2'));
    const client = new ApolloClient({ link: new HttpLink({ uri: gateway.url, headers: await signedInAs('2') }), cache: new InMemoryCache() });
    cleanups.push(() => client.stop());
    const errors: unknown[] = [];
    const results: { error?: unknown }[] = [];
    let completed = false;
    const subscription = client
      .subscribe({ query: gql(FOLLOW), variables: { userId: '2' }, fetchPolicy: 'no-cache' })
      .subscribe({ next: (result) => results.push(result), error: (error) => errors.push(error), complete: () => (completed = true) });
    cleanups.push(() => subscription.unsubscribe());
    await waitFor(() => expect(gateway.gateway.subscriptions?.multipartStreams).toBe(2));

    await gateway.stop();
    await waitFor(() => expect(stream.ended).toBe(true));
    expect(stream.closed).toBe(true);
    expect(events(stream)).toEqual([{ payload: null, errors: [expect.objectContaining({ extensions: expect.objectContaining({ code: 'STREAM_UNAVAILABLE' }) })] }]);
    await waitFor(() => expect(completed || errors.length > 0).toBe(true));
    const error = (results.find((result) => result.error)?.error ?? errors[0]) as { errors?: Error_[] } | undefined;
    expect(codesOf(error?.errors)).toEqual(['STREAM_UNAVAILABLE']);
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(0));
  });
});
