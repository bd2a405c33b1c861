// `npm run -s bench:subgraph-execution -w @fed/stack -- [--runs 5] [--requests 300] [--connections 10] [--cpu-prof DIR] [--heap-prof DIR]`:
// the subgraphs' CPU per request on the nested query's fetches, compiled execution against graphql-js, side by
// side. Each subgraph runs as its own process twice (SUBGRAPH_EXECUTION=compiled and =graphql-js), both on the
// same seeded Postgres, and is sent exactly what the gateway sends it for the nested query, signed as the
// gateway signs: the users page, then orders' `_entities` for those 20 users with their 5 latest orders and
// items. CPU is read from /proc for the subgraph process alone (every thread, GC included). Runs alternate
// between the two; medians and ratios go to stdout as JSON. Both must answer byte for byte alike first.
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
import { seed } from '../src/seed.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    requests: { type: 'string', default: '300' },
    connections: { type: 'string', default: '10' },
    'cpu-prof': { type: 'string' },
    'heap-prof': { type: 'string' },
  },
});
const runs = Number(values.runs);
const requests = Number(values.requests);
const connections = Number(values.connections);
const log = (line: string) => process.stderr.write(`${line}\n`);
const root = fileURLToPath(new URL('../../..', import.meta.url));
const TICKS_PER_SECOND = 100;
const MODES: SubgraphExecution[] = ['compiled', 'graphql-js'];

// The nested query's fetches as the gateway plans them (`NESTED_QUERY` in stack-env.ts), admin viewer.
const USERS_FETCH = 'query Nested__users__0{users(first:20){edges{node{__typename id name email}}}}';
const ORDERS_FETCH =
  'query Nested__orders__1($representations:[_Any!]!){_entities(representations:$representations){...on User{orderCount orders(first:5){edges{node{id status totalCents items{sku quantity unitPriceCents}}}}}}}';
const VIEWER = { userId: '1', role: 'admin' as const };

const secrets = { users: randomBytes(32).toString('base64url'), orders: randomBytes(32).toString('base64url'), ordersToUsers: randomBytes(32).toString('base64url') };
const created = [await createTestDatabase('bench_exec_users'), await createTestDatabase('bench_exec_orders')] as const;
const children: ChildProcess[] = [];

async function startSubgraph(name: 'users' | 'orders', execution: SubgraphExecution, usersUrl?: string) {
  const port = await freePort();
  // A directory per process: Node writes a profile per thread (tsx's loader runs in one of its own).
  const profile = [
    ...(values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', `${values['cpu-prof']}/${name}-${execution}`] : []),
    ...(values['heap-prof'] ? ['--heap-prof', '--heap-prof-dir', `${values['heap-prof']}/${name}-${execution}`] : []),
  ];
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    APOLLO_TELEMETRY_DISABLED: '1',
    SUBGRAPH_EXECUTION: execution,
    ORDERS_TO_USERS_SECRET: secrets.ordersToUsers,
    ...(name === 'users'
      ? { USERS_PORT: String(port), USERS_DATABASE_URL: created[0].url, USERS_SUBGRAPH_SECRET: secrets.users }
      : { ORDERS_PORT: String(port), ORDERS_DATABASE_URL: created[1].url, ORDERS_SUBGRAPH_SECRET: secrets.orders, USERS_URL: usersUrl }),
  };
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', 'src/index.ts'], { cwd: `${root}subgraphs/${name}`, env, stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  const url = `http://127.0.0.1:${port}/graphql`;
  for (let attempt = 0; ; attempt++) {
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((response) => response.ok, () => false);
    if (ready) break;
    if (attempt > 300 || child.exitCode !== null) throw new Error(`${name} (${execution}) did not start`);
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

  const users = { compiled: await startSubgraph('users', 'compiled'), 'graphql-js': await startSubgraph('users', 'graphql-js') };
  const orders = {
    compiled: await startSubgraph('orders', 'compiled', users.compiled.url),
    'graphql-js': await startSubgraph('orders', 'graphql-js', users.compiled.url),
  };

  const usersBody = JSON.stringify({ query: USERS_FETCH, variables: {}, operationName: 'Nested__users__0' });
  const page = JSON.parse(await post(users.compiled.url, 'users', usersBody)) as { data: { users: { edges: { node: { id: string } }[] } } };
  const representations = page.data.users.edges.map(({ node }) => ({ __typename: 'User', id: node.id }));
  const ordersBody = JSON.stringify({ query: ORDERS_FETCH, variables: { representations }, operationName: 'Nested__orders__1' });
  const bodies = { users: usersBody, orders: ordersBody };
  const targets = { users, orders };

  for (const subgraph of ['users', 'orders'] as const) {
    const [compiled, graphqlJs] = await Promise.all(MODES.map((mode) => post(targets[subgraph][mode].url, subgraph, bodies[subgraph])));
    if (compiled !== graphqlJs) throw new Error(`${subgraph}: the two answers differ`);
    log(`${subgraph}: ${compiled!.length} bytes, identical on both`);
    // Warm-up: compilation, the JIT of V8, connection pools.
    for (const mode of MODES) await load(targets[subgraph][mode], subgraph, bodies[subgraph], requests / 2);
  }

  const samples: Record<'users' | 'orders', Record<SubgraphExecution, number[]>> = {
    users: { compiled: [], 'graphql-js': [] },
    orders: { compiled: [], 'graphql-js': [] },
  };
  for (let run = 0; run < runs; run++) {
    // Alternate which goes first, so neither always runs on a warmer (or busier) machine.
    const order = run % 2 === 0 ? MODES : [...MODES].reverse();
    for (const subgraph of ['orders', 'users'] as const) {
      for (const mode of order) samples[subgraph][mode].push(await load(targets[subgraph][mode], subgraph, bodies[subgraph], requests));
    }
    log(`run ${run + 1}/${runs}: orders ${samples.orders.compiled.at(-1)!.toFixed(2)} / ${samples.orders['graphql-js'].at(-1)!.toFixed(2)} ms, users ${samples.users.compiled.at(-1)!.toFixed(2)} / ${samples.users['graphql-js'].at(-1)!.toFixed(2)} ms (compiled / graphql-js)`);
  }

  const report = Object.fromEntries(
    (['orders', 'users'] as const).map((subgraph) => {
      const compiled = median(samples[subgraph].compiled);
      const graphqlJs = median(samples[subgraph]['graphql-js']);
      return [
        subgraph,
        {
          cpuMsPerRequest: { compiled: round(compiled), 'graphql-js': round(graphqlJs) },
          ratio: round(compiled / graphqlJs),
          peakRssMb: { compiled: round(peakRssMb(targets[subgraph].compiled.child.pid!)), 'graphql-js': round(peakRssMb(targets[subgraph]['graphql-js'].child.pid!)) },
          samples: samples[subgraph],
        },
      ];
    }),
  );
  process.stdout.write(`${JSON.stringify({ date: new Date().toISOString(), node: process.version, runs, requests, connections, ...report }, null, 2)}\n`);
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
