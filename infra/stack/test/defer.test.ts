// @defer on queries, delivered incrementally over HTTP multipart (Apollo's `deferSpec=20220824`), through the
// real gateway: raw fetch for the wire format (framing, parts, paths, labels), the real Apollo Client 4
// (HttpLink, InMemoryCache, Defer20220824Handler) for what an application sees. Every deferred answer is checked
// against the same query sent without @defer, never against pinned data. Real Postgres, real Redis, real
// subgraphs on loopback.
import { ApolloClient, HttpLink, InMemoryCache, gql, type ObservableQuery } from '@apollo/client/core';
import { Defer20220824Handler } from '@apollo/client/incremental';
import { addTypenameToDocument } from '@apollo/client/utilities';
import { parseExposition, startTcpProxy, waitFor, type TcpProxy } from '@fed/platform/testing';
import { Kind, parse, print, visit, type DocumentNode, type GraphQLFormattedError } from 'graphql';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import { startGatewayTo, startTestStack, subgraphRequestsDuring as requestsDuring, type TestStack } from './harness.ts';
import { startHttpFaultProxy } from './http-proxy.ts';
import { mergedData, type Data } from './incremental.ts';

/** What a client that can take incremental delivery sends (the contract's form). */
const MULTIPART = 'multipart/mixed;deferSpec=20220824, application/json';
const MULTIPART_CONTENT_TYPE = 'multipart/mixed; boundary="-"; deferSpec=20220824';
/** Every part's own header, after the delimiter line. */
const PART_HEADER = '\r\ncontent-type: application/json; charset=utf-8\r\n\r\n';
/** `\r\n` + `--` + the boundary `-`: the delimiter; the last one is followed by `--\r\n`. */
const DELIMITER = '\r\n---';

type Path = (string | number)[];

interface IncrementalItem {
  data?: Data | null;
  path: Path;
  label?: string;
  errors?: GraphQLFormattedError[];
}

/** One part of a multipart answer: the initial one (`data`) or a later one (`incremental`). */
interface Part {
  data?: Data | null;
  errors?: GraphQLFormattedError[];
  incremental?: IncrementalItem[];
  hasNext: boolean;
}

interface Answer {
  status: number;
  contentType: string | null;
  headers: Headers;
  text: string;
}

interface JsonBody {
  data?: Data | null;
  errors?: GraphQLFormattedError[];
}

// ---------------------------------------------------------------------------------------------------------------
// The wire format

/** The parts whose end (the next delimiter) has arrived; `done` once the closing delimiter has. */
function readParts(text: string): { parts: Part[]; done: boolean } {
  const segments = text.split(DELIMITER);
  const parts = segments.slice(1, -1).map((segment) => {
    expect(segment.startsWith(PART_HEADER), `a part starts with its content-type header: ${JSON.stringify(segment.slice(0, 80))}`).toBe(true);
    return JSON.parse(segment.slice(PART_HEADER.length)) as Part;
  });
  return { parts, done: segments.length > 1 && segments.at(-1) === '--\r\n' };
}

/** A finished multipart body, checked against Apollo Server's framing byte for byte, split into its parts. */
function partsOf(answer: Answer): Part[] {
  expect(answer.status).toBe(200);
  expect(answer.contentType).toBe(MULTIPART_CONTENT_TYPE);
  expect(answer.text.startsWith(DELIMITER + PART_HEADER), `the body opens with a delimiter and a part header: ${JSON.stringify(answer.text.slice(0, 80))}`).toBe(true);
  expect(answer.text.endsWith('\r\n-----\r\n'), `the body ends with the closing delimiter: ${JSON.stringify(answer.text.slice(-80))}`).toBe(true);
  const { parts, done } = readParts(answer.text);
  expect(done).toBe(true);
  expect(parts.length).toBeGreaterThan(0);
  return parts;
}

/**
 * The initial part carries data and `hasNext: true`, every later one `incremental`; only the last has `hasNext:
 * false`, and it may be that alone (the gateway writes each part as soon as it is ready, before it can know that
 * none follows; the spec allows it and Apollo Client reads it).
 */
