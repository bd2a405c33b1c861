// @authenticated, @requiresScopes and @policy enforced at the gateway, before any fetch: what a viewer may not
// read is removed from the plan and answered null with FORBIDDEN at its path, while the rest of the answer
// arrives. Two real subgraphs on loopback; their resolvers count what they were asked for.
import { isAdmin, MemoryPubSub, MemoryResponseStore, type Role } from '@fed/platform';
import { graphql, type GraphQLResponse } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVELOPMENT_AUTH } from '../../src/config.ts';
import { mintToken } from '../../src/gateway.ts';
import { startComposedGateway } from '../fixtures/composed-gateway.ts';
import { serveSubgraph } from '../fixtures/keyed-entities-graph.ts';

const HEADER = (imports: string[]) => `extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ${JSON.stringify(imports)})
enum CacheControlScope { PUBLIC PRIVATE }
directive @cacheControl(maxAge: Int, scope: CacheControlScope, inheritMaxAge: Boolean) on FIELD_DEFINITION | OBJECT | INTERFACE | UNION
`;
const ACCOUNTS_SDL = `${HEADER(['@key', '@authenticated', '@requiresScopes', '@policy'])}
type Query @cacheControl(maxAge: 60) {
  user(id: ID!): User @cacheControl(maxAge: 60)
  me: User @authenticated
  items: [Item!]! @cacheControl(maxAge: 60)
  stats: Stats @requiresScopes(scopes: [["stats:read"]]) @cacheControl(maxAge: 60)
  audit: String @policy(policies: [["admin"]]) @cacheControl(maxAge: 60)
  unconfigured: String @policy(policies: [["nobody-wrote-this-policy"]]) @cacheControl(maxAge: 60)
}
type User @key(fields: "id") @cacheControl(maxAge: 60) {
  id: ID!
  name: String!
  email: String @authenticated
  taxId: String! @authenticated
  "A guard under another: me is @authenticated, and this needs a scope as well."
  pii: String @requiresScopes(scopes: [["pii"]])
  vault: Vault
  badge: Badge
}
"Its key is guarded: the planner fetches it to reach reviews all the same."
type Badge @key(fields: "serial") @cacheControl(maxAge: 60) {
  serial: String! @authenticated
  label: String!
}
"Any field returning it asks for both scopes, or for root."
type Vault @requiresScopes(scopes: [["vault:read", "vault:audit"], ["root"]]) @cacheControl(maxAge: 60) {
  code: String!
}
union Item = Gem | Coin
type Gem @cacheControl(maxAge: 60) {
  label: String @authenticated
}
type Coin @cacheControl(maxAge: 60) {
  label: String
}
type Stats @cacheControl(maxAge: 60) {
  users: Int!
}
`;
const REVIEWS_SDL = `${HEADER(['@key', '@policy'])}
type User @key(fields: "id") @cacheControl(maxAge: 60) {
  id: ID!
  reviews: [Review!]!
}
type Badge @key(fields: "serial") @cacheControl(maxAge: 60) {
  serial: String!
  level: Int!
}
type Review @cacheControl(maxAge: 60) {
  body: String!
  moderatorNote: String @policy(policies: [["admin"]])
}
`;

