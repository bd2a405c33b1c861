import { describe, expect, it } from 'vitest';
import { ANONYMOUS_OPERATION, Metrics, OTHER_OPERATION, renderMetrics } from '../src/observability/metrics.ts';
import { parseExposition } from '../src/testing/prometheus.ts';

describe('Metrics.operationLabel', () => {
  const metrics = new Metrics({ service: 'gateway', knownOperations: ['GetUser', 'ListOrders'] });

  it('keeps a known name, and reports every other name as one fixed value', () => {
    expect(metrics.operationLabel('GetUser')).toBe('GetUser');
    expect(metrics.operationLabel('ListOrders')).toBe('ListOrders');
    expect(metrics.operationLabel('getuser')).toBe(OTHER_OPERATION);
    expect(metrics.operationLabel('Invented_1234')).toBe(OTHER_OPERATION);
    expect(metrics.operationLabel('x'.repeat(10_000))).toBe(OTHER_OPERATION);
  });

  it('reports an operation without a name as anonymous', () => {
    for (const name of [undefined, null, '']) expect(metrics.operationLabel(name)).toBe(ANONYMOUS_OPERATION);
  });

  it('maps the names the gateway gives subgraph operations back to the client\'s', () => {
    expect(metrics.operationLabel('GetUser__users__0')).toBe('GetUser');
    expect(metrics.operationLabel('ListOrders__orders__12')).toBe('ListOrders');
    expect(metrics.operationLabel('Invented__users__0')).toBe(OTHER_OPERATION);
    // Only the exact suffix is stripped.
    expect(metrics.operationLabel('GetUser__users')).toBe(OTHER_OPERATION);
    expect(metrics.operationLabel('GetUserX__users__0')).toBe(OTHER_OPERATION);
  });

  it('knows no names unless told', () => {
    expect(new Metrics({ service: 'users' }).operationLabel('GetUser')).toBe(OTHER_OPERATION);
  });
});

describe('Metrics instruments', () => {
  it('returns the existing instrument when a factory registers the same name again', () => {
    const metrics = new Metrics({ service: 'users' });
    const make = () => metrics.counter({ name: 'events_relayed_total', help: 'Events relayed' });
    const first = make();
    expect(make).not.toThrow();
    expect(make()).toBe(first);
    const histogram = metrics.histogram({ name: 'db_query_duration_seconds', help: 'SQL', labelNames: ['db'] as const });
    expect(metrics.histogram({ name: 'db_query_duration_seconds', help: 'SQL', labelNames: ['db'] as const })).toBe(histogram);
    const gauge = metrics.gauge({ name: 'db_pool_connections_max', help: 'Pool size' });
    expect(metrics.gauge({ name: 'db_pool_connections_max', help: 'Pool size' })).toBe(gauge);
  });

  it('labels every series with its service', async () => {
    const metrics = new Metrics({ service: 'orders' });
    metrics.counter({ name: 'graphql_errors_total', help: 'Errors', labelNames: ['code'] as const }).inc({ code: 'NOT_FOUND' });
    const exposition = parseExposition(await metrics.registry.metrics());
    expect(exposition.series('graphql_errors_total')).toEqual([{ name: 'graphql_errors_total', labels: { code: 'NOT_FOUND', service: 'orders' }, value: 1 }]);
  });

  it('reads a counterFrom total at each scrape, without adding it up twice', async () => {
    const metrics = new Metrics({ service: 'gateway' });
    const totals = { hits: 3, misses: 1 };
    metrics.counterFrom({ name: 'cache_requests_total', help: 'Lookups', labelNames: ['result'] as const }, () => [
      [{ result: 'hit' }, totals.hits],
      [{ result: 'miss' }, totals.misses],
    ]);
    const read = async () => parseExposition(await metrics.registry.metrics());
    expect((await read()).value('cache_requests_total', { result: 'hit' })).toBe(3);
    totals.hits = 5;
    expect((await read()).value('cache_requests_total', { result: 'hit' })).toBe(5);
    expect((await read()).value('cache_requests_total', { result: 'miss' })).toBe(1);
  });
});

describe('renderMetrics', () => {
  /** A service's registry with the same families another service has, and values of its own. */
  function service(name: string, requests: number, seconds: number[], processMetrics = false) {
    const metrics = new Metrics({ service: name, processMetrics });
    metrics.counter({ name: 'graphql_errors_total', help: 'Errors in GraphQL responses, by extensions.code', labelNames: ['code'] as const }).inc({ code: 'NOT_FOUND' }, requests);
    const histogram = metrics.histogram({ name: 'http_request_duration_seconds', help: 'HTTP requests', labelNames: ['route'] as const });
    for (const value of seconds) histogram.observe({ route: '/graphql' }, value);
    metrics.gauge({ name: 'db_pool_connections_max', help: 'The pool size' }).set(requests * 10);
    return metrics;
  }

  it('serves several registries as one valid page: one HELP and TYPE per family, every series kept apart', async () => {
    const text = await renderMetrics([service('users', 2, [0.003, 0.2]), service('orders', 5, [1.5])]);
    // Strict: a second HELP or TYPE, a sample outside its family or a repeated series would throw.
    const page = parseExposition(text);
    expect([...page.families.keys()].sort()).toEqual(['db_pool_connections_max', 'graphql_errors_total', 'http_request_duration_seconds']);
    expect(text.match(/^# TYPE http_request_duration_seconds /gm)).toHaveLength(1);
    expect(page.families.get('http_request_duration_seconds')?.type).toBe('histogram');

    expect(page.series('graphql_errors_total').map(({ labels, value }) => [labels.service, value])).toEqual([
      ['users', 2],
      ['orders', 5],
    ]);
    expect(page.value('db_pool_connections_max', { service: 'users' })).toBe(20);
    expect(page.value('db_pool_connections_max', { service: 'orders' })).toBe(50);
    expect(page.value('http_request_duration_seconds_count', { service: 'users' })).toBe(2);
    expect(page.value('http_request_duration_seconds_count', { service: 'orders' })).toBe(1);
    expect(page.value('http_request_duration_seconds_bucket', { service: 'users', le: '0.005' })).toBe(1);
    expect(page.value('http_request_duration_seconds_bucket', { service: 'users', le: '0.25' })).toBe(2);
    expect(page.value('http_request_duration_seconds_bucket', { service: 'orders', le: '1' })).toBe(0);
    expect(page.value('http_request_duration_seconds_bucket', { service: 'orders', le: '+Inf' })).toBe(1);
    expect(page.value('http_request_duration_seconds_sum', { service: 'orders' })).toBeCloseTo(1.5);
  });

  it('keeps every process metric of the registry that has them, process_start_time_seconds included', async () => {
    const gateway = service('gateway', 1, [], true);
    const alone = parseExposition(await gateway.registry.metrics());
    const merged = parseExposition(await renderMetrics([gateway, service('users', 1, [])]));
    const processFamilies = (page: ReturnType<typeof parseExposition>) =>
      [...page.families.keys()].filter((name) => name.startsWith('process_') || name.startsWith('nodejs_')).sort();
    expect(processFamilies(alone)).toContain('process_start_time_seconds');
    expect(processFamilies(merged)).toEqual(processFamilies(alone));
    expect(merged.series('process_start_time_seconds').map((sample) => sample.labels.service)).toEqual(['gateway']);
    expect(merged.value('process_start_time_seconds')).toBe(alone.value('process_start_time_seconds'));
  });

  it('serves a single registry as it is', async () => {
    const users = service('users', 1, [0.1]);
    expect(await renderMetrics([users])).toBe(await users.registry.metrics());
  });
});
