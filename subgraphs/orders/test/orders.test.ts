import { errorCodes, type GraphQLResponse } from '@fed/platform/testing';
import { asc, desc, eq, max } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { orderItems, orders as ordersTable } from '../src/db/schema.ts';
import {
  ORDER_FIELDS,
  PLACE_ORDER,
  placeOrder,
  startOrdersSubgraph,
  startUsersSubgraph,
  totalOf,
  uniqueEmail,
  type OrderFields,
  type OrderItem,
  type OrdersSubgraph,
  type UsersSubgraph,
} from './harness.ts';

let users: UsersSubgraph;
let orders: OrdersSubgraph;
/** A user that exists in the users subgraph, for tests that only need "some valid buyer". */
let buyer: string;

beforeAll(async () => {
  users = await startUsersSubgraph();
  orders = await startOrdersSubgraph({ users });
  buyer = await users.createUser({ email: uniqueEmail(), name: 'Buyer' });
});

afterAll(async () => {
  await orders?.close();
  await users?.close();
});

const ORDER = `query ($id: ID!) { order(id: $id) { ${ORDER_FIELDS} } }`;
const CANCEL = 'mutation ($id: ID!) { cancelOrder(id: $id) { id status totalCents } }';

const orderRow = async (id: string) => {
  const [row] = await orders.handle.db.select().from(ordersTable).where(eq(ordersTable.id, Number(id)));
  return row;
};

const setStatus = (id: string, status: 'PENDING' | 'PAID' | 'SHIPPED' | 'DELIVERED' | 'CANCELLED') =>
  orders.handle.db.update(ordersTable).set({ status }).where(eq(ordersTable.id, Number(id)));

/** An id no order has: well past the largest one handed out so far. */
const unusedOrderId = async () => {
  const [row] = await orders.handle.db.select({ top: max(ordersTable.id) }).from(ordersTable);
  return String((row?.top ?? 0) + 1_000);
};

const simpleItems: OrderItem[] = [{ sku: 'SKU-1', quantity: 1, unitPriceCents: 100 }];

describe('placeOrder', () => {
  it('computes the total from the items, keeps their order, defaults to USD, and order(id) round-trips', async () => {
    const items: OrderItem[] = [
      { sku: 'BOOK-42', quantity: 2, unitPriceCents: 1_250 },
      { sku: 'PEN-7', quantity: 5, unitPriceCents: 199 },
      { sku: 'GIFT-WRAP', quantity: 1, unitPriceCents: 0 },
      { sku: 'ALPHA-1', quantity: 3, unitPriceCents: 333 },
    ];
    const before = await orders.countRows();

    const response = await orders.request<{ placeOrder: OrderFields }>(PLACE_ORDER, { input: { userId: buyer, items } });

    expect(response.errors).toBeUndefined();
    const placed = response.data!.placeOrder;
    expect(placed).toMatchObject({ status: 'PENDING', currency: 'USD', totalCents: totalOf(items), items, user: { id: buyer } });
    expect(new Date(placed.createdAt).toISOString()).toBe(placed.createdAt);
    expect(await orders.countRows()).toEqual({ orders: before.orders + 1, items: before.items + items.length });

    const fetched = await orders.request<{ order: OrderFields }>(ORDER, { id: placed.id });
    expect(fetched.errors).toBeUndefined();
    expect(fetched.data).toEqual({ order: placed });

    // What was written: one order row with the computed total, and the items at their positions.
    expect(await orderRow(placed.id)).toMatchObject({ userId: Number(buyer), status: 'PENDING', currency: 'USD', totalCents: totalOf(items) });
    const written = await orders.handle.db
      .select({ position: orderItems.position, sku: orderItems.sku, quantity: orderItems.quantity, unitPriceCents: orderItems.unitPriceCents })
      .from(orderItems)
      .where(eq(orderItems.orderId, Number(placed.id)))
      .orderBy(asc(orderItems.position));
    expect(written).toEqual(items.map((item, position) => ({ position, ...item })));
  });

  it('accepts a currency in any case, normalised to upper case, and trims SKUs', async () => {
    const placed = await placeOrder(orders, {
      userId: buyer,
      currency: ' eur ',
      items: [{ sku: '  TRIM-ME  ', quantity: 4, unitPriceCents: 25 }],
    });

    expect(placed).toMatchObject({ currency: 'EUR', totalCents: 100, items: [{ sku: 'TRIM-ME', quantity: 4, unitPriceCents: 25 }] });
    expect(await orderRow(placed.id)).toMatchObject({ currency: 'EUR', totalCents: 100 });
  });

  it('order(id) gives null + NOT_FOUND for an unknown id and BAD_USER_INPUT for a malformed one', async () => {
    const unknown = await orders.request(ORDER, { id: await unusedOrderId() });
    expect(unknown.data).toEqual({ order: null });
    expect(errorCodes(unknown)).toEqual(['NOT_FOUND']);

    const malformed = await orders.request(ORDER, { id: 'abc' });
    expect(malformed.data).toEqual({ order: null });
    expect(errorCodes(malformed)).toEqual(['BAD_USER_INPUT']);
    expect(malformed.errors?.[0]?.extensions?.field).toBe('id');
  });
});

