// The executor benches' queries: the nested list, and a deep one that goes back and forth between the
// subgraphs (users → orders → items, each order's user with their orders, each of those orders' user).
export const QUERIES = {
  nested: `query Nested { users(first: 20) { edges { node {
    id name email orderCount
    orders(first: 5) { edges { node { id status totalCents items { sku quantity unitPriceCents } } } } } } } }`,
  deep: `query Deep { users(first: 20) { edges { node {
    id name email
    orders(first: 5) { totalCount edges { node { id status totalCents items { sku quantity unitPriceCents }
      user { id name orderCount orders(first: 5) { totalCount edges { node { id status user { id name } } } } } } } } } } } }`,
};
