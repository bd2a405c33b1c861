// `npm run -s bench:alloc -w @fed/bench -- --base REV [--head REV]`: bytes the users and orders subgraphs allocate
// per request, garbage included, this checkout's working tree (or --head) against commit REV. Both compiled, each
// side its own users and orders processes on one seeded dataset, with the inspector on loopback; the requests are
// the nested query's two subgraph fetches, sent straight to each subgraph, signed as the gateway signs.
//
// How: V8's sampling heap profiler (HeapProfiler.startSampling) with includeObjectsCollectedByMajorGC and
// includeObjectsCollectedByMinorGC, which V8 11.3 (Node 20) supports: without them the profile holds only what
// is still alive when it stops, which is what `node --heap-prof` shows, and garbage is invisible. Each sample
// stands for `--interval` bytes on average, and the profile's self sizes are already scaled by V8, so their sum
// estimates every byte allocated while sampling. Whatever else the process did meanwhile (timers, the outbox
// relay's poll) counts too: the idle row gives that background, per second.
//   --base REV              the commit to compare with (required)
//   --head REV              a commit to compare it with instead of the working tree
//   --runs N                alternating sampled runs per side and fetch (5), medians
//   --requests N            requests per sampled run (1000), --concurrency C (8), after one warm-up of as many
//   --users N               seeded users, 10 orders each (2 000)
//   --interval B            mean bytes between samples (16 384)
//   --top N                 allocation sites listed per side and fetch (12)
//   --out DIR               every sampled profile as DIR/<side>-<fetch>-<run>.heapprofile (Chrome DevTools opens them)
// Progress goes to stderr, the tables (markdown) to stdout. Needs Postgres and Redis, like the bench.
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { IDENTITY_HEADER, signIdentity } from '@fed/platform';
import { deleteRedisKeys, freePort, median, testRedisUrl } from '@fed/platform/testing';
import WebSocket from 'ws';
import { buildCompiledTree, checkOutCommit } from '../build.ts';
import { seedDataset, type Dataset } from '../dataset.ts';
import { ADMIN } from '../gateways/reference.ts';
import { httpOk, REPO, startProcess, type BenchProcess } from '../processes.ts';
import { ordersEntitiesQuery, SUBGRAPH_USERS } from '../scenarios.ts';

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    head: { type: 'string' },
    runs: { type: 'string', default: '5' },
    requests: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '8' },
    users: { type: 'string', default: '2000' },
    interval: { type: 'string', default: '16384' },
    top: { type: 'string', default: '12' },
    out: { type: 'string' },
  },
});
if (!values.base) throw new Error('--base REV is required');
const log = (line: string) => process.stderr.write(`${line}\n`);
const runs = Number(values.runs);
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const interval = Number(values.interval);
const top = Number(values.top);

/** The sampling heap profile as the inspector returns it (the parts read here). */
interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}
interface SamplingProfile {
  head: ProfileNode;
}

/** Every byte the profile stands for, and the same by allocating function (name and place). */
function allocations(profile: SamplingProfile): { total: number; bySite: Map<string, number> } {
  const bySite = new Map<string, number>();
  let total = 0;
  const stack = [profile.head];
  for (let node = stack.pop(); node; node = stack.pop()) {
    total += node.selfSize;
    if (node.selfSize > 0) {
      const { functionName, url, lineNumber } = node.callFrame;
      const where = url ? `${url.replace(/^file:\/\/.*?\/node_modules\//, '').replace(/^file:\/\/.*?\/(?=(?:infra|subgraphs|gateway)\/)/, '')}:${lineNumber + 1}` : '(no script: generated code or built-in)';
      const site = `${functionName || '(anonymous)'} ${where}`;
      bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
    }
    stack.push(...node.children);
  }
  return { total, bySite };
}

