import { errorCodes, type GraphQLResponse } from '@fed/platform/testing';
import { asc, eq, max } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { users } from '../src/db/schema.ts';
import { createUser, startUsersSubgraph, USER_FIELDS, type UserFields, type UsersHarness } from './harness.ts';

let harness: UsersHarness;

beforeAll(async () => {
  harness = await startUsersSubgraph('users_it');
});

afterAll(async () => {
  await harness?.close();
});

/** A unique address per call, so tests in this file never collide on the unique email index. */
let sequence = 0;
const uniqueEmail = (local = 'user') => `${local}.${Date.now().toString(36)}.${++sequence}@example.com`;

const CREATE = `mutation ($input: CreateUserInput!) { createUser(input: $input) { ${USER_FIELDS} } }`;
const UPDATE = `mutation ($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { ${USER_FIELDS} } }`;
const DELETE = 'mutation ($id: ID!) { deleteUser(id: $id) }';
const USER = `query ($id: ID!) { user(id: $id) { ${USER_FIELDS} } }`;
const USERS = `query ($first: Int, $after: String) {
  users(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id email name } }
  }
}`;

interface UsersPage {
  users: {
    totalCount: number;
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
    edges: { cursor: string; node: { id: string; email: string | null; name: string } }[];
  };
}

const rowById = async (id: string) => {
  const [row] = await harness.handle.db.select().from(users).where(eq(users.id, Number(id)));
  return row;
};

/** An id no row has: one past the largest id ever handed out so far. */
const unusedId = async () => {
  const [row] = await harness.handle.db.select({ top: max(users.id) }).from(users);
  return String((row?.top ?? 0) + 1_000);
};

describe('createUser and user(id)', () => {
  it('stores the email trimmed and lower-cased, the name trimmed, and returns the new user', async () => {
    const local = `Ada.Lovelace.${Date.now().toString(36)}`;
    const before = await harness.countUsers();

    const response = await harness.request<{ createUser: UserFields }>(CREATE, {
      input: { email: `  ${local}@Example.COM  `, name: '  Ada Lovelace  ' },
    });

    expect(response.errors).toBeUndefined();
    const created = response.data!.createUser;
    expect(created.email).toBe(`${local.toLowerCase()}@example.com`);
    expect(created.name).toBe('Ada Lovelace');
    expect(created.id).toMatch(/^[1-9]\d*$/);
    expect(new Date(created.createdAt).toISOString()).toBe(created.createdAt);
    expect(new Date(created.updatedAt).toISOString()).toBe(created.updatedAt);
    expect(await harness.countUsers()).toBe(before + 1);

    // What was written is the normalised form, not what the client typed.
    const row = await rowById(created.id);
    expect(row).toMatchObject({ email: created.email, name: 'Ada Lovelace' });
    expect(row!.createdAt.toISOString()).toBe(created.createdAt);
  });

  it('user(id) fetches the user that createUser returned', async () => {
    const created = await createUser(harness, { email: uniqueEmail('fetch'), name: 'Grace Hopper' });

    const response = await harness.request<{ user: UserFields }>(USER, { id: created.id });

    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({ user: created });
  });
});

