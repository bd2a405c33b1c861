// `npm run -s bench:startup -w @fed/docker -- --runs 5`: start-up of a compiled service against the same
// service under tsx, side by side: the image this tree builds (node dist/…) and the image of the commit before
// the compiled build (tsx src/…, started directly, not through npm), on the same Postgres, alternating, medians.
// Also reports each image's size and each container's memory once ready.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createTestDatabase, waitFor } from '@fed/platform/testing';
import { dockerEngine } from '../src/engine.ts';

const BEFORE = '238b3d0'; // the last commit whose image ran TypeScript through tsx
const ROOT = join(import.meta.dirname, '../../..');
const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
const log = (line: string) => process.stderr.write(`${line}\n`);
const engine = dockerEngine(process.env);
const { docker, out: dockerOut } = engine;
const base = engine.localBase();
const build = (tag: string, context: string) => {
  log(`building ${tag}`);
  engine.build(tag, context, base);
};

const after = 'federated-graph:bench-compiled';
build(after, ROOT);
const before = `federated-graph:bench-${BEFORE}`;
if (spawnSync(docker, ['image', 'inspect', before], { stdio: 'ignore' }).status !== 0) {
  const tree = join(ROOT, `.bench/image-${BEFORE}`);
  if (!existsSync(tree)) execFileSync('git', ['worktree', 'add', '--detach', tree, BEFORE], { cwd: ROOT, stdio: 'inherit' });
  // Its Dockerfile began with a `# syntax=` line, which makes BuildKit fetch a frontend from a registry.
  execFileSync('sed', ['-i', '/^# syntax=/d', join(tree, 'infra/docker/Dockerfile')]);
  build(before, tree);
}

// Two databases, as deployed: the two migrations run concurrently and would race on one.
const [database, ordersDatabase] = [await createTestDatabase('bench_startup'), await createTestDatabase('bench_startup_orders')];
execFileSync(docker, ['run', '--rm', '--network', 'host', '-e', `USERS_DATABASE_URL=${database.url}`, '-e', `ORDERS_DATABASE_URL=${ordersDatabase.url}`, after, 'node', 'infra/stack/dist/cli/migrate.js'], { stdio: 'ignore' });

const variants = {
  compiled: { image: after, command: ['node', 'subgraphs/users/dist/index.js'] },
  tsx: { image: before, command: ['node_modules/.bin/tsx', 'subgraphs/users/src/index.ts'] },
};
const samples: Record<keyof typeof variants, { readyMs: number; memoryMiB: number }[]> = { compiled: [], tsx: [] };

for (let run = 0; run < runs; run++) {
  for (const name of (run % 2 === 0 ? ['compiled', 'tsx'] : ['tsx', 'compiled']) as (keyof typeof variants)[]) {
    const { image, command } = variants[name];
    const port = String(24_100 + run);
    const started = performance.now();
    const id = dockerOut(
      'run', '-d', '--network', 'host', '-e', `USERS_PORT=${port}`, '-e', `USERS_DATABASE_URL=${database.url}`, '-e', 'LOG_LEVEL=warn',
      '-e', `USERS_SUBGRAPH_SECRET=${'u'.repeat(40)}`, '-e', `ORDERS_TO_USERS_SECRET=${'o'.repeat(40)}`, image, ...command,
    );
    try {
      await waitFor(async () => {
        const response = await fetch(`http://127.0.0.1:${port}/readyz`);
        if (!response.ok) throw new Error(`readyz ${response.status}`);
      }, 60_000, 20);
      const readyMs = performance.now() - started;
      const usage = dockerOut('stats', '--no-stream', '--format', '{{.MemUsage}}', id).split('/')[0]?.trim() ?? '';
      const memoryMiB = Number.parseFloat(usage) * (usage.endsWith('GiB') ? 1024 : usage.endsWith('kB') ? 1 / 1024 : 1);
      samples[name].push({ readyMs, memoryMiB });
      log(`run ${run + 1} ${name}: ready in ${Math.round(readyMs)} ms, ${memoryMiB.toFixed(0)} MiB`);
    } finally {
      spawnSync(docker, ['rm', '-f', id], { stdio: 'ignore' });
    }
  }
}
await Promise.all([database.drop(), ordersDatabase.drop()]);

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
};
const sizeMB = (image: string) => Math.round(engine.sizeBytes(image) / 1e6);
const rows = (Object.keys(variants) as (keyof typeof variants)[]).map((name) => ({
  variant: name,
  image: variants[name].image,
  imageMB: sizeMB(variants[name].image),
  readyMsMedian: Math.round(median(samples[name].map((sample) => sample.readyMs))),
  memoryMiBMedian: Math.round(median(samples[name].map((sample) => sample.memoryMiB))),
}));
log('\n| users subgraph | image MB | docker run → /readyz 200, median ms | memory once ready, MiB |\n|---|---:|---:|---:|');
for (const row of rows) log(`| ${row.variant} (${row.image}) | ${row.imageMB} | ${row.readyMsMedian} | ${row.memoryMiBMedian} |`);
process.stdout.write(`${JSON.stringify({ runs, rows })}\n`);