function expectWellFormedStream(parts: Part[]) {
  const [initial, ...rest] = parts;
  expect(initial).toHaveProperty('data');
  expect(initial).not.toHaveProperty('incremental');
  expect(rest.length).toBeGreaterThan(0);
  expect(parts.map((part) => part.hasNext)).toEqual([...parts.slice(0, -1).map(() => true), false]);
  const last = rest.at(-1);
  if (last && !last.incremental) {
    expect(last).toEqual({ hasNext: false });
    rest.pop();
  }
  for (const part of rest) {
    expect(part).not.toHaveProperty('data');
    expect(Array.isArray(part.incremental)).toBe(true);
    for (const item of part.incremental ?? []) expect(Array.isArray(item.path)).toBe(true);
  }
}

const itemsOf = (parts: Part[]): IncrementalItem[] => parts.slice(1).flatMap((part) => part.incremental ?? []);

// ---------------------------------------------------------------------------------------------------------------
// Queries and their twins

/** The same operation without any @defer directive (and without the variables only @defer used). */
function withoutDefer(query: string): string {
  const stripped = visit(parse(query), { Directive: (node) => (node.name.value === 'defer' ? null : undefined) });
  const used = new Set<string>();
  visit(stripped, {
    VariableDefinition: () => false,
    Variable: (node) => void used.add(node.name.value),
  });
  return print(visit(stripped, { VariableDefinition: (node) => (used.has(node.variable.name.value) ? undefined : null) }));
}

/** The operation with every deferred fragment removed: what the initial part must carry. */
function primaryOnly(query: string): string {
  const deferred = (node: { directives?: readonly { name: { value: string } }[] | undefined }) => node.directives?.some((directive) => directive.name.value === 'defer');
  const document = visit(parse(query), {
    InlineFragment: (node) => (deferred(node) ? null : undefined),
    FragmentSpread: (node) => (deferred(node) ? null : undefined),
  });
  // Fragment definitions only the deferred spreads used go too.
  const spread = new Set<string>();
  visit(document, { FragmentSpread: (node) => void spread.add(node.name.value) });
  return print({ ...document, definitions: document.definitions.filter((definition) => definition.kind !== Kind.FRAGMENT_DEFINITION || spread.has(definition.name.value)) });
}

/** What Apollo Client sends for `query`: InMemoryCache adds `__typename` to every selection set. */
const asApolloSends = (query: string) => print(addTypenameToDocument(parse(query)) as DocumentNode);

const LIST = `{
  users(first: 3) {
    edges { node { id name ... @defer(label: "orders") { orderCount orders(first: 2) { edges { node { id status } } } } } }
  }
}`;

// ---------------------------------------------------------------------------------------------------------------
// HTTP

async function post(url: string, query: string, variables: Record<string, unknown> | undefined, headers: Record<string, string>): Promise<Answer> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query, variables }) });
  return { status: response.status, contentType: response.headers.get('content-type'), headers: response.headers, text: await response.text() };
}

/** A request whose answer is read as it arrives: the parts so far, and whether the body has ended. */
interface OpenStream {
  status: number;
  contentType: string | null;
  text: string;
  ended: boolean;
  parts(): Part[];
  abort(): void;
}

async function open(url: string, query: string, headers: Record<string, string>): Promise<OpenStream> {
  const control = new AbortController();
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: MULTIPART, ...headers },
    body: JSON.stringify({ query }),
    signal: control.signal,
  });
  const stream: OpenStream = {
    status: response.status,
    contentType: response.headers.get('content-type'),
    text: '',
    ended: false,
    parts: () => readParts(stream.text).parts,
    abort: () => control.abort(),
  };
  void (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) stream.text += decoder.decode(chunk, { stream: true });
    } catch {
      // aborted by the test
    }
    stream.ended = true;
  })();
  return stream;
}


/** Nothing internal may reach a client: no subgraph URL or port, no stack trace. */
function expectNoLeaks(text: string, urls: string[]) {
  for (const url of urls) expect(text).not.toContain(`:${new URL(url).port}`);
  expect(text).not.toMatch(/127\.0\.0\.1|localhost|ECONNREFUSED|fetch failed/i);
  expect(text).not.toMatch(/\n\s+at /);
}

const codesOf = (errors: readonly GraphQLFormattedError[] | undefined) => (errors ?? []).map((error) => error.extensions?.code);