describe('placeOrder validation: every rejection writes nothing', () => {
  const tooMany = Array.from({ length: 101 }, (_, index) => ({ sku: `BULK-${index}`, quantity: 1, unitPriceCents: 1 }));

  const cases: { name: string; input: () => Record<string, unknown>; code: string; field: string }[] = [
    { name: 'an empty item list', input: () => ({ userId: buyer, items: [] }), code: 'BAD_USER_INPUT', field: 'input.items' },
    {
      name: 'a quantity of 0',
      input: () => ({ userId: buyer, items: [...simpleItems, { sku: 'ZERO', quantity: 0, unitPriceCents: 100 }] }),
      code: 'BAD_USER_INPUT',
      field: 'input.items[1].quantity',
    },
    {
      name: 'a negative quantity',
      input: () => ({ userId: buyer, items: [{ sku: 'NEG', quantity: -3, unitPriceCents: 100 }] }),
      code: 'BAD_USER_INPUT',
      field: 'input.items[0].quantity',
    },
    {
      name: 'a quantity above 10 000',
      input: () => ({ userId: buyer, items: [{ sku: 'HUGE', quantity: 10_001, unitPriceCents: 1 }] }),
      code: 'BAD_USER_INPUT',
      field: 'input.items[0].quantity',
    },
    {
      name: 'a negative unit price',
      input: () => ({ userId: buyer, items: [{ sku: 'NEG-PRICE', quantity: 1, unitPriceCents: -1 }, ...simpleItems] }),
      code: 'BAD_USER_INPUT',
      field: 'input.items[0].unitPriceCents',
    },
    {
      name: 'a blank SKU',
      input: () => ({ userId: buyer, items: [...simpleItems, { sku: '   ', quantity: 1, unitPriceCents: 1 }] }),
      code: 'BAD_USER_INPUT',
      field: 'input.items[1].sku',
    },
    { name: 'more than 100 items', input: () => ({ userId: buyer, items: tooMany }), code: 'BAD_USER_INPUT', field: 'input.items' },
    {
      name: 'a total beyond what a GraphQL Int can return',
      input: () => ({ userId: buyer, items: [{ sku: 'YACHT', quantity: 2, unitPriceCents: 2_000_000_000 }] }),
      code: 'BAD_USER_INPUT',
      field: 'input.items',
    },
    ...['US', 'EURO', 'U$D', '12A', '', '   '].map((currency) => ({
      name: `the currency ${JSON.stringify(currency)}`,
      input: () => ({ userId: buyer, items: simpleItems, currency }),
      code: 'BAD_USER_INPUT',
      field: 'input.currency',
    })),
    ...['abc', '0', '-5', '1.5', ''].map((userId) => ({
      name: `the malformed user id ${JSON.stringify(userId)}`,
      input: () => ({ userId, items: simpleItems }),
      code: 'BAD_USER_INPUT',
      field: 'input.userId',
    })),
  ];

  it.each(cases)('rejects $name with $code on $field', async ({ input, code, field }) => {
    const before = await orders.countRows();

    const response = await orders.request(PLACE_ORDER, { input: input() });

    expect(response.data).toBeNull();
    expect(errorCodes(response)).toEqual([code]);
    expect(response.errors?.[0]?.extensions?.field).toBe(field);
    expect(await orders.countRows()).toEqual(before);
  });

  it('rejects an unknown user with USER_NOT_FOUND on input.userId', async () => {
    // A user id the users subgraph has never handed out.
    const probe = await users.createUser({ email: uniqueEmail('probe'), name: 'Probe' });
    const unknown = String(Number(probe) + 1_000);
    const before = await orders.countRows();

    const response = await orders.request(PLACE_ORDER, { input: { userId: unknown, items: simpleItems } });

    expect(response.data).toBeNull();
    expect(errorCodes(response)).toEqual(['USER_NOT_FOUND']);
    expect(response.errors?.[0]?.extensions?.field).toBe('input.userId');
    expect(await orders.countRows()).toEqual(before);
  });

  it('rejects a user deleted in the users subgraph with USER_NOT_FOUND', async () => {
    const doomed = await users.createUser({ email: uniqueEmail('doomed'), name: 'Doomed' });
    const pending = await placeOrder(orders, { userId: doomed, items: simpleItems }); // fine while the user exists
    const deleted = await users.request('mutation ($id: ID!) { deleteUser(id: $id) }', { id: doomed });
    expect(deleted.errors).toBeUndefined();
    const before = await orders.countRows();

    const response = await orders.request(PLACE_ORDER, { input: { userId: doomed, items: simpleItems } });

    expect(errorCodes(response)).toEqual(['USER_NOT_FOUND']);
    expect(response.errors?.[0]?.extensions?.field).toBe('input.userId');
    expect(await orders.countRows()).toEqual(before);
    // Orders heard about the deletion from the stream and cancelled the order that was still pending.
    const order = await orders.request<{ order: { status: string } }>('query ($id: ID!) { order(id: $id) { status } }', { id: pending.id });
    expect(order.data?.order.status).toBe('CANCELLED');
  });
});

