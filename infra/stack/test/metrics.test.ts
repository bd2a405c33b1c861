// Prometheus metrics end to end: traffic through the in-process stack, then scrapes of the gateway's /metrics
// (which serves all three services' registries in the embedded default) and of each subgraph's own, parsed
// strictly as the text format. Each test measures what its own traffic changed.
import { randomBytes } from 'node:crypto';
import { parseExposition, waitFor, type Exposition } from '@fed/platform/testing';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { seed } from '../src/seed.ts';
import { startTestStack, type TestStack } from './harness.ts';

const KNOWN = 'KnownNested';
const nested = (name: string, first: number) =>
  `query ${name} { users(first: ${first}) { edges { node { id name orders(first: 2) { edges { node { id items { sku quantity } } } } } } } }`;

const metricsUrl = (graphqlUrl: string) => graphqlUrl.replace(/\/graphql$/, '/metrics');

describe('Prometheus metrics of the embedded stack', () => {
  let stack: TestStack;
  const clients: Client[] = [];

  /** GET /metrics (the gateway's unless `url` says otherwise), checked and parsed. */
  const scrape = async (url = metricsUrl(stack.urls.gateway)): Promise<Exposition> => {
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    return parseExposition(await response.text());
  };

  beforeAll(async () => {
    stack = await startTestStack({ telemetry: { knownOperations: [KNOWN], processMetrics: true } });
    await seed(stack.databases, { users: 4, ordersPerUser: 2 });
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await stack?.teardown();
  });

  it('serves every service\'s registry on the gateway, told apart by the service label', async () => {
    const response = await stack.request(nested(KNOWN, 3));
    expect(response.errors).toBeUndefined();
    const metrics = await scrape();
    // Every series carries its service; all three are there.
    expect(metrics.samples.filter((sample) => !sample.labels.service)).toEqual([]);
    expect(metrics.labelValues('service')).toEqual(new Set(['gateway', 'users', 'orders']));
    // Concerns by prefix, each from the service that owns it.
    const servicesOf = (family: string) => new Set(metrics.families.get(family)?.samples.map((sample) => sample.labels.service));
    expect(servicesOf('http_request_duration_seconds')).toEqual(new Set(['gateway', 'users', 'orders']));
    expect(servicesOf('graphql_operation_duration_seconds')).toEqual(new Set(['gateway', 'users', 'orders']));
    expect(servicesOf('subgraph_fetch_duration_seconds')).toEqual(new Set(['gateway']));
    expect(servicesOf('db_query_duration_seconds')).toEqual(new Set(['users', 'orders']));
    expect(metrics.families.get('http_request_duration_seconds')?.type).toBe('histogram');
    expect(metrics.families.get('graphql_errors_total')?.type).toBe('counter');
  });

  it('times HTTP requests by method, route and status, and GraphQL operations by type and known name', async () => {
    const before = await scrape();
    const known = await stack.request(nested(KNOWN, 2));
    expect(known.errors).toBeUndefined();
    const unlisted = await stack.request('query SomeUnlistedName { user(id: "2") { name } }');
    expect(unlisted.errors).toBeUndefined();
    const missing = await fetch(stack.urls.gateway.replace(/\/graphql$/, '/no-such-page'));
    expect(missing.status).toBe(404);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => after.value(name, labels) - before.value(name, labels);

    expect(delta('http_request_duration_seconds_count', { service: 'gateway', method: 'POST', route: '/graphql', status: '200' })).toBe(2);
    expect(delta('http_request_duration_seconds_count', { service: 'gateway', method: 'GET', route: 'other', status: '404' })).toBe(1);
    // Buckets are cumulative: +Inf counts every request.
    expect(after.value('http_request_duration_seconds_bucket', { service: 'gateway', method: 'POST', route: '/graphql', status: '200', le: '+Inf' })).toBe(
      after.value('http_request_duration_seconds_count', { service: 'gateway', method: 'POST', route: '/graphql', status: '200' }),
    );

    // A listed name is its own label value, at the gateway and at both subgraphs (whose operations the gateway
    // names after the client's); any other name is `other`.
    for (const service of ['gateway', 'users', 'orders']) {
      expect(delta('graphql_operation_duration_seconds_count', { service, type: 'query', operation: KNOWN }), service).toBe(1);
    }
    expect(delta('graphql_operation_duration_seconds_count', { service: 'gateway', type: 'query', operation: 'other' })).toBe(1);
    expect(delta('graphql_operation_duration_seconds_count', { service: 'users', type: 'query', operation: 'other' })).toBeGreaterThanOrEqual(1);
    expect(after.series('graphql_operation_duration_seconds_count', { operation: 'SomeUnlistedName' })).toEqual([]);
    expect(delta('http_request_duration_seconds_count', { service: 'users', method: 'POST', route: '/graphql', status: '200' })).toBeGreaterThanOrEqual(2);
    expect(delta('http_request_duration_seconds_count', { service: 'orders', method: 'POST', route: '/graphql', status: '200' })).toBeGreaterThanOrEqual(1);
  });

  it('counts errors by code', async () => {
    const before = await scrape();
    const invalid = await stack.request('{ nope }');
    expect(invalid.status).toBe(400);
    const notFound = await stack.request('query Missing { user(id: "999999") { name } }');
    expect(notFound.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const after = await scrape();
    const delta = (labels: Record<string, string>) => after.value('graphql_errors_total', labels) - before.value('graphql_errors_total', labels);
    expect(delta({ service: 'gateway', code: 'GRAPHQL_VALIDATION_FAILED' })).toBe(1);
    expect(delta({ service: 'gateway', code: 'NOT_FOUND' })).toBe(1);
    expect(delta({ service: 'users', code: 'NOT_FOUND' })).toBe(1);
  });

  it('times subgraph fetches per subgraph, and reports each circuit closed', async () => {
    const before = await scrape();
    const response = await stack.request(nested('SubgraphFetches', 4));
    expect(response.errors).toBeUndefined();
    const after = await scrape();
    for (const subgraph of ['users', 'orders']) {
      const labels = { service: 'gateway', subgraph, outcome: 'ok' };
      expect(after.value('subgraph_fetch_duration_seconds_count', labels) - before.value('subgraph_fetch_duration_seconds_count', labels), subgraph).toBeGreaterThanOrEqual(1);
      expect(after.value('subgraph_fetch_duration_seconds_sum', labels)).toBeGreaterThan(0);
      expect(after.series('subgraph_circuit_state', { service: 'gateway', subgraph }).map((sample) => sample.value)).toEqual([0]);
    }
    expect(after.value('subgraph_fetch_failures_total', { service: 'gateway' })).toBe(0);
  });

  it('counts response cache misses, stores and hits', async () => {
    const query = 'query CachedUser { user(id: "1") { name } }';
    const before = await scrape();
    const first = await stack.request(query);
    const second = await stack.request(query);
    expect(second.data).toEqual(first.data);
    expect(second.headers.get('age')).not.toBeNull();
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => after.value(name, { service: 'gateway', ...labels }) - before.value(name, { service: 'gateway', ...labels });
    expect(delta('cache_requests_total', { result: 'miss' })).toBe(1);
    expect(delta('cache_requests_total', { result: 'hit' })).toBe(1);
    expect(delta('cache_stores_total')).toBe(1);
    expect(after.series('cache_errors_total', { service: 'gateway' }).map((sample) => sample.value)).toEqual([0]);
  });

  it('times each subgraph\'s SQL and reports its pool', async () => {
    const before = await scrape();
    const response = await stack.request(nested('Database', 1));
    expect(response.errors).toBeUndefined();
    const after = await scrape();
    for (const service of ['users', 'orders']) {
      const labels = { service, db: service, operation: 'SELECT' };
      expect(after.value('db_query_duration_seconds_count', labels) - before.value('db_query_duration_seconds_count', labels), service).toBeGreaterThanOrEqual(1);
      expect(after.series('db_pool_connections_max', { service, db: service }).map((sample) => sample.value)).toEqual([10]);
      const inFlight = after.series('db_operations_in_flight', { service, db: service });
      expect(inFlight).toHaveLength(1);
      // Only background work may hold a transaction now (the outbox relay's poll and, in orders, the projection's
      // consumer); a leak would grow without bound.
      expect(inFlight[0]?.value).toBeGreaterThanOrEqual(0);
      expect(inFlight[0]?.value).toBeLessThanOrEqual(2);
    }
  });

  it('counts events relayed from the outbox after a mutation, and consumed by orders\' projection', async () => {
    const before = await scrape();
    const renamed = await stack.request('mutation RenameUser { updateUser(id: "3", input: { name: "Renamed" }) { name } }');
    expect(renamed.errors).toBeUndefined();
    await waitFor(async () => {
      const after = await scrape();
      expect(after.value('events_relayed_total', { service: 'users' }) - before.value('events_relayed_total', { service: 'users' })).toBe(1);
      expect(after.value('events_consumed_total', { service: 'orders' }) - before.value('events_consumed_total', { service: 'orders' })).toBe(1);
      expect(after.value('graphql_operation_duration_seconds_count', { service: 'gateway', type: 'mutation' })).toBeGreaterThanOrEqual(1);
      // Inside transactions each statement counts once: the users row, then the outbox row marked sent.
      const updates = { service: 'users', db: 'users', operation: 'UPDATE' };
      expect(after.value('db_query_duration_seconds_count', updates) - before.value('db_query_duration_seconds_count', updates)).toBe(2);
    });
  });

  it('reports open sockets and active subscriptions at the gateway and the users subgraph', async () => {
    const gauges = (metrics: Exposition) => ({
      sockets: metrics.value('ws_connections_open', { service: 'gateway' }),
      gateway: metrics.value('ws_subscriptions_active', { service: 'gateway' }),
      users: metrics.value('ws_subscriptions_active', { service: 'users' }),
    });
    expect(gauges(await scrape())).toEqual({ sockets: 0, gateway: 0, users: 0 });
    const client = createClient({ url: stack.urls.gateway.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: { ...stack.admin } });
    clients.push(client);
    const stop = client.subscribe({ query: 'subscription { userEvents(userId: "1") { kind } }' }, { next: () => {}, error: () => {}, complete: () => {} });
    await waitFor(async () => expect(gauges(await scrape())).toEqual({ sockets: 1, gateway: 1, users: 1 }));
    stop();
    await client.dispose();
    await waitFor(async () => expect(gauges(await scrape())).toEqual({ sockets: 0, gateway: 0, users: 0 }));
  });

  it.each([
    ['server-sent events', 'sse_streams_open', 'text/event-stream', /^text\/event-stream/],
    ["Apollo's multipart protocol", 'multipart_streams_open', 'multipart/mixed;subscriptionSpec=1.0, application/json', /^multipart\/mixed/],
  ] as const)('reports subscription streams open over %s at the gateway, apart from the other transports', async (_, gauge, accept, contentType) => {
    const gauges = (metrics: Exposition) => ({
      streams: metrics.value(gauge, { service: 'gateway' }),
      others: metrics.value('sse_streams_open', { service: 'gateway' }) + metrics.value('multipart_streams_open', { service: 'gateway' }) - metrics.value(gauge, { service: 'gateway' }),
      sockets: metrics.value('ws_connections_open', { service: 'gateway' }),
    });
    expect(gauges(await scrape())).toEqual({ streams: 0, others: 0, sockets: 0 });
    const cut = new AbortController();
    const response = await fetch(stack.urls.gateway, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept, ...stack.admin },
      body: JSON.stringify({ query: 'subscription { userEvents(userId: "1") { kind } }' }),
      signal: cut.signal,
    });
    expect(response.headers.get('content-type')).toMatch(contentType);
    await waitFor(async () => expect(gauges(await scrape())).toEqual({ streams: 1, others: 0, sockets: 0 }));
    cut.abort();
    await waitFor(async () => expect(gauges(await scrape())).toEqual({ streams: 0, others: 0, sockets: 0 }));
  });

  it('includes the process\'s own metrics once, under the gateway', async () => {
    const metrics = await scrape();
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_total_bytes', 'nodejs_eventloop_lag_seconds']) {
      expect(metrics.series(name).map((sample) => sample.labels.service), name).toEqual(['gateway']);
    }
    expect(metrics.value('process_start_time_seconds')).toBeCloseTo(Date.now() / 1000 - process.uptime(), -1);
    expect(metrics.series('nodejs_version_info', { service: 'gateway', version: process.version })).toHaveLength(1);
  });

  it('keeps label values bounded whatever operation names and paths clients make up', async () => {
    const before = await scrape();
    const names = Array.from({ length: 50 }, () => `Invented_${randomBytes(6).toString('hex')}`);
    for (const name of names) {
      const response = await stack.request(`query ${name} { user(id: "2") { id name } }`);
      expect(response.errors).toBeUndefined();
    }
    for (let i = 0; i < 10; i++) expect((await fetch(stack.urls.gateway.replace(/\/graphql$/, `/made-up-${randomBytes(4).toString('hex')}`))).status).toBe(404);
    const response = await fetch(metricsUrl(stack.urls.gateway));
    const text = await response.text();
    const after = parseExposition(text);

    // Every one ran (none answered from the cache) and was counted as `other`.
    const other = { service: 'gateway', type: 'query', operation: 'other' };
    expect(after.value('graphql_operation_duration_seconds_count', other) - before.value('graphql_operation_duration_seconds_count', other)).toBe(50);
    const operations = new Set(after.series('graphql_operation_duration_seconds_count').map((sample) => sample.labels.operation));
    expect([...operations].filter((value) => !['anonymous', 'other', KNOWN].includes(value ?? ''))).toEqual([]);
    expect(names.filter((name) => text.includes(name))).toEqual([]);
    // Routes and methods come from fixed sets too.
    const routes = after.labelValues('route');
    expect(routes).toContain('other');
    expect([...routes].filter((route) => !['/graphql', '/healthz', '/readyz', '/metrics', 'other'].includes(route))).toEqual([]);
    expect([...after.labelValues('method')].filter((method) => !['GET', 'POST', 'OPTIONS', 'HEAD', 'other'].includes(method))).toEqual([]);
    // A handful of series per family, though 60 distinct names and paths came in.
    expect(after.series('http_request_duration_seconds_count', { service: 'gateway' }).length).toBeLessThan(10);
    expect(after.series('graphql_operation_duration_seconds_count', { service: 'gateway' }).length).toBeLessThan(10);
  });

  it('serves only its own service\'s series on each subgraph\'s /metrics', async () => {
    for (const service of ['users', 'orders'] as const) {
      const metrics = await scrape(metricsUrl(stack.urls[service]));
      expect(metrics.labelValues('service'), service).toEqual(new Set([service]));
      expect(metrics.value('http_request_duration_seconds_count', { route: '/graphql' })).toBeGreaterThan(0);
      expect(metrics.value('db_query_duration_seconds_count', { db: service })).toBeGreaterThan(0);
      expect(metrics.series('db_pool_connections_max', { db: service })).toHaveLength(1);
      // Neither the gateway's concerns nor the process's (the composition root owns those).
      const prefixes = [...metrics.families.keys()].map((name) => name.split('_')[0]);
      expect(new Set(prefixes)).toEqual(new Set(['http', 'graphql', 'db', 'events', ...(service === 'users' ? ['ws'] : [])]));
    }
  });
});
