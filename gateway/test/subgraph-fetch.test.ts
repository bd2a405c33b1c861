// Gateway → subgraph fetches: identical reads in flight at once share one HTTP request (keyed by the exact body
// and the signed viewer, never a mutation's, and never one sent before a write this gateway saw complete), each
// client still gets its own complete answer, and the keep-alive
// transport keeps the old contract (timeouts, refused connections, Cache-Control, 5xx for the breaker).
// Everything runs over real HTTP on loopback: real subgraphs hold their resolvers at checkpoints the test opens,
// so that requests overlap deterministically, and record the viewer each request was signed for.
import { listen, type Viewer } from '@fed/platform';
import { graphql, parseExposition, waitFor, watch, type GraphQLResponse } from '@fed/platform/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEVELOPMENT_AUTH } from '../src/config.ts';
import { createGateway, mintToken, type BreakerPolicy, type Gateway } from '../src/gateway.ts';
import { createSubgraphTransport } from '../src/subgraphs/transport.ts';
import { testGatewayDeps } from './fixtures/composed-gateway.ts';
import {
  composeSupergraph,
  expected,
  ITEM_IDS,
  NOTICE_MAX_AGE_S,
  refusedUrl,
  startAlpha,
  startBeta,
  startFailingSubgraph,
  startHangingSubgraph,
  startIdleClosingSubgraph,
  startStallingSubgraph,
  type StubSubgraph,
  type TestSubgraph,
} from './fixtures/subgraph-fetch-graph.ts';

/** How many identical requests each concurrency test sends at once. */
const K = 10;

const BOARD = '{ board { version seenBy items { id title } } }';

interface Board {
  board: {
    version: number;
    seenBy: string;
    items: { id: string; title: string; price?: string | null; extra?: { detail: string } | null }[];
  };
}

interface BumpResult {
  bump: { version: number; seenBy: string; items: { id: string; price: string | null }[] };
}

interface TestGateway {
  gateway: Gateway;
  url: string;
  query<T = Board>(query: string, headers?: Record<string, string>): Promise<GraphQLResponse<T>>;
  /** One sample of the gateway's GET /metrics (0 when the series does not exist yet). */
  metric(name: string, labels: Record<string, string>): Promise<number>;
  deduplicated(subgraph: string): Promise<number>;
}

async function startGateway(
  subgraphs: { alpha: TestSubgraph; beta: TestSubgraph },
  options: { dedupe?: boolean; breaker?: BreakerPolicy | null; subgraphTimeoutMs?: number; urls?: { alpha?: string; beta?: string } } = {},
): Promise<TestGateway> {
  const urls = { alpha: options.urls?.alpha ?? subgraphs.alpha.url, beta: options.urls?.beta ?? subgraphs.beta.url };
  const gateway = await createGateway({
    supergraphSdl: composeSupergraph(urls),
    subgraphUrls: urls,
    subgraphSecrets: { alpha: subgraphs.alpha.secret, beta: subgraphs.beta.secret },
    subgraphTimeoutMs: options.subgraphTimeoutMs ?? 10_000,
    ...(options.dedupe === undefined ? {} : { dedupe: options.dedupe }),
    ...(options.breaker === undefined ? {} : { breaker: options.breaker }),
    ...testGatewayDeps(),
  });
  const port = await listen(gateway.httpServer, 0, '127.0.0.1');
  const url = `http://127.0.0.1:${port}/graphql`;
  const metric = async (name: string, labels: Record<string, string>) =>
    parseExposition(await (await fetch(new URL('/metrics', url))).text()).value(name, labels);
  return {
    gateway,
    url,
    query: (query, headers = {}) => graphql(url, query, undefined, headers),
    metric,
    deduplicated: (subgraph) => metric('subgraph_fetches_deduplicated_total', { subgraph }),
  };
}

const signIn = async (viewer: Viewer | null): Promise<Record<string, string>> =>
  viewer ? { authorization: `Bearer ${await mintToken({ ...DEVELOPMENT_AUTH, sub: viewer.userId, role: viewer.role })}` } : {};

/** The board a viewer must get at a version, as the alpha subgraph's rules compute it. */
const boardFor = (viewer: Viewer | null, version: number) => ({
  board: { version, seenBy: expected.seenBy(viewer), items: ITEM_IDS.map((id) => ({ id, title: expected.title(id, version) })) },
});