describe('authorization directives at the gateway', () => {
  const stops: (() => Promise<unknown>)[] = [];
  const asked = { email: 0, taxId: 0, stats: 0, audit: 0, vault: 0, moderatorNote: 0 };
  let url: string;
  let cachedUrl: string;

  const headersFor = async (who: { sub?: string; role?: Role; scopes?: string[] }): Promise<Record<string, string>> =>
    who.sub ? { authorization: `Bearer ${await mintToken({ ...DEVELOPMENT_AUTH, sub: who.sub, role: who.role, scopes: who.scopes })}` } : {};
  const ask = async (query: string, who: { sub?: string; role?: Role; scopes?: string[] } = {}, target = url) => graphql(target, query, {}, await headersFor(who));
  const forbiddenPaths = (response: GraphQLResponse) =>
    (response.errors ?? []).filter((error) => error.extensions?.code === 'FORBIDDEN').map((error) => error.path);

  beforeAll(async () => {
    const user = (id: string) => ({ id, name: `User ${id}`, email: `u${id}@example.com`, taxId: `T-${id}`, pii: `P-${id}`, vault: { code: `V-${id}` }, badge: { serial: `S-${id}`, label: 'gold' } });
    const accounts = await serveSubgraph('accounts', ACCOUNTS_SDL, {
      Query: {
        user: (_: unknown, { id }: { id: string }) => user(id),
        me: () => user('1'),
        items: () => [{ __typename: 'Gem', label: 'gem' }, { __typename: 'Coin', label: 'coin' }],
        stats: () => ((asked.stats += 1), { users: 2 }),
        audit: () => ((asked.audit += 1), 'audit trail'),
        unconfigured: () => 'should never be read',
      },
      User: {
        __resolveReference: ({ id }: { id: string }) => user(id),
        email: (parent: { email: string }) => ((asked.email += 1), parent.email),
        taxId: (parent: { taxId: string }) => ((asked.taxId += 1), parent.taxId),
        vault: (parent: { vault: unknown }) => ((asked.vault += 1), parent.vault),
      },
    });
    const reviews = await serveSubgraph('reviews', REVIEWS_SDL, {
      User: {
        __resolveReference: ({ id }: { id: string }) => ({ id }),
        reviews: ({ id }: { id: string }) => [
          { body: `first by ${id}`, moderatorNote: 'fine' },
          { body: `second by ${id}`, moderatorNote: 'flagged' },
        ],
      },
      Badge: { __resolveReference: ({ serial }: { serial: string }) => ({ serial, level: serial.length }) },
      Review: { moderatorNote: (parent: { moderatorNote: string }) => ((asked.moderatorNote += 1), parent.moderatorNote) },
    });
    stops.push(() => accounts.app.stop(), () => reviews.app.stop());
    const start = async (responseCache: boolean) => {
      const { gateway, url: started } = await startComposedGateway([accounts, reviews], {
        policies: { admin: (viewer) => isAdmin(viewer) },
        responseCache: responseCache ? { store: new MemoryResponseStore({ maxTtlSeconds: 300 }), events: new MemoryPubSub(), maxTtlSeconds: 300 } : null,
      });
      stops.push(() => gateway.stop());
      return started;
    };
    url = await start(false);
    cachedUrl = await start(true);
  });
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
  });

  it('@authenticated: anonymous viewers get null and FORBIDDEN at the field, and the subgraph is never asked for it', async () => {
    const before = asked.email;
    const anonymous = await ask('{ user(id: "1") { id name email } }');
    expect(anonymous.data).toEqual({ user: { id: '1', name: 'User 1', email: null } });
    expect(forbiddenPaths(anonymous)).toEqual([['user', 'email']]);
    expect(asked.email).toBe(before);

    const signedIn = await ask('{ user(id: "1") { id name email } }', { sub: '1' });
    expect(signedIn).toMatchObject({ data: { user: { id: '1', name: 'User 1', email: 'u1@example.com' } } });
    expect(signedIn.errors).toBeUndefined();
    expect(asked.email).toBe(before + 1);
  });

  it('a denied non-null field nulls its nearest nullable parent, as a null from a subgraph would, and says why', async () => {
    const anonymous = await ask('{ user(id: "1") { id taxId } }');
    expect(anonymous.data).toEqual({ user: null });
    expect(forbiddenPaths(anonymous)).toEqual([['user', 'taxId']]);
    expect(anonymous.errors?.map((error) => error.extensions?.code)).toEqual(['FORBIDDEN']);
    expect((await ask('{ user(id: "1") { id taxId } }', { sub: '1' })).data).toEqual({ user: { id: '1', taxId: 'T-1' } });
  });

  it('a guard under a guard the viewer passes is still checked', async () => {
    const signedIn = await ask('{ me { id pii } }', { sub: '1' });
    expect(signedIn.data).toEqual({ me: { id: '1', pii: null } });
    expect(forbiddenPaths(signedIn)).toEqual([['me', 'pii']]);
    expect((await ask('{ me { id pii } }', { sub: '1', scopes: ['pii'] })).data).toEqual({ me: { id: '1', pii: 'P-1' } });
    // Denied outside, the field's own guard adds nothing more.
    const anonymous = await ask('{ me { id pii } }');
    expect(anonymous.data).toEqual({ me: null });
    expect(forbiddenPaths(anonymous)).toEqual([['me']]);
  });

  it('a guarded field the plan needs anyway (an entity key) never reaches the viewer', async () => {
    const anonymous = await ask('{ user(id: "7") { name badge { serial label level } } }');
    expect(JSON.stringify(anonymous)).not.toContain('S-7');
    expect(anonymous.data).toEqual({ user: { name: 'User 7', badge: null } });
    expect(forbiddenPaths(anonymous)).toEqual([['user', 'badge', 'serial']]);
    const aliased = await ask('{ user(id: "7") { badge { code: serial level } } }');
    expect(JSON.stringify(aliased)).not.toContain('S-7');
    expect((await ask('{ user(id: "7") { badge { serial level } } }', { sub: '7' })).data).toEqual({ user: { badge: { serial: 'S-7', level: 3 } } });
  });

  it('a named fragment spread under a denied field and under an open one is still guarded under the open one', async () => {
    const query = 'query { me { ...Badge } user(id: "7") { ...Badge } } fragment Badge on User { badge { serial level } }';
    const anonymous = await ask(query);
    expect(JSON.stringify(anonymous)).not.toContain('S-7');
    expect(anonymous.data).toEqual({ me: null, user: { badge: null } });
    expect(forbiddenPaths(anonymous)).toEqual([['me'], ['user', 'badge', 'serial']]);
  });

  it('a field guarded on one object type is refused there only, not where another type has a field of that name', async () => {
    const anonymous = await ask('{ items { ... on Gem { label } ... on Coin { label } } }');
    expect(anonymous.data).toEqual({ items: [{ label: null }, { label: 'coin' }] });
    expect(forbiddenPaths(anonymous)).toEqual([['items', 0, 'label']]);
    expect((await ask('{ items { ... on Gem { label } ... on Coin { label } } }', { sub: '1' })).data).toEqual({ items: [{ label: 'gem' }, { label: 'coin' }] });
  });

  it('@requiresScopes: anonymous, a user without scopes and a wrong scope are refused; the right scope reads', async () => {
    const before = asked.stats;
    for (const who of [{}, { sub: '2' }, { sub: '2', scopes: ['stats:write'] }]) {
      const refused = await ask('{ stats { users } user(id: "2") { name } }', who);
      expect(refused.data).toEqual({ stats: null, user: { name: 'User 2' } });
      expect(forbiddenPaths(refused)).toEqual([['stats']]);
    }
    expect(asked.stats).toBe(before);
    const allowed = await ask('{ stats { users } }', { sub: '2', scopes: ['stats:read'] });
    expect(allowed).toMatchObject({ data: { stats: { users: 2 } } });
    expect(allowed.errors).toBeUndefined();
  });

  it('a guarded type guards every field returning it: all scopes of one alternative are needed', async () => {
    const query = '{ user(id: "3") { name vault { code } } }';
    for (const scopes of [undefined, ['vault:read'], ['vault:audit']]) {
      const refused = await ask(query, { sub: '3', scopes });
      expect(refused.data).toEqual({ user: { name: 'User 3', vault: null } });
      expect(forbiddenPaths(refused)).toEqual([['user', 'vault']]);
    }
    for (const scopes of [['vault:read', 'vault:audit'], ['root']]) {
      expect((await ask(query, { sub: '3', scopes })).data).toEqual({ user: { name: 'User 3', vault: { code: 'V-3' } } });
    }
    // In a fragment too.
    const inFragment = await ask('query { user(id: "3") { ...Parts } } fragment Parts on User { name vault { code } }', { sub: '3' });
    expect(inFragment.data).toEqual({ user: { name: 'User 3', vault: null } });
  });

  it('@policy: a named function of the config decides; FORBIDDEN at each list item of another subgraph; an unknown name is never granted', async () => {
    const before = asked.moderatorNote;
    const query = '{ user(id: "4") { reviews { body moderatorNote } } }';
    const user = await ask(query, { sub: '4' });
    expect(user.data).toEqual({ user: { reviews: [{ body: 'first by 4', moderatorNote: null }, { body: 'second by 4', moderatorNote: null }] } });
    expect(forbiddenPaths(user)).toEqual([['user', 'reviews', 0, 'moderatorNote'], ['user', 'reviews', 1, 'moderatorNote']]);
    expect(asked.moderatorNote).toBe(before);
    const admin = await ask(query, { sub: '4', role: 'admin' });
    expect(admin.data).toEqual({ user: { reviews: [{ body: 'first by 4', moderatorNote: 'fine' }, { body: 'second by 4', moderatorNote: 'flagged' }] } });

    expect((await ask('{ audit }', { sub: '4' })).data).toEqual({ audit: null });
    expect((await ask('{ audit }', { sub: '4', role: 'admin' })).data).toEqual({ audit: 'audit trail' });
    const unconfigured = await ask('{ unconfigured }', { sub: '4', role: 'admin', scopes: ['root'] });
    expect(unconfigured.data).toEqual({ unconfigured: null });
    expect(forbiddenPaths(unconfigured)).toEqual([['unconfigured']]);
  });

  it('the response cache never serves a guarded field to a viewer the directives refuse', async () => {
    const query = '{ user(id: "5") { name email vault { code } } stats { users } }';
    const full = await ask(query, { sub: '5', scopes: ['stats:read', 'root'] }, cachedUrl);
    expect(full.errors).toBeUndefined();
    const again = await ask(query, { sub: '5', scopes: ['stats:read', 'root'] }, cachedUrl);
    expect(again.headers.get('age')).not.toBeNull();
    expect(again.data).toEqual(full.data);

    // Another viewer with the same grants may share the public answer; fewer grants never do.
    const anonymous = await ask(query, {}, cachedUrl);
    expect(anonymous.headers.get('age')).toBeNull();
    expect(anonymous.data).toEqual({ user: { name: 'User 5', email: null, vault: null }, stats: null });
    const fewer = await ask(query, { sub: '6', scopes: ['stats:read'] }, cachedUrl);
    expect(fewer.data).toEqual({ user: { name: 'User 5', email: 'u5@example.com', vault: null }, stats: { users: 2 } });
    expect(forbiddenPaths(fewer)).toEqual([['user', 'vault']]);
  });
});
