import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from '@fed/platform/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { processCpu } from '../src/cpu.ts';
import { load, pickLoadGenerator, settle, warmUp, type LoadGenerator, type LoadRequest } from '../src/load.ts';
import { httpOk, startProcess, type BenchProcess } from '../src/processes.ts';

// The load generators are pointed at a real HTTP server in a process of its own, as the gateways are: wrk runs
// synchronously (execFileSync), so a server inside this test process could not answer while it runs. The server
// counts what it gets: method, path, content type, body, authorization and signed identity of every request.
const SERVER = `
import { createServer } from 'node:http';
const [port, status, holdMs = 0] = process.argv.slice(2).map(Number);
const seen = new Map();
// With holdMs, no answer leaves before holdMs after the first request came: a cold gateway's first answers.
let firstAt;
const server = createServer((request, response) => {
  if (request.method === 'GET' && request.url === '/stats') {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(Object.fromEntries(seen)));
    return;
  }
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    const key = JSON.stringify([request.method, request.url, request.headers['content-type'] ?? null, Buffer.concat(chunks).toString('utf8'), request.headers.authorization ?? null, request.headers['x-fed-identity'] ?? null]);
    seen.set(key, (seen.get(key) ?? 0) + 1);
    firstAt ??= Date.now();
    setTimeout(() => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(status === 200 ? '{"data":{"ok":true}}' : '{"errors":[{"message":"boom"}]}');
    }, Math.max(0, firstAt + holdMs - Date.now()));
  });
});
server.listen(port, '127.0.0.1');
`;