/**
 * Counts, from now on, the requests a subgraph received that resolved `field`, plus the fetches the gateway
 * answered from one already in flight. Their sum reaching N means N fetches have reached the gateway's fetcher.
 */
async function fetchCounter(gateway: TestGateway, subgraph: TestSubgraph, field: string) {
  const requestsBefore = subgraph.requestsFor(field).length;
  const sharedBefore = await gateway.deduplicated(subgraph.name);
  const counter = {
    requests: () => subgraph.requestsFor(field).slice(requestsBefore),
    shared: async () => (await gateway.deduplicated(subgraph.name)) - sharedBefore,
    /** Waits until `n` fetches have reached the gateway's fetcher: sent to the subgraph or sharing one. */
    reached: (n: number) => waitFor(async () => expect(counter.requests().length + (await counter.shared())).toBe(n)),
  };
  return counter;
}

const BUMP = 'mutation { bump { version seenBy } }';

/**
 * Read-your-writes on one gateway. A viewer's query reaches alpha, reads the board and is held there (it will
 * answer the state from before the write); the same viewer's mutation then completes through the gateway; and
 * then the viewer sends the same query again while the first is still held. That one must not join the held
 * fetch: it reaches alpha itself and answers the write, while the first is still held. Once released, the
 * first answers the old state (it was sent before the write). Returns the counter, for what the caller checks.
 */
async function readAfterWriteWhileAnOlderReadIsHeld(gw: TestGateway, alpha: Awaited<ReturnType<typeof startAlpha>>, viewer: Viewer) {
  const headers = await signIn(viewer);
  const before = alpha.state.version;
  const board = await fetchCounter(gw, alpha, 'Query.board');
  alpha.checkpoints.holdNext('board');
  const first = watch(gw.query(BOARD, headers));
  await board.reached(1);
  expect(board.requests()).toHaveLength(1);

  const bumped = await gw.query<BumpResult>(BUMP, headers);
  expect(bumped.errors).toBeUndefined();
  expect(bumped.data?.bump).toEqual({ version: before + 1, seenBy: expected.seenBy(viewer) });
  expect(first.settled()).toBe(false);

  const second = gw.query(BOARD, headers);
  // Checked before waiting for its answer: a read that joined the held fetch would wait for the first.
  await board.reached(2);
  expect(board.requests()).toHaveLength(2);
  expect(await board.shared()).toBe(0);
  const secondResponse = await second;
  expect(secondResponse.errors).toBeUndefined();
  expect(secondResponse.data).toEqual(boardFor(viewer, before + 1));
  // The first is still held at alpha: the second never waited for it.
  expect(first.settled()).toBe(false);
  for (const request of board.requests()) expect(request).toMatchObject({ viewer, readPrimary: false });

  alpha.checkpoints.open('board');
  const firstResponse = await first.promise;
  expect(firstResponse.errors).toBeUndefined();
  // Sent before the write, it answers what was there before it: that is fine.
  expect(firstResponse.data).toEqual(boardFor(viewer, before));
  expect(board.requests()).toHaveLength(2);
  return board;
}

