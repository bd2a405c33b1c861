// Issue 19, round two: the graphql-ws front and the signed subscriptions behind it, attacked and misused through
// real servers on loopback (graphql-ws clients and raw `ws` sockets; Postgres, Redis, both subgraphs).
//  4. a partial event (a subgraph down) is told apart from the end of a stream by its code; the README's recipe
//     delivers each event once; an identical subscribe on one socket replaces the running one;
//  8. the parsed-document cache is bounded by bytes and keeps no large document;
// 11. sign-ins and subscribe messages count against the HTTP rate limit; sockets and subscriptions are capped
//     per socket, per user and per address;
// 12. subgraph subscription signatures are single-use, and a subscription lives a bounded time on one: the
//     gateway renews it after the last event, so its clients see neither a gap nor a repeat.
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_DOCUMENT_CACHE, DEFAULT_SUBSCRIPTION_LIMITS, type GatewayDeps } from '@fed/gateway';
import { IDENTITY_HEADER, listen, signIdentity, SUBSCRIPTION_CONNECTION_BODY, subscriptionBody } from '@fed/platform';
import { graphql, recordStream, startTcpProxy, waitFor, type RecordedStream } from '@fed/platform/testing';
import { createClient, type Client, type FormattedExecutionResult } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { seed } from '../src/seed.ts';
import { startGatewayTo, startTestStack, startUsersReplica, tokenFor, type TestStack } from './harness.ts';

type Result = FormattedExecutionResult<Record<string, unknown>, unknown>;
type Stream = RecordedStream<Result>;

