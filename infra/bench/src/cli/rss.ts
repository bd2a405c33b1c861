// `npm run -s bench:rss -w @fed/bench -- --variant NAME[:TOKENS] ...`: the users subgraph's peak RSS under load, one
// process per variant, all compiled from this working tree (or --rev) on one seeded dataset, loaded in alternating
// runs. A variant's TOKENS (space-separated) are Node flags (`--max-semi-space-size=4`), environment settings
// (`SUBGRAPH_EXECUTION=graphql-js`) or `@REV`, another commit to compile and run; a variant without tokens runs as
// shipped. For each: peak RSS (VmHWM) after
// every run, the RSS at the end, and the median throughput and CPU per request, so that a flag that saves memory
// shows what it costs.
//   --variant NAME[:TOKENS]  repeatable (default: shipped, and graphql-js)
//   --rev REV                compile this commit instead of the working tree
//   --runs N --seconds S     alternating runs per variant (4 × 8 s), after one warm-up each
//   --connections C          concurrent connections (50, the bench's)
//   --users N                seeded users (10 000)
// The load cycles through what the gateway sends users in the bench's scenarios: the nested list's page of 20 and
// the deep query's User entities. Progress goes to stderr, the table (markdown) to stdout.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { IDENTITY_HEADER, signIdentity } from '@fed/platform';
import { deleteRedisKeys, freePort, median, testRedisUrl } from '@fed/platform/testing';
import { buildCompiledTree, checkOutCommit } from '../build.ts';
import { seedDataset, type Dataset } from '../dataset.ts';
import { ADMIN } from '../gateways/reference.ts';
import { load, pickLoadGenerator, warmUp, type LoadRequest } from '../load.ts';
import { httpOk, peakRssMb, REPO, rssMb, startProcess, type BenchProcess } from '../processes.ts';

const { values } = parseArgs({
  options: {
    variant: { type: 'string', multiple: true },
    rev: { type: 'string' },
    runs: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '8' },
    connections: { type: 'string', default: '50' },
    users: { type: 'string', default: '10000' },
  },
});
const log = (line: string) => process.stderr.write(`${line}\n`);
const generator = pickLoadGenerator();
const [runs, seconds, connections] = [Number(values.runs), Number(values.seconds), Number(values.connections)];

interface Variant {
  name: string;
  /** The commit it runs, when not the tree's. */
  rev?: string;
  nodeArgs: string[];
  env: Record<string, string>;
}
const variants: Variant[] = (values.variant ?? ['shipped', 'graphql-js:SUBGRAPH_EXECUTION=graphql-js']).map((spec) => {
  const [name, tokens = ''] = spec.split(/:(.*)/s) as [string, string?];
  const words = tokens.split(' ').filter(Boolean);
  const rev = words.find((word) => word.startsWith('@'))?.slice(1);
  return {
    name,
    ...(rev && { rev }),
    nodeArgs: words.filter((word) => word.startsWith('--')),
    env: Object.fromEntries(words.filter((word) => !word.startsWith('--') && !word.startsWith('@')).map((word) => word.split(/=(.*)/s).slice(0, 2) as [string, string])),
  };
});