describe('in-flight dedupe of subgraph fetches (on by default)', () => {
  let alpha: Awaited<ReturnType<typeof startAlpha>>;
  let beta: TestSubgraph;
  let gw: TestGateway;

  beforeAll(async () => {
    alpha = await startAlpha();
    beta = await startBeta();
    gw = await startGateway({ alpha, beta });
  });
  // A failed test must not leave requests held for the next one.
  afterEach(() => {
    alpha?.checkpoints.openAll();
    beta?.checkpoints.openAll();
  });
  afterAll(async () => {
    await gw?.gateway.stop();
    await alpha?.stop();
    await beta?.stop();
  });

  it(`costs the subgraph one request for ${K} identical concurrent queries of one viewer, and each client gets the full data`, async () => {
    const viewer: Viewer = { userId: '7', role: 'user' };
    const headers = await signIn(viewer);
    const board = await fetchCounter(gw, alpha, 'Query.board');
    alpha.checkpoints.close('board');
    const answers = Array.from({ length: K }, () => gw.query(BOARD, headers));
    await board.reached(K);
    // All K are waiting on the gateway's one fetch while alpha holds it.
    expect(board.requests()).toHaveLength(1);
    alpha.checkpoints.open('board');

    const responses = await Promise.all(answers);
    const want = boardFor(viewer, alpha.state.version);
    for (const response of responses) {
      expect(response.status).toBe(200);
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual(want);
    }
    expect(board.requests()).toEqual([expect.objectContaining({ viewer, readPrimary: false })]);
    expect(await board.shared()).toBe(K - 1);
  });

  it('never shares a fetch between viewers: each viewer gets its own answer, and the subgraph one request per viewer', async () => {
    const viewers: (Viewer | null)[] = [{ userId: '1', role: 'user' }, { userId: '2', role: 'user' }, { userId: '1', role: 'admin' }, null];
    const signedIn = await Promise.all(viewers.map(async (viewer) => ({ viewer, headers: await signIn(viewer) })));
    const board = await fetchCounter(gw, alpha, 'Query.board');
    alpha.checkpoints.close('board');
    // Two clients per viewer, all at once: the pairs may share, the viewers may not.
    const answers = signedIn.flatMap(({ viewer, headers }) => [0, 1].map(async () => ({ viewer, response: await gw.query(BOARD, headers) })));
    await board.reached(2 * viewers.length);
    expect(board.requests().map((request) => request.viewer)).toHaveLength(viewers.length);
    expect(board.requests().map((request) => request.viewer)).toEqual(expect.arrayContaining(viewers));
    alpha.checkpoints.open('board');

    for (const { viewer, response } of await Promise.all(answers)) {
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual(boardFor(viewer, alpha.state.version));
    }
    expect(await board.shared()).toBe(viewers.length);
  });

  it(`never shares a mutation’s fetches: ${K} identical concurrent mutations each run, and each of their entity fetches too`, async () => {
    const viewer: Viewer = { userId: '3', role: 'user' };
    const headers = await signIn(viewer);
    const versionBefore = alpha.state.version;
    const bump = await fetchCounter(gw, alpha, 'Mutation.bump');
    const prices = await fetchCounter(gw, beta, 'Item.price(EUR)');
    alpha.checkpoints.close('bump');
    beta.checkpoints.close('price(EUR)');
    const answers = Array.from({ length: K }, () =>
      gw.query<BumpResult>('mutation { bump { version seenBy items { id price(currency: "EUR") } } }', headers),
    );
    // Every mutation reached alpha while all were held: none waited on another's fetch.
    await bump.reached(K);
    expect(bump.requests()).toHaveLength(K);
    alpha.checkpoints.open('bump');
    // The plan's follow-up fetch to beta has identical bodies for all K, and still each one runs.
    await prices.reached(K);
    expect(prices.requests()).toHaveLength(K);
    beta.checkpoints.open('price(EUR)');

    const responses = await Promise.all(answers);
    for (const response of responses) {
      expect(response.errors).toBeUndefined();
      expect(response.data?.bump.seenBy).toBe(expected.seenBy(viewer));
      expect(response.data?.bump.items).toEqual(ITEM_IDS.map((id) => ({ id, price: expected.price(id, 'EUR') })));
    }
    // Each client saw its own write.
    const versions = responses.map((response) => response.data?.bump.version).sort((a, b) => (a ?? 0) - (b ?? 0));
    expect(versions).toEqual(Array.from({ length: K }, (_, i) => versionBefore + i + 1));
    expect(alpha.state.version).toBe(versionBefore + K);
    for (const request of [...bump.requests(), ...prices.requests()]) expect(request).toMatchObject({ viewer, readPrimary: true });
    expect(await bump.shared()).toBe(0);
    expect(await prices.shared()).toBe(0);
  });

  it('shares only while in flight: the same query again, after the first answered, reaches the subgraph and sees its new state', async () => {
    const viewer: Viewer = { userId: '4', role: 'user' };
    const headers = await signIn(viewer);
    const board = await fetchCounter(gw, alpha, 'Query.board');
    const first = await gw.query(BOARD, headers);
    expect(first.errors).toBeUndefined();
    expect(first.data).toEqual(boardFor(viewer, alpha.state.version));

    alpha.state.version += 1;
    const second = await gw.query(BOARD, headers);
    expect(second.errors).toBeUndefined();
    expect(second.data).toEqual(boardFor(viewer, alpha.state.version));
    expect(second.data?.board.version).toBe((first.data?.board.version ?? 0) + 1);
    expect(board.requests()).toHaveLength(2);
    expect(await board.shared()).toBe(0);
  });

  it('gives each client sharing a fetch its own objects: another client’s later merge never shows in its answer', async () => {
    // Both plans start with the same alpha fetch (the board's items), then differ: A adds EUR prices and then
    // the extras' details (a third fetch, back to alpha); B adds USD prices. The fetches are released so that
    // B merges its USD prices after A merged its EUR prices but before A's answer is built. Had they shared
    // the objects of the first fetch, A would answer with B's prices.
    const viewer: Viewer = { userId: '5', role: 'user' };
    const headers = await signIn(viewer);
    const A = '{ board { items { id title price(currency: "EUR") extra { detail } } } }';
    const B = '{ board { items { id title price(currency: "USD") } } }';
    const board = await fetchCounter(gw, alpha, 'Query.board');
    const eur = await fetchCounter(gw, beta, 'Item.price(EUR)');
    const usd = await fetchCounter(gw, beta, 'Item.price(USD)');
    const details = await fetchCounter(gw, alpha, 'Extra.detail');
    for (const checkpoint of ['board', 'detail']) alpha.checkpoints.close(checkpoint);
    for (const checkpoint of ['price(EUR)', 'price(USD)']) beta.checkpoints.close(checkpoint);

    const answerA = gw.query(A, headers);
    const answerB = gw.query(B, headers);
    await board.reached(2);
    expect(board.requests()).toHaveLength(1);
    alpha.checkpoints.open('board');

    await waitFor(() => expect([eur.requests().length, usd.requests().length]).toEqual([1, 1]));
    beta.checkpoints.open('price(EUR)');
    // A merged its EUR prices and now waits on its third fetch.
    await waitFor(() => expect(details.requests()).toHaveLength(1));
    beta.checkpoints.open('price(USD)');
    const responseB = await answerB;
    expect(responseB.errors).toBeUndefined();
    expect(responseB.data).toEqual({
      board: { items: ITEM_IDS.map((id) => ({ id, title: expected.title(id, alpha.state.version), price: expected.price(id, 'USD') })) },
    });

    alpha.checkpoints.open('detail');
    const responseA = await answerA;
    expect(responseA.errors).toBeUndefined();
    expect(responseA.data).toEqual({
      board: {
        items: ITEM_IDS.map((id) => ({
          id,
          title: expected.title(id, alpha.state.version),
          price: expected.price(id, 'EUR'),
          extra: { detail: expected.detail(expected.extraId(id)) },
        })),
      },
    });
    expect(await board.shared()).toBe(1);
  });
  it('read-your-writes: a query sent after a mutation through this gateway completed never joins an identical fetch sent before it', async () => {
    const board = await readAfterWriteWhileAnOlderReadIsHeld(gw, alpha, { userId: '8', role: 'user' });
    expect(await board.shared()).toBe(0);
  });

  it('after a write, identical reads still share with one another: only the fetch sent before the write is off limits', async () => {
    const viewer: Viewer = { userId: '9', role: 'user' };
    const headers = await signIn(viewer);
    const before = alpha.state.version;
    const board = await fetchCounter(gw, alpha, 'Query.board');
    alpha.checkpoints.holdNext('board');
    const first = gw.query(BOARD, headers);
    await board.reached(1);

    const bumped = await gw.query<BumpResult>(BUMP, headers);
    expect(bumped.data?.bump.version).toBe(before + 1);

    // Every read from here on is held at alpha, so that the two after the write overlap.
    alpha.checkpoints.close('board');
    const after = [gw.query(BOARD, headers), gw.query(BOARD, headers)];
    await board.reached(3);
    // The one before the write, and one for the two after it.
    expect(board.requests()).toHaveLength(2);
    expect(await board.shared()).toBe(1);
    alpha.checkpoints.open('board');

    expect((await first).data).toEqual(boardFor(viewer, before));
    for (const response of await Promise.all(after)) {
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual(boardFor(viewer, before + 1));
    }
  });
});

