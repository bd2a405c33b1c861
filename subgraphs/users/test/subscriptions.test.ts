// userEvents over graphql-ws, straight against the users subgraph: signed connections and subscriptions,
// authorization inside subscribe, and release of the channel when the client leaves.
import { createSubgraphSubscriptionClient, DOMAIN_EVENTS_CHANNEL, IDENTITY_HEADER, signIdentity, SUBSCRIPTION_CONNECTION_BODY, userEventsChannel, type Viewer } from '@fed/platform';
import type { FormattedExecutionResult } from 'graphql-ws';
import { recordStream, waitFor, type RecordedStream } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ADMIN, createUser, startUsersSubgraph, type UsersHarness } from './harness.ts';

const EVENTS = 'subscription ($userId: ID) { userEvents(userId: $userId) { id kind occurredAt user { id name } order { id } } }';

type Received = RecordedStream<FormattedExecutionResult>;


describe('userEvents on the users subgraph', () => {
  let users: UsersHarness;
  let client: ReturnType<typeof createSubgraphSubscriptionClient>;
  beforeAll(async () => {
    users = await startUsersSubgraph('users_subscriptions');
    client = createSubgraphSubscriptionClient({ url: users.url, secret: users.secret, caller: 'gateway', audience: 'users' });
  });
  afterAll(async () => {
    await client?.dispose();
    await users?.close();
  });

  const follow = (variables: Record<string, unknown>, viewer: Viewer | null): Received => {
    const received: Received = recordStream();
    received.stop = client.subscribe(EVENTS, variables, viewer, received.sink);
    return received;
  };

  it("streams a user's own events, after the commit, and releases the channel when the client leaves", async () => {
    const ada = await createUser(users, { email: 'ada.stream@example.com', name: 'Ada' });
    const viewer: Viewer = { userId: ada.id, role: 'user' };
    const stream = follow({ userId: ada.id }, viewer);
    await waitFor(async () => expect(await users.pubsub.subscribers(userEventsChannel(ada.id))).toBe(1));

    await users.request(`mutation { updateUser(id: "${ada.id}", input: { name: "Ada Streamed" }) { id } }`, undefined, viewer);
    await waitFor(() => expect(stream.results).toHaveLength(1));
    const event = stream.results[0]!.data!.userEvents as { kind: string; user: { id: string; name: string }; order: null; occurredAt: string };
    expect(event).toMatchObject({ kind: 'USER_UPDATED', user: { id: ada.id, name: 'Ada Streamed' }, order: null });
    expect(Number.isNaN(Date.parse(event.occurredAt))).toBe(false);

    // Each event shows the user as they are when it is delivered, not as the stream first saw them.
    await users.request(`mutation { updateUser(id: "${ada.id}", input: { name: "Ada Renamed Again" }) { id } }`, undefined, viewer);
    await waitFor(() => expect(stream.results).toHaveLength(2));
    expect(stream.results[1]!.data!.userEvents).toMatchObject({ kind: 'USER_UPDATED', user: { name: 'Ada Renamed Again' } });

    stream.stop();
    await waitFor(async () => expect(await users.pubsub.subscribers(userEventsChannel(ada.id))).toBe(0));
  });

  it("refuses someone else's stream, and the firehose to anyone but an admin, with FORBIDDEN", async () => {
    const bob = await createUser(users, { email: 'bob.stream@example.com', name: 'Bob' });
    for (const [variables, viewer] of [
      [{ userId: bob.id }, { userId: '999', role: 'user' }],
      [{ userId: bob.id }, null],
      [{}, { userId: bob.id, role: 'user' }],
    ] as const) {
      const refused = follow(variables, viewer);
      await waitFor(() => expect(refused.completed || refused.error !== undefined || refused.results.length > 0).toBe(true));
      expect(refused.results[0]?.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    }
    expect(await users.pubsub.subscribers(userEventsChannel(bob.id))).toBe(0);
  });

  it('streams every user’s events to an admin without a userId', async () => {
    const firehose = follow({}, ADMIN);
    await waitFor(async () => expect(await users.pubsub.subscribers(DOMAIN_EVENTS_CHANNEL)).toBe(1));
    const carol = await createUser(users, { email: 'carol.stream@example.com', name: 'Carol' });
    await waitFor(() => expect(firehose.results.map((result) => (result.data?.userEvents as { kind: string; user: { id: string } }).user.id)).toContain(carol.id));
    firehose.stop();
    await waitFor(async () => expect(await users.pubsub.subscribers(DOMAIN_EVENTS_CHANNEL)).toBe(0));
  });

  it('runs nothing but subscriptions: a signature captured from an HTTP mutation cannot replay it here', async () => {
    const eve = await createUser(users, { email: 'eve.stream@example.com', name: 'Eve' });
    const mutation = `mutation { updateUser(id: "${eve.id}", input: { name: "Replayed" }) { id } }`;
    // The identity the gateway signed for that mutation over HTTP, captured and sent over graphql-ws instead.
    const captured = signIdentity({ secret: users.secret, caller: 'gateway', audience: 'users', viewer: ADMIN, body: JSON.stringify({ query: mutation, variables: {} }) });
    const socket = new WebSocket(users.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    await new Promise((resolve) => socket.once('open', resolve));
    const messages: { type: string; payload?: unknown }[] = [];
    socket.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString()) as { type: string }));
    const connectionIdentity = signIdentity({ secret: users.secret, caller: 'gateway', audience: 'users', viewer: null, body: SUBSCRIPTION_CONNECTION_BODY });
    socket.send(JSON.stringify({ type: 'connection_init', payload: { [IDENTITY_HEADER]: connectionIdentity } }));
    await waitFor(() => expect(messages.map((message) => message.type)).toContain('connection_ack'));
    socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: mutation, variables: {}, extensions: { [IDENTITY_HEADER]: captured } } }));
    await waitFor(() => expect(messages.map((message) => message.type)).toContain('error'));
    socket.close();
    const after = await users.request<{ user: { name: string } }>(`{ user(id: "${eve.id}") { name } }`);
    expect(after.data?.user.name).toBe('Eve');
  });

  it('closes a connection that is not signed by a caller it knows', async () => {
    const socket = new WebSocket(users.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { 'x-fed-identity': 'forged' } }));
    const code = await new Promise<number>((resolve) => socket.once('close', (closeCode: number) => resolve(closeCode)));
    expect(code).toBe(4403);
  });
});