let scratch: string;
const started: BenchProcess[] = [];

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'bench-load-test-'));
  writeFileSync(join(scratch, 'server.mjs'), SERVER);
});
afterEach(async () => {
  for (const server of started.splice(0)) await server.stop();
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function countingServer(status = 200, holdMs = 0): Promise<BenchProcess & { seen(): Promise<Map<string, number>> }> {
  const port = await freePort();
  const server = await startProcess({
    name: 'counting-server',
    entry: join(scratch, 'server.mjs'),
    args: [String(port), String(status), String(holdMs)],
    inherited: { PATH: process.env.PATH },
    url: `http://127.0.0.1:${port}/graphql`,
    ready: httpOk(`http://127.0.0.1:${port}/stats`),
  });
  started.push(server);
  return {
    ...server,
    seen: async () => new Map(Object.entries((await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as Record<string, number>)),
  };
}

// Distinct bodies and tokens, two sharing a body (so the pairing matters), one with non-ASCII text and escapes
// (the nested query's body carries newlines), as the scenarios send them.
const REQUESTS: LoadRequest[] = [
  { body: JSON.stringify({ query: 'query Nested { users(first: 20) {\n  edges { node { id } } } }' }), authorization: 'Bearer aaa.one' },
  { body: JSON.stringify({ query: 'query User($id: ID!) { user(id: $id) { id name } }', variables: { id: '17' } }), authorization: 'Bearer bbb.two' },
  { body: JSON.stringify({ query: 'query User($id: ID!) { user(id: $id) { id name } }', variables: { id: '17' } }), authorization: 'Bearer ccc.three' },
  {
    body: JSON.stringify({ query: 'mutation Rename($id: ID!, $name: String!) { updateUser(id: $id, input: { name: $name }) { id } }', variables: { id: '3', name: 'Zoë "Z" Ørsted\t· 名前 \\ end' } }),
    authorization: 'Bearer ddd.four',
  },
  // As a subgraph is called straight: no token, a signed identity of its own.
  { body: JSON.stringify({ query: '{ _service { sdl } }' }), headers: { 'x-fed-identity': 'eyJ.signed.identity' } },
];
const SECONDS = 1;
const CONNECTIONS = 4;
const quiet = { seconds: SECONDS, connections: CONNECTIONS, log: () => {} };

describe('pickLoadGenerator', () => {
  it('picks wrk when it is on PATH (as on this machine), and autocannon when it is not', () => {
    const onPath = (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, 'wrk')));
    expect(onPath, 'wrk is installed on this machine').toBe(true);
    expect(pickLoadGenerator()).toBe('wrk');
    const saved = process.env.PATH;
    process.env.PATH = scratch; // a directory without wrk
    try {
      expect(pickLoadGenerator()).toBe('autocannon');
    } finally {
      process.env.PATH = saved;
    }
  });
});

describe.each<[string, () => LoadGenerator]>([
  ['pickLoadGenerator() (wrk here)', pickLoadGenerator],
  ['autocannon', () => 'autocannon'],
])('load() with %s', (_, generator) => {
  it('sends the given requests in turn, POSTed as JSON, and reports what the server really served', async () => {
    const server = await countingServer();
    const idle = spawn('sleep', ['30'], { stdio: 'ignore' });
    const result = await load(generator(), server, REQUESTS, { ...quiet, watch: [processCpu('server', server.pid), processCpu('idle', idle.pid!)] }).finally(() => idle.kill());
    const seen = await server.seen();

    // Every request the server got is one of those given, body and headers together, as JSON POSTs.
    const given = new Set(REQUESTS.map(({ body, authorization, headers }) => JSON.stringify(['POST', '/graphql', 'application/json', body, authorization ?? null, headers?.['x-fed-identity'] ?? null])));
    for (const key of seen.keys()) expect(given, `an unexpected request: ${key}`).toContain(key);
    // Every one of them was used, in turn: the counts differ by at most one per connection.
    const counts = [...given].map((key) => seen.get(key) ?? 0);
    expect(Math.min(...counts), `requests per pair: ${counts.join(', ')}`).toBeGreaterThan(0);
    expect(Math.max(...counts) - Math.min(...counts), `requests per pair: ${counts.join(', ')}`).toBeLessThanOrEqual(CONNECTIONS);

    // The result counts what the server answered: at most the few requests in flight at the end are missing.
    const served = counts.reduce((sum, count) => sum + count, 0);
    expect(result.requests).toBeGreaterThan(0);
    expect(result.requests).toBeLessThanOrEqual(served);
    expect(served - result.requests).toBeLessThanOrEqual(CONNECTIONS);
    // Throughput is those requests over the run's length.
    expect(Math.abs(result.rps - result.requests / SECONDS) / (result.requests / SECONDS)).toBeLessThan(0.1);
    // Latencies in ms, ordered; a run of a second on loopback has none of a second or more. wrk measures in µs;
    // autocannon only in whole ms, so on loopback its p50 is often 0.
    expect(result.p50Ms).toBeGreaterThanOrEqual(generator() === 'wrk' ? Number.MIN_VALUE : 0);
    expect(result.p99Ms).toBeGreaterThanOrEqual(result.p50Ms);
    expect(result.p99Ms).toBeLessThan(1000);
    // CPU per request is the target process's own (the server did real work).
    expect(Number.isFinite(result.cpuMsPerRequest)).toBe(true);
    expect(result.cpuMsPerRequest).toBeGreaterThan(0);
    // …and so is every watched process's: the server's about the same, a sleeping process's nothing.
    expect(Object.keys(result.cpuMsPerRequestOf)).toEqual(['server', 'idle']);
    expect(result.cpuMsPerRequestOf.server).toBeGreaterThan(0);
    expect(result.cpuMsPerRequestOf.idle).toBe(0);
  });

  it('throws, naming the target, when the server answers 500', async () => {
    const server = await countingServer(500);
    await expect(load(generator(), server, REQUESTS, quiet)).rejects.toThrow(/^counting-server: \d+ of \d+ requests failed$/);
    // It really was loaded: the failure is the answers, not a failure to connect.
    const served = [...(await server.seen()).values()].reduce((sum, count) => sum + count, 0);
    expect(served).toBeGreaterThan(0);
  });

  it('warms up a server whose first answers take longer than a round: rounds repeat until answers come, and nothing throws', async () => {
    // As a cold gateway at 50 connections: a 1 s round ends before its first answer, 1.5 s after the first request.
    const cold = await countingServer(200, 1_500);
    await expect(load(generator(), cold, REQUESTS, quiet)).rejects.toThrow(/^counting-server: not one request completed$/);

    const lines: string[] = [];
    const warming = await countingServer(200, 1_500);
    const rounds = await warmUp(generator(), warming, REQUESTS, { ...quiet, log: (line) => lines.push(line) });
    expect(rounds).toBeGreaterThanOrEqual(2);
    expect(lines[0]).toMatch(/counting-server: warm-up round 1: no answer yet; warming up again/);
    // Warm, the measurement passes.
    expect((await load(generator(), warming, REQUESTS, quiet)).requests).toBeGreaterThan(0);
  });

  it('with maxSeconds, a run that got fewer answers than connections is run again twice as long, up to maxSeconds', async () => {
    // The first answers come 1.5 s after the first request: a 1 s run gets none, the 2 s one that follows does.
    const cold = await countingServer(200, 1_500);
    const lines: string[] = [];
    const result = await load(generator(), cold, REQUESTS, { ...quiet, log: (line) => lines.push(line), maxSeconds: 4 });
    expect(result.seconds).toBeGreaterThan(SECONDS);
    expect(result.requests).toBeGreaterThanOrEqual(CONNECTIONS);
    expect(lines[0]).toMatch(/^ {2}counting-server: 0 answers in 1 s at 4 connections; measuring again for 2 s$/);
    // A server that never answers still fails the measurement once maxSeconds is reached.
    const stalled = await countingServer(200, 60_000);
    await expect(load(generator(), stalled, REQUESTS, { ...quiet, maxSeconds: 2 })).rejects.toThrow(/not one request completed/);
  });

  it('never fails a warm-up, even against a server that only fails: the measurement judges it', async () => {
    const server = await countingServer(500);
    const lines: string[] = [];
    expect(await warmUp(generator(), server, REQUESTS, { ...quiet, log: (line) => lines.push(line), boundMs: 0 })).toBe(1);
    expect(lines).toEqual([expect.stringMatching(/^ {2}counting-server: warm-up gave up after 1 rounds \(all \d+ requests failed\); the measurement decides$/)]);
    await expect(load(generator(), server, REQUESTS, quiet)).rejects.toThrow(/requests failed/);
  });
});

describe('settle', () => {
  // A process that burns CPU for `busyMs`, then writes `marker` and idles: as a gateway still serving what a load
  // generator abandoned.
  function burner(busyMs: number, marker: string) {
    const child = spawn(process.execPath, ['-e', `const end = Date.now() + ${busyMs}; while (Date.now() < end) {} require('node:fs').writeFileSync(${JSON.stringify(marker)}, ''); setInterval(() => {}, 1000);`], { stdio: 'ignore' });
    return child;
  }

  it('returns only once every process given is idle', async () => {
    const marker = join(scratch, 'burnt-1');
    const idle = burner(0, join(scratch, 'idle-1'));
    const busy = burner(1_500, marker);
    try {
      await settle([idle.pid!, busy.pid!]);
      expect(existsSync(marker), 'the busy process had finished its work').toBe(true);
    } finally {
      idle.kill();
      busy.kill();
    }
  });

  it('gives up at its bound, however busy the process stays, and ignores a process that has exited', async () => {
    const marker = join(scratch, 'burnt-2');
    const busy = burner(30_000, marker);
    try {
      expect(await settle([busy.pid!, 2 ** 22 + 12_345], { boundMs: 300 })).toBeGreaterThanOrEqual(300);
      expect(existsSync(marker)).toBe(false);
    } finally {
      busy.kill();
    }
  });
});