describe('with dedupe off (dedupe: false)', () => {
  let alpha: Awaited<ReturnType<typeof startAlpha>>;
  let beta: TestSubgraph;
  let gw: TestGateway;

  beforeAll(async () => {
    alpha = await startAlpha();
    beta = await startBeta();
    gw = await startGateway({ alpha, beta }, { dedupe: false });
  });
  afterEach(() => {
    alpha?.checkpoints.openAll();
    beta?.checkpoints.openAll();
  });
  afterAll(async () => {
    await gw?.gateway.stop();
    await alpha?.stop();
    await beta?.stop();
  });

  it(`sends each of ${K} identical concurrent queries to the subgraph`, async () => {
    const viewer: Viewer = { userId: '7', role: 'user' };
    const headers = await signIn(viewer);
    const board = await fetchCounter(gw, alpha, 'Query.board');
    alpha.checkpoints.close('board');
    const answers = Array.from({ length: K }, () => gw.query(BOARD, headers));
    await board.reached(K);
    expect(board.requests()).toHaveLength(K);
    alpha.checkpoints.open('board');

    for (const response of await Promise.all(answers)) {
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual(boardFor(viewer, alpha.state.version));
    }
    expect(await board.shared()).toBe(0);
  });
  it('read-your-writes: a query sent after a mutation completed goes to the subgraph and answers the write, while an older one is held', async () => {
    const board = await readAfterWriteWhileAnOlderReadIsHeld(gw, alpha, { userId: '8', role: 'user' });
    expect(await board.shared()).toBe(0);
  });
});

