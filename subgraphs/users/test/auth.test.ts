// The users subgraph trusts nothing but a signature made with its own secret, and applies the read/write
// rules of the contract to the viewer that signature names.
import { IDENTITY_HEADER, signIdentity, type Viewer } from '@fed/platform';
import { errorCodes, signedFetch } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, createUser, startUsersSubgraph, type UserFields, type UsersHarness } from './harness.ts';

let harness: UsersHarness;
let alice: UserFields;
let bob: UserFields;
let asAlice: Viewer;

beforeAll(async () => {
  harness = await startUsersSubgraph('users_auth');
  alice = await createUser(harness, { email: 'alice@example.com', name: 'Alice' });
  bob = await createUser(harness, { email: 'bob@example.com', name: 'Bob' });
  asAlice = { userId: alice.id, role: 'user' };
});

afterAll(async () => {
  await harness?.close();
});

const post = (body: string, headers: Record<string, string> = {}) =>
  fetch(harness.url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

const ENTITIES = JSON.stringify({
  query: 'query ($r: [_Any!]!) { _entities(representations: $r) { ... on User { id email } } }',
  variables: { r: [{ __typename: 'User', id: '1' }] },
});

async function expectRefused(response: Response) {
  expect(response.status).toBe(401);
  const body = (await response.json()) as { data?: unknown; errors: { extensions: { code: string } }[] };
  expect(body.data).toBeUndefined();
  expect(body.errors.map((error) => error.extensions.code)).toEqual(['UNAUTHENTICATED']);
}

describe('only signed requests are answered', () => {
  it.each([
    ['_service { sdl }', JSON.stringify({ query: '{ _service { sdl } }' })],
    ['_entities', ENTITIES],
    ['introspection', JSON.stringify({ query: '{ __schema { types { name } } }' })],
    ['a plain query', JSON.stringify({ query: '{ users { totalCount } }' })],
  ])('refuses %s without a signature with 401 UNAUTHENTICATED', async (_name, body) => {
    await expectRefused(await post(body));
  });

  it('refuses the landing page, a GET query and a preflight without a signature', async () => {
    await expectRefused(await fetch(harness.url, { headers: { accept: 'text/html' } }));
    await expectRefused(await fetch(`${harness.url}?query=${encodeURIComponent('{ users { totalCount } }')}`, { headers: { 'apollo-require-preflight': 'true' } }));
    expect((await fetch(harness.url, { method: 'OPTIONS', headers: { origin: 'https://evil.example' } })).status).toBe(401);
    // A signature covers a body; a GET has none, so a valid one for an empty body must not admit any query.
    const signedEmpty = signIdentity({ secret: harness.secret, caller: 'gateway', audience: 'users', viewer: ADMIN, body: '' });
    const query = encodeURIComponent('{ _service { sdl } }');
    await expectRefused(await fetch(`${harness.url}?query=${query}`, { headers: { [IDENTITY_HEADER]: signedEmpty, 'apollo-require-preflight': 'true' } }));
  });

  it('ignores identity headers a client makes up, and refuses signatures made with another key or for another subgraph', async () => {
    await expectRefused(await post(ENTITIES, { 'x-user-id': alice.id, 'x-user-role': 'admin' }));
    const wrongKey = signIdentity({ secret: 'x'.repeat(43), caller: 'gateway', audience: 'users', viewer: ADMIN, body: ENTITIES });
    await expectRefused(await post(ENTITIES, { [IDENTITY_HEADER]: wrongKey }));
    const forOrders = signIdentity({ secret: harness.secret, caller: 'gateway', audience: 'orders', viewer: ADMIN, body: ENTITIES });
    await expectRefused(await post(ENTITIES, { [IDENTITY_HEADER]: forOrders }));
  });

  it('refuses a replayed signature: one older than its 30 s lifetime, or one carrying another body', async () => {
    const old = signIdentity({ secret: harness.secret, caller: 'gateway', audience: 'users', viewer: ADMIN, body: ENTITIES, now: Date.now() - 60_000 });
    await expectRefused(await post(ENTITIES, { [IDENTITY_HEADER]: old }));
    const captured = signIdentity({ secret: harness.secret, caller: 'gateway', audience: 'users', viewer: ADMIN, body: '{"query":"{ users { totalCount } }"}' });
    await expectRefused(await post(ENTITIES, { [IDENTITY_HEADER]: captured }));
  });

  it('checks each caller with its own key: orders acts as itself, and cannot pose as the gateway or act for a user', async () => {
    const asOrders = (viewer: Viewer | null, caller = 'orders') =>
      post(ENTITIES, { [IDENTITY_HEADER]: signIdentity({ secret: harness.ordersSecret, caller, audience: 'users', viewer, body: ENTITIES }) });
    expect((await asOrders(null)).status).toBe(200);
    await expectRefused(await asOrders(ADMIN));
    await expectRefused(await asOrders(ADMIN, 'gateway'));
  });

  it('runs a signed mutation once: the same signature sent again is refused, and nothing is written twice', async () => {
    const body = JSON.stringify({ query: 'mutation { createUser(input: { email: "once@example.com", name: "Once" }) { id } }' });
    const identity = signIdentity({ secret: harness.secret, caller: 'gateway', audience: 'users', viewer: ADMIN, body });
    const before = await harness.countUsers();
    expect((await post(body, { [IDENTITY_HEADER]: identity })).status).toBe(200);
    await expectRefused(await post(body, { [IDENTITY_HEADER]: identity }));
    expect(await harness.countUsers()).toBe(before + 1);
  });

  it('answers the same request once it is signed, and keeps the probes open', async () => {
    const response = await signedFetch(harness.url, harness.signing(null), ENTITIES);
    expect(response.status).toBe(200);
    expect((await fetch(harness.url.replace('/graphql', '/healthz'))).status).toBe(200);
  });
});

describe('who may read what', () => {
  const USERS = '{ users(first: 10) { edges { node { id name createdAt email } } } }';
  type Users = { users: { edges: { node: { id: string; name: string; email: string | null } }[] } };

  it('lets anyone list users with their public fields; email is null plus FORBIDDEN except for yourself', async () => {
    const anonymous = await harness.request<Users>(USERS, {}, null);
    const names = anonymous.data?.users.edges.map(({ node }) => node.name);
    expect(names).toEqual(expect.arrayContaining(['Alice', 'Bob']));
    expect(anonymous.data?.users.edges.every(({ node }) => node.email === null)).toBe(true);
    expect(new Set(errorCodes(anonymous))).toEqual(new Set(['FORBIDDEN']));
    expect(anonymous.errors?.[0]?.path).toEqual(['users', 'edges', 0, 'node', 'email']);

    const own = await harness.request<Users>(USERS, {}, asAlice);
    const emails = Object.fromEntries(own.data!.users.edges.map(({ node }) => [node.id, node.email]));
    expect(emails[alice.id]).toBe('alice@example.com');
    expect(emails[bob.id]).toBeNull();

    const admin = await harness.request<Users>(USERS, {}, ADMIN);
    expect(admin.errors).toBeUndefined();
    expect(admin.data?.users.edges.every(({ node }) => node.email !== null)).toBe(true);
  });

  it('me is the signed-in user, and null for an anonymous viewer', async () => {
    const me = await harness.request<{ me: { id: string; email: string } | null }>('{ me { id email } }', {}, asAlice);
    expect(me.data?.me).toEqual({ id: alice.id, email: 'alice@example.com' });
    const nobody = await harness.request<{ me: null }>('{ me { id } }', {}, null);
    expect(nobody.errors).toBeUndefined();
    expect(nobody.data?.me).toBeNull();
  });
});

describe('who may write', () => {
  const UPDATE = 'mutation ($id: ID!, $name: String!) { updateUser(id: $id, input: { name: $name }) { id name } }';

  it('createUser and deleteUser are for admins only: anyone else gets FORBIDDEN and nothing changes', async () => {
    const before = await harness.countUsers();
    for (const viewer of [null, asAlice]) {
      const created = await harness.request('mutation { createUser(input: { email: "mallory@example.com", name: "Mallory" }) { id } }', {}, viewer);
      expect(created.data).toBeNull();
      expect(errorCodes(created)).toEqual(['FORBIDDEN']);
      const deleted = await harness.request('mutation ($id: ID!) { deleteUser(id: $id) }', { id: bob.id }, viewer);
      expect(errorCodes(deleted)).toEqual(['FORBIDDEN']);
    }
    expect(await harness.countUsers()).toBe(before);
  });

  it('userStats is for admins only (the gateway asks for a scope too): counts of every user, in one statement', async () => {
    for (const viewer of [null, asAlice]) {
      const refused = await harness.request('{ userStats { total } }', {}, viewer);
      expect(refused.data).toEqual({ userStats: null });
      expect(errorCodes(refused)).toEqual(['FORBIDDEN']);
    }
    const stats = await harness.request<{ userStats: { total: number; createdLastDay: number } }>('{ userStats { total createdLastDay } }');
    expect(stats.data?.userStats).toEqual({ total: await harness.countUsers(), createdLastDay: await harness.countUsers() });
  });

  it('updateUser is for the user themselves or an admin', async () => {
    const own = await harness.request<{ updateUser: { name: string } }>(UPDATE, { id: alice.id, name: 'Alice A.' }, asAlice);
    expect(own.data?.updateUser.name).toBe('Alice A.');

    for (const viewer of [null, asAlice]) {
      const other = await harness.request(UPDATE, { id: bob.id, name: 'Hijacked' }, viewer);
      expect(other.data).toBeNull();
      expect(errorCodes(other)).toEqual(['FORBIDDEN']);
    }
    const bobNow = await harness.request<{ user: { name: string } }>('query ($id: ID!) { user(id: $id) { name } }', { id: bob.id });
    expect(bobNow.data?.user.name).toBe('Bob');

    const admin = await harness.request<{ updateUser: { name: string } }>(UPDATE, { id: bob.id, name: 'Robert' }, ADMIN);
    expect(admin.data?.updateUser.name).toBe('Robert');
  });
});
