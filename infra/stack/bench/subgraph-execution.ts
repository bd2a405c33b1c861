// `npm run -s bench:subgraph-execution -w @fed/stack -- [--runs 5] [--requests 300] [--connections 10] [--baseline COMMIT] [--tree DIR] [--cpu-prof DIR] [--heap-prof DIR]`:
// the subgraphs' CPU per request on the nested query's fetches, compiled execution against graphql-js, side by
// side. Each subgraph runs as its own process twice (SUBGRAPH_EXECUTION=compiled and =graphql-js), both on the
// same seeded Postgres, and is sent exactly what the gateway sends it for the nested query, signed as the
// gateway signs: the users page, then orders' `_entities` for those 20 users with their 5 latest orders and
// items. CPU is read from /proc for the subgraph process alone (every thread, GC included). Runs alternate
// between the two; medians and ratios go to stdout as JSON. Both must answer byte for byte alike first.
// `--baseline COMMIT` adds that commit's subgraphs (checked out under .bench/ and installed once) to the same runs,
// on the same database: this tree against the code before it, in one run. `--tree DIR` runs this tree's subgraphs
// compiled to JavaScript instead of through tsx, from a tree laid out as the image (the bench harness's
// buildCompiledTree writes one), as production runs them: for memory figures, tsx's own caches count in RSS.
// `--cpu-prof DIR` writes CPU profiles of every subgraph process to DIR/<subgraph>-<execution>/ when it stops;
// `--heap-prof DIR` writes sampled allocation profiles there (what each request leaves for the collector).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { IDENTITY_HEADER, signIdentity, type SubgraphExecution } from '@fed/platform';
import { createTestDatabase, freePort, median } from '@fed/platform/testing';
import { openDatabases } from '../src/databases.ts';
import { checkoutAt } from './stack-env.ts';
import { seed } from '../src/seed.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    requests: { type: 'string', default: '300' },
    connections: { type: 'string', default: '10' },
    'cpu-prof': { type: 'string' },
    'heap-prof': { type: 'string' },
    baseline: { type: 'string' },
    tree: { type: 'string' },
  },
});
const runs = Number(values.runs);
const requests = Number(values.requests);
const connections = Number(values.connections);
const log = (line: string) => process.stderr.write(`${line}\n`);
const root = fileURLToPath(new URL('../../..', import.meta.url));
const TICKS_PER_SECOND = 100;
const MODES: SubgraphExecution[] = ['compiled', 'graphql-js'];
/** This tree's two executions, and (with --baseline) another commit's subgraphs as they were. */
type Variant = SubgraphExecution | 'baseline';
const VARIANTS: Variant[] = values.baseline ? [...MODES, 'baseline'] : MODES;
const baselineTree = values.baseline ? `${checkoutAt(values.baseline, `subgraph-execution-${values.baseline}`, log)}/` : undefined;

// The nested query's fetches as the gateway plans them (`NESTED_QUERY` in stack-env.ts), admin viewer.
const USERS_FETCH = 'query Nested__users__0{users(first:20){edges{node{__typename id name email}}}}';
const ORDERS_FETCH =
  'query Nested__orders__1($representations:[_Any!]!){_entities(representations:$representations){...on User{orderCount orders(first:5){edges{node{id status totalCents items{sku quantity unitPriceCents}}}}}}}';
const VIEWER = { userId: '1', role: 'admin' as const };

const secrets = { users: randomBytes(32).toString('base64url'), orders: randomBytes(32).toString('base64url'), ordersToUsers: randomBytes(32).toString('base64url') };
const created = [await createTestDatabase('bench_exec_users'), await createTestDatabase('bench_exec_orders')] as const;
const children: ChildProcess[] = [];

async function startSubgraph(name: 'users' | 'orders', variant: Variant, usersUrl?: string) {
  const execution = variant === 'baseline' ? undefined : variant;
  const compiledTree = variant === 'baseline' ? undefined : values.tree;
  const tree = variant === 'baseline' ? baselineTree! : (compiledTree ? `${compiledTree}/` : root);
  const port = await freePort();
  // A directory per process: Node writes a profile per thread (tsx's loader runs in one of its own).
  const profile = [
    ...(values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', `${values['cpu-prof']}/${name}-${variant}`] : []),
    ...(values['heap-prof'] ? ['--heap-prof', '--heap-prof-dir', `${values['heap-prof']}/${name}-${variant}`] : []),
  ];
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    APOLLO_TELEMETRY_DISABLED: '1',
    ...(execution ? { SUBGRAPH_EXECUTION: execution } : {}),
    ORDERS_TO_USERS_SECRET: secrets.ordersToUsers,
    ...(name === 'users'
      ? { USERS_PORT: String(port), USERS_DATABASE_URL: created[0].url, USERS_SUBGRAPH_SECRET: secrets.users }
      : { ORDERS_PORT: String(port), ORDERS_DATABASE_URL: created[1].url, ORDERS_SUBGRAPH_SECRET: secrets.orders, USERS_URL: usersUrl }),
  };
  const entry = compiledTree ? ['dist/index.js'] : ['--import', 'tsx', 'src/index.ts'];
  const child = spawn(process.execPath, [...profile, ...entry], { cwd: `${tree}subgraphs/${name}`, env, stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  const url = `http://127.0.0.1:${port}/graphql`;
  for (let attempt = 0; ; attempt++) {
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((response) => response.ok, () => false);
    if (ready) break;
    if (attempt > 300 || child.exitCode !== null) throw new Error(`${name} (${variant}) did not start`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, url };
}

/** User and system time of the whole process (every thread), in milliseconds. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

const peakRssMb = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function post(url: string, subgraph: 'users' | 'orders', body: string): Promise<string> {
  const identity = signIdentity({ secret: secrets[subgraph], caller: 'gateway', audience: subgraph, viewer: VIEWER, body });
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: identity }, body });
  const text = await response.text();
  if (!response.ok) throw new Error(`${subgraph}: ${response.status} ${text.slice(0, 200)}`);
  return text;
}

/** `count` requests over `connections` concurrent loops; returns the subgraph's CPU per request (ms). */
async function load(target: { child: ChildProcess; url: string }, subgraph: 'users' | 'orders', body: string, count: number) {
  const before = cpuMs(target.child.pid!);
  let sent = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (sent < count) {
        sent++;
        await post(target.url, subgraph, body);
      }
    }),
  );
  return (cpuMs(target.child.pid!) - before) / count;
}