// ---------------------------------------------------------------------------------------------------------------

describe('@defer over multipart HTTP (deferSpec=20220824)', () => {
  let stack: TestStack;
  const cleanups: (() => unknown)[] = [];
  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 4, ordersPerUser: 3 });
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(() => stack?.teardown());

  /** A request to the stack's gateway as an admin (so private fields answer), with `accept` if given. */
  const send = (
    query: string,
    { accept, variables, url = stack.urls.gateway, headers = stack.admin }: { accept?: string; variables?: Record<string, unknown>; url?: string; headers?: Record<string, string> } = {},
  ) => post(url, query, variables, { ...headers, ...(accept ? { accept } : {}) });
  /** The plain JSON answer to `query`, which must succeed without errors. */
  const plain = async (query: string, variables?: Record<string, unknown>, url?: string): Promise<Data> => {
    const answer = await send(query, { variables, url });
    expect(answer.status, answer.text).toBe(200);
    const body = JSON.parse(answer.text) as JsonBody;
    expect(body.errors, answer.text).toBeUndefined();
    return body.data!;
  };
  /**
   * A gateway whose orders subgraph sits behind a gate. Its subgraph timeout is far longer than any test, so a
   * held request ends only when the test releases it, whatever the machine's speed.
   */
  const gatedGateway = async () => {
    const gate = await startHttpFaultProxy(stack.urls.orders);
    cleanups.push(() => gate.close());
    const gateway = await startGatewayTo(stack, stack.urls.users, { subgraphUrls: { users: stack.urls.users, orders: gate.url }, subgraphTimeoutMs: 3_600_000 });
    cleanups.push(() => gateway.stop());
    // Cleanups run last first: held requests go on before the gateway stops, so that it has nothing to wait for.
    cleanups.push(() => gate.release());
    return { gate, gateway };
  };
  /** Sends `query` as a multipart client and checks the stream against its twin without @defer. */
  const expectDeferredEqualsPlain = async (query: string, variables?: Record<string, unknown>) => {
    const expected = await plain(withoutDefer(query), variables);
    const parts = partsOf(await send(query, { accept: MULTIPART, variables }));
    expectWellFormedStream(parts);
    expect(parts.flatMap((part) => [...(part.errors ?? []), ...(part.incremental ?? []).flatMap((item) => item.errors ?? [])])).toEqual([]);
    expect(mergedData(parts)).toEqual(expected);
    return { parts, expected };
  };

  describe('the wire format', () => {
    it('answers 200 multipart/mixed in Apollo’s framing: the primary fields first, then the deferred fragment at its path', async () => {
      const query = '{ user(id: "2") { id name ... @defer { orderCount totalSpentCents } } }';
      const { parts } = await expectDeferredEqualsPlain(query);
      expect(parts[0]).toEqual({ data: await plain(primaryOnly(query)), hasNext: true });
      const items = itemsOf(parts);
      expect(items).toHaveLength(1);
      expect(items[0]?.path).toEqual(['user']);
      // No label asked for, none given.
      expect(items[0]).not.toHaveProperty('label');
      expect(items[0]?.data).toEqual((await plain('{ user(id: "2") { orderCount totalSpentCents } }')).user);
    });

    it('delivers the primary fields while the deferred fragment’s subgraph is still working, then the rest', async () => {
      const { gate, gateway } = await gatedGateway();
      const expected = await plain(withoutDefer(LIST), undefined, gateway.url);

      gate.hold();
      const stream = await open(gateway.url, LIST, stack.admin);
      cleanups.push(() => stream.abort());
      expect(stream.status).toBe(200);
      expect(stream.contentType).toBe(MULTIPART_CONTENT_TYPE);
      // The users are on their way to the client while orders has not answered yet.
      await waitFor(() => expect(stream.parts()).toHaveLength(1));
      expect(gate.held()).toBeGreaterThan(0);
      expect(stream.ended).toBe(false);
      expect(stream.parts()[0]).toEqual({ data: await plain(primaryOnly(LIST), undefined, gateway.url), hasNext: true });

      gate.release();
      await waitFor(() => expect(stream.ended).toBe(true));
      const parts = partsOf({ status: stream.status, contentType: stream.contentType, headers: new Headers(), text: stream.text });
      expectWellFormedStream(parts);
      expect(mergedData(parts)).toEqual(expected);
    });
  });

  describe('the merged answer is the answer without @defer', () => {
    it('a deferred fragment in a list: one item per element, at its index path, with the label', async () => {
      const { parts, expected } = await expectDeferredEqualsPlain(LIST);
      const edges = (expected.users as { edges: unknown[] }).edges;
      expect(edges).toHaveLength(3);
      expect(parts[0]).toEqual({ data: await plain(primaryOnly(LIST)), hasNext: true });
      const items = itemsOf(parts);
      expect(items.map((item) => item.path).sort((a, b) => Number(a[2]) - Number(b[2]))).toEqual(edges.map((_, index) => ['users', 'edges', index, 'node']));
      for (const item of items) {
        expect(item.label).toBe('orders');
        expect(Object.keys(item.data ?? {}).sort()).toEqual(['orderCount', 'orders']);
      }
    });

    it('a deferred named fragment spread', async () => {
      const query = `{ users(first: 3) { edges { node { id name ...UserOrders @defer } } } }
        fragment UserOrders on User { orderCount orders(first: 2) { totalCount edges { node { id status totalCents } } } }`;
      const { parts } = await expectDeferredEqualsPlain(query);
      expect(parts[0]).toEqual({ data: await plain(primaryOnly(query)), hasNext: true });
      const items = itemsOf(parts);
      expect(items.map((item) => item.path).sort((a, b) => Number(a[2]) - Number(b[2]))).toEqual([0, 1, 2].map((index) => ['users', 'edges', index, 'node']));
      for (const item of items) expect(item).not.toHaveProperty('label');
    });

    it('a defer inside a deferred fragment', async () => {
      const query = `{ users(first: 2) { edges { node { id ... @defer(label: "outer") {
        name orders(first: 2) { edges { node { id ... @defer(label: "inner") { status totalCents items { sku quantity } } } } }
      } } } } }`;
      const { parts } = await expectDeferredEqualsPlain(query);
      expect(parts[0]).toEqual({ data: await plain(primaryOnly(query)), hasNext: true });
      // How many parts the inner fragments take is the gateway's choice; every item names one of the two labels.
      for (const item of itemsOf(parts)) expect(['outer', 'inner']).toContain(item.label);
    });

    it('a deferred fragment on the root, across both subgraphs', async () => {
      const query = '{ user(id: "1") { id name } ... @defer(label: "root") { users(first: 2) { totalCount edges { node { id orderCount } } } } }';
      const { parts } = await expectDeferredEqualsPlain(query);
      expect(parts[0]).toEqual({ data: await plain(primaryOnly(query)), hasNext: true });
      expect(itemsOf(parts).map((item) => ({ path: item.path, label: item.label }))).toEqual([{ path: [], label: 'root' }]);
    });
  });

  describe('errors stay where a plain request has them', () => {
    it('carries the primary part’s errors in the initial part', async () => {
      const query = '{ user(id: "999999") { id name } users(first: 2) { edges { node { id ... @defer { orderCount } } } } }';
      const twin = JSON.parse((await send(withoutDefer(query))).text) as JsonBody;
      expect(twin.errors?.length).toBeGreaterThan(0);
      const parts = partsOf(await send(query, { accept: MULTIPART }));
      expectWellFormedStream(parts);
      expect(parts[0]?.errors).toEqual(twin.errors);
      expect(itemsOf(parts).flatMap((item) => item.errors ?? [])).toEqual([]);
      expect(mergedData(parts)).toEqual(twin.data);
    });

    it('applies authorization inside a deferred fragment: an anonymous viewer gets the plain request’s nulls and codes', async () => {
      const anonymous = { headers: {} };
      const twinAnswer = await send(withoutDefer(LIST), anonymous);
      expect(twinAnswer.status).toBe(200);
      const twin = JSON.parse(twinAnswer.text) as JsonBody;
      expect(twin.errors?.length).toBeGreaterThan(0);
      const parts = partsOf(await send(LIST, { ...anonymous, accept: MULTIPART }));
      expectWellFormedStream(parts);
      expect(parts[0]?.errors).toBeUndefined();
      const itemCodes = itemsOf(parts).flatMap((item) => codesOf(item.errors));
      expect(itemCodes.sort()).toEqual(codesOf(twin.errors).sort());
      expect(mergedData(parts)).toEqual(twin.data);
    });
  });

  describe('clients that do not accept multipart, and @defer(if: false)', () => {
    it('gives a client without multipart in Accept one application/json answer, byte-identical to the query without @defer', async () => {
      const twin = await send(withoutDefer(LIST));
      expect(twin.status).toBe(200);
      expect(JSON.parse(twin.text)).not.toHaveProperty('errors');
      for (const accept of [undefined, 'application/json']) {
        const answer = await send(LIST, { accept });
        expect(answer.status).toBe(200);
        expect(answer.contentType).toBe(twin.contentType);
        expect(answer.contentType).toMatch(/^application\/json/);
        expect(answer.text).toBe(twin.text);
      }
    });

    it('defers nothing with @defer(if: false), literal or from a variable, even for a multipart client', async () => {
      const literal = '{ users(first: 2) { edges { node { id name ... @defer(if: false) { orderCount } } } } }';
      const fromVariable = 'query ($d: Boolean!) { users(first: 2) { edges { node { id name ... @defer(if: $d) { orderCount } } } } }';
      const expected = await plain(withoutDefer(literal));
      for (const [query, variables] of [
        [literal, undefined],
        [fromVariable, { d: false }],
      ] as const) {
        const answer = await send(query, { accept: MULTIPART, variables });
        expect(answer.status).toBe(200);
        expect(answer.contentType).toMatch(/^application\/json/);
        const body = JSON.parse(answer.text) as JsonBody & { hasNext?: boolean };
        expect(body).toEqual({ data: expected });
      }
    });

    it('streams with @defer(if: $d) when d is true', async () => {
      const query = 'query ($d: Boolean!) { users(first: 2) { edges { node { id name ... @defer(if: $d, label: "count") { orderCount } } } } }';
      const { parts } = await expectDeferredEqualsPlain(query, { d: true });
      expect(itemsOf(parts).map((item) => item.label)).toEqual(['count', 'count']);
    });
  });

  describe('validation and limits see the whole operation', () => {
    it('knows @defer, and refuses it on a field with 400 GRAPHQL_VALIDATION_FAILED', async () => {
      for (const accept of [MULTIPART, undefined]) {
        const answer = await send('{ user(id: "2") { id name @defer } }', { accept });
        expect(answer.status).toBe(400);
        expect(answer.contentType).toMatch(/^application\/json/);
        const body = JSON.parse(answer.text) as JsonBody;
        expect(codesOf(body.errors)).toEqual(['GRAPHQL_VALIDATION_FAILED']);
        // Refused for where it stands, not as a directive the gateway does not know.
        expect(body.errors?.[0]?.message).not.toMatch(/unknown directive/i);
      }
    });

    it('refuses a query whose deferred fragment goes past the depth limit exactly as its twin without @defer', async () => {
      const gateway = await startGatewayTo(stack, stack.urls.users, { limits: { maxDepth: 5 } });
      cleanups.push(() => gateway.stop());
      // users › edges › node › orders › edges › node › id: 7 levels, the primary part alone only 4.
      const query = '{ users(first: 2) { edges { node { id ... @defer { orders(first: 2) { edges { node { id } } } } } } } }';
      const primary = await send(primaryOnly(query), { url: gateway.url });
      expect(primary.status, 'the primary part alone is within the limit').toBe(200);
      const twin = await send(withoutDefer(query), { url: gateway.url });
      expect(twin.status).toBe(400);
      const twinCodes = codesOf((JSON.parse(twin.text) as JsonBody).errors);
      expect(twinCodes).toEqual(['DEPTH_LIMIT_EXCEEDED']);

      const deferred = await send(query, { url: gateway.url, accept: MULTIPART });
      expect(deferred.status).toBe(400);
      expect(deferred.contentType).toMatch(/^application\/json/);
      expect(codesOf((JSON.parse(deferred.text) as JsonBody).errors)).toEqual(twinCodes);
    });

    it('refuses aliases hidden in a deferred fragment exactly as its twin without @defer', async () => {
      const aliases = Array.from({ length: 20 }, (_, index) => `a${index}: name`).join(' ');
      const query = `{ user(id: "2") { id ... @defer { ${aliases} } } }`;
      expect((await send(primaryOnly(query))).status).toBe(200);
      const twin = await send(withoutDefer(query));
      expect(twin.status).toBe(400);
      const twinCodes = codesOf((JSON.parse(twin.text) as JsonBody).errors);
      expect(twinCodes).toEqual(['ALIAS_LIMIT_EXCEEDED']);
      const deferred = await send(query, { accept: MULTIPART });
      expect(deferred.status).toBe(400);
      expect(codesOf((JSON.parse(deferred.text) as JsonBody).errors)).toEqual(twinCodes);
    });
  });

  describe('a deferred fragment whose subgraph is down', () => {
    let orders: TcpProxy;
    let gatewayUrl: string;
    beforeAll(async () => {
      orders = await startTcpProxy(stack.urls.orders);
      const gateway = await startGatewayTo(stack, stack.urls.users, { subgraphUrls: { users: stack.urls.users, orders: orders.url } });
      gatewayUrl = gateway.url;
      return async () => {
        await gateway.stop();
        await orders.close();
      };
    });

    it('still streams the primary data, and the failed fragment carries the errors a plain request gets', async () => {
      const primary = await plain(primaryOnly(LIST), undefined, gatewayUrl);
      await orders.setListening(false);
      // What the gateway answers for this failure in a plain request.
      const twinAnswer = await send(withoutDefer(LIST), { url: gatewayUrl });
      expect(twinAnswer.status).toBe(200);
      const twin = JSON.parse(twinAnswer.text) as JsonBody;
      const twinCodes = new Set(codesOf(twin.errors));
      expect(twinCodes.size).toBeGreaterThan(0);

      const errorsCounted = async () => {
        const exposition = parseExposition(await (await fetch(new URL('/metrics', gatewayUrl))).text());
        return new Map([...twinCodes].map((code) => [String(code), exposition.value('graphql_errors_total', { code: String(code) })]));
      };
      const countedBefore = await errorsCounted();
      const answer = await send(LIST, { url: gatewayUrl, accept: MULTIPART });
      const parts = partsOf(answer);
      expectWellFormedStream(parts);
      // Errors of later parts count in the metrics as a plain request's do.
      const countedAfter = await errorsCounted();
      for (const code of [...twinCodes].map(String)) {
        const inItems = parts.flatMap((part) => part.incremental ?? []).flatMap((item) => item.errors ?? []).filter((error) => error.extensions?.code === code).length;
        expect(countedAfter.get(code)! - countedBefore.get(code)!, code).toBe(inItems);
      }
      // The users subgraph answered: the initial part is whole, without errors.
      expect(parts[0]).toEqual({ data: primary, hasNext: true });
      const items = itemsOf(parts);
      expect(items.length).toBeGreaterThan(0);
      const itemErrors = items.flatMap((item) => item.errors ?? []);
      expect(itemErrors.length).toBeGreaterThan(0);
      expect(new Set(codesOf(itemErrors))).toEqual(twinCodes);
      for (const item of items) expect(item.label).toBe('orders');
      // Merged, the client has exactly what the plain request gave.
      expect(mergedData(parts)).toEqual(twin.data);
      expectNoLeaks(answer.text, [stack.urls.orders, orders.url]);
    });
  });

  describe('the response cache', () => {
    const subgraphRequestsDuring = <T>(call: () => Promise<T>) => requestsDuring(stack, call);

    it('serves a multipart client a cached complete answer as one part with hasNext: false', async () => {
      // Public fields only, and a shape no other test asks for.
      const query = '{ users(first: 4) { totalCount edges { cursor node { id ... @defer(label: "cached") { name createdAt } } } } }';
      const stored = await subgraphRequestsDuring(() => send(query));
      expect(stored.value.status).toBe(200);
      expect(stored.requests).toBeGreaterThan(0);
      const complete = JSON.parse(stored.value.text) as JsonBody;
      expect(complete.errors).toBeUndefined();
      expect(complete.data).toEqual(await plain(withoutDefer(query)));

      // The plain client is not kept waiting for the store's write: ask until it has landed.
      const hit = await waitFor(async () => {
        const again = await subgraphRequestsDuring(() => send(query, { accept: MULTIPART }));
        expect(again.requests).toBe(0);
        return again;
      });
      expect(partsOf(hit.value)).toEqual([{ data: complete.data, hasNext: false }]);
    });

    it('stores the whole answer once a multipart client’s parts all ran, for multipart and plain clients alike', async () => {
      const query = '{ users(first: 3) { edges { node { id ... @defer(label: "whole") { name createdAt } } } } }';
      const streamed = await subgraphRequestsDuring(() => send(query, { accept: MULTIPART }));
      expect(streamed.requests).toBeGreaterThan(0);
      const parts = partsOf(streamed.value);
      expectWellFormedStream(parts);
      const whole = mergedData(parts);
      expect(whole).toEqual(await plain(withoutDefer(query)));

      // Stored after the last part was written: the next multipart client gets the whole answer as one part.
      const hit = await waitFor(async () => {
        const again = await subgraphRequestsDuring(() => send(query, { accept: MULTIPART }));
        expect(again.requests).toBe(0);
        return again.value;
      });
      expect(partsOf(hit)).toEqual([{ data: whole, hasNext: false }]);
      // A plain client gets it too, keys in the order of the query without @defer (what a plain request stores).
      const plainHit = await subgraphRequestsDuring(() => send(query));
      expect(plainHit.requests).toBe(0);
      expect(plainHit.value.text).toBe(`${JSON.stringify({ data: await plain(withoutDefer(query)) })}\n`);
    });
  });

  describe('Apollo Client 4 (HttpLink, InMemoryCache, Defer20220824Handler)', () => {
    const clientFor = (uri: string) => {
      const client = new ApolloClient({
        link: new HttpLink({ uri, headers: stack.admin }),
        cache: new InMemoryCache(),
        incrementalHandler: new Defer20220824Handler(),
      });
      cleanups.push(() => client.stop());
      return client;
    };

    it('watchQuery emits the primary fields first, then the complete result of the query without @defer', async () => {
      // Orders is held until the partial result has reached the application, so that it is seen whatever the timing.
      const { gate, gateway } = await gatedGateway();
      const expected = await plain(asApolloSends(withoutDefer(LIST)), undefined, gateway.url);
      const primary = await plain(asApolloSends(primaryOnly(LIST)), undefined, gateway.url);

      gate.hold();
      const results: ObservableQuery.Result<Data>[] = [];
      const errors: unknown[] = [];
      const observable = clientFor(gateway.url).watchQuery<Data>({ query: gql(LIST), fetchPolicy: 'no-cache' });
      const subscription = observable.subscribe({ next: (result) => results.push(result), error: (error) => errors.push(error) });
      cleanups.push(() => subscription.unsubscribe());

      await waitFor(() => expect(results.some((result) => result.dataState === 'streaming')).toBe(true));
      const partial = results.find((result) => result.dataState === 'streaming')!;
      expect(partial.data).toEqual(primary);
      for (const edge of (partial.data as { users: { edges: { node: Data }[] } }).users.edges) {
        expect(edge.node).not.toHaveProperty('orders');
        expect(edge.node).not.toHaveProperty('orderCount');
      }

      gate.release();
      await waitFor(() => expect(results.at(-1)?.dataState).toBe('complete'));
      const last = results.at(-1)!;
      expect(last.data).toEqual(expected);
      expect(last.loading).toBe(false);
      expect(last.error).toBeUndefined();
      expect(errors).toEqual([]);
    });

    it('client.query resolves a deferred query with the complete data', async () => {
      const query = `{ users(first: 3) { edges { node { id name ...UserOrders @defer(label: "orders") } } } }
        fragment UserOrders on User { orderCount orders(first: 2) { edges { node { id status ... @defer { totalCents } } } } }`;
      const expected = await plain(asApolloSends(withoutDefer(query)));
      const result = await clientFor(stack.urls.gateway).query<Data>({ query: gql(query), fetchPolicy: 'network-only' });
      expect(result.error).toBeUndefined();
      expect(result.data).toEqual(expected);
    });
  });
});
