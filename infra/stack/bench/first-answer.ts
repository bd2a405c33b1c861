// `npm run -s bench:first-answer -w @fed/stack -- --runs 5`: time from launching `npm start` to the first
// answered nested query, cold (empty data dir: migrations and seed included) and warm (data already there).
// Prints one JSON line per run on stderr and the medians on stdout.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { mintToken } from '@fed/gateway';
import { DEVELOPMENT_AUTH } from '@fed/gateway/config';
import { median } from '@fed/platform/testing';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, port: { type: 'string', default: '4900' } } });
const runs = Number(values.runs);
const port = Number(values.port);
const repo = fileURLToPath(new URL('../../..', import.meta.url));
const query = JSON.stringify({ query: '{ users(first: 2) { edges { node { name orders(first: 2) { edges { node { items { sku } } } } } } } }' });
// npm start verifies tokens with the development secret; orders are private, so the query is sent as an admin.
const authorization = `Bearer ${await mintToken({ ...DEVELOPMENT_AUTH, sub: '1', role: 'admin' })}`;

async function firstAnswer(dataDir: string): Promise<number> {
  const started = performance.now();
  const child = spawn('npm', ['start'], {
    cwd: repo,
    env: { ...process.env, DATA_DIR: dataDir, GATEWAY_PORT: String(port), USERS_PORT: String(port + 1), ORDERS_PORT: String(port + 2), LOG_LEVEL: 'warn' },
    stdio: 'ignore',
    detached: true,
  });
  try {
    for (;;) {
      if (performance.now() - started > 120_000) throw new Error('no answer within 120 s');
      try {
        const response = await fetch(`http://127.0.0.1:${port}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body: query });
        const body = (await response.json()) as { data?: { users?: { edges: { node: { orders: unknown } }[] } } };
        if (body.data?.users?.edges.length === 2 && body.data.users.edges.every(({ node }) => node.orders)) return performance.now() - started;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    if (child.pid) process.kill(-child.pid, 'SIGTERM');
    await exited;
  }
}

const cold: number[] = [];
const warm: number[] = [];
for (let run = 1; run <= runs; run++) {
  const dataDir = mkdtempSync(join(tmpdir(), 'first-answer-'));
  try {
    cold.push(await firstAnswer(dataDir));
    warm.push(await firstAnswer(dataDir));
    process.stderr.write(`${JSON.stringify({ run, coldMs: Math.round(cold.at(-1) ?? 0), warmMs: Math.round(warm.at(-1) ?? 0) })}\n`);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
process.stdout.write(`${JSON.stringify({ runs, coldMedianMs: Math.round(median(cold)), warmMedianMs: Math.round(median(warm)) })}\n`);