describe('createUser validation: every rejection writes nothing', () => {
  it.each(['not-an-email', 'missing-domain@', '@missing-local.com', 'two@@example.com', 'has space@example.com', 'no-tld@example', '', '   '])(
    'rejects the malformed email %j with BAD_USER_INPUT on input.email',
    async (email) => {
      const before = await harness.countUsers();

      const response = await harness.request(CREATE, { input: { email, name: 'Valid Name' } });

      expect(response.data).toBeNull();
      expect(errorCodes(response)).toEqual(['BAD_USER_INPUT']);
      expect(response.errors?.[0]?.extensions?.field).toBe('input.email');
      expect(await harness.countUsers()).toBe(before);
    },
  );

  it('rejects an email longer than 254 characters with BAD_USER_INPUT', async () => {
    const before = await harness.countUsers();
    const email = `${'a'.repeat(250)}@example.com`;

    const response = await harness.request(CREATE, { input: { email, name: 'Long Email' } });

    expect(errorCodes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors?.[0]?.extensions?.field).toBe('input.email');
    expect(await harness.countUsers()).toBe(before);
  });

  it('rejects a duplicate email, and one differing only by case or surrounding space, with EMAIL_TAKEN', async () => {
    const email = uniqueEmail('dup');
    const original = await createUser(harness, { email, name: 'First Owner' });
    const before = await harness.countUsers();

    for (const variant of [email, email.toUpperCase(), `  ${email.replace('dup', 'DuP')}  `]) {
      const response = await harness.request(CREATE, { input: { email: variant, name: 'Second Owner' } });

      expect(response.data, variant).toBeNull();
      expect(errorCodes(response), variant).toEqual(['EMAIL_TAKEN']);
      expect(response.errors?.[0]?.extensions?.field, variant).toBe('input.email');
      expect(await harness.countUsers(), variant).toBe(before);
    }
    // The first owner keeps the address.
    expect(await rowById(original.id)).toMatchObject({ email, name: 'First Owner' });
  });

  it('lets exactly one of several concurrent creates with the same email win; the others get EMAIL_TAKEN', async () => {
    const email = uniqueEmail('race');
    const before = await harness.countUsers();

    const responses = await Promise.all(
      Array.from({ length: 6 }, (_, index) => harness.request(CREATE, { input: { email: index % 2 ? email.toUpperCase() : email, name: `Racer ${index}` } })),
    );

    expect(responses.filter((response) => response.errors === undefined)).toHaveLength(1);
    expect(responses.flatMap((response) => errorCodes(response)).sort()).toEqual(Array(5).fill('EMAIL_TAKEN'));
    expect(await harness.countUsers()).toBe(before + 1);
  });

  it.each(['', '   ', '\t\n'])('rejects the empty or blank name %j with BAD_USER_INPUT on input.name', async (name) => {
    const before = await harness.countUsers();

    const response = await harness.request(CREATE, { input: { email: uniqueEmail('blank'), name } });

    expect(response.data).toBeNull();
    expect(errorCodes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors?.[0]?.extensions?.field).toBe('input.name');
    expect(await harness.countUsers()).toBe(before);
  });

  it('rejects a name longer than 200 characters with BAD_USER_INPUT on input.name', async () => {
    const before = await harness.countUsers();

    const response = await harness.request(CREATE, { input: { email: uniqueEmail('long'), name: 'n'.repeat(201) } });

    expect(errorCodes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors?.[0]?.extensions?.field).toBe('input.name');
    expect(await harness.countUsers()).toBe(before);
  });
});

