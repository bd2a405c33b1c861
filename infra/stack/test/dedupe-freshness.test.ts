// The gateway's in-flight dedupe of subgraph reads against the response cache, end to end: a real stack (users
// and orders on their own Postgres databases, Redis), and a gateway of the test's own with the response cache
// on the stack's Redis, reaching users through an HTTP proxy that can keep one answer. A read A reaches users,
// users answers it with version 1, and the proxy keeps that answer; then version 2 is committed and purged;
// then read B, the same query, misses. Had B joined A's fetch (sent before its lookup), it would store version 1
// under a ticket issued after the purge, and every later identical request would be served version 1 from the
// cache for the whole TTL. The cache must answer version 2 after B, whether as a miss or as a hit.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { schema as usersSchema } from '@fed/users/db';
import { createAuthenticator, createGateway, type Gateway } from '@fed/gateway';
import { createInfrastructure, listen, type Infrastructure, type ResponseStore } from '@fed/platform';
import { graphql, parseExposition, signedGraphql, testRedisUrl, waitFor, watch, type GraphQLResponse } from '@fed/platform/testing';
import { eq } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import { silentLogger, startTestStack, supergraphSdl, TEST_AUTH, type TestStack } from './harness.ts';

type SubgraphBody = { query?: unknown };

/** A gateway → users read (not a write, not the gateway's health probe). */
const isUserRead = (body: SubgraphBody) => typeof body.query === 'string' && !/^\s*mutation\b/.test(body.query) && /\buser\(/.test(body.query);

interface KeptAnswer {
  /** Resolves once the subgraph has answered the kept request (the proxy holds that answer). */
  answered: Promise<void>;
  /** Hands the kept answer to the gateway. */
  release(): void;
}

interface AnswerKeepingProxy {
  url: string;
  /** Requests received so far whose JSON body matches. */
  received(match: (body: SubgraphBody) => boolean): number;
  /**
   * The next request whose body matches is forwarded at once, and the subgraph answers it at once (what it read
   * is what was there then); the proxy keeps that answer from the gateway until release().
   */
  keepNextAnswer(match: (body: SubgraphBody) => boolean): KeptAnswer;
  close(): Promise<void>;
}

/** An HTTP proxy in front of one subgraph that can keep one answer, already computed, from reaching the gateway. */
async function startAnswerKeepingProxy(target: string): Promise<AnswerKeepingProxy> {
  const to = new URL(target);
  const bodies: SubgraphBody[] = [];
  let keep: { match: (body: SubgraphBody) => boolean; answered: () => void; released: Promise<void> } | undefined;
  const releases: (() => void)[] = [];

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let parsed: SubgraphBody = {};
      try {
        parsed = JSON.parse(body.toString('utf8')) as SubgraphBody;
      } catch {
        // Not JSON: counted as matching nothing.
      }
      bodies.push(parsed);
      const kept = keep?.match(parsed) ? keep : undefined;
      if (kept) keep = undefined;
      const upstream = request(
        { host: to.hostname, port: to.port, path: req.url, method: req.method, headers: { ...req.headers, host: to.host } },
        (answer) => {
          const answerChunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => answerChunks.push(chunk));
          answer.on('end', () => {
            const send = () => {
              res.writeHead(answer.statusCode ?? 502, answer.headers);
              res.end(Buffer.concat(answerChunks));
            };
            if (!kept) return send();
            kept.answered();
            void kept.released.then(send);
          });
        },
      );
      upstream.on('error', () => res.destroy());
      upstream.end(body);
    });
  });
  const port = await listen(server, 0, '127.0.0.1');
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.toString(),
    received: (match) => bodies.filter(match).length,
    keepNextAnswer(match) {
      let answered!: () => void;
      let release!: () => void;
      const answeredPromise = new Promise<void>((resolve) => (answered = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      releases.push(release);
      keep = { match, answered, released };
      return { answered: answeredPromise, release };
    },
    close: async () => {
      keep = undefined;
      for (const release of releases) release();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

const isHit = (response: GraphQLResponse<unknown>) => response.headers.get('age') !== null;

type UserName = { user: { name: string } };

describe('in-flight dedupe never lets the response cache store an answer fetched before its lookup', () => {
  let stack: TestStack;
  let proxy: AnswerKeepingProxy;
  let infra: Infrastructure;
  /** Another replica's handle on the same Redis store: its purges are in the store, unheard by our gateway. */
  let otherReplica: Infrastructure;
  let otherStore: ResponseStore;
  let gateway: Gateway;
  let url: string;
  const kept: KeptAnswer[] = [];

  const query = <T = UserName>(text: string, headers: Record<string, string> = stack.admin) => graphql<T>(url, text, undefined, headers);
  const deduplicated = async () =>
    parseExposition(await (await fetch(new URL('/metrics', url))).text()).value('subgraph_fetches_deduplicated_total', { subgraph: 'users' });
  /** From now on: users reads that reached the users subgraph, and those the gateway answered from one in flight. */
  const readCounter = async () => {
    const sentBefore = proxy.received(isUserRead);
    const sharedBefore = await deduplicated();
    const counter = {
      sent: () => proxy.received(isUserRead) - sentBefore,
      shared: async () => (await deduplicated()) - sharedBefore,
      /** Waits until `n` users reads have reached the gateway's fetcher: sent to users, or sharing one. */
      reached: (n: number) => waitFor(async () => expect(counter.sent() + (await counter.shared())).toBe(n)),
    };
    return counter;
  };
  const keepNextRead = () => {
    const answer = proxy.keepNextAnswer(isUserRead);
    kept.push(answer);
    return answer;
  };
  const rename = (id: string, name: string) =>
    query<{ updateUser: { name: string } }>(`mutation { updateUser(id: "${id}", input: { name: "${name}" }) { name } }`);

  beforeAll(async () => {
    // The stack's own gateway caches nothing: only the test's gateway stores, so every entry is ours.
    stack = await startTestStack({ responseCache: null });
    await seed(stack.databases, { users: 4, ordersPerUser: 1 });
    proxy = await startAnswerKeepingProxy(stack.urls.users);
    infra = await createInfrastructure({ redisUrl: testRedisUrl(), logger: silentLogger(), keyPrefix: stack.keyPrefix });
    otherReplica = await createInfrastructure({ redisUrl: testRedisUrl(), logger: silentLogger(), keyPrefix: stack.keyPrefix });
    otherStore = otherReplica.createResponseStore({ maxTtlSeconds: 300 });
    gateway = await createGateway({
      supergraphSdl,
      subgraphUrls: { users: proxy.url, orders: stack.urls.orders },
      subgraphSecrets: { users: stack.secrets.users, orders: stack.secrets.orders },
      logger: silentLogger(),
      cache: infra.cache,
      responseCache: { maxTtlSeconds: 300, store: infra.createResponseStore({ maxTtlSeconds: 300 }), events: infra.pubsub },
      rateLimiter: infra.rateLimiter,
      rateLimit: null,
      authenticate: createAuthenticator(TEST_AUTH),
      // Only the probe at start: every other request users sees through the proxy is the test's.
      readiness: { intervalMs: 600_000, staleAfterMs: 600_000 },
    });
    const port = await listen(gateway.httpServer, 0, '127.0.0.1');
    url = `http://127.0.0.1:${port}/graphql`;
  });
  // A failed test must not leave an answer kept for the next one.
  afterEach(() => {
    for (const answer of kept.splice(0)) answer.release();
  });
  afterAll(async () => {
    await gateway?.stop();
    await proxy?.close();
    await infra?.close();
    await otherReplica?.close();
    await stack?.teardown();
  });

  /**
   * A reaches users and is answered version 1, kept at the proxy; `write` commits version 2 and sees it purged;
   * B (the query `textB`, same viewer) then misses and reaches the fetcher while A is still kept. Returns the
   * answers of A and B, the read counter, and the answer to a third request identical to B.
   */
  async function slowReadThenWriteThenRead(id: string, write: (v2: string) => Promise<void>, { textA, textB }: { textA: string; textB: string }) {
    const [v1, v2] = [`Dedupe ${id} v1`, `Dedupe ${id} v2`];
    expect((await rename(id, v1)).data?.updateUser.name).toBe(v1);
    const reads = await readCounter();
    const keptA = keepNextRead();
    const a = watch(query(textA));
    await keptA.answered;

    await write(v2);
    expect(a.settled()).toBe(false);

    const b = query(textB);
    await reads.reached(2);
    // What A and B cost users, and whether B shared A's fetch (B has reached the fetcher).
    const [sent, sharedB] = [reads.sent(), await reads.shared()];
    keptA.release();
    const [answerA, answerB] = [await a.promise, await b];
    expect(answerA.errors).toBeUndefined();
    // Read before the write: version 1 is what A may answer.
    expect(answerA.data?.user.name).toBe(v1);
    expect(answerB.errors).toBeUndefined();
    expect(isHit(answerB)).toBe(false);

    const third = await query(textB);
    expect(third.errors).toBeUndefined();
    return { answerB, third, sent, sharedB, v1, v2 };
  }

  it('after a write through this gateway: B reaches users itself, answers version 2, and only version 2 is ever cached', async () => {
    const text = '{ user(id: "1") { name } }';
    const { answerB, third, sent, sharedB, v2 } = await slowReadThenWriteThenRead(
      '1',
      async (name) => {
        const renamed = await rename('1', name);
        expect(renamed.errors).toBeUndefined();
        expect(renamed.data?.updateUser.name).toBe(name);
      },
      { textA: text, textB: text },
    );
    expect({ sent, sharedB }).toEqual({ sent: 2, sharedB: 0 });
    expect(answerB.data?.user.name).toBe(v2);
    expect(third.data?.user.name).toBe(v2);
    // The cache works here: an identical request is now a hit, of version 2.
    const fourth = await query(text);
    expect(isHit(fourth)).toBe(true);
    expect(fourth.data?.user.name).toBe(v2);
  });

  it('after a write made directly against users, purged from its event: B reaches users itself, and only version 2 is ever cached', async () => {
    const text = '{ user(id: "2") { name } }';
    const { answerB, third, sent, sharedB, v2 } = await slowReadThenWriteThenRead(
      '2',
      async (name) => {
        const heard = gateway.responseCache!.stats.invalidations;
        // Another service holding the users subgraph's secret: no gateway is involved in the write.
        const direct = await signedGraphql<{ updateUser: { name: string } }>(
          stack.urls.users,
          { secret: stack.secrets.users, audience: 'users', viewer: { userId: '1000000', role: 'admin' } },
          `mutation { updateUser(id: "2", input: { name: "${name}" }) { name } }`,
        );
        expect(direct.data?.updateUser.name).toBe(name);
        // Its event reached this gateway over Redis, and the purge ran.
        await waitFor(() => expect(gateway.responseCache!.stats.invalidations).toBeGreaterThan(heard));
      },
      { textA: text, textB: text },
    );
    expect({ sent, sharedB }).toEqual({ sent: 2, sharedB: 0 });
    expect(answerB.data?.user.name).toBe(v2);
    expect(third.data?.user.name).toBe(v2);
    const fourth = await query(text);
    expect(isHit(fourth)).toBe(true);
    expect(fourth.data?.user.name).toBe(v2);
  });

  it('after a purge this gateway has not heard of (another replica’s, already in the store): B may share A’s fetch, but never stores its answer', async () => {
    // Two spellings of one query: two cache entries (and no shared execution in the cache), one subgraph fetch.
    const textA = '{ user(id: "3") { name } }';
    const textB = '{user(id:"3"){name}}';
    const { third, sent, sharedB, v2 } = await slowReadThenWriteThenRead(
      '3',
      async (name) => {
        // Committed without an event (as by a migration script), and purged by another replica: the store knows,
        // this gateway does not (yet), so nothing here tells B that A's fetch predates a write.
        await stack.databases.users.db.update(usersSchema.users).set({ name }).where(eq(usersSchema.users.id, 3));
        await otherStore.invalidate(['users/User:3']);
      },
      { textA, textB },
    );
    // B joined A's fetch (this gateway knew of no write): the case only the lookup time can catch.
    expect({ sent, sharedB }).toEqual({ sent: 1, sharedB: 1 });
    // Whatever B answered, it stored nothing from a fetch sent before its lookup: the third asks users again.
    expect(isHit(third)).toBe(false);
    expect(third.data?.user.name).toBe(v2);
    const fourth = await query(textB);
    expect(isHit(fourth)).toBe(true);
    expect(fourth.data?.user.name).toBe(v2);
  });
});
