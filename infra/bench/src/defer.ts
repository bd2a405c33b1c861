import { setMaxListeners } from 'node:events';
import { Agent, request as httpRequest } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import { cpuMs, median, percentile } from '@fed/platform/testing';
import { settle } from './load.ts';
import { mergeParts, MultipartReader, type DeferPart } from './multipart.ts';
import type { BenchProcess } from './processes.ts';
import { nestedQuery } from './scenarios.ts';

/** The nested scenario's query with the orders part deferred: users, names and emails first, their orders after. */
export const deferredNestedQuery = (first: number) => `query NestedDeferred { users(first: ${first}) { edges { node {
  id name email
  ... @defer { orderCount orders(first: 5) { edges { node { id status totalCents items { sku quantity unitPriceCents } } } } }
} } } }`;

/**
 * Runs of the defer scenario last at least this long unless --seconds says otherwise: at 50 connections the nested
 * query takes about a second on a busy machine, and in a 2 s run each connection completes one or two requests,
 * the slower ones never (the run ends first), which would cut the tail off both queries.
 */
export const DEFER_MIN_SECONDS_PER_RUN = 8;

/** What Apollo Client sends (with a Defer20220824Handler): it reads multipart answers for @defer, and JSON. */
export const DEFER_ACCEPT = 'multipart/mixed;deferSpec=20220824,application/json';

/** One request, timed as a client reading the parts as they come would see it. */
export interface Timed {
  /** Request sent → the first part whole (its closing delimiter arrived); for a JSON answer, the whole body. */
  firstMs: number;
  /** Request sent → the body ended. */
  lastMs: number;
  parts: number;
}

/** What came back for one request, read as Apollo Client reads it. */
interface Answer {
  status: number;
  contentType: string;
  /** The parts of a multipart answer; one for a JSON answer. */
  parts: DeferPart[];
  timed: Timed;
}