describe('updateUser and deleteUser', () => {
  it('changes only the fields given', async () => {
    const created = await createUser(harness, { email: uniqueEmail('partial'), name: 'Before Rename' });

    const renamed = await harness.request<{ updateUser: UserFields }>(UPDATE, { id: created.id, input: { name: '  After Rename ' } });
    expect(renamed.errors).toBeUndefined();
    expect(renamed.data!.updateUser).toMatchObject({ id: created.id, email: created.email, name: 'After Rename', createdAt: created.createdAt });
    expect(Date.parse(renamed.data!.updateUser.updatedAt)).toBeGreaterThanOrEqual(Date.parse(created.updatedAt));

    const newEmail = uniqueEmail('moved');
    const moved = await harness.request<{ updateUser: UserFields }>(UPDATE, { id: created.id, input: { email: newEmail.toUpperCase() } });
    expect(moved.errors).toBeUndefined();
    expect(moved.data!.updateUser).toMatchObject({ id: created.id, email: newEmail, name: 'After Rename' });

    // Explicit nulls mean "leave as is", like an omitted field.
    const untouched = await harness.request<{ updateUser: UserFields }>(UPDATE, { id: created.id, input: { email: null, name: null } });
    expect(untouched.errors).toBeUndefined();
    expect(untouched.data!.updateUser).toMatchObject({ email: newEmail, name: 'After Rename' });

    expect(await rowById(created.id)).toMatchObject({ email: newEmail, name: 'After Rename' });
    const fetched = await harness.request<{ user: UserFields }>(USER, { id: created.id });
    expect(fetched.data!.user).toMatchObject({ email: newEmail, name: 'After Rename' });
  });

  it('lets a user change the case of their own email (stored lower-cased, no conflict with themself)', async () => {
    const email = uniqueEmail('self');
    const created = await createUser(harness, { email, name: 'Self' });

    const response = await harness.request<{ updateUser: UserFields }>(UPDATE, { id: created.id, input: { email: email.toUpperCase() } });

    expect(response.errors).toBeUndefined();
    expect(response.data!.updateUser).toMatchObject({ id: created.id, email });
  });

  it("refuses to take another user's email (in any case) with EMAIL_TAKEN and leaves the row unchanged", async () => {
    const owner = await createUser(harness, { email: uniqueEmail('owner'), name: 'Owner' });
    const other = await createUser(harness, { email: uniqueEmail('other'), name: 'Other' });
    const rowBefore = await rowById(other.id);
    const before = await harness.countUsers();

    for (const email of [owner.email!, owner.email!.toUpperCase()]) {
      const response = await harness.request(UPDATE, { id: other.id, input: { email, name: 'Renamed Too' } });

      expect(response.data, email).toBeNull();
      expect(errorCodes(response), email).toEqual(['EMAIL_TAKEN']);
      expect(response.errors?.[0]?.extensions?.field, email).toBe('input.email');
    }
    // Neither the email nor the name in the same request was written, and updatedAt did not move.
    expect(await rowById(other.id)).toEqual(rowBefore);
    expect(await harness.countUsers()).toBe(before);
  });

  it('rejects invalid input on update with BAD_USER_INPUT and leaves the row unchanged', async () => {
    const created = await createUser(harness, { email: uniqueEmail('badupdate'), name: 'Stays' });
    const rowBefore = await rowById(created.id);

    for (const [input, field] of [
      [{ email: 'nope' }, 'input.email'],
      [{ name: '   ' }, 'input.name'],
    ] as const) {
      const response = await harness.request(UPDATE, { id: created.id, input });
      expect(errorCodes(response)).toEqual(['BAD_USER_INPUT']);
      expect(response.errors?.[0]?.extensions?.field).toBe(field);
    }
    expect(await rowById(created.id)).toEqual(rowBefore);
  });

  it('answers NOT_FOUND for an unknown id and BAD_USER_INPUT for an id that cannot exist', async () => {
    const unknown = await unusedId();
    const before = await harness.countUsers();

    const missing = await harness.request(UPDATE, { id: unknown, input: { name: 'Ghost' } });
    expect(missing.data).toBeNull();
    expect(errorCodes(missing)).toEqual(['NOT_FOUND']);
    expect(missing.errors?.[0]?.extensions?.field).toBe('id');

    for (const id of ['abc', '0', '-1', '1.5']) {
      const invalid = await harness.request(UPDATE, { id, input: { name: 'Ghost' } });
      expect(invalid.data, id).toBeNull();
      expect(errorCodes(invalid), id).toEqual(['BAD_USER_INPUT']);
      expect(invalid.errors?.[0]?.extensions?.field, id).toBe('id');
    }
    expect(await harness.countUsers()).toBe(before);
  });

  it('deleteUser returns the id; afterwards user(id) is null with NOT_FOUND and a second delete is NOT_FOUND', async () => {
    const created = await createUser(harness, { email: uniqueEmail('gone'), name: 'Soon Gone' });
    const before = await harness.countUsers();

    const deleted = await harness.request<{ deleteUser: string }>(DELETE, { id: created.id });
    expect(deleted.errors).toBeUndefined();
    expect(deleted.data).toEqual({ deleteUser: created.id });
    expect(await harness.countUsers()).toBe(before - 1);
    expect(await rowById(created.id)).toBeUndefined();

    const fetched = await harness.request(USER, { id: created.id });
    expect(fetched.data).toEqual({ user: null });
    expect(errorCodes(fetched)).toEqual(['NOT_FOUND']);
    expect(fetched.errors?.[0]?.path).toEqual(['user']);

    const again = await harness.request(DELETE, { id: created.id });
    expect(again.data).toBeNull();
    expect(errorCodes(again)).toEqual(['NOT_FOUND']);

    const invalid = await harness.request(DELETE, { id: 'abc' });
    expect(errorCodes(invalid)).toEqual(['BAD_USER_INPUT']);
    expect(await harness.countUsers()).toBe(before - 1);
  });

  it('user(id) answers BAD_USER_INPUT for a malformed id and null + NOT_FOUND for an unknown one', async () => {
    const invalid = await harness.request(USER, { id: 'abc' });
    expect(invalid.data).toEqual({ user: null });
    expect(errorCodes(invalid)).toEqual(['BAD_USER_INPUT']);
    expect(invalid.errors?.[0]?.extensions?.field).toBe('id');

    const unknown = await harness.request(USER, { id: await unusedId() });
    expect(unknown.data).toEqual({ user: null });
    expect(errorCodes(unknown)).toEqual(['NOT_FOUND']);
  });
});