const scratch = join(REPO, `.bench/rss-${process.pid}`);
const redisPrefix = `bench-rss-${process.pid}-${Date.now().toString(36)}:`;
const started: { variant: Variant; process: BenchProcess; secret: string }[] = [];
let dataset: Dataset | undefined;
try {
  if (values.rev) {
    log(`checking out and compiling ${values.rev}`);
    checkOutCommit(values.rev, join(scratch, 'source'));
    buildCompiledTree(join(scratch, 'tree'), join(scratch, 'source'));
  } else {
    log('compiling this tree');
    buildCompiledTree(join(scratch, 'tree'));
  }
  const treeOf = (variant: Variant) => (variant.rev ? join(scratch, `tree-${variant.rev}`) : join(scratch, 'tree'));
  for (const rev of new Set(variants.flatMap((variant) => variant.rev ?? []))) {
    log(`checking out and compiling ${rev}`);
    checkOutCommit(rev, join(scratch, `source-${rev}`));
    buildCompiledTree(join(scratch, `tree-${rev}`), join(scratch, `source-${rev}`));
  }
  log(`seeding ${values.users} users`);
  dataset = await seedDataset({ users: Number(values.users), ordersPerUser: 1 }, log);
  for (const variant of variants) {
    const secret = randomBytes(32).toString('base64url');
    const port = await freePort();
    const process_ = await startProcess({
      name: `users (${variant.name})`,
      inherited: { PATH: process.env.PATH, HOME: process.env.HOME },
      nodeArgs: variant.nodeArgs,
      entry: join(treeOf(variant), 'subgraphs/users/dist/index.js'),
      env: {
        REDIS_URL: testRedisUrl(),
        REDIS_KEY_PREFIX: redisPrefix,
        USERS_SUBGRAPH_SECRET: secret,
        ORDERS_SUBGRAPH_SECRET: randomBytes(32).toString('base64url'),
        ORDERS_TO_USERS_SECRET: randomBytes(32).toString('base64url'),
        USERS_PORT: String(port),
        USERS_DATABASE_URL: dataset.users.url,
        ...variant.env,
      },
      url: `http://127.0.0.1:${port}/graphql`,
      ready: httpOk(`http://127.0.0.1:${port}/readyz`),
    });
    started.push({ variant, process: process_, secret });
    log(`  ${variant.name} ready (pid ${process_.pid}, ${rssMb(process_.pid)} MB)`);
  }

  const page = JSON.stringify({ query: 'query Nested__users__0 { users(first: 20) { edges { node { __typename id name email } } } }' });
  const entities = JSON.stringify({
    query: 'query Deep__users__2($representations: [_Any!]!) { _entities(representations: $representations) { ... on User { name } } }',
    variables: { representations: Array.from({ length: 75 }, (_, index) => ({ __typename: 'User', id: String(1 + ((index * 37) % Number(values.users))) })) },
  });
  // Signed afresh before each run: a signature lives 30 s.
  const requestsOf = (secret: string): LoadRequest[] =>
    [page, entities].map((body) => ({ body, headers: { [IDENTITY_HEADER]: signIdentity({ secret, caller: 'gateway', audience: 'users', viewer: ADMIN, body }) } }));
  for (const { process: target, secret } of started) await warmUp(generator, target, requestsOf(secret), { seconds: 2, connections, log });

  const measured = new Map<string, { rps: number[]; cpu: number[]; peak: number[] }>(variants.map((variant) => [variant.name, { rps: [], cpu: [], peak: [] }]));
  for (let run = 1; run <= runs; run += 1) {
    for (const { variant, process: target, secret } of run % 2 ? started : [...started].reverse()) {
      const result = await load(generator, target, requestsOf(secret), { seconds, connections, log });
      const figures = measured.get(variant.name)!;
      figures.rps.push(result.rps);
      figures.cpu.push(result.cpuMsPerRequest);
      figures.peak.push(peakRssMb(target.pid));
      log(`  run ${run} ${variant.name}: ${Math.round(result.rps)} req/s, ${result.cpuMsPerRequest} ms CPU per request, peak RSS ${peakRssMb(target.pid)} MB`);
    }
  }

  const lines = [
    `The users subgraph alone, ${runs} alternating runs of ${seconds} s at ${connections} connections (${generator}), medians; peak RSS is the process's high-water mark after its last run. ${dataset.counts.users} users.`,
    '',
    '| variant | flags and settings | peak RSS MB | RSS at the end MB | req/s | CPU ms/req |',
    '|---|---|---:|---:|---:|---:|',
    ...started.map(({ variant, process: target }) => {
      const figures = measured.get(variant.name)!;
      const how = [...(variant.rev ? [`@${variant.rev}`] : []), ...variant.nodeArgs, ...Object.entries(variant.env).map(([key, value]) => `${key}=${value}`)].join(' ') || 'as shipped';
      return `| ${variant.name} | \`${how}\` | ${Math.max(...figures.peak)} | ${rssMb(target.pid)} | ${Math.round(median(figures.rps))} | ${median(figures.cpu).toFixed(3)} |`;
    }),
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  for (const { process: target } of started.reverse()) await target.stop().catch((error: unknown) => log(`stopping ${target.name}: ${String(error)}`));
  await dataset?.drop().catch((error: unknown) => log(`dropping the databases: ${String(error)}`));
  await deleteRedisKeys(redisPrefix).catch(() => {});
  rmSync(scratch, { recursive: true, force: true });
}