/** The subgraph's address, in any form a leak could take. */
const leaksUrl = (response: GraphQLResponse<unknown>, url: string) => {
  const text = JSON.stringify({ data: response.data, errors: response.errors });
  const { host, port } = new URL(url);
  return text.includes(host) || text.includes(`:${port}`) || text.includes('127.0.0.1') || /https?:\/\//.test(text);
};

const PRICED = '{ board { version items { id title price(currency: "EUR") } } }';

/** Alpha's data intact, every price null, and every error the given code naming beta. */
function expectBetaFailed(response: GraphQLResponse<Board>, code: string, version: number) {
  expect(response.status).toBe(200);
  expect(response.data).toEqual({ board: { version, items: ITEM_IDS.map((id) => ({ id, title: expected.title(id, version), price: null })) } });
  expect(response.errors?.length).toBeGreaterThan(0);
  for (const error of response.errors ?? []) expect(error.extensions).toEqual({ code, serviceName: 'beta' });
}

describe('the keep-alive transport', () => {
  let alpha: Awaited<ReturnType<typeof startAlpha>>;
  let beta: TestSubgraph;
  const stubs: StubSubgraph[] = [];
  const gateways: TestGateway[] = [];

  beforeAll(async () => {
    alpha = await startAlpha();
    beta = await startBeta();
  });
  afterAll(async () => {
    await Promise.all(gateways.map((gw) => gw.gateway.stop()));
    await Promise.all(stubs.map((stub) => stub.close()));
    await alpha?.stop();
    await beta?.stop();
  });

  it.each([
    ['never answers', startHangingSubgraph],
    ['starts its answer and never finishes it', startStallingSubgraph],
  ])('answers SUBGRAPH_TIMEOUT after subgraphTimeoutMs when a subgraph %s, without its URL', async (_, start) => {
    const timeoutMs = 300;
    const stuck = await start();
    stubs.push(stuck);
    const gw = await startGateway({ alpha, beta }, { subgraphTimeoutMs: timeoutMs, urls: { beta: stuck.url } });
    gateways.push(gw);

    const started = performance.now();
    const response = await gw.query(PRICED);
    const ms = performance.now() - started;
    expectBetaFailed(response, 'SUBGRAPH_TIMEOUT', alpha.state.version);
    expect(ms).toBeGreaterThanOrEqual(timeoutMs * 0.95);
    expect(ms).toBeLessThan(timeoutMs + 2_000);
    expect(stuck.received()).toBe(1);
    expect(leaksUrl(response, stuck.url)).toBe(false);
  });

  it('answers SUBGRAPH_UNAVAILABLE when the subgraph refuses the connection, without its URL', async () => {
    const nowhere = await refusedUrl();
    const gw = await startGateway({ alpha, beta }, { urls: { beta: nowhere } });
    gateways.push(gw);

    const response = await gw.query(PRICED);
    expectBetaFailed(response, 'SUBGRAPH_UNAVAILABLE', alpha.state.version);
    expect(leaksUrl(response, nowhere)).toBe(false);
  });

  it('never sends a request on a connection the subgraph is closing for idleness (past the keep-alive timeout it announced)', async () => {
    // A subgraph behind nginx announces `Keep-Alive: timeout=N` and closes an idle connection at N seconds. A
    // request the gateway writes on that connection at that moment is reset, and its client gets
    // SUBGRAPH_UNAVAILABLE from a healthy subgraph (and the breaker counts a failure). The global fetch the
    // gateway used before retires idle connections a second before the announced timeout.
    const subgraph = await startIdleClosingSubgraph(2);
    const transport = createSubgraphTransport(subgraph.url);
    try {
      const first = await transport.post({}, '{}', 5_000);
      expect(first.status).toBe(200);
      const second = await subgraph.atIdleClose(() => transport.post({}, '{}', 5_000));
      expect(second.status).toBe(200);
      expect(await second.json()).toEqual({ data: { __typename: 'Query' } });
      expect(subgraph.connections()).toBe(2);
    } finally {
      transport.close();
      await subgraph.close();
    }
  });

  it('still hands the subgraph’s Cache-Control to the gateway: a field the subgraph hints cacheable makes the response cacheable', async () => {
    const gw = await startGateway({ alpha, beta });
    gateways.push(gw);

    const hinted = await gw.query<{ notice: string }>('{ notice }');
    expect(hinted.errors).toBeUndefined();
    expect(hinted.data).toEqual({ notice: expected.notice(alpha.state.version) });
    expect(hinted.headers.get('cache-control')).toBe(`max-age=${NOTICE_MAX_AGE_S}, public`);

    // The board has no hint: the subgraph says nothing cacheable, and neither may the gateway.
    const unhinted = await gw.query(BOARD);
    expect(unhinted.errors).toBeUndefined();
    expect(unhinted.headers.get('cache-control') ?? '').not.toMatch(/max-age=[1-9]/);
  });
});

