// Tracing end to end: one request through the in-process stack (gateway, users, orders on real Postgres) with
// each service's tracer provider exporting to an in-memory exporter, then the same stack with tracing off.
import type { IncomingHttpHeaders } from 'node:http';
import { InMemorySpanExporter, type ReadableSpan } from '@fed/platform';
import { waitFor } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import { startTestStack, type TestStack } from './harness.ts';

// Each test asks for a different page size: a repeated query would be answered by the response cache.
const nested = (first: number) => `query NestedTrace {
  users(first: ${first}) { edges { node { id name orders(first: 2) { edges { node { id status items { sku quantity } } } } } } }
}`;

type Subgraph = 'users' | 'orders';

/** Headers of every request each subgraph's HTTP server receives (what the gateway propagated). */
function recordSubgraphHeaders(stack: TestStack): Record<Subgraph, IncomingHttpHeaders[]> {
  const seen: Record<Subgraph, IncomingHttpHeaders[]> = { users: [], orders: [] };
  for (const name of ['users', 'orders'] as const) stack.httpServers[name].on('request', (req: { headers: IncomingHttpHeaders }) => seen[name].push(req.headers));
  return seen;
}

const serviceOf = (span: ReadableSpan) => span.resource.attributes['service.name'];
const idOf = (span: ReadableSpan) => span.spanContext().spanId;
const traceOf = (span: ReadableSpan) => span.spanContext().traceId;
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

/** `span`'s ancestors within `spans`, nearest first (stops where a parent is not among them). */
function ancestors(span: ReadableSpan, spans: readonly ReadableSpan[]): ReadableSpan[] {
  const byId = new Map(spans.map((s) => [idOf(s), s]));
  const chain: ReadableSpan[] = [];
  for (let parent = byId.get(parentOf(span) ?? ''); parent; parent = byId.get(parentOf(parent) ?? '')) chain.push(parent);
  return chain;
}

/** The trace id in a W3C traceparent header (version-traceid-parentid-flags). */
const traceIdIn = (traceparent: string | string[] | undefined) => {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(String(traceparent));
  return match?.[1];
};

