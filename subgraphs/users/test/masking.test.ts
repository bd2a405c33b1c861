// A database failure must reach clients as a generic error: drizzle's messages carry SQL text, table names and
// Postgres details. This file has its own database, because it breaks the schema on purpose.
import { errorCodes, signedFetch } from '@fed/platform/testing';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, createUser, startUsersSubgraph, type UserFields, type UsersHarness } from './harness.ts';

let harness: UsersHarness;
let existing: UserFields;

beforeAll(async () => {
  harness = await startUsersSubgraph('users_mask');
  existing = await createUser(harness, { email: 'masked@example.com', name: 'Masked' });
});

afterAll(async () => {
  await harness?.close();
});

/** The raw HTTP body, so the assertions see exactly what a client would, not a parsed subset. */
async function rawPost(query: string, variables: Record<string, unknown>): Promise<{ status: number; text: string }> {
  const response = await signedFetch(harness.url, harness.signing(ADMIN), JSON.stringify({ query, variables }));
  return { status: response.status, text: await response.text() };
}

function expectNoLeak(text: string): void {
  const lower = text.toLowerCase();
  for (const fragment of ['select', 'insert', 'users', 'relation', 'does not exist', 'postgres', 'drizzle', 'stacktrace', 'failed query', '.ts:', 'node_modules']) {
    expect(lower, `response leaks "${fragment}": ${text}`).not.toContain(fragment);
  }
  expect(text).not.toMatch(/\n\s+at /);
}

describe('masked internal errors', () => {
  it('hides SQL and driver details when the database fails, and recovers once it is repaired', async () => {
    const USER = 'query ($id: ID!) { user(id: $id) { id name } }';
    const CREATE = 'mutation ($input: CreateUserInput!) { createUser(input: $input) { id } }';

    await harness.handle.db.execute(sql`alter table users rename to users_renamed_for_test`);
    try {
      const read = await rawPost(USER, { id: existing.id });
      const readBody = JSON.parse(read.text) as { data: unknown; errors: { message: string; extensions: Record<string, unknown>; path: string[] }[] };
      expect(read.status).toBe(200);
      expect(readBody.data).toEqual({ user: null });
      expect(readBody.errors).toHaveLength(1);
      expect(readBody.errors[0]!.message).toBe('Internal server error');
      expect(readBody.errors[0]!.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR' });
      expect(readBody.errors[0]!.path).toEqual(['user']);
      expectNoLeak(read.text);

      const write = await rawPost(CREATE, { input: { email: 'new@example.com', name: 'New' } });
      const writeBody = JSON.parse(write.text) as { data: unknown; errors: { message: string }[] };
      expect(writeBody.data).toBeNull();
      expect(errorCodes(writeBody)).toEqual(['INTERNAL_SERVER_ERROR']);
      expect(writeBody.errors[0]!.message).toBe('Internal server error');
      expectNoLeak(write.text);
    } finally {
      await harness.handle.db.execute(sql`alter table users_renamed_for_test rename to users`);
    }

    // Once the table is back, the same request works again: the failure left nothing broken behind.
    const healed = await harness.request<{ user: { id: string; name: string } }>(USER, { id: existing.id });
    expect(healed.errors).toBeUndefined();
    expect(healed.data).toEqual({ user: { id: existing.id, name: 'Masked' } });
  });
});
