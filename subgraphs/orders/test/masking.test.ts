// A database failure must reach clients as a generic error: drizzle's messages carry SQL text, table names and
// Postgres details. This file has its own databases, because it breaks the schema on purpose.
import { errorCodes, signedFetch } from '@fed/platform/testing';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, placeOrder, startOrdersSubgraph, startUsersSubgraph, uniqueEmail, type OrderFields, type OrdersSubgraph, type UsersSubgraph } from './harness.ts';

let users: UsersSubgraph;
let orders: OrdersSubgraph;
let existing: OrderFields;

beforeAll(async () => {
  users = await startUsersSubgraph('orders_mask_users');
  orders = await startOrdersSubgraph({ users, prefix: 'orders_mask' });
  const buyer = await users.createUser({ email: uniqueEmail(), name: 'Buyer' });
  existing = await placeOrder(orders, { userId: buyer, items: [{ sku: 'SKU-1', quantity: 1, unitPriceCents: 100 }] });
});

afterAll(async () => {
  await orders?.close();
  await users?.close();
});

async function rawPost(query: string, variables: Record<string, unknown>): Promise<string> {
  const response = await signedFetch(orders.url, orders.signing(ADMIN), JSON.stringify({ query, variables }));
  return response.text();
}

function expectNoLeak(text: string): void {
  const lower = text.toLowerCase();
  for (const fragment of ['select', 'update', 'orders', 'relation', 'does not exist', 'postgres', 'drizzle', 'stacktrace', 'failed query', 'node_modules']) {
    expect(lower, `response leaks "${fragment}": ${text}`).not.toContain(fragment);
  }
  expect(text).not.toMatch(/\n\s+at /);
}

describe('masked internal errors', () => {
  it('hides SQL and driver details when the database fails, and recovers once it is repaired', async () => {
    const ORDER = 'query ($id: ID!) { order(id: $id) { id status } }';
    const CANCEL = 'mutation ($id: ID!) { cancelOrder(id: $id) { id } }';

    await orders.handle.db.execute(sql`alter table orders rename to orders_renamed_for_test`);
    try {
      const read = await rawPost(ORDER, { id: existing.id });
      const body = JSON.parse(read) as { data: unknown; errors: { message: string; extensions: Record<string, unknown> }[] };
      expect(body.data).toEqual({ order: null });
      expect(body.errors).toHaveLength(1);
      expect(body.errors[0]!.message).toBe('Internal server error');
      expect(body.errors[0]!.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR' });
      expectNoLeak(read);

      const write = await rawPost(CANCEL, { id: existing.id });
      const writeBody = JSON.parse(write) as { data: unknown; errors: { message: string }[] };
      expect(writeBody.data).toBeNull();
      expect(errorCodes(writeBody)).toEqual(['INTERNAL_SERVER_ERROR']);
      expect(writeBody.errors[0]!.message).toBe('Internal server error');
      expectNoLeak(write);
    } finally {
      await orders.handle.db.execute(sql`alter table orders_renamed_for_test rename to orders`);
    }

    const healed = await orders.request<{ order: { id: string; status: string } }>(ORDER, { id: existing.id });
    expect(healed.errors).toBeUndefined();
    expect(healed.data).toEqual({ order: { id: existing.id, status: 'PENDING' } });
  });
});