describe('users(first, after)', () => {
  it('pages through every user in id order with opaque cursors, hasNextPage, endCursor and totalCount', async () => {
    // Enough users that a page size of 2 needs several pages whatever earlier tests left behind.
    for (let index = 0; index < 5; index++) await createUser(harness, { email: uniqueEmail('page'), name: `Page ${index}` });
    const expected = await harness.handle.db.select({ id: users.id, email: users.email, name: users.name }).from(users).orderBy(asc(users.id));
    const expectedIds = expected.map((row) => String(row.id));

    const seen: string[] = [];
    const cursors = new Set<string>();
    let after: string | null = null;
    for (let pageNumber = 0; ; pageNumber++) {
      expect(pageNumber).toBeLessThan(expected.length); // a broken cursor must not loop forever
      const response: GraphQLResponse<UsersPage> = await harness.request<UsersPage>(USERS, { first: 2, after });
      expect(response.errors).toBeUndefined();
      const page: UsersPage['users'] = response.data!.users;

      expect(page.totalCount).toBe(expected.length);
      const remaining = expected.length - seen.length;
      expect(page.edges).toHaveLength(Math.min(2, remaining));
      expect(page.pageInfo.hasNextPage).toBe(remaining > 2);
      expect(page.pageInfo.endCursor).toBe(page.edges.at(-1)!.cursor);
      for (const edge of page.edges) {
        // Opaque: not the id itself, nor a bare number a client could compute; each one is distinct.
        expect(edge.cursor).not.toBe(edge.node.id);
        expect(edge.cursor).not.toMatch(/^\d+$/);
        cursors.add(edge.cursor);
        seen.push(edge.node.id);
      }
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }

    expect(seen).toEqual(expectedIds);
    expect(cursors.size).toBe(expectedIds.length);

    // One page holding everyone says there is nothing more.
    const all = await harness.request<UsersPage>(USERS, { first: 100 });
    expect(all.data!.users.edges.map((edge) => edge.node)).toEqual(expected.map((row) => ({ ...row, id: String(row.id) })));
    expect(all.data!.users.pageInfo.hasNextPage).toBe(false);

    // After the last cursor there is an empty page with no endCursor.
    const beyond = await harness.request<UsersPage>(USERS, { first: 2, after: all.data!.users.pageInfo.endCursor });
    expect(beyond.data!.users).toEqual({ totalCount: expected.length, pageInfo: { hasNextPage: false, endCursor: null }, edges: [] });
  });

  it('first: 0 gives no edges, a null endCursor and says whether there are users', async () => {
    await createUser(harness, { email: uniqueEmail('zero'), name: 'Zero' });

    const response = await harness.request<UsersPage>(USERS, { first: 0 });

    expect(response.errors).toBeUndefined();
    expect(response.data!.users).toEqual({
      totalCount: await harness.countUsers(),
      pageInfo: { hasNextPage: true, endCursor: null },
      edges: [],
    });
  });

  it.each([
    [{ first: 101 }, 'first'],
    [{ first: -1 }, 'first'],
    [{ first: 2, after: 'garbage' }, 'after'],
    [{ first: 2, after: '' }, 'after'],
    // A well-formed cursor of another kind (an order cursor) must not page users.
    [{ first: 2, after: Buffer.from('v1:order:1').toString('base64url') }, 'after'],
  ])('rejects %j with BAD_USER_INPUT on %s', async (variables, field) => {
    const response = await harness.request(USERS, variables);

    expect(response.data).toBeNull();
    expect(errorCodes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors?.[0]?.extensions?.field).toBe(field);
  });
});

describe('_entities (federation entity resolution)', () => {
  const ENTITIES = 'query ($representations: [_Any!]!) { _entities(representations: $representations) { ... on User { id email name } } }';

  it('answers in request order, null for unknown or impossible ids, with one SQL statement for all of them', async () => {
    const created: UserFields[] = [];
    for (let index = 0; index < 6; index++) created.push(await createUser(harness, { email: uniqueEmail('entity'), name: `Entity ${index}` }));
    const unknown = await unusedId();
    // Deliberately not in id order, with unknowns, an id that cannot exist and a duplicate mixed in.
    const order = [created[4]!, null, created[0]!, created[5]!, 'abc', created[2]!, created[0]!, created[1]!, created[3]!] as const;
    const representations = order.map((entry) => ({
      __typename: 'User',
      id: entry === null ? unknown : typeof entry === 'string' ? entry : entry.id,
    }));

    let response: GraphQLResponse<{ _entities: unknown[] }> | undefined;
    const statements = await harness.statementsDuring(async () => {
      response = await harness.request<{ _entities: unknown[] }>(ENTITIES, { representations });
    });

    expect(response!.errors).toBeUndefined();
    expect(response!.data!._entities).toEqual(
      order.map((entry) => (entry === null || typeof entry === 'string' ? null : { id: entry.id, email: entry.email, name: entry.name })),
    );
    // The DataLoader batches every representation into a single `select … where id = any($1)`: every id in one
    // array parameter, so the statement's text (and its prepared plan) is the same for any number of ids.
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/^select .* from users where id = any\(\$1\)$/i);
  });

  it('costs one statement for 50 representations as for 2', async () => {
    const created: UserFields[] = [];
    for (let index = 0; index < 50; index++) created.push(await createUser(harness, { email: uniqueEmail('bulk'), name: `Bulk ${index}` }));

    for (const batch of [created.slice(0, 2), created]) {
      const reversed = [...batch].reverse();
      let response: GraphQLResponse<{ _entities: { id: string }[] }> | undefined;
      const statements = await harness.statementsDuring(async () => {
        response = await harness.request<{ _entities: { id: string }[] }>(ENTITIES, {
          representations: reversed.map((user) => ({ __typename: 'User', id: user.id })),
        });
      });
      expect(response!.data!._entities.map((entity) => entity.id)).toEqual(reversed.map((user) => user.id));
      expect(statements).toHaveLength(1);
    }
  });
});