try {
  log('seeding 1 000 users × 10 orders');
  const databases = await openDatabases({ users: { url: created[0].url }, orders: { url: created[1].url } });
  await seed(databases, { users: 1_000, ordersPerUser: 10 });
  await databases.users.close();
  await databases.orders.close();

  const users = {} as Record<Variant, { child: ChildProcess; url: string }>;
  const orders = {} as Record<Variant, { child: ChildProcess; url: string }>;
  for (const variant of VARIANTS) users[variant] = await startSubgraph('users', variant);
  for (const variant of VARIANTS) orders[variant] = await startSubgraph('orders', variant, users.compiled.url);

  const usersBody = JSON.stringify({ query: USERS_FETCH, variables: {}, operationName: 'Nested__users__0' });
  const page = JSON.parse(await post(users.compiled.url, 'users', usersBody)) as { data: { users: { edges: { node: { id: string } }[] } } };
  const representations = page.data.users.edges.map(({ node }) => ({ __typename: 'User', id: node.id }));
  const ordersBody = JSON.stringify({ query: ORDERS_FETCH, variables: { representations }, operationName: 'Nested__orders__1' });
  const bodies = { users: usersBody, orders: ordersBody };
  const targets = { users, orders };

  for (const subgraph of ['users', 'orders'] as const) {
    const [compiled, ...others] = await Promise.all(VARIANTS.map((variant) => post(targets[subgraph][variant].url, subgraph, bodies[subgraph])));
    if (others.some((other) => other !== compiled)) throw new Error(`${subgraph}: the answers differ`);
    log(`${subgraph}: ${compiled!.length} bytes, identical on all ${VARIANTS.length}`);
    // Warm-up: compilation, the JIT of V8, connection pools.
    for (const variant of VARIANTS) await load(targets[subgraph][variant], subgraph, bodies[subgraph], requests / 2);
  }

  const samples: Record<'users' | 'orders', Record<Variant, number[]>> = {
    users: { compiled: [], 'graphql-js': [], baseline: [] },
    orders: { compiled: [], 'graphql-js': [], baseline: [] },
  };
  for (let run = 0; run < runs; run++) {
    // Alternate which goes first, so neither always runs on a warmer (or busier) machine.
    const order = run % 2 === 0 ? VARIANTS : [...VARIANTS].reverse();
    for (const subgraph of ['orders', 'users'] as const) {
      for (const variant of order) samples[subgraph][variant].push(await load(targets[subgraph][variant], subgraph, bodies[subgraph], requests));
    }
    const last = (subgraph: 'users' | 'orders') => VARIANTS.map((variant) => samples[subgraph][variant].at(-1)!.toFixed(2)).join(' / ');
    log(`run ${run + 1}/${runs}: orders ${last('orders')} ms, users ${last('users')} ms (${VARIANTS.join(' / ')})`);
  }

  const report = Object.fromEntries(
    (['orders', 'users'] as const).map((subgraph) => {
      const medians = Object.fromEntries(VARIANTS.map((variant) => [variant, median(samples[subgraph][variant])])) as Record<Variant, number>;
      return [
        subgraph,
        {
          cpuMsPerRequest: Object.fromEntries(VARIANTS.map((variant) => [variant, round(medians[variant])])),
          ratio: round(medians.compiled / medians['graphql-js']),
          ...(values.baseline ? { ratioToBaseline: round(medians.compiled / medians.baseline) } : {}),
          peakRssMb: Object.fromEntries(VARIANTS.map((variant) => [variant, round(peakRssMb(targets[subgraph][variant].child.pid!))])),
          samples: Object.fromEntries(VARIANTS.map((variant) => [variant, samples[subgraph][variant]])),
        },
      ];
    }),
  );
  process.stdout.write(`${JSON.stringify({ date: new Date().toISOString(), node: process.version, runs, requests, connections, baseline: values.baseline, ...report }, null, 2)}\n`);
} finally {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    ),
  );
  await Promise.all(created.map((database) => database.drop()));
}

function round(value: number) {
  return Math.round(value * 1000) / 1000;
}