describe('cancelOrder', () => {
  it('moves a PENDING order to CANCELLED, and cancelling again is idempotent', async () => {
    const placed = await placeOrder(orders, { userId: buyer, items: simpleItems });

    const first = await orders.request<{ cancelOrder: { id: string; status: string; totalCents: number } }>(CANCEL, { id: placed.id });
    expect(first.errors).toBeUndefined();
    expect(first.data).toEqual({ cancelOrder: { id: placed.id, status: 'CANCELLED', totalCents: placed.totalCents } });
    expect((await orderRow(placed.id))?.status).toBe('CANCELLED');

    const again = await orders.request(CANCEL, { id: placed.id });
    expect(again.errors).toBeUndefined();
    expect(again.data).toEqual(first.data);
    expect((await orderRow(placed.id))?.status).toBe('CANCELLED');

    const fetched = await orders.request<{ order: OrderFields }>(ORDER, { id: placed.id });
    expect(fetched.data!.order).toEqual({ ...placed, status: 'CANCELLED' });
  });

  it('cancels a PAID order', async () => {
    const placed = await placeOrder(orders, { userId: buyer, items: simpleItems });
    await setStatus(placed.id, 'PAID');

    const response = await orders.request(CANCEL, { id: placed.id });

    expect(response.errors).toBeUndefined();
    expect(response.data).toMatchObject({ cancelOrder: { id: placed.id, status: 'CANCELLED' } });
    expect((await orderRow(placed.id))?.status).toBe('CANCELLED');
  });

  it.each(['SHIPPED', 'DELIVERED'] as const)('refuses a %s order with ORDER_NOT_CANCELLABLE and leaves its status alone', async (status) => {
    const placed = await placeOrder(orders, { userId: buyer, items: simpleItems });
    await setStatus(placed.id, status);
    const rowBefore = await orderRow(placed.id);

    const response = await orders.request(CANCEL, { id: placed.id });

    expect(response.data).toBeNull();
    expect(errorCodes(response)).toEqual(['ORDER_NOT_CANCELLABLE']);
    expect(response.errors?.[0]?.extensions?.field).toBe('id');
    expect(response.errors?.[0]?.message).toContain(status);
    expect(await orderRow(placed.id)).toEqual(rowBefore);
    expect(rowBefore?.status).toBe(status);
  });

  it('answers NOT_FOUND for an unknown id and BAD_USER_INPUT for a malformed one, writing nothing', async () => {
    const before = await orders.countRows();

    const unknown = await orders.request(CANCEL, { id: await unusedOrderId() });
    expect(unknown.data).toBeNull();
    expect(errorCodes(unknown)).toEqual(['NOT_FOUND']);
    expect(unknown.errors?.[0]?.extensions?.field).toBe('id');

    const malformed = await orders.request(CANCEL, { id: 'abc' });
    expect(malformed.data).toBeNull();
    expect(errorCodes(malformed)).toEqual(['BAD_USER_INPUT']);

    expect(await orders.countRows()).toEqual(before);
  });
});

