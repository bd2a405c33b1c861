// `npm run -s bench:reload -w @fed/stack -- --reloads 10 --connections 50`: how long a replaced supergraph file
// takes to be served, under load. `npm start` runs as its own process on an embedded data dir, following a
// supergraph file that alternates between the committed supergraph and one without `User.updatedAt`; each reload
// is timed from the rename to the first answer that shows the change, while the clients keep asking (every
// answer checked). Progress on stderr, the medians on stdout.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_SUPERGRAPH_PATH } from '@fed/gateway/config';
import { readSupergraph } from '@fed/gateway/supergraph';
import { median } from '@fed/platform/testing';
import { composeSubgraphs, SUBGRAPHS, subgraphSdl } from '@fed/schema';
import { startStackProcess } from '../src/process.ts';

const { values } = parseArgs({ options: { reloads: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' } } });
const log = (line: string) => process.stderr.write(`${line}\n`);
const repo = fileURLToPath(new URL('../../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'bench-reload-'));
const path = join(dir, 'supergraph.graphql');
const full = readSupergraph(DEFAULT_SUPERGRAPH_PATH);
const reduced = composeSubgraphs(SUBGRAPHS.map(({ name, url }) => ({ name, url, sdl: name === 'users' ? subgraphSdl('users').replace(/^\s*updatedAt: DateTime!\n/m, '') : subgraphSdl(name) }))).supergraphSdl;
writeFileSync(path, full);

// No rate limit: the clients are one address, and they are the load, not an attack.
log('starting npm start (first start migrates and seeds the embedded databases)');
const stack = await startStackProcess(repo, { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: join(dir, 'data'), GATEWAY_PORT: '0', USERS_PORT: '0', ORDERS_PORT: '0', LOG_LEVEL: 'warn', SUPERGRAPH_PATH: path, RATE_LIMIT_MAX: '0' });
const post = async (query: string) => {
  const response = await fetch(stack.gatewayUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
  return { status: response.status, body: (await response.json()) as { data?: unknown; errors?: { extensions?: { code?: string } }[] } };
};

let running = true;
let answered = 0;
const failures: string[] = [];
const client = async () => {
  while (running) {
    const { status, body } = await post('{ users(first: 5) { edges { node { id name } } } }').catch((error: Error) => ({ status: 0, body: { errors: [{ extensions: { code: error.message } }] } }));
    if (status !== 200 || body.errors) failures.push(`${status} ${JSON.stringify(body.errors)}`);
    answered += 1;
  }
};
const load = Array.from({ length: Number(values.connections) }, client);

const timings: number[] = [];
try {
  for (let reload = 0; reload < Number(values.reloads); reload++) {
    const adds = reload % 2 === 1;
    writeFileSync(`${path}.next`, adds ? full : reduced);
    const started = performance.now();
    renameSync(`${path}.next`, path);
    for (;;) {
      const { body } = await post('{ user(id: "1") { updatedAt } }');
      const served = adds ? !body.errors : body.errors?.[0]?.extensions?.code === 'GRAPHQL_VALIDATION_FAILED';
      if (served) break;
      if (performance.now() - started > 30_000) throw new Error(`reload ${reload} not served within 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    timings.push(performance.now() - started);
    log(`reload ${reload + 1} (${adds ? 'adds' : 'removes'} User.updatedAt): served after ${Math.round(timings.at(-1)!)} ms`);
  }
} finally {
  running = false;
  await Promise.all(load);
  await stack.stop();
  rmSync(dir, { recursive: true, force: true });
}
const sorted = [...timings].sort((a, b) => a - b);
process.stdout.write(
  `${JSON.stringify({ reloads: timings.length, connections: Number(values.connections), medianMs: Math.round(median(timings)), maxMs: Math.round(sorted.at(-1)!), answered, failed: failures.length, firstFailures: failures.slice(0, 3) })}\n`,
);
