import type { LoadRequest } from './load.ts';
import type { GatewayName } from './topology.ts';

/** The nested users → orders → items list query; `first` users with five orders each. */
export const nestedQuery = (first: number) => `query Nested { users(first: ${first}) { edges { node {
  id name email orderCount
  orders(first: 5) { edges { node { id status totalCents items { sku quantity unitPriceCents } } } }
} } } }`;

/**
 * The deep query, shaped like the public federation gateway benchmark's: levels that go back and forth between the
 * subgraphs (users → their orders → each order's user → that user's orders → their user), with fragments. Apollo
 * plans it as three fetches one after the other and four in all: the users (users); their orders, each order's
 * user's counts and last three orders (orders, by User entity); then, in parallel, both levels of order users'
 * names (users, by User entity, twice). With five orders per user (the seed has ten), it is about 7 KB of JSON per
 * user: DEEP_USERS users make the scenario's ~100 KB answer.
 */
export const deepQuery = (first: number) => `query Deep { users(first: ${first}) { totalCount edges { cursor node {
  ...UserFields
  orders(first: 5) { totalCount edges { node {
    ...OrderFields
    user { ...UserFields orders(first: 3) { totalCount edges { node { ...OrderFields user { id name } } } } }
  } } }
} } } }
fragment UserFields on User { id name email createdAt orderCount totalSpentCents }
fragment OrderFields on Order { id status totalCents currency createdAt items { sku quantity unitPriceCents } }`;

/** How many users the deep scenario asks for. */
export const DEEP_USERS = 15;

const USER_QUERY = 'query User($id: ID!) { user(id: $id) { id name email orderCount } }';
const USER_ORDERS_QUERY = 'query UserOrders($id: ID!) { user(id: $id) { id name orders(first: 5) { totalCount edges { node { id status totalCents } } } } }';
// Idempotent: the same id always gets the same name, so every gateway's answer to it is the same.
const RENAME_MUTATION = 'mutation Rename($id: ID!, $name: String!) { updateUser(id: $id, input: { name: $name }) { id name } }';

const body = (query: string, variables?: Record<string, unknown>) => JSON.stringify(variables ? { query, variables } : { query });

export type ScenarioName = 'nested' | 'deep' | 'entity' | 'mix' | 'cache-hit';

export interface HttpScenario {
  name: ScenarioName;
  title: string;
  gateways: readonly GatewayName[];
  /**
   * Runs of this scenario last at least this long, whatever --seconds says: at 50 connections the deep query's
   * first answers take seconds, so a shorter run would measure its start more than its pace (the CPU of the
   * requests still in flight at the end counts against the ones completed).
   */
  minSecondsPerRun?: number;
  /** The cycle of requests the load sends, as admin. */
  requests(authorization: string): LoadRequest[];
}

/** `count` user ids spread evenly over the seeded 1..`users`, so that reads touch the whole table. */
const spreadIds = (count: number, users: number) => Array.from({ length: count }, (_, index) => 1 + Math.floor((index * users) / count));