/** A Chrome DevTools protocol session over the inspector's websocket: one call at a time is all this needs. */
async function inspect(port: number) {
  const [target] = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const socket = new WebSocket(target!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  let next = 0;
  const waiting = new Map<number, { resolve: (result: unknown) => void; reject: (error: Error) => void }>();
  socket.on('message', (data: Buffer) => {
    const message = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { message: string } };
    const call = message.id === undefined ? undefined : waiting.get(message.id);
    if (!call) return;
    waiting.delete(message.id!);
    if (message.error) call.reject(new Error(message.error.message));
    else call.resolve(message.result);
  });
  const post = <T>(method: string, params: Record<string, unknown> = {}) =>
    new Promise<T>((resolve, reject) => {
      const id = (next += 1);
      waiting.set(id, { resolve: resolve as (result: unknown) => void, reject });
      socket.send(JSON.stringify({ id, method, params }));
    });
  return {
    /** Bytes allocated while `work` runs, garbage included. */
    sample: async (work: () => Promise<void>): Promise<{ profile: SamplingProfile; total: number; bySite: Map<string, number> }> => {
      await post('HeapProfiler.startSampling', { samplingInterval: interval, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
      await work();
      const { profile } = await post<{ profile: SamplingProfile }>('HeapProfiler.stopSampling');
      return { profile, ...allocations(profile) };
    },
    close: () => socket.close(),
  };
}
type Inspector = Awaited<ReturnType<typeof inspect>>;

const secret = () => randomBytes(32).toString('base64url');

interface Side {
  name: string;
  tree: string;
  processes: BenchProcess[];
  inspectors: Map<'users' | 'orders', Inspector>;
  sign: (subgraph: 'users' | 'orders', body: string) => Record<string, string>;
  urls: Map<'users' | 'orders', string>;
}

/** The users and orders subgraphs of one side, each with its inspector on a loopback port of its own. */
async function startSide(name: string, tree: string, dataset: Dataset, redisPrefix: string): Promise<Side> {
  const secrets = { users: secret(), orders: secret(), ordersToUsers: secret() };
  const shared = { REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: redisPrefix, USERS_SUBGRAPH_SECRET: secrets.users, ORDERS_SUBGRAPH_SECRET: secrets.orders, ORDERS_TO_USERS_SECRET: secrets.ordersToUsers };
  const side: Side = {
    name,
    tree,
    processes: [],
    inspectors: new Map(),
    urls: new Map(),
    sign: (subgraph, body) => ({ [IDENTITY_HEADER]: signIdentity({ secret: secrets[subgraph], caller: 'gateway', audience: subgraph, viewer: ADMIN, body }) }),
  };
  for (const subgraph of ['users', 'orders'] as const) {
    const [port, inspectorPort] = [await freePort(), await freePort()];
    const env =
      subgraph === 'users'
        ? { ...shared, USERS_PORT: String(port), USERS_DATABASE_URL: dataset.users.url }
        : { ...shared, ORDERS_PORT: String(port), ORDERS_DATABASE_URL: dataset.orders.url, USERS_URL: side.urls.get('users')! };
    const started = await startProcess({
      name: `${name} ${subgraph}`,
      inherited: { PATH: process.env.PATH, HOME: process.env.HOME },
      nodeArgs: [`--inspect=127.0.0.1:${inspectorPort}`],
      entry: join(tree, `subgraphs/${subgraph}/dist/index.js`),
      env,
      url: `http://127.0.0.1:${port}/graphql`,
      ready: httpOk(`http://127.0.0.1:${port}/readyz`),
    });
    side.processes.push(started);
    side.urls.set(subgraph, started.url);
    side.inspectors.set(subgraph, await inspect(inspectorPort));
  }
  return side;
}

/** The nested query's two subgraph fetches, as the gateway sends them. */
const FETCHES = [
  { name: 'users: users(first: 20)', subgraph: 'users' as const, body: JSON.stringify({ query: 'query Nested__users__0 { users(first: 20) { edges { node { __typename id name email } } } }' }) },
  {
    name: `orders: _entities for ${SUBGRAPH_USERS} users`,
    subgraph: 'orders' as const,
    body: JSON.stringify({ query: ordersEntitiesQuery, variables: { representations: Array.from({ length: SUBGRAPH_USERS }, (_, index) => ({ __typename: 'User', id: String(index + 1) })) } }),
  },
];

/** `count` requests, `concurrency` at a time; every answer must be a 200 without errors. */
async function send(url: string, body: string, headers: Record<string, string>, count: number): Promise<void> {
  let left = count;
  const worker = async () => {
    while (left > 0) {
      left -= 1;
      const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      const text = await response.text();
      if (response.status !== 200 || text.includes('"errors"')) throw new Error(`${url} answered ${response.status}: ${text.slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

const scratch = join(REPO, `.bench/alloc-${process.pid}`);
const redisPrefix = `bench-alloc-${process.pid}-${Date.now().toString(36)}:`;
const sides: Side[] = [];
let dataset: Dataset | undefined;
try {
  const trees: [string, string][] = [];
  log(`checking out and compiling ${values.base}`);
  checkOutCommit(values.base, join(scratch, 'base-source'));
  buildCompiledTree(join(scratch, 'base'), join(scratch, 'base-source'));
  trees.push([`base ${values.base}`, join(scratch, 'base')]);
  if (values.head) {
    log(`checking out and compiling ${values.head}`);
    checkOutCommit(values.head, join(scratch, 'head-source'));
    buildCompiledTree(join(scratch, 'head'), join(scratch, 'head-source'));
    trees.push([`head ${values.head}`, join(scratch, 'head')]);
  } else {
    log('compiling this tree');
    buildCompiledTree(join(scratch, 'head'));
    trees.push(['this tree', join(scratch, 'head')]);
  }
  log(`seeding ${values.users} users`);
  dataset = await seedDataset({ users: Number(values.users), ordersPerUser: 10 }, log);
  for (const [name, tree] of trees) sides.push(await startSide(name, tree, dataset, redisPrefix));
  if (values.out) mkdirSync(values.out, { recursive: true });

  const perRequest = new Map<string, number[]>();
  const sites = new Map<string, Map<string, number>>();
  const idle = new Map<string, number>();
  for (const side of sides) {
    for (const fetchOf of FETCHES) {
      log(`warming up ${side.name}, ${fetchOf.name}`);
      await send(side.urls.get(fetchOf.subgraph)!, fetchOf.body, side.sign(fetchOf.subgraph, fetchOf.body), requests);
    }
    // The background: what the orders process allocates with nothing to serve (its relay polls every second).
    const quiet = await side.inspectors.get('orders')!.sample(() => new Promise((resolve) => setTimeout(resolve, 3_000)));
    idle.set(side.name, quiet.total / 3);
  }
  for (let run = 1; run <= runs; run += 1) {
    for (const side of run % 2 ? sides : [...sides].reverse()) {
      for (const [index, fetchOf] of FETCHES.entries()) {
        const inspector = side.inspectors.get(fetchOf.subgraph)!;
        // Signed afresh each run: a signature lives 30 s.
        const headers = side.sign(fetchOf.subgraph, fetchOf.body);
        const sampled = await inspector.sample(() => send(side.urls.get(fetchOf.subgraph)!, fetchOf.body, headers, requests));
        const key = `${side.name}\n${fetchOf.name}`;
        perRequest.set(key, [...(perRequest.get(key) ?? []), sampled.total / requests]);
        const bySite = sites.get(key) ?? new Map<string, number>();
        for (const [site, bytes] of sampled.bySite) bySite.set(site, (bySite.get(site) ?? 0) + bytes / requests / runs);
        sites.set(key, bySite);
        if (values.out) writeFileSync(join(values.out, `${side === sides[0] ? 'base' : 'head'}-${index === 0 ? 'users' : 'orders'}-${run}.heapprofile`), JSON.stringify(sampled.profile));
        log(`  run ${run} ${side.name}, ${fetchOf.name}: ${(sampled.total / requests / 1024).toFixed(1)} KB per request`);
      }
    }
  }

  const kb = (bytes: number) => (bytes / 1024).toFixed(1);
  const [base, head] = sides as [Side, Side];
  const lines = [
    `Bytes allocated per request, garbage included (V8's sampling heap profiler, a sample every ${interval} bytes on average), ${runs} alternating runs of ${requests} requests at ${concurrency} at a time, medians; ${dataset.counts.users} users, ${dataset.counts.orders} orders.`,
    '',
    `| Subgraph fetch | ${base.name} | ${head.name} | ratio |`,
    '|---|---:|---:|---:|',
    ...FETCHES.map((fetchOf) => {
      const [before, after] = sides.map((side) => median(perRequest.get(`${side.name}\n${fetchOf.name}`)!)) as [number, number];
      return `| ${fetchOf.name} | ${kb(before)} KB | ${kb(after)} KB | ${(after / before).toFixed(2)}× |`;
    }),
    `| orders process idle, per second | ${kb(idle.get(base.name)!)} KB | ${kb(idle.get(head.name)!)} KB | |`,
    '',
  ];
  for (const fetchOf of FETCHES) {
    for (const side of sides) {
      const bySite = [...sites.get(`${side.name}\n${fetchOf.name}`)!].sort((a, b) => b[1] - a[1]).slice(0, top);
      lines.push(`### ${fetchOf.name}, ${side.name}: the top ${top} allocating functions, KB per request`, '', '| function | KB |', '|---|---:|', ...bySite.map(([site, bytes]) => `| \`${site}\` | ${kb(bytes)} |`), '');
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  for (const side of sides) {
    for (const inspector of side.inspectors.values()) inspector.close();
    for (const started of side.processes.reverse()) await started.stop().catch((error: unknown) => log(`stopping ${started.name}: ${String(error)}`));
  }
  await dataset?.drop().catch((error: unknown) => log(`dropping the databases: ${String(error)}`));
  await deleteRedisKeys(redisPrefix).catch(() => {});
  rmSync(scratch, { recursive: true, force: true });
}