/** Sends `body` and reads the answer, timing when its first part was whole and when it ended. */
function ask(url: URL, agent: Agent, body: string, authorization: string, signal?: AbortSignal): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const began = performance.now();
    const req = httpRequest(
      url,
      { method: 'POST', agent, signal, headers: { 'content-type': 'application/json', accept: DEFER_ACCEPT, authorization, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const contentType = res.headers['content-type'] ?? '';
        const multipart = contentType.startsWith('multipart/mixed');
        const reader = multipart ? new MultipartReader() : undefined;
        const chunks: Buffer[] = [];
        let firstMs: number | undefined;
        res.on('data', (chunk: Buffer) => {
          if (!reader) return void chunks.push(chunk);
          try {
            if (reader.push(chunk) > 0) firstMs ??= performance.now() - began;
          } catch (error) {
            res.destroy(error as Error);
          }
        });
        res.once('error', reject);
        res.once('end', () => {
          const lastMs = performance.now() - began;
          try {
            const parts = reader ? (reader.parts as DeferPart[]) : [JSON.parse(Buffer.concat(chunks).toString('utf8')) as DeferPart];
            if (reader && !reader.ended) throw new Error('a multipart answer ended without its close delimiter');
            resolve({ status: res.statusCode ?? 0, contentType, parts, timed: { firstMs: firstMs ?? lastMs, lastMs, parts: parts.length } });
          } catch (error) {
            reject(error as Error);
          }
        });
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

const requestBody = (query: string) => JSON.stringify({ query });

/**
 * Nothing is timed unless, on `gateway`, the deferred nested query comes in several parts (a first part without
 * the orders, then the rest) whose merge deep-equals `reference`'s answer to the complete query, and the complete
 * query, asked with the same Accept header, is plain JSON with that same data. Returns the sizes of the first part
 * and of the complete answer, in bytes.
 */
export async function checkDeferAnswers(gateway: BenchProcess, reference: BenchProcess, authorization: string, users: number): Promise<{ firstPartBytes: number; completeBytes: number }> {
  const agent = new Agent({ keepAlive: false });
  try {
    const expected = await ask(new URL(reference.url), agent, requestBody(nestedQuery(users)), authorization);
    const [whole] = expected.parts;
    if (expected.status !== 200 || !whole || whole.errors) throw new Error(`defer: ${reference.name} answered the complete query ${expected.status}: ${JSON.stringify(whole).slice(0, 300)}`);
    const deferred = await ask(new URL(gateway.url), agent, requestBody(deferredNestedQuery(users)), authorization);
    const wrong = (why: string) => new Error(`defer: ${gateway.name} answers the deferred nested query wrongly (${why}); nothing was timed: ${JSON.stringify(deferred.parts).slice(0, 300)}`);
    if (deferred.status !== 200) throw wrong(`status ${deferred.status}`);
    if (!deferred.contentType.startsWith('multipart/mixed')) throw wrong(`content-type ${deferred.contentType}`);
    if (deferred.parts.length < 2 || deferred.parts[0]?.hasNext !== true) throw wrong(`${deferred.parts.length} parts, the first with hasNext ${String(deferred.parts[0]?.hasNext)}`);
    if (JSON.stringify(deferred.parts[0]?.data).includes('"orders"')) throw wrong('the first part already has the orders');
    const merged = mergeParts(deferred.parts);
    if (merged.hasNext !== false) throw wrong('the last part does not say hasNext: false');
    if (merged.errors.length > 0) throw wrong(`errors: ${JSON.stringify(merged.errors).slice(0, 300)}`);
    if (!isDeepStrictEqual(merged.data, whole.data)) throw wrong(`the merged parts differ from ${reference.name}'s complete answer`);
    const complete = await ask(new URL(gateway.url), agent, requestBody(nestedQuery(users)), authorization);
    if (complete.status !== 200 || complete.contentType.startsWith('multipart/') || complete.parts[0]?.errors || !isDeepStrictEqual(complete.parts[0]?.data, whole.data)) {
      throw new Error(`defer: ${gateway.name} answers the complete nested query differently from ${reference.name}: ${complete.contentType} ${JSON.stringify(complete.parts).slice(0, 300)}`);
    }
    return { firstPartBytes: Buffer.byteLength(JSON.stringify(deferred.parts[0])), completeBytes: Buffer.byteLength(JSON.stringify(whole)) };
  } finally {
    agent.destroy();
  }
}

export interface PartsRun {
  /** Requests completed in the run, and per second. */
  requests: number;
  rps: number;
  seconds: number;
  firstPartP50Ms: number;
  firstPartP99Ms: number;
  lastPartP50Ms: number;
  lastPartP99Ms: number;
  /** The gateway's user + system CPU per completed request. */
  gatewayCpuMsPerRequest: number;
}

/** However slow the machine, a run's requests in flight at its end are abandoned after this long. */
const DRAIN_BOUND_MS = 30_000;

/**
 * `connections` loops on keep-alive sockets, each sending `body` and reading the answer to its end before sending
 * again, for `seconds`; requests still in flight at the end are abandoned (as wrk does), and the run waits until
 * the gateway and its subgraphs have served them (`quiesce`). Every answer must be a 200 without errors (a
 * multipart one ending with hasNext: false); more than a stray failure throws.
 */
export async function loadParts(
  gateway: BenchProcess,
  query: string,
  authorization: string,
  { seconds, connections, quiesce }: { seconds: number; connections: number; quiesce: readonly number[] },
): Promise<PartsRun> {
  const url = new URL(gateway.url);
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const body = requestBody(query);
  const abort = new AbortController();
  // Every request in flight listens for the end of the run.
  setMaxListeners(connections + 10, abort.signal);
  const timed: Timed[] = [];
  const failures: string[] = [];
  let stopping = false;
  const cpuBefore = cpuMs(gateway.pid);
  const began = performance.now();
  const loop = async () => {
    while (!stopping) {
      try {
        const answer = await ask(url, agent, body, authorization, abort.signal);
        if (stopping) break;
        const last = answer.parts.at(-1);
        if (answer.status !== 200 || answer.parts.some((part) => part.errors || part.incremental?.some((item) => item.errors))) failures.push(`status ${answer.status}: ${JSON.stringify(answer.parts).slice(0, 200)}`);
        else if (answer.parts.length > 1 && last?.hasNext !== false) failures.push('the last part does not say hasNext: false');
        else timed.push(answer.timed);
      } catch (error) {
        if (stopping) break;
        failures.push((error as Error).message);
      }
    }
  };
  const loops = Array.from({ length: connections }, loop);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  stopping = true;
  const elapsed = (performance.now() - began) / 1000;
  const cpu = cpuMs(gateway.pid) - cpuBefore;
  abort.abort();
  await Promise.race([Promise.all(loops), new Promise((resolve) => setTimeout(resolve, DRAIN_BOUND_MS))]);
  agent.destroy();
  await settle(quiesce);
  if (timed.length === 0) throw new Error(`${gateway.name}: not one request completed in ${seconds} s`);
  if (failures.length > timed.length / 1_000) throw new Error(`${gateway.name}: ${failures.length} of ${failures.length + timed.length} requests failed, e.g. ${failures[0]}`);
  const first = timed.map((each) => each.firstMs).sort((a, b) => a - b);
  const last = timed.map((each) => each.lastMs).sort((a, b) => a - b);
  const ms = (value: number) => Number(value.toFixed(1));
  return {
    requests: timed.length,
    rps: Math.round(timed.length / elapsed),
    seconds: Number(elapsed.toFixed(1)),
    firstPartP50Ms: ms(percentile(first, 50)),
    firstPartP99Ms: ms(percentile(first, 99)),
    lastPartP50Ms: ms(percentile(last, 50)),
    lastPartP99Ms: ms(percentile(last, 99)),
    gatewayCpuMsPerRequest: Number((cpu / timed.length).toFixed(3)),
  };
}

/** Medians over runs of each figure of a run. */
export function medianRun(runs: readonly PartsRun[]): Omit<PartsRun, 'seconds'> {
  const of = (field: keyof PartsRun) => median(runs.map((run) => run[field]));
  return {
    requests: Math.round(of('requests')),
    rps: Math.round(of('rps')),
    firstPartP50Ms: of('firstPartP50Ms'),
    firstPartP99Ms: of('firstPartP99Ms'),
    lastPartP50Ms: of('lastPartP50Ms'),
    lastPartP99Ms: of('lastPartP99Ms'),
    gatewayCpuMsPerRequest: of('gatewayCpuMsPerRequest'),
  };
}