describe('the circuit breaker on 5xx answers', () => {
  const BREAKER: BreakerPolicy = { failures: 3, resetTimeoutMs: 60_000 };
  let alpha: Awaited<ReturnType<typeof startAlpha>>;
  let beta: TestSubgraph;
  let failing: StubSubgraph;
  let gw: TestGateway;

  beforeAll(async () => {
    alpha = await startAlpha();
    beta = await startBeta();
    failing = await startFailingSubgraph();
    gw = await startGateway({ alpha, beta }, { breaker: BREAKER, urls: { beta: failing.url } });
    // The start-up probe (answered 200 by the stub) is done: from here on, beta's breaker counts only ours.
    await waitFor(async () => expect((await fetch(new URL('/readyz', gw.url))).status).toBe(200));
  });
  afterAll(async () => {
    await gw?.gateway.stop();
    await failing?.close();
    await alpha?.stop();
    await beta?.stop();
  });

  it(`opens after ${BREAKER.failures} HTTP 500 answers in a row; the next request fails without reaching the subgraph`, async () => {
    const circuit = () => gw.metric('subgraph_circuit_state', { subgraph: 'beta' });
    for (let i = 1; i <= BREAKER.failures; i += 1) {
      expect(await circuit()).toBe(0);
      const response = await gw.query(PRICED);
      expectBetaFailed(response, 'SUBGRAPH_UNAVAILABLE', alpha.state.version);
      // Neither the subgraph's URL nor its raw body reaches the client.
      expect(leaksUrl(response, failing.url)).toBe(false);
      expect(JSON.stringify(response.errors)).not.toContain('internal failure at the subgraph');
      expect(failing.received()).toBe(i);
    }
    expect(await circuit()).toBe(2);

    const response = await gw.query(PRICED);
    expectBetaFailed(response, 'SUBGRAPH_UNAVAILABLE', alpha.state.version);
    expect(failing.received()).toBe(BREAKER.failures);
    expect(await gw.metric('subgraph_fetch_failures_total', { subgraph: 'beta', reason: 'status_5xx' })).toBe(BREAKER.failures);
    expect(await gw.metric('subgraph_fetch_failures_total', { subgraph: 'beta', reason: 'open_circuit' })).toBe(1);
    // Alpha's breaker is untouched.
    expect(await gw.metric('subgraph_circuit_state', { subgraph: 'alpha' })).toBe(0);
  });
});