describe('orders(first, after, status)', () => {
  const ORDERS = `query ($first: Int, $after: String, $status: OrderStatus) {
    orders(first: $first, after: $after, status: $status) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id status totalCents } }
    }
  }`;

  interface OrdersPage {
    orders: {
      totalCount: number;
      pageInfo: { hasNextPage: boolean; endCursor: string | null };
      edges: { cursor: string; node: { id: string; status: string; totalCents: number } }[];
    };
  }

  /** Walks every page of size `first` and checks each page's shape against `expectedIds` (newest first). */
  async function walk(first: number, status: string | undefined, expectedIds: string[]): Promise<string[]> {
    const seen: string[] = [];
    let after: string | null = null;
    for (let pageNumber = 0; ; pageNumber++) {
      expect(pageNumber).toBeLessThanOrEqual(expectedIds.length); // a broken cursor must not loop forever
      const response: GraphQLResponse<OrdersPage> = await orders.request<OrdersPage>(ORDERS, { first, after, status });
      expect(response.errors).toBeUndefined();
      const page: OrdersPage['orders'] = response.data!.orders;
      const remaining = expectedIds.length - seen.length;
      expect(page.totalCount).toBe(expectedIds.length);
      expect(page.edges).toHaveLength(Math.min(first, remaining));
      expect(page.pageInfo.hasNextPage).toBe(remaining > first);
      expect(page.pageInfo.endCursor).toBe(page.edges.at(-1)?.cursor ?? null);
      for (const edge of page.edges) {
        if (status) expect(edge.node.status).toBe(status);
        // Opaque: not the id itself, nor a bare number a client could compute.
        expect(edge.cursor).not.toBe(edge.node.id);
        expect(edge.cursor).not.toMatch(/^\d+$/);
        seen.push(edge.node.id);
      }
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    return seen;
  }

  it('pages newest first, filters by status, and totalCount follows the filter', async () => {
    // A mix of statuses on top of whatever earlier tests placed.
    for (let index = 0; index < 7; index++) {
      const placed = await placeOrder(orders, { userId: buyer, items: [{ sku: `PAGE-${index}`, quantity: index + 1, unitPriceCents: 10 }] });
      if (index % 3 === 0) expect(errorCodes(await orders.request(CANCEL, { id: placed.id }))).toEqual([]);
    }
    const all = await orders.handle.db.select({ id: ordersTable.id, status: ordersTable.status }).from(ordersTable).orderBy(desc(ordersTable.id));
    const ids = (status?: string) => all.filter((row) => status === undefined || row.status === status).map((row) => String(row.id));
    expect(ids('CANCELLED').length).toBeGreaterThanOrEqual(3);
    expect(ids('PENDING').length).toBeGreaterThanOrEqual(4);

    expect(await walk(3, undefined, ids())).toEqual(ids());
    // Every status, including any no order has (an empty connection then, not an error).
    for (const status of ['PENDING', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED']) {
      expect(await walk(2, status, ids(status)), status).toEqual(ids(status));
    }
  });

  it.each([
    [{ first: 101 }, 'first'],
    [{ first: -1 }, 'first'],
    [{ first: 2, after: 'garbage' }, 'after'],
    // A well-formed cursor of another kind (a user cursor) must not page orders.
    [{ first: 2, after: Buffer.from('v1:user:1').toString('base64url') }, 'after'],
  ])('rejects %j with BAD_USER_INPUT on %s', async (variables, field) => {
    const response = await orders.request(ORDERS, variables);

    // orders is nullable (a non-admin gets null plus FORBIDDEN with the rest of the response intact).
    expect(response.data).toEqual({ orders: null });
    expect(errorCodes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors?.[0]?.extensions?.field).toBe(field);
  });
});

describe('_entities: User fields contributed by orders', () => {
  const ENTITIES = `query ($representations: [_Any!]!) {
    _entities(representations: $representations) {
      ... on User {
        id
        orders(first: 2) { totalCount edges { node { id items { sku } } } }
        orderCount
        totalSpentCents
      }
    }
  }`;

  interface UserOrders {
    id: string;
    orders: { totalCount: number; edges: { node: { id: string; items: { sku: string }[] } }[] } | null;
    orderCount: number | null;
    totalSpentCents: number | null;
  }

  interface Placed {
    id: string;
    totalCents: number;
    skus: string[];
    cancelled: boolean;
  }

  /** What the users of `ids` must get, derived from the orders this test placed through the API. */
  const expectedFor = (ids: string[], placedBy: Map<string, Placed[]>): UserOrders[] =>
    ids.map((id) => {
      const placed = [...(placedBy.get(id) ?? [])].sort((a, b) => Number(b.id) - Number(a.id));
      return {
        id,
        orders: {
          totalCount: placed.length,
          edges: placed.slice(0, 2).map((order) => ({ node: { id: order.id, items: order.skus.map((sku) => ({ sku })) } })),
        },
        orderCount: placed.length,
        totalSpentCents: placed.filter((order) => !order.cancelled).reduce((sum, order) => sum + order.totalCents, 0),
      };
    });

  it('resolves each user correctly, and the SQL statement count does not grow with the number of users', async () => {
    // 30 users; user i gets i % 5 orders (so some have none, some one page, some more than a page), each
    // with 1 to 3 items, and every third order is cancelled.
    const userIds: string[] = [];
    const placedBy = new Map<string, Placed[]>();
    let orderNumber = 0;
    for (let index = 0; index < 30; index++) {
      const userId = await users.createUser({ email: uniqueEmail(`entity${index}`), name: `Entity ${index}` });
      userIds.push(userId);
      const placed: Placed[] = [];
      for (let n = 0; n < index % 5; n++) {
        orderNumber++;
        const items = Array.from({ length: (orderNumber % 3) + 1 }, (_, position) => ({
          sku: `U${index}-O${n}-I${position}`,
          quantity: position + 1,
          unitPriceCents: 100 * (n + 1) + position,
        }));
        const order = await placeOrder(orders, { userId, items });
        const cancelled = orderNumber % 3 === 0;
        if (cancelled) expect(errorCodes(await orders.request(CANCEL, { id: order.id }))).toEqual([]);
        placed.push({ id: order.id, totalCents: totalOf(items), skus: items.map((item) => item.sku), cancelled });
      }
      placedBy.set(userId, placed);
    }
    // The fixture really exercises every case the assertions below rely on.
    const all = [...placedBy.values()];
    expect(all.some((placed) => placed.length === 0)).toBe(true);
    expect(all.some((placed) => placed.length > 2)).toBe(true);
    expect(all.some((placed) => placed.some((order) => order.cancelled) && placed.some((order) => !order.cancelled))).toBe(true);

    const ask = async (ids: string[]) => {
      let response: GraphQLResponse<{ _entities: UserOrders[] }> | undefined;
      const statements = await orders.statementsDuring(async () => {
        response = await orders.request<{ _entities: UserOrders[] }>(ENTITIES, {
          representations: ids.map((id) => ({ __typename: 'User', id })),
        });
      });
      expect(response!.errors).toBeUndefined();
      return { entities: response!.data!._entities, statements };
    };

    // Three users: one with no orders, one with a single page, one with more than a page (and a cancellation).
    const few = [userIds[0]!, userIds[3]!, userIds[4]!];
    expect(few.map((id) => placedBy.get(id)!.length)).toEqual([0, 3, 4]);
    const small = await ask(few);
    expect(small.entities).toEqual(expectedFor(few, placedBy));
    // A user without orders gets an empty connection and zeros, not null.
    expect(small.entities[0]).toEqual({ id: few[0], orders: { totalCount: 0, edges: [] }, orderCount: 0, totalSpentCents: 0 });

    // All thirty, in a shuffled order: results follow the request order.
    const many = [...userIds].reverse();
    many.push(many.splice(7, 1)[0]!);
    const large = await ask(many);
    expect(large.entities).toEqual(expectedFor(many, placedBy));

    // Observed: 4 statements, whatever the number of users. Each DataLoader batches all users into one
    // statement: (1) the per-user pages (row_number() window over all requested users), (2) orderCount and
    // totalSpentCents together (one grouped count/sum), (3) totalCount (one grouped count), and (4) the items
    // of every order on every page (one `where order_id in (...)`).
    expect(small.statements).toHaveLength(4);
    expect(large.statements).toHaveLength(small.statements.length);
    const kinds = (statements: string[]) =>
      statements
        .map((statement) => {
          if (/row_number\(\) over/i.test(statement)) return 'pages';
          if (/filter \(where/i.test(statement)) return 'stats';
          if (/from order_items/i.test(statement)) return 'items';
          if (/count\(\*\)/i.test(statement)) return 'counts';
          return statement;
        })
        .sort();
    expect(kinds(small.statements)).toEqual(['counts', 'items', 'pages', 'stats']);
    expect(kinds(large.statements)).toEqual(kinds(small.statements));
  });

  it('answers null fields for a representation whose id cannot exist, and keeps the others correct', async () => {
    const userId = await users.createUser({ email: uniqueEmail('mixed'), name: 'Mixed' });
    const items = [{ sku: 'MIXED-1', quantity: 2, unitPriceCents: 150 }];
    const order = await placeOrder(orders, { userId, items });

    const response = await orders.request<{ _entities: UserOrders[] }>(ENTITIES, {
      representations: [
        { __typename: 'User', id: 'not-an-id' },
        { __typename: 'User', id: userId },
      ],
    });

    expect(response.errors).toBeUndefined();
    expect(response.data!._entities).toEqual([
      { id: 'not-an-id', orders: null, orderCount: null, totalSpentCents: null },
      {
        id: userId,
        orders: { totalCount: 1, edges: [{ node: { id: order.id, items: [{ sku: 'MIXED-1' }] } }] },
        orderCount: 1,
        totalSpentCents: totalOf(items),
      },
    ]);
  });

  it('pages a user’s orders with after and filters them by status', async () => {
    const userId = await users.createUser({ email: uniqueEmail('paged'), name: 'Paged' });
    const placed: OrderFields[] = [];
    for (let index = 0; index < 5; index++) placed.push(await placeOrder(orders, { userId, items: [{ sku: `P-${index}`, quantity: 1, unitPriceCents: 10 }] }));
    for (const order of [placed[1]!, placed[3]!]) expect(errorCodes(await orders.request(CANCEL, { id: order.id }))).toEqual([]);
    const newestFirst = placed.map((order) => order.id).reverse();

    const QUERY = `query ($representations: [_Any!]!, $after: String, $status: OrderStatus) {
      _entities(representations: $representations) {
        ... on User { orders(first: 2, after: $after, status: $status) { totalCount pageInfo { hasNextPage endCursor } edges { node { id status } } } }
      }
    }`;
    type Page = { _entities: { orders: { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: { node: { id: string; status: string } }[] } }[] };
    const representations = [{ __typename: 'User', id: userId }];

    const first = await orders.request<Page>(QUERY, { representations });
    const firstPage = first.data!._entities[0]!.orders;
    expect(firstPage.totalCount).toBe(5);
    expect(firstPage.edges.map((edge) => edge.node.id)).toEqual(newestFirst.slice(0, 2));
    expect(firstPage.pageInfo.hasNextPage).toBe(true);

    const second = await orders.request<Page>(QUERY, { representations, after: firstPage.pageInfo.endCursor });
    expect(second.data!._entities[0]!.orders.edges.map((edge) => edge.node.id)).toEqual(newestFirst.slice(2, 4));

    const cancelled = await orders.request<Page>(QUERY, { representations, status: 'CANCELLED' });
    expect(cancelled.data!._entities[0]!.orders).toMatchObject({
      totalCount: 2,
      pageInfo: { hasNextPage: false },
      edges: [placed[3]!, placed[1]!].map((order) => ({ node: { id: order.id, status: 'CANCELLED' } })),
    });
  });
});

describe('_entities: Order references', () => {
  it('resolves orders in request order with null for unknown ids, in one statement for the orders and one for their items', async () => {
    const placed: OrderFields[] = [];
    for (let index = 0; index < 4; index++) {
      placed.push(await placeOrder(orders, { userId: buyer, items: [{ sku: `REF-${index}-A`, quantity: 1, unitPriceCents: 5 }, { sku: `REF-${index}-B`, quantity: 2, unitPriceCents: 7 }] }));
    }
    const unknown = await unusedOrderId();
    const requested = [placed[2]!, null, placed[0]!, placed[3]!, placed[1]!];

    let response: GraphQLResponse<{ _entities: (Pick<OrderFields, 'id' | 'totalCents' | 'items'> | null)[] }> | undefined;
    const statements = await orders.statementsDuring(async () => {
      response = await orders.request(
        'query ($representations: [_Any!]!) { _entities(representations: $representations) { ... on Order { id totalCents items { sku quantity unitPriceCents } } } }',
        { representations: requested.map((order) => ({ __typename: 'Order', id: order?.id ?? unknown })) },
      );
    });

    expect(response!.errors).toBeUndefined();
    expect(response!.data!._entities).toEqual(requested.map((order) => (order ? { id: order.id, totalCents: order.totalCents, items: order.items } : null)));
    expect(statements).toHaveLength(2);
  });
});
