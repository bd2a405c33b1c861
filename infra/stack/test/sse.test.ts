// Subscriptions over server-sent events (graphql-sse's distinct-connections mode) through the real gateway:
// the graphql-sse client, raw HTTP for the wire format and error codes, durable resume by Last-Event-ID across
// two gateway replicas. Real Postgres, real Redis, real subgraphs on loopback.
import type { IncomingMessage } from 'node:http';
import { recordStream, startTcpProxy, waitFor, type RecordedStream, type TcpProxy } from '@fed/platform/testing';
import { createClient as createSseClient, type Client as SseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import type { FormattedExecutionResult } from 'graphql';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { seed } from '../src/seed.ts';
import { signedInAs, startGatewayTo, startTestStack, tokenFor, type TestStack } from './harness.ts';

interface UserEvent {
  id?: string;
  kind: string;
  user: { name: string; orders: { totalCount: number } } | null;
}
type Result = FormattedExecutionResult<{ userEvents: UserEvent }, unknown>;

/** One SSE message as an EventSource would see it. */
interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/** A raw event stream: the response, its messages and comments as they arrive, and whether it ended. */
interface RawStream {
  status: number;
  headers: Headers;
  messages: SseMessage[];
  comments: string[];
  ended: boolean;
  body: string;
  abort(): void;
}

const FOLLOW = `subscription Follow($userId: ID) { userEvents(userId: $userId) { kind user { name orders(first: 3) { totalCount } } } }`;

async function openRaw(url: string, init: { method?: string; headers?: Record<string, string>; body?: string; search?: Record<string, string> } = {}): Promise<RawStream> {
  const control = new AbortController();
  const target = new URL(url);
  for (const [name, value] of Object.entries(init.search ?? {})) target.searchParams.set(name, value);
  const response = await fetch(target, {
    method: init.method ?? 'GET',
    headers: { accept: 'text/event-stream', ...init.headers },
    body: init.body,
    signal: control.signal,
  });
  const stream: RawStream = { status: response.status, headers: response.headers, messages: [], comments: [], ended: false, body: '', abort: () => control.abort() };
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    let message: Partial<SseMessage> = {};
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        const text = decoder.decode(chunk, { stream: true });
        stream.body += text;
        buffer += text;
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line === '') {
            if (message.event !== undefined) stream.messages.push({ event: message.event, data: message.data ?? '', ...(message.id !== undefined ? { id: message.id } : {}) });
            message = {};
          } else if (line.startsWith(':')) stream.comments.push(line.slice(1).trim());
          else {
            const colon = line.indexOf(':');
            const field = line.slice(0, colon);
            const value = line.slice(colon + 1).replace(/^ /, '');
            if (field === 'event') message.event = value;
            if (field === 'data') message.data = message.data === undefined ? value : `${message.data}\n${value}`;
            if (field === 'id') message.id = value;
          }
        }
      }
    } catch {
      // aborted by the test
    }
    stream.ended = true;
  })();
  return stream;
}

const nexts = (stream: RawStream) => stream.messages.filter((message) => message.event === 'next').map((message) => ({ id: message.id, payload: JSON.parse(message.data) as Result }));
const codesOf = (results: readonly Result[]) => results.flatMap((result) => result.errors ?? []).map((error) => error.extensions?.code);

/**
 * What a browser's EventSource does, for the graphql-sse client: remember the last `id:` line of the stream
 * (before the client reads the event), and send it back as Last-Event-ID when reconnecting.
 */
function rememberingLastEventId() {
  let lastEventId: string | undefined;
  const fetchFn: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (!response.body) return response;
    let pending = '';
    const decoder = new TextDecoder();
    const watched = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          pending += decoder.decode(chunk, { stream: true });
          const lines = pending.split('\n');
          pending = lines.pop() ?? '';
          for (const line of lines) if (line.startsWith('id: ')) lastEventId = line.slice(4);
          controller.enqueue(chunk);
        },
      }),
    );
    return new Response(watched, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
  return { fetchFn, header: (): Record<string, string> => (lastEventId ? { 'last-event-id': lastEventId } : {}) };
}