describe('tracing on: one request, one trace across the gateway and both subgraphs', () => {
  const exporter = new InMemorySpanExporter();
  let stack: TestStack;
  let seen: Record<Subgraph, IncomingHttpHeaders[]>;

  beforeAll(async () => {
    stack = await startTestStack({ telemetry: { tracing: { exporter, batch: false } } });
    await seed(stack.databases, { users: 3, ordersPerUser: 2 });
    seen = recordSubgraphHeaders(stack);
  });
  afterAll(() => stack?.teardown());

  it('links the gateway plan and fetches, both subgraphs\' server spans and their Postgres spans in one trace', async () => {
    exporter.reset();
    const requestId = 'trace-test-nested-1';
    const response = await stack.request<{ users: { edges: { node: { orders: { edges: { node: { items: unknown[] } }[] } } }[] } }>(nested(3), undefined, {
      ...stack.admin,
      'x-request-id': requestId,
    });
    expect(response.errors).toBeUndefined();
    const firstOrder = response.data?.users.edges[0]?.node.orders.edges[0]?.node;
    expect(firstOrder?.items.length).toBeGreaterThan(0);

    // The trace the gateway propagated to the subgraphs for this request (found by its request id).
    const propagated = (name: Subgraph) => seen[name].filter((headers) => headers['x-request-id'] === requestId).map((headers) => traceIdIn(headers.traceparent));
    expect(propagated('users').length).toBeGreaterThan(0);
    expect(propagated('orders').length).toBeGreaterThan(0);
    const traceId = propagated('users')[0];
    expect(traceId).toBeDefined();
    expect(new Set([...propagated('users'), ...propagated('orders')])).toEqual(new Set([traceId]));

    // The gateway's server span ends when the response is closed, just after the client has read it.
    const root = await waitFor(() => {
      const found = exporter.getFinishedSpans().filter((span) => traceOf(span) === traceId && serviceOf(span) === 'gateway' && span.name === 'POST /graphql');
      expect(found).toHaveLength(1);
      return found[0] as ReadableSpan;
    });
    expect(root.parentSpanContext).toBeUndefined();
    expect(root.attributes['http.response.status_code']).toBe(200);

    const trace = exporter.getFinishedSpans().filter((span) => traceOf(span) === traceId);
    // One tree: a single root (the gateway's server span), and every other span's parent is in the trace.
    expect(trace.filter((span) => !span.parentSpanContext)).toEqual([root]);
    const ids = new Set(trace.map(idOf));
    expect(trace.filter((span) => span !== root && !ids.has(parentOf(span) ?? ''))).toEqual([]);
    expect(new Set(trace.map(serviceOf))).toEqual(new Set(['gateway', 'users', 'orders']));

    const gatewaySpan = (name: string) => trace.filter((span) => serviceOf(span) === 'gateway' && span.name === name);
    expect(gatewaySpan('gateway.plan')).toHaveLength(1);
    expect(ancestors(gatewaySpan('gateway.plan')[0] as ReadableSpan, trace)).toContain(root);

    for (const subgraph of ['users', 'orders'] as const) {
      const fetches = gatewaySpan('gateway.fetch').filter((span) => span.attributes.service === subgraph);
      expect(fetches.length, `gateway.fetch spans for ${subgraph}`).toBeGreaterThan(0);
      const servers = trace.filter((span) => serviceOf(span) === subgraph && span.name === 'POST /graphql');
      // One server span per fetch, each a direct child of its fetch span: traceparent crossed HTTP.
      expect(servers).toHaveLength(fetches.length);
      for (const server of servers) {
        expect(fetches.map(idOf)).toContain(parentOf(server));
        expect(server.attributes['http.response.status_code']).toBe(200);
      }
      const statements = trace.filter((span) => serviceOf(span) === subgraph && span.attributes['db.system.name'] === 'postgresql');
      expect(statements.length, `Postgres spans in ${subgraph}`).toBeGreaterThan(0);
      for (const statement of statements) {
        expect(statement.attributes['db.namespace']).toBe(subgraph);
        expect(statement.name).toMatch(/^SELECT /);
        expect(ancestors(statement, trace).some((span) => servers.includes(span))).toBe(true);
      }
    }
  });

  it('continues a caller\'s trace from its traceparent, and records nothing when the caller did not sample it', async () => {
    const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const sampled = await stack.request(nested(2), undefined, { ...stack.admin, traceparent: `00-${callerTrace}-${callerSpan}-01` });
    expect(sampled.errors).toBeUndefined();
    const root = await waitFor(() => {
      const found = exporter.getFinishedSpans().filter((span) => traceOf(span) === callerTrace && serviceOf(span) === 'gateway' && span.name === 'POST /graphql');
      expect(found).toHaveLength(1);
      return found[0] as ReadableSpan;
    });
    expect(root.parentSpanContext).toMatchObject({ traceId: callerTrace, spanId: callerSpan, isRemote: true });
    const services = new Set(exporter.getFinishedSpans().filter((span) => traceOf(span) === callerTrace).map(serviceOf));
    expect(services).toEqual(new Set(['gateway', 'users', 'orders']));

    const unsampledTrace = '0af7651916cd43dd8448eb211c80319c';
    const before = seen.users.length;
    const unsampled = await stack.request(nested(1), undefined, { ...stack.admin, traceparent: `00-${unsampledTrace}-b7ad6b7169203331-00` });
    expect(unsampled.errors).toBeUndefined();
    // The decision travels on (flags 00), and no service records a span of that trace.
    const forwarded = seen.users.slice(before).map((headers) => String(headers.traceparent));
    expect(forwarded.length).toBeGreaterThan(0);
    for (const header of forwarded) expect(header).toMatch(new RegExp(`^00-${unsampledTrace}-[0-9a-f]{16}-00$`));
    expect(exporter.getFinishedSpans().filter((span) => traceOf(span) === unsampledTrace)).toEqual([]);
  });
});

describe('tracing off (the default)', () => {
  let stack: TestStack;
  let seen: Record<Subgraph, IncomingHttpHeaders[]>;

  beforeAll(async () => {
    // Started after a traced stack in the same process stopped: its global provider must be gone with it.
    stack = await startTestStack();
    await seed(stack.databases, { users: 3, ordersPerUser: 2 });
    seen = recordSubgraphHeaders(stack);
  });
  afterAll(() => stack?.teardown());

  it('sends no traceparent to the subgraphs, while the request id still travels', async () => {
    const response = await stack.request(nested(3), undefined, { ...stack.admin, 'x-request-id': 'untraced-1' });
    expect(response.errors).toBeUndefined();
    for (const name of ['users', 'orders'] as const) {
      const forwarded = seen[name].filter((headers) => headers['x-request-id'] === 'untraced-1');
      expect(forwarded.length, `requests to ${name}`).toBeGreaterThan(0);
      for (const headers of forwarded) expect(headers.traceparent).toBeUndefined();
    }
  });
});