export function httpScenarios(users: number): HttpScenario[] {
  return [
    {
      name: 'nested',
      title: 'Nested list: users(first: 20) → orders(first: 5) → items',
      gateways: ['ours', 'ours-dedupe', 'apollo', 'hive', 'hive-dedupe', 'hive-router'],
      requests: (authorization) => [{ body: body(nestedQuery(20)), authorization }],
    },
    {
      name: 'deep',
      title: `Deep: users(first: ${DEEP_USERS}) → orders → user → orders → user, back and forth between the subgraphs (3 sequential fetches)`,
      gateways: ['ours', 'ours-unmerged', 'apollo', 'hive', 'hive-router'],
      minSecondsPerRun: 8,
      requests: (authorization) => [{ body: body(deepQuery(DEEP_USERS)), authorization }],
    },
    {
      name: 'entity',
      title: 'Single entity: user(id) with a field from orders, 200 different ids',
      gateways: ['ours', 'apollo', 'hive', 'hive-router'],
      requests: (authorization) => spreadIds(200, users).map((id) => ({ body: body(USER_QUERY, { id: String(id) }), authorization })),
    },
    {
      name: 'mix',
      title: "Read/write mix: 9 reads of a user's orders to 1 updateUser, on 100 users",
      gateways: ['ours', 'ours-cached', 'apollo', 'hive', 'hive-router'],
      requests: (authorization) =>
        spreadIds(100, users).map((id, index) =>
          index % 10 === 9
            ? { body: body(RENAME_MUTATION, { id: String(id), name: `Bench user ${id}` }), authorization }
            : { body: body(USER_ORDERS_QUERY, { id: String(id) }), authorization },
        ),
    },
    // Response caches against each other: the uncached references (hive-router among them) have nothing to hit.
    {
      name: 'cache-hit',
      title: 'Cache hits: the nested list again and again, one viewer',
      gateways: ['ours-cached', 'apollo-cached'],
      requests: (authorization) => [{ body: body(nestedQuery(20)), authorization }],
    },
  ];
}

/**
 * What the gateway asks the orders subgraph for in the nested scenario: the orders (with items) and order count of
 * each user of the page, by User entity.
 */
export const ordersEntitiesQuery = `query Nested__orders__1($representations: [_Any!]!) { _entities(representations: $representations) { ... on User {
  __typename orderCount orders(first: 5) { edges { node { id status totalCents items { sku quantity unitPriceCents } } } }
} } }`;

/** A scenario sent straight to one subgraph, signed as the gateway signs, with no gateway in front. */
export interface SubgraphScenario {
  name: 'orders-entities';
  title: string;
  subgraph: 'orders';
  /**
   * The cycle of requests, with `sign`'s headers. Built just before each run: a signature lives
   * IDENTITY_TTL_SECONDS (30 s), so no run of this scenario may last longer (see `maxSecondsPerRun`).
   */
  requests(sign: (body: string) => Record<string, string>): LoadRequest[];
  /** What every answer must be before anything is timed; a reason when it is not. */
  wrongAnswer(answer: unknown): string | undefined;
  maxSecondsPerRun: number;
}

export const SUBGRAPH_USERS = 20;

export function subgraphScenarios(): SubgraphScenario[] {
  const representations = Array.from({ length: SUBGRAPH_USERS }, (_, index) => ({ __typename: 'User', id: String(index + 1) }));
  const request = body(ordersEntitiesQuery, { representations });
  return [
    {
      name: 'orders-entities',
      title: `Orders subgraph alone: _entities for ${SUBGRAPH_USERS} users' orders(first: 5) with items, signed as the gateway signs`,
      subgraph: 'orders',
      requests: (sign) => [{ body: request, headers: sign(request) }],
      wrongAnswer: (answer) => {
        const { data, errors } = answer as { data?: { _entities?: { orders?: { edges?: unknown[] } }[] }; errors?: unknown };
        if (errors) return `errors: ${JSON.stringify(errors).slice(0, 300)}`;
        const entities = data?._entities;
        if (entities?.length !== SUBGRAPH_USERS) return `${entities?.length ?? 'no'} entities for ${SUBGRAPH_USERS} users`;
        if (!entities.every((user) => (user.orders?.edges?.length ?? 0) > 0)) return 'a user without orders';
        return undefined;
      },
      // Less than the signature's 30 s, with the 5 s of clock tolerance the subgraph allows to spare.
      maxSecondsPerRun: 25,
    },
  ];
}

/** Reads first, then writes: no read is compared after another gateway's write changed what it reads. */
export const readsThenWrites = (requests: readonly LoadRequest[]) => {
  const distinct = [...new Map(requests.map((request) => [request.body, request])).values()];
  const isWrite = (request: LoadRequest) => /^\s*mutation\b/.test((JSON.parse(request.body) as { query: string }).query);
  return [...distinct.filter((request) => !isWrite(request)), ...distinct.filter(isWrite)];
};
