import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SUPERGRAPH_PATH } from '@fed/gateway/config';
import { readSupergraph } from '@fed/gateway/supergraph';
import { createLogger, databaseLocation } from '@fed/platform';
import { startStack } from '../src/stack.ts';

// The executor benches' queries: the nested list, and deep ones that go back and forth between the subgraphs
// (users → orders → items, each order's user with their orders, each of those orders' user), plain and with
// named fragments.
export const QUERIES = {
  nested: `query Nested { users(first: 20) { edges { node {
    id name email orderCount
    orders(first: 5) { edges { node { id status totalCents items { sku quantity unitPriceCents } } } } } } } }`,
  deep: `query Deep { users(first: 20) { edges { node {
    id name email
    orders(first: 5) { totalCount edges { node { id status totalCents items { sku quantity unitPriceCents }
      user { id name orderCount orders(first: 5) { totalCount edges { node { id status user { id name } } } } } } } } } } } }`,
  // Shaped like `npm run bench`'s deep scenario: the same back and forth, its fields in named fragments.
  deepFragments: `query DeepFragments { users(first: 15) { totalCount edges { cursor node {
    ...UserFields
    orders(first: 5) { totalCount edges { node {
      ...OrderFields
      user { ...UserFields orders(first: 3) { totalCount edges { node { ...OrderFields user { id name } } } } }
    } } }
  } } } }
  fragment UserFields on User { id name email createdAt orderCount totalSpentCents }
  fragment OrderFields on Order { id status totalCents currency createdAt items { sku quantity unitPriceCents } }`,
};

/** The one-process stack on a fresh PGlite, seeded small, response cache off: it answers each fetch once. */
export async function startSeededStack(name: string) {
  const dataDir = mkdtempSync(join(tmpdir(), `${name}-`));
  const logger = createLogger({ name, level: 'warn' });
  const supergraphSdl = readSupergraph(DEFAULT_SUPERGRAPH_PATH);
  const stack = await startStack({
    databases: { users: databaseLocation(undefined, dataDir, 'users'), orders: databaseLocation(undefined, dataDir, 'orders') },
    supergraphSdl,
    logger,
    responseCache: null,
    seedIfEmpty: { users: 200, ordersPerUser: 5 },
  });
  return { stack, logger, supergraphSdl, removeData: () => rmSync(dataDir, { recursive: true, force: true }) };
}