const opened: RawStream[] = [];
const clients: { dispose(): void | Promise<void> }[] = [];
/** Ends what a test opened; then no upstream is left, so `usersSubscriptions` tells when the next test's is live. */
async function release(stack: TestStack | undefined) {
  for (const stream of opened.splice(0)) stream.abort();
  await Promise.all(clients.splice(0).map((client) => client.dispose()));
  if (stack) await waitFor(() => expect(stack.usersSubscriptions()).toBe(0));
}

describe('subscriptions over server-sent events', () => {
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
  const follow = async (sub: string, extra: Record<string, string> = {}, query = FOLLOW, variables: Record<string, unknown> = { userId: '2' }) =>
    raw({ method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await tokenFor(sub)}`, ...extra }, body: JSON.stringify({ query, variables }) });

  it('delivers a federated event (fields of both subgraphs) to the graphql-sse client', async () => {
    const token = await tokenFor('2');
    const client: SseClient = createSseClient({ url: stack.urls.gateway, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
    clients.push(client);
    const stream: RecordedStream<Result> = recordStream();
    stream.stop = client.subscribe<{ userEvents: UserEvent }>({ query: FOLLOW, variables: { userId: '2' } }, stream.sink);
    await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThan(0));
    await rename('Over SSE');
    await waitFor(() => expect(stream.results).toHaveLength(1));
    expect(stream.results[0]).toEqual({ data: { userEvents: { kind: 'USER_UPDATED', user: { name: 'Over SSE', orders: { totalCount: 2 } } } } });
    stream.stop();
    // The client left: the upstream subscription goes with it.
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(0));
    expect(stream.error).toBeUndefined();
  });

  it('sends the stream’s x-request-id with the subgraph fetches its events cause', async () => {
    const seen: string[] = [];
    const record = (req: IncomingMessage) => void seen.push(String(req.headers['x-request-id']));
    stack.httpServers.orders.on('request', record);
    try {
      const stream = await follow('2', { 'x-request-id': 'sse-stream-1' });
      await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThan(0));
      await rename('Traced Over SSE');
      await waitFor(() => expect(nexts(stream)).toHaveLength(1));
      // The event's orders { totalCount } came from the orders subgraph, fetched for this stream.
      expect(seen).toContain('sse-stream-1');
    } finally {
      stack.httpServers.orders.off('request', record);
    }
  });

  it('carries each event’s cursor as its SSE id, though the client did not select `id`, and resumes after a Last-Event-ID', async () => {
    const first = await follow('2');
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThan(0));
    await rename('First');
    await rename('Second');
    await waitFor(() => expect(nexts(first)).toHaveLength(2));
    const [one, two] = nexts(first);
    expect(one?.id).toMatch(/^\d+-\d+$/);
    expect(two?.id).toMatch(/^\d+-\d+$/);
    expect(two?.id).not.toBe(one?.id);
    // The user is fetched at delivery, so its name may already be the second's.
    expect(JSON.parse(first.messages[0]!.data)).toMatchObject({ data: { userEvents: { kind: 'USER_UPDATED', user: { orders: { totalCount: 2 } } } } });
    first.abort();

    // A reconnect after the first event gets the second (and nothing before it), then goes on live.
    const resumed = await follow('2', { 'last-event-id': one!.id! });
    await waitFor(() => expect(nexts(resumed)).toHaveLength(1));
    expect(nexts(resumed)[0]?.id).toBe(two!.id);
    await rename('Third');
    await waitFor(() => expect(nexts(resumed)).toHaveLength(2));
    expect(new Set([one!.id, two!.id, nexts(resumed)[1]?.id]).size).toBe(3);
    expect(codesOf(nexts(resumed).map((event) => event.payload))).toEqual([]);
  });

  it('sets `after` from Last-Event-ID also when the operation passes its own `after` (the header is newer)', async () => {
    const watcher = await follow('2');
    await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThan(0));
    await rename('A');
    await rename('B');
    await waitFor(() => expect(nexts(watcher)).toHaveLength(2));
    const [a, b] = nexts(watcher);
    const resumed = await follow('2', { 'last-event-id': a!.id! }, 'subscription ($after: ID) { userEvents(userId: "2", after: $after) { id kind } }', { after: '0-1' });
    await waitFor(() => expect(nexts(resumed)).toHaveLength(1));
    expect(nexts(resumed)[0]).toMatchObject({ id: b!.id, payload: { data: { userEvents: { id: b!.id, kind: 'USER_UPDATED' } } } });
  });

  it('ends a Last-Event-ID older than the retention window with CURSOR_EXPIRED, then complete', async () => {
    const watcher = await follow('2');
    await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThan(0));
    await rename('Oldest Kept');
    await waitFor(() => expect(nexts(watcher)).toHaveLength(1));
    const old = nexts(watcher)[0]!.id!;
    watcher.abort();
    // 30 events per user are kept: 31 more push `old`'s successor out.
    for (let index = 0; index < 31; index++) await rename(`Pushing ${index}`);
    const late = await follow('2', { 'last-event-id': old });
    await waitFor(() => expect(late.ended).toBe(true));
    expect(codesOf(nexts(late).map((event) => event.payload))).toEqual(['CURSOR_EXPIRED']);
    expect(nexts(late)[0]?.payload.data ?? null).toBeNull();
    expect(late.messages.at(-1)).toEqual({ event: 'complete', data: '' });
  });

  it('ends another user’s stream with FORBIDDEN in a `next`, then complete (the owning subgraph decides)', async () => {
    const stream = await follow('3');
    await waitFor(() => expect(stream.ended).toBe(true));
    expect(stream.status).toBe(200);
    expect(codesOf(nexts(stream).map((event) => event.payload))).toEqual(['FORBIDDEN']);
    expect(stream.messages.at(-1)?.event).toBe('complete');
  });

  it('serves GET with the operation in the query string', async () => {
    const stream = await raw({ headers: { authorization: `Bearer ${await tokenFor('2')}` }, search: { query: FOLLOW, variables: JSON.stringify({ userId: '2' }) } });
    expect(stream.status).toBe(200);
    await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThan(0));
    await rename('Got');
    await waitFor(() => expect(nexts(stream)).toHaveLength(1));
    expect(nexts(stream)[0]?.payload).toMatchObject({ data: { userEvents: { kind: 'USER_UPDATED', user: { name: 'Got' } } } });
  });

  it('answers a query sent as an event stream with one `next` and `complete`', async () => {
    const stream = await raw({ method: 'POST', headers: { 'content-type': 'application/json', ...stack.admin }, body: JSON.stringify({ query: '{ user(id: "2") { id } }' }) });
    await waitFor(() => expect(stream.ended).toBe(true));
    expect(stream.status).toBe(200);
    expect(stream.messages).toEqual([
      { event: 'next', data: JSON.stringify({ data: { user: { id: '2' } } }) },
      { event: 'complete', data: '' },
    ]);
  });

  describe('refuses before the stream starts, in JSON, with HTTP’s status and code', () => {
    const refused = async (init: Parameters<typeof openRaw>[1], url = stack.urls.gateway) => {
      const stream = await raw(init, url);
      await waitFor(() => expect(stream.ended).toBe(true));
      expect(stream.headers.get('content-type')).toBe('application/json; charset=utf-8');
      const body = JSON.parse(stream.body) as { errors: { message: string; extensions: { code: string } }[] };
      return { status: stream.status, code: body.errors[0]?.extensions.code, headers: stream.headers, body };
    };
    const post = (body: unknown, headers: Record<string, string> = stack.admin) => ({ method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

    it('a bad token: 401 UNAUTHENTICATED', async () => {
      expect(await refused(post({ query: FOLLOW }, { authorization: 'Bearer not.a.token' }))).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    });
    it('no query, bad JSON, bad variables: 400 BAD_REQUEST', async () => {
      expect(await refused(post({}))).toMatchObject({ status: 400, code: 'BAD_REQUEST' });
      expect(await refused(post('{"query":'))).toMatchObject({ status: 400, code: 'BAD_REQUEST' });
      expect(await refused({ headers: stack.admin, search: { query: FOLLOW, variables: '{nope' } })).toMatchObject({ status: 400, code: 'BAD_REQUEST' });
    });
    it('an operationName the document does not have: 400 OPERATION_RESOLUTION_FAILURE', async () => {
      expect(await refused(post({ query: FOLLOW, operationName: 'Other' }))).toMatchObject({ status: 400, code: 'OPERATION_RESOLUTION_FAILURE' });
    });
    it('a document that does not parse: 400 GRAPHQL_PARSE_FAILED', async () => {
      expect(await refused(post({ query: 'subscription {' }))).toMatchObject({ status: 400, code: 'GRAPHQL_PARSE_FAILED' });
    });
    it('a field that does not exist: 400 GRAPHQL_VALIDATION_FAILED, without suggestions', async () => {
      const answer = await refused(post({ query: 'subscription { userEvent { kind } }' }));
      expect(answer).toMatchObject({ status: 400, code: 'GRAPHQL_VALIDATION_FAILED' });
      expect(answer.body.errors[0]?.message).not.toMatch(/Did you mean/);
    });
    it('a variable of the wrong type: 400 BAD_USER_INPUT', async () => {
      expect(await refused(post({ query: FOLLOW, variables: { userId: { not: 'an id' } } }))).toMatchObject({ status: 400, code: 'BAD_USER_INPUT' });
    });
    it('an operation past the depth limit: 400 DEPTH_LIMIT_EXCEEDED', async () => {
      // 2 + 4 × 4 levels, past the default 16.
      const nested = Array.from({ length: 4 }).reduce<string>((inner) => `user { orders(first: 1) { edges { node { ${inner} } } } }`, 'id');
      const deep = `subscription { userEvents { ${nested} } }`;
      expect(await refused(post({ query: deep }))).toMatchObject({ status: 400, code: 'DEPTH_LIMIT_EXCEEDED' });
    });
  });
});

describe('event streams share the graphql-ws budgets and the HTTP rate limit', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 2, ordersPerUser: 0 });
  });
  afterAll(() => stack?.teardown());
  afterEach(() => release(stack));

  it('counts a websocket subscription and an event stream against the same per-user cap: 429 TOO_MANY_SUBSCRIPTIONS', async () => {
    const gateway = await startGatewayTo(stack, stack.urls.users, { subscriptions: { limits: { subscriptionsPerViewer: 1 } } });
    clients.push({ dispose: () => gateway.stop() });
    const token = await tokenFor('2');
    const ws: WsClient = createWsClient({ url: gateway.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: { authorization: `Bearer ${token}` } });
    clients.push(ws);
    const viaSocket: RecordedStream<Result> = recordStream();
    viaSocket.stop = ws.subscribe({ query: FOLLOW, variables: { userId: '2' } }, viaSocket.sink);
    await waitFor(() => expect(gateway.gateway.subscriptions?.active).toBe(1));

    const stream = await openRaw(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query: FOLLOW, variables: { userId: '2' } }) });
    opened.push(stream);
    await waitFor(() => expect(stream.ended).toBe(true));
    expect(stream.status).toBe(429);
    expect(JSON.parse(stream.body)).toMatchObject({ errors: [{ extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } }] });

    // The socket's subscription ends: its place is free for a stream.
    viaSocket.stop();
    await waitFor(() => expect(gateway.gateway.subscriptions?.active).toBe(0));
    const admitted = await openRaw(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query: FOLLOW, variables: { userId: '2' } }) });
    opened.push(admitted);
    expect(admitted.status).toBe(200);
    await waitFor(() => expect(gateway.gateway.subscriptions?.eventStreams).toBe(1));
  });

  it('counts each stream request against the rate limit: 429 RATE_LIMITED with Retry-After', async () => {
    const gateway = await startGatewayTo(stack, stack.urls.users, { rateLimit: { limit: 2, windowMs: 60_000 } });
    clients.push({ dispose: () => gateway.stop() });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${await tokenFor('2')}` };
    const body = JSON.stringify({ query: FOLLOW, variables: { userId: '2' } });
    const statuses: number[] = [];
    for (let index = 0; index < 3; index++) {
      const stream = await openRaw(gateway.url, { method: 'POST', headers, body });
      opened.push(stream);
      statuses.push(stream.status);
      if (stream.status === 429) {
        await waitFor(() => expect(stream.ended).toBe(true));
        expect(JSON.parse(stream.body)).toMatchObject({ errors: [{ extensions: { code: 'RATE_LIMITED' } }] });
        expect(Number(stream.headers.get('retry-after'))).toBeGreaterThan(0);
      }
    }
    expect(statuses).toEqual([200, 200, 429]);
  });

  it('keeps a stream open past the HTTP request timeout (it bounds receiving the request, not the answer)', async () => {
    const gateway = await startGatewayTo(stack, stack.urls.users, { httpTimeouts: { headersTimeoutMs: 100, requestTimeoutMs: 200 } });
    clients.push({ dispose: () => gateway.stop() });
    const stream = await openRaw(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await tokenFor('2')}` }, body: JSON.stringify({ query: FOLLOW, variables: { userId: '2' } }) });
    opened.push(stream);
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(1));
    // Several of Node's timeout checks go by.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const response = await stack.request('mutation { updateUser(id: "2", input: { name: "Later" }) { id } }', {}, await signedInAs('2'));
    expect(response.errors).toBeUndefined();
    await waitFor(() => expect(nexts(stream)).toHaveLength(1));
    expect(stream.ended).toBe(false);
  });

  it('keeps an idle stream alive with comment lines', async () => {
    const gateway = await startGatewayTo(stack, stack.urls.users, { subscriptions: { eventStreamKeepAliveMs: 20 } });
    clients.push({ dispose: () => gateway.stop() });
    const stream = await openRaw(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await tokenFor('2')}` }, body: JSON.stringify({ query: FOLLOW, variables: { userId: '2' } }) });
    opened.push(stream);
    await waitFor(() => expect(stream.comments.length).toBeGreaterThanOrEqual(2));
    expect(stream.body).toMatch(/^:\n\n:\n\n/);
    expect(stream.messages).toEqual([]);
  });

  it('ends a stream without `complete` when its token expires (the client reconnects with a fresh one)', async () => {
    const stream = await openRaw(stack.urls.gateway, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await tokenFor('2', 'user', 2)}` },
      body: JSON.stringify({ query: FOLLOW, variables: { userId: '2' } }),
    });
    opened.push(stream);
    expect(stream.status).toBe(200);
    await waitFor(() => expect(stream.ended).toBe(true), 10_000);
    expect(stream.messages.filter((message) => message.event === 'complete')).toEqual([]);
    expect(stream.comments).toContain('token expired; reconnect with a fresh token');
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(0));
  });
});

describe('a stream cut by a draining gateway resumes on another replica with Last-Event-ID', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 2, ordersPerUser: 1 });
  });
  afterAll(() => stack?.teardown());
  afterEach(() => release(stack));

  /**
   * The graphql-sse client follows user 2 (its first connection to replica A, through `url`), beside a control
   * stream on replica B that stays connected throughout; 40 renames go on while `cut` breaks the client's
   * connection after its fifth event. The client must end up with exactly the control's events.
   */
  async function resumeWhileWriting(options: {
    url: (replicas: { a: string; b: string }) => string | (() => string) | Promise<string>;
    cut: (replicas: { a: Awaited<ReturnType<typeof startGatewayTo>>; b: Awaited<ReturnType<typeof startGatewayTo>> }) => Promise<void>;
  }) {
    const a = await startGatewayTo(stack, stack.urls.users);
    const b = await startGatewayTo(stack, stack.urls.users);
    clients.push({ dispose: () => a.stop() }, { dispose: () => b.stop() });
    const token = await tokenFor('2');
    // `id` only to compare with the control stream: resuming relies on the SSE id lines.
    const query = 'subscription { userEvents(userId: "2") { id kind } }';
    const source = rememberingLastEventId();
    const client: SseClient = createSseClient({
      url: await options.url({ a: a.url, b: b.url }),
      headers: () => ({ authorization: `Bearer ${token}`, ...source.header() }),
      fetchFn: source.fetchFn,
      retryAttempts: 5,
      retry: async () => {},
    });
    clients.push(client);
    const stream: RecordedStream<Result> = recordStream();
    stream.stop = client.subscribe<{ userEvents: UserEvent }>({ query }, stream.sink);
    const control = await openRaw(b.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query }) });
    opened.push(control);
    await waitFor(() => expect(a.gateway.subscriptions?.eventStreams).toBe(1));
    // Both replicas' upstreams are live before the first write, so the control stream misses nothing either.
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(2));

    const writes = 40;
    let written = 0;
    const writer = (async () => {
      for (; written < writes; written++) {
        const response = await stack.request('mutation ($name: String!) { updateUser(id: "2", input: { name: $name }) { id } }', { name: `Write ${written}` }, await signedInAs('2'));
        expect(response.errors).toBeUndefined();
      }
    })();
    await waitFor(() => expect(stream.results.length).toBeGreaterThanOrEqual(5), 10_000);
    // Writes are still going when the connection is cut.
    expect(written).toBeLessThan(writes);
    await options.cut({ a, b });
    // The reconnect is on B, beside the control stream.
    await waitFor(() => expect(b.gateway.subscriptions?.eventStreams).toBe(2));
    await writer;

    await waitFor(() => expect(nexts(control)).toHaveLength(writes), 15_000);
    await waitFor(() => expect(stream.results).toHaveLength(writes), 15_000);
    const ids = stream.results.map((result) => result.data?.userEvents.id);
    expect(ids).toEqual(nexts(control).map((event) => event.id));
    expect(new Set(ids).size).toBe(writes);
    expect(codesOf(stream.results)).toEqual([]);
    expect(stream.error).toBeUndefined();
    expect(stream.completed).toBe(false);
  }

  it('loses and repeats nothing when replica A drains mid-stream while writes go on (the graphql-sse client reconnects to B by itself)', async () => {
    const urls: string[] = [];
    await resumeWhileWriting({
      // The first connection goes to A; A drains, and the load balancer sends the reconnect to B.
      url: ({ a, b }) => () => {
        urls.push(urls.length === 0 ? a : b);
        return urls.at(-1)!;
      },
      cut: async ({ a }) => {
        await a.stop();
      },
    });
    expect(urls).toHaveLength(2);
  });

  it('loses and repeats nothing when the connection is cut abruptly (a load balancer sends the reconnect to the other replica)', async () => {
    let balancer: TcpProxy | undefined;
    await resumeWhileWriting({
      // Round robin over a TCP proxy: the first connection goes to A, the next to B.
      url: async ({ a, b }) => {
        const proxy = await startTcpProxy([a, b]);
        clients.push({ dispose: () => proxy.close() });
        balancer = proxy;
        return proxy.url;
      },
      cut: async ({ a }) => {
        balancer?.dropConnections();
        // A notices the client is gone and lets its upstream go.
        await waitFor(() => expect(a.gateway.subscriptions?.eventStreams).toBe(0));
      },
    });
  });
});