const wsUrl = (url: string) => url.replace(/^http/, 'ws');
const codeOf = (value: unknown): unknown => {
  const errors = Array.isArray(value) ? value : (value as { errors?: unknown[] } | undefined)?.errors;
  return (errors?.[0] as { extensions?: { code?: unknown } } | undefined)?.extensions?.code;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let stack: TestStack;
const closers: (() => Promise<unknown>)[] = [];
const clients: Client[] = [];

beforeAll(async () => {
  stack = await startTestStack();
  await seed(stack.databases, { users: 8, ordersPerUser: 1 });
});
afterAll(async () => {
  for (const client of clients) await client.dispose();
  for (const close of closers.reverse()) await close();
  await stack?.teardown();
});

/** One more gateway on the stack's subgraphs, with its own in-memory cache and rate limit, and `deps` on top. */
async function gatewayWith(deps: Partial<GatewayDeps>, usersUrl = stack.urls.users) {
  const started = await startGatewayTo(stack, usersUrl, deps);
  closers.push(() => started.stop());
  return started;
}

/** A graphql-ws client; `closed` resolves with the socket's close code the first time it closes. */
function connect(url: string, token?: string) {
  let resolveClosed: (code: number) => void = () => {};
  const closed = new Promise<number>((resolve) => (resolveClosed = resolve));
  const client = createClient({
    url: wsUrl(url),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    on: { closed: (event) => resolveClosed((event as { code: number }).code) },
  });
  clients.push(client);
  return { client, closed };
}

function follow(client: Client, query: string, variables: Record<string, unknown> = {}): Stream {
  const stream: Stream = recordStream();
  stream.stop = client.subscribe({ query, variables }, stream.sink);
  return stream;
}

/** A raw socket speaking graphql-transport-ws, for what a graphql-ws client would not send. */
async function rawSocket(url: string) {
  const socket = new WebSocket(wsUrl(url), 'graphql-transport-ws');
  const messages: { id?: string; type: string; payload?: unknown }[] = [];
  const closed = new Promise<number>((resolve) => socket.once('close', (code: number) => resolve(code)));
  socket.on('message', (data) => messages.push(JSON.parse(String(data)) as (typeof messages)[number]));
  socket.on('error', () => {});
  await new Promise<void>((resolve) => {
    socket.once('open', () => resolve());
    socket.once('close', () => resolve());
  });
  return { socket, messages, closed, send: (message: unknown) => socket.send(JSON.stringify(message)) };
}

const rename = (id: string, name: string) => stack.request(`mutation { updateUser(id: "${id}", input: { name: "${name}" }) { id } }`);

/** Names seen by a stream of `userEvents { user { name } }`. */
const namesOf = (stream: Stream) => stream.results.map((result) => (result.data?.userEvents as { user?: { name?: string } } | undefined)?.user?.name);

describe('8. the graphql-ws document cache', () => {
  it('keeps no large document: after 30 anonymous sockets each sent a distinct valid 900 KB subscription and closed, it holds what it held', async () => {
    const before = stack.gateway.subscriptions!.documentCache;
    const streams: Stream[] = [];
    // One after another: an address's running subscriptions may not hold more than 2 MiB of documents at once.
    for (let i = 0; i < 30; i++) {
      const { client } = connect(stack.urls.gateway);
      // A valid document: one string token, within MAX_BODY_BYTES and MAX_TOKENS.
      const stream = follow(client, `subscription { userEvents(userId: "${i}-${'x'.repeat(900_000)}") { kind } }`);
      await waitFor(() => expect(stream.completed || stream.error !== undefined).toBe(true), 60_000);
      await client.dispose();
      streams.push(stream);
    }
    // Each was served (parsed, validated, planned, refused by the subgraph), not turned away at the door.
    for (const stream of streams) expect(codeOf(stream.results[0] ?? stream.error)).toBe('BAD_USER_INPUT');
    await waitFor(() => expect(stack.gateway.subscriptions!.sockets).toBe(0));
    const after = stack.gateway.subscriptions!.documentCache;
    expect(after.tooLarge - before.tooLarge).toBe(30);
    expect({ entries: after.entries, bytes: after.bytes }).toEqual({ entries: before.entries, bytes: before.bytes });
  });

  it('holds at most its byte budget of small documents, and keeps a repeated one', async () => {
    const { client } = connect(stack.urls.gateway);
    // 10 KB each: below the size kept, but 120 of them are above the whole budget.
    for (let i = 0; i < 120; i++) {
      const stream = follow(client, `subscription { userEvents(userId: "${i}-${'y'.repeat(10_000)}") { kind } }`);
      await waitFor(() => expect(stream.completed || stream.error !== undefined).toBe(true), 30_000);
      expect(stack.gateway.subscriptions!.documentCache.bytes).toBeLessThanOrEqual(DEFAULT_DOCUMENT_CACHE.maxBytes);
    }
    const full = stack.gateway.subscriptions!.documentCache;
    expect(full.bytes).toBeGreaterThan(DEFAULT_DOCUMENT_CACHE.maxBytes - 11_000);

    const small = 'subscription Small { userEvents(userId: "1") { kind } }';
    const first = follow(client, small);
    await waitFor(() => expect(first.completed || first.error !== undefined).toBe(true));
    const withSmall = stack.gateway.subscriptions!.documentCache;
    const again = follow(client, small);
    await waitFor(() => expect(again.completed || again.error !== undefined).toBe(true));
    expect(stack.gateway.subscriptions!.documentCache).toEqual(withSmall);
    expect(withSmall.bytes).toBeLessThanOrEqual(DEFAULT_DOCUMENT_CACHE.maxBytes);
    await client.dispose();
  });

  it('bounds what one user’s running subscriptions hold: a third live 900 KB subscription is refused until one ends', async () => {
    const { client } = connect(stack.urls.gateway, await tokenFor('2'));
    // Valid and long-lived: the large string is a cursor only read when an event comes.
    const large = (i: number) => `subscription { userEvents(userId: "2") { kind user { orders(first: 1, after: "${i}-${'z'.repeat(900_000)}") { totalCount } } } }`;
    const before = stack.gateway.subscriptions!.active;
    const [first, second] = [follow(client, large(1)), follow(client, large(2))];
    await waitFor(() => expect(stack.gateway.subscriptions!.active - before).toBe(2));
    const third = follow(client, large(3));
    await waitFor(() => expect(third.error).toBeDefined());
    expect(codeOf(third.error)).toBe('TOO_MANY_SUBSCRIPTIONS');
    expect(JSON.stringify(third.error)).toContain(`at most ${DEFAULT_SUBSCRIPTION_LIMITS.documentBytesPerClient} bytes of documents`);
    expect(first.error ?? second.error).toBeUndefined();
    first.stop();
    await waitFor(() => expect(stack.gateway.subscriptions!.active - before).toBe(1));
    const fourth = follow(client, large(4));
    await waitFor(() => expect(stack.gateway.subscriptions!.active - before).toBe(2));
    expect(fourth.error).toBeUndefined();
    await client.dispose();
  });
});

describe('11. rate limit and caps on the graphql-ws path', () => {
  it('counts each sign-in and subscribe message against the HTTP rate limit: RATE_LIMITED on a subscribe, 4429 on a sign-in', async () => {
    const { url } = await gatewayWith({ rateLimit: { limit: 5, windowMs: 60_000 } });
    const token = await tokenFor('2');
    const { client } = connect(url, token); // 1
    const streams = Array.from({ length: 6 }, (_, i) => follow(client, `subscription S${i} { userEvents(userId: "2") { kind } }`)); // 4 more allowed
    await waitFor(() => expect(streams.filter((stream) => stream.error !== undefined)).toHaveLength(2));
    expect(streams.filter((stream) => stream.error !== undefined).map((stream) => codeOf(stream.error))).toEqual(['RATE_LIMITED', 'RATE_LIMITED']);
    // The allowed four are live: the next event reaches each.
    await rename('2', 'Rate Limited Listener');
    const live = streams.filter((stream) => stream.error === undefined);
    await waitFor(() => expect(live.every((stream) => stream.results.length === 1)).toBe(true));

    // One allowance, whichever way the client comes: HTTP is refused too, and so is another socket.
    const http = await graphql(url, '{ me { id } }', undefined, { authorization: `Bearer ${token}` });
    expect(http.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    const second = connect(url, token);
    follow(second.client, 'subscription { userEvents(userId: "2") { kind } }');
    expect(await second.closed).toBe(4429);

    // An anonymous socket flooding distinct subscriptions: its address has its own allowance, then nothing runs.
    const anonymous = connect(url);
    const flood = Array.from({ length: 40 }, (_, i) => follow(anonymous.client, `subscription F${i} { userEvents(userId: "3") { kind } }`));
    await waitFor(() => expect(flood.every((stream) => stream.completed || stream.error !== undefined)).toBe(true), 30_000);
    const limited = flood.filter((stream) => codeOf(stream.error) === 'RATE_LIMITED');
    expect(limited).toHaveLength(36);
    // The four that ran reached the subgraph, which refused an anonymous viewer.
    expect(flood.filter((stream) => codeOf(stream.results[0]) === 'FORBIDDEN')).toHaveLength(4);
  });

  it('caps subscriptions per socket and per user, sockets per user and per address: TOO_MANY_SUBSCRIPTIONS, 4429', async () => {
    const { url, gateway } = await gatewayWith({
      rateLimit: null,
      subscriptions: { limits: { subscriptionsPerSocket: 3, socketsPerViewer: 2, subscriptionsPerViewer: 4, socketsPerAddress: 2, subscriptionsPerAddress: 2 } },
    });
    const token = await tokenFor('4');
    const query = (i: number) => `subscription C${i} { userEvents(userId: "4") { kind user { name } } }`;
    const first = connect(url, token);
    const onFirst = [0, 1, 2, 3].map((i) => follow(first.client, query(i)));
    await waitFor(() => expect(onFirst[3]!.error).toBeDefined());
    expect(JSON.stringify(onFirst[3]!.error)).toContain('At most 3 subscriptions per connection');
    expect(codeOf(onFirst[3]!.error)).toBe('TOO_MANY_SUBSCRIPTIONS');

    const second = connect(url, token);
    const onSecond = [4, 5].map((i) => follow(second.client, query(i)));
    await waitFor(() => expect(onSecond[1]!.error).toBeDefined());
    expect(codeOf(onSecond[1]!.error)).toBe('TOO_MANY_SUBSCRIPTIONS');
    expect(JSON.stringify(onSecond[1]!.error)).toContain('At most 4 subscriptions at once per user');
    await waitFor(() => expect(gateway.subscriptions!.active).toBe(4));

    // A third socket for the same user is closed with 4429; another user is not affected.
    const third = connect(url, token);
    follow(third.client, query(6));
    expect(await third.closed).toBe(4429);
    const other = connect(url, await tokenFor('5'));
    const others = follow(other.client, 'subscription { userEvents(userId: "5") { kind } }');

    // The four allowed are live, and ending one makes room for another.
    await rename('4', 'Capped Listener');
    const live = [...onFirst.slice(0, 3), onSecond[0]!];
    await waitFor(() => expect(live.every((stream) => stream.results.length === 1)).toBe(true));
    onFirst[0]!.stop();
    // User 4's three, and user 5's one.
    await waitFor(() => expect(gateway.subscriptions!.active).toBe(4));
    const replacement = follow(second.client, query(7));
    await rename('4', 'Capped Again');
    await waitFor(() => expect(replacement.results).toHaveLength(1));
    expect(replacement.error).toBeUndefined();
    expect(others.error).toBeUndefined();

    // Anonymous sockets, and sockets that have not signed in, count against their address: the third is closed
    // at once. One that signs in leaves the address's count.
    const [a, b] = [await rawSocket(url), await rawSocket(url)];
    const c = await rawSocket(url);
    expect(await c.closed).toBe(4429);
    a.send({ type: 'connection_init', payload: { authorization: `Bearer ${await tokenFor('6')}` } });
    await waitFor(() => expect(a.messages.map((message) => message.type)).toContain('connection_ack'));
    const d = await rawSocket(url);
    d.send({ type: 'connection_init', payload: {} });
    await waitFor(() => expect(d.messages.map((message) => message.type)).toContain('connection_ack'));
    for (const socket of [a, b, d]) socket.socket.close();
  });
});

describe('4. partial events, the end of a stream, and repeated subscriptions', () => {
  it('replaces an identical subscription on the same socket: the first completes, and each event arrives once', async () => {
    const before = stack.gateway.subscriptions!.active;
    const { client } = connect(stack.urls.gateway, await tokenFor('6'));
    const query = 'subscription ($userId: ID) { userEvents(userId: $userId) { kind user { name } } }';
    const first = follow(client, query, { userId: '6' });
    await waitFor(() => expect(stack.gateway.subscriptions!.active - before).toBe(1));
    // A client resubscribing without ending what it runs, many times over.
    const repeats = Array.from({ length: 20 }, () => follow(client, query, { userId: '6' }));
    const last = repeats.at(-1)!;
    await waitFor(() => expect([first, ...repeats.slice(0, -1)].every((stream) => stream.completed)).toBe(true));
    await waitFor(() => expect(stack.gateway.subscriptions!.active - before).toBe(1));

    await rename('6', 'Told Once');
    await waitFor(() => expect(last.results).toHaveLength(1));
    expect(last.results[0]?.data?.userEvents).toMatchObject({ kind: 'USER_UPDATED', user: { name: 'Told Once' } });
    await sleep(200);
    expect([first, ...repeats].reduce((sum, stream) => sum + stream.results.length, 0)).toBe(1);
    expect(last.completed).toBe(false);
    last.stop();
  });

  it('ten clients on the README recipe get every event once, in order, through partial events (orders down) and the end of their streams (users lost)', async () => {
    const usersProxy = await startTcpProxy(stack.urls.users);
    closers.push(() => usersProxy.close());
    // One retry, so a lost users subgraph ends streams within a second rather than fifteen.
    const { url } = await gatewayWith({ subscriptions: { resubscribeAttempts: 1 } }, usersProxy.url);
    const token = await tokenFor('7');
    const followers = Array.from({ length: 10 }, () => readmeRecipe(url, token));
    try {
      // Until every follower is live: write until each has an event.
      let warmups = 0;
      await waitFor(async () => {
        await rename('7', `Warm Up ${++warmups}`);
        expect(followers.every((follower) => follower.events.length > 0)).toBe(true);
      }, 30_000);
      // Every follower is live now: one more event reaches each, and nothing earlier is still on its way.
      await rename('7', 'Warmed Up');
      await waitFor(() => expect(followers.every((follower) => follower.events.at(-1)?.name === 'Warmed Up')).toBe(true), 30_000);
      const seen = followers.map((follower) => follower.events.length);

      // Orders goes down: each event is partial (null orders, SUBGRAPH_UNAVAILABLE naming orders), and no stream ends.
      await stack.stopSubgraph('orders');
      const partial = ['Partial One', 'Partial Two', 'Partial Three'];
      for (const name of partial) expect((await rename('7', name)).errors).toBeUndefined();
      // Names are read when an event is delivered, so events are counted, not named.
      const arrived = (count: number) => followers.every((follower, i) => follower.events.length >= seen[i]! + count);
      await waitFor(() => expect(arrived(3)).toBe(true), 30_000);
      for (const [i, follower] of followers.entries()) {
        const events = follower.events.slice(seen[i]);
        expect(events).toHaveLength(3);
        for (const event of events) {
          expect(event.orders).toBeNull();
          expect(event.codes).toEqual(['SUBGRAPH_UNAVAILABLE']);
        }
        expect(follower.subscribes).toBe(1);
      }
      await stack.restartOrders();

      // Users becomes unreachable for the gateway: each stream ends with STREAM_UNAVAILABLE, then complete, and
      // the recipe resubscribes after the last event it handled.
      await usersProxy.setListening(false);
      await waitFor(() => expect(followers.every((follower) => follower.endings.includes('STREAM_UNAVAILABLE'))).toBe(true), 30_000);
      const missed = ['Missed One', 'Missed Two'];
      for (const name of missed) expect((await rename('7', name)).errors).toBeUndefined();
      await usersProxy.setListening(true);
      await rename('7', 'Back Again');
      await waitFor(() => expect(arrived(6)).toBe(true), 30_000);
      // Time for a repeat to show, were there one.
      await sleep(300);

      // Six events since the warm-up, the same six in the same order for everyone, none twice.
      const reference = followers[0]!.events.slice(seen[0]).map((event) => event.id);
      expect(reference).toHaveLength(partial.length + missed.length + 1);
      for (const [i, follower] of followers.entries()) {
        expect(follower.events.slice(seen[i]).map((event) => event.id)).toEqual(reference);
        const ids = follower.events.map((event) => event.id);
        expect(new Set(ids).size).toBe(ids.length);
      }
    } finally {
      for (const follower of followers) follower.stop();
      await stack.restartOrders();
    }
  });
});

/**
 * The README's resume recipe, as written there (handle → record; the stream's end decides). `events` are what
 * `handle` received; `endings` the codes streams ended with; `subscribes` how often it subscribed.
 */
function readmeRecipe(url: string, token: string) {
  const state = {
    events: [] as { id: string; name?: string; orders: unknown; codes: unknown[] }[],
    endings: [] as (string | undefined)[],
    subscribes: 0,
    stopped: false,
    stop: () => {},
  };
  const client = createClient({ url: wsUrl(url), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  clients.push(client);
  let lastId: string | undefined;
  const query = 'subscription ($after: ID) { userEvents(userId: "7", after: $after) { id kind user { name orders(first: 1) { totalCount } } } }';
  const handle = (event: { id: string; user: { name: string; orders: unknown } | null }, errors: readonly { extensions?: Record<string, unknown> }[] | undefined) =>
    state.events.push({ id: event.id, name: event.user?.name, orders: event.user?.orders, codes: (errors ?? []).map((error) => error.extensions?.code) });
  const follow = () => {
    if (state.stopped) return;
    state.subscribes += 1;
    let ending: string | undefined;
    const stop = client.subscribe<{ userEvents: { id: string; user: { name: string; orders: unknown } | null } }>(
      { query, variables: { after: lastId } },
      {
        next: ({ data, errors }) => {
          if (data?.userEvents) {
            // An event, perhaps partial: errors only say which fields are null.
            handle(data.userEvents, errors);
            lastId = data.userEvents.id;
          } else {
            // No event: the stream's last word, before it completes.
            ending = errors?.[0]?.extensions?.code as string | undefined;
          }
        },
        error: (error) => ended(Array.isArray(error) ? (codeOf(error) as string | undefined) : undefined),
        complete: () => ended(ending),
      },
    );
    state.stop = () => {
      state.stopped = true;
      stop();
    };
  };
  const ended = (code: string | undefined) => {
    state.endings.push(code);
    if (state.stopped) return;
    if (code === 'CURSOR_EXPIRED') {
      lastId = undefined; // refetch what you show, then follow from now
      setTimeout(follow, 200);
      return;
    }
    if (code === 'FORBIDDEN' || code === 'BAD_USER_INPUT' || code?.startsWith('GRAPHQL_')) return; // give up: retrying cannot help
    setTimeout(follow, 200); // STREAM_UNAVAILABLE, EVENTS_OVERFLOW, RATE_LIMITED, a closed socket…: resume after lastId
  };
  follow();
  return state;
}

/**
 * A graphql-ws man in the middle in front of a subgraph: it records what its callers send, to replay it, and
 * passes HTTP requests (readiness probes, fetches) through.
 */
async function tap(target: string) {
  const sent: { type: string; id?: string; payload?: Record<string, unknown> }[] = [];
  const server: Server = createServer((req, res) => {
    const upstream = httpRequest(target, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const wss = new WebSocketServer({ server, path: '/graphql' });
  wss.on('connection', (downstream: WebSocket, req: IncomingMessage) => {
    const upstream = new WebSocket(wsUrl(target), req.headers['sec-websocket-protocol']);
    const queued: string[] = [];
    downstream.on('message', (data) => {
      const text = String(data);
      sent.push(JSON.parse(text) as (typeof sent)[number]);
      if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
      else queued.push(text);
    });
    upstream.on('open', () => queued.splice(0).forEach((text) => upstream.send(text)));
    upstream.on('message', (data) => downstream.readyState === WebSocket.OPEN && downstream.send(String(data)));
    upstream.on('close', (code: number) => downstream.readyState === WebSocket.OPEN && downstream.close(code >= 4000 ? code : 1000));
    upstream.on('error', () => downstream.terminate());
    downstream.on('close', () => upstream.close());
  });
  const port = await listen(server, 0, '127.0.0.1');
  closers.push(async () => {
    for (const client of wss.clients) client.terminate();
    await new Promise((resolve) => wss.close(resolve));
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port || port}/graphql`, sent };
}

describe('12. signed subgraph subscriptions', () => {
  it('are single-use: a captured connection_init and subscribe, replayed at once, are refused', async () => {
    const users = await tap(stack.urls.users);
    const { url } = await gatewayWith({}, users.url);
    const { client } = connect(url, await tokenFor('3'));
    const stream = follow(client, 'subscription { userEvents(userId: "3") { kind user { name email } } }');
    await waitFor(() => expect(users.sent.map((message) => message.type)).toEqual(expect.arrayContaining(['connection_init', 'subscribe'])));
    await rename('3', 'Still Served');
    await waitFor(() => expect(stream.results).toHaveLength(1));
    const init = users.sent.find((message) => message.type === 'connection_init')!;
    const subscribe = users.sent.find((message) => message.type === 'subscribe')!;

    // The captured connection_init, on a connection of the attacker's own.
    const replayedInit = await rawSocket(stack.urls.users);
    replayedInit.send(init);
    expect(await replayedInit.closed).toBe(4403);

    // The captured subscribe, on a connection that was signed afresh (the strongest position an attacker has).
    const fresh = await rawSocket(stack.urls.users);
    fresh.send({
      type: 'connection_init',
      payload: { [IDENTITY_HEADER]: signIdentity({ secret: stack.secrets.users, caller: 'gateway', audience: 'users', viewer: null, body: SUBSCRIPTION_CONNECTION_BODY }) },
    });
    await waitFor(() => expect(fresh.messages.map((message) => message.type)).toContain('connection_ack'));
    fresh.send({ ...subscribe, id: 'replayed' });
    await waitFor(() => expect(fresh.messages.find((message) => message.id === 'replayed')).toBeDefined());
    const answer = fresh.messages.find((message) => message.id === 'replayed')!;
    expect({ type: answer.type, code: codeOf(answer.payload) }).toEqual({ type: 'error', code: 'UNAUTHENTICATED' });
    await rename('3', 'Not For The Attacker');
    await waitFor(() => expect(stream.results).toHaveLength(2));
    expect(fresh.messages.filter((message) => message.type === 'next')).toHaveLength(0);
    fresh.socket.close();
    stream.stop();
  });

  describe('on a users subgraph whose subscriptions live 1.5 s on one signature', () => {
    let shortLived: { url: string; active(): number };
    beforeAll(async () => {
      const replica = await startUsersReplica(stack, { subscriptionLifetimeMs: 1_500 });
      closers.push(() => replica.stop());
      shortLived = { url: replica.url, active: () => replica.app.subscriptions?.active ?? 0 };
    });

    it('ends a subscription opened with a captured signature after its lifetime: no event after that', async () => {
      const query = 'subscription { userEvents(userId: "5") { id kind user { email } } }';
      const viewer = { userId: '5', role: 'user' as const };
      const socket = await rawSocket(shortLived.url);
      socket.send({
        type: 'connection_init',
        payload: { [IDENTITY_HEADER]: signIdentity({ secret: stack.secrets.users, caller: 'gateway', audience: 'users', viewer: null, body: SUBSCRIPTION_CONNECTION_BODY }) },
      });
      await waitFor(() => expect(socket.messages.map((message) => message.type)).toContain('connection_ack'));
      const identity = signIdentity({ secret: stack.secrets.users, caller: 'gateway', audience: 'users', viewer, body: subscriptionBody(query, {}) });
      const openedAt = Date.now();
      socket.send({ id: 'feed', type: 'subscribe', payload: { query, variables: {}, extensions: { [IDENTITY_HEADER]: identity } } });
      await waitFor(() => expect(shortLived.active()).toBe(1));
      await rename('5', 'Captured Feed');
      await waitFor(() => expect(socket.messages.some((message) => message.type === 'next')).toBe(true));
      await waitFor(() => expect(socket.messages.map((message) => message.type)).toContain('complete'), 10_000);
      expect(Date.now() - openedAt).toBeGreaterThanOrEqual(1_300);
      const nexts = socket.messages.filter((message) => message.type === 'next');
      expect(codeOf(nexts.at(-1)?.payload)).toBe('SUBSCRIPTION_EXPIRED');
      const delivered = nexts.length;
      await rename('5', 'After The Lifetime');
      await sleep(500);
      expect(socket.messages.filter((message) => message.type === 'next')).toHaveLength(delivered);
      socket.socket.close();
    });

    it('the gateway renews it, signed afresh, after the last event: its client sees every event once, and the stream never ends', async () => {
      const users = await tap(shortLived.url);
      const { url } = await gatewayWith({}, users.url);
      const { client } = connect(url, await tokenFor('8'));
      const stream = follow(client, 'subscription { userEvents(userId: "8") { id kind user { name } } }');
      await waitFor(() => expect(users.sent.filter((message) => message.type === 'subscribe')).toHaveLength(1));
      // Quiet through a renewal (the subgraph says where the stream stood), then events across several more.
      await sleep(2_000);
      const names = Array.from({ length: 8 }, (_, i) => `Renewed ${i + 1}`);
      for (const name of names) {
        await rename('8', name);
        await sleep(400);
      }
      await waitFor(() => expect(namesOf(stream)).toContain('Renewed 8'), 10_000);
      expect(namesOf(stream)).toEqual(names);
      expect(stream.completed).toBe(false);
      expect(stream.error).toBeUndefined();
      // Each renewal was a new subscribe, each with a signature of its own.
      const subscribes = users.sent.filter((message) => message.type === 'subscribe');
      expect(subscribes.length).toBeGreaterThanOrEqual(3);
      const signatures = subscribes.map((message) => (message.payload?.extensions as Record<string, string>)[IDENTITY_HEADER]);
      expect(new Set(signatures).size).toBe(signatures.length);
      stream.stop();
    });
  });
});
