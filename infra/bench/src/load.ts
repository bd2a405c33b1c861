import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import autocannon from 'autocannon';
import { cpuMs } from '@fed/platform/testing';
import { cpuBetween, type CpuWatch } from './cpu.ts';
import type { BenchProcess } from './processes.ts';

/** One request of a scenario: the load cycles through them, one per request, on every connection. */
export interface LoadRequest {
  body: string;
  /** The client's token; absent where the target takes none (a subgraph, called straight). */
  authorization?: string;
  /** Other headers (a subgraph's signed identity). */
  headers?: Readonly<Record<string, string>>;
}

/** Every header a request is sent with. */
export const headersOf = ({ authorization, headers }: LoadRequest): Record<string, string> => ({
  'content-type': 'application/json',
  ...(authorization !== undefined && { authorization }),
  ...headers,
});

export interface LoadResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** How long the run lasted (longer than asked for when a short one got fewer answers than connections). */
  seconds: number;
  /** The target process's user + system CPU per request. */
  cpuMsPerRequest: number;
  /** User + system CPU per request of every part watched during the run (gateway, subgraphs, Postgres, Redis), by name. */
  cpuMsPerRequestOf: Record<string, number>;
}

export type LoadGenerator = 'wrk' | 'autocannon';

/** wrk when installed (it needs far less CPU than autocannon, which shares these cores with the gateways). */
export function pickLoadGenerator(): LoadGenerator {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return 'wrk';
  } catch (error) {
    // wrk prints its version and exits 1; only a missing binary fails to spawn.
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'autocannon' : 'wrk';
  }
}

// A run with more than a stray failure measures failures, not the gateway.
function checkFailures(name: string, failed: number, total: number, log: (line: string) => void) {
  // A stalled gateway would otherwise enter the report at 0 req/s, and every ratio against it would be infinite.
  if (total === 0) throw new Error(`${name}: not one request completed`);
  if (failed > total / 1_000) throw new Error(`${name}: ${failed} of ${total} requests failed`);
  if (failed > 0) log(`${name}: ${failed} of ${total} requests failed`);
}

/**
 * One wrk thread (so that the cycle through `requests` is one sequence): a Lua script hands out the requests
 * in turn and prints the summary as JSON.
 */
async function runWrk(target: BenchProcess, requests: readonly LoadRequest[], seconds: number, connections: number): Promise<Measured> {
  const scratch = mkdtempSync(`${tmpdir()}/fed-bench-`);
  try {
    const script = `${scratch}/run.lua`;
    writeFileSync(
      script,
      `local requests = { ${requests.map((request) => `{ ${JSON.stringify(request.body)}, { ${Object.entries(headersOf(request)).map(([name, value]) => `[${JSON.stringify(name)}] = ${JSON.stringify(value)}`).join(', ')} } }`).join(',\n')} }
local counter = 0
request = function()
  counter = counter + 1
  local r = requests[(counter % #requests) + 1]
  return wrk.format("POST", nil, r[2], r[1])
end
done = function(summary, latency, _)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"durationUs":%d,"p50":%d,"p99":%d,"failed":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout + e.status))
end
`,
    );
    // Asynchronously: a blocked event loop would not see the keep-alive sockets the servers close meanwhile,
    // and the next request on one of them would fail.
    const { stdout: output } = await promisify(execFile)('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '30s', '-s', script, target.url], { encoding: 'utf8' });
    const line = output.split('\n').find((candidate) => candidate.startsWith('{"requests"'));
    if (!line) throw new Error(`wrk printed no summary:\n${output}`);
    const result = JSON.parse(line) as { requests: number; durationUs: number; p50: number; p99: number; failed: number };
    return { rps: result.requests / (result.durationUs / 1e6), p50Ms: result.p50 / 1000, p99Ms: result.p99 / 1000, requests: result.requests, failed: result.failed };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function runAutocannon(target: BenchProcess, requests: readonly LoadRequest[], seconds: number, connections: number): Promise<Measured> {
  let next = 0;
  const result = await autocannon({
    url: target.url,
    connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        setupRequest: (request) => {
          const given = requests[next++ % requests.length]!;
          return { ...request, body: given.body, headers: { ...request.headers, ...headersOf(given) } };
        },
      },
    ],
  });
  return { rps: result.requests.total / seconds, p50Ms: result.latency.p50, p99Ms: result.latency.p99, requests: result.requests.total, failed: result.non2xx + result.errors + result.timeouts };
}

/** What one run of the load generator saw; `failed` counts errors and non-2xx answers (also in `requests`). */
interface Measured {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  failed: number;
}

const generate = (generator: LoadGenerator, target: BenchProcess, requests: readonly LoadRequest[], seconds: number, connections: number) =>
  generator === 'wrk' ? runWrk(target, requests, seconds, connections) : runAutocannon(target, requests, seconds, connections);

/**
 * `requests` against `target` for `seconds` at `connections`, with the target process's CPU per request, and that
 * of every part in `watch`. This is a measurement: a run that completed nothing, or failed more than a stray
 * request, throws.
 */
export async function load(
  generator: LoadGenerator,
  target: BenchProcess,
  requests: readonly LoadRequest[],
  {
    seconds,
    connections,
    log,
    quiesce = [target.pid],
    maxSeconds = seconds,
    watch = [],
  }: { seconds: number; connections: number; log: (line: string) => void; quiesce?: readonly number[]; maxSeconds?: number; watch?: readonly CpuWatch[] },
): Promise<LoadResult> {
  for (let length = seconds; ; length *= 2) {
    const watchedBefore = await Promise.all(watch.map((part) => part.sample()));
    const cpuBefore = cpuMs(target.pid);
    const { failed, ...measured } = await generate(generator, target, requests, length, connections);
    const cpu = cpuMs(target.pid) - cpuBefore;
    const watchedAfter = await Promise.all(watch.map((part) => part.sample()));
    // What the load generator abandoned at the end is still being served: not in this run, not in the next.
    await settle(quiesce);
    // Fewer answers than connections: the run ended about when the first answers came (a busy machine), and
    // measured the start, not the pace. Up to maxSeconds, it is run again twice as long.
    if (measured.requests - failed < connections && length * 2 <= maxSeconds) {
      log(`  ${target.name}: ${measured.requests - failed} answers in ${length} s at ${connections} connections; measuring again for ${length * 2} s`);
      continue;
    }
    checkFailures(target.name, failed, measured.requests, log);
    const perRequest = (ms: number) => Number((ms / Math.max(1, measured.requests)).toFixed(3));
    const cpuMsPerRequestOf = Object.fromEntries(watch.map((part, index) => [part.name, perRequest(cpuBetween(watchedBefore[index]!, watchedAfter[index]!))]));
    return { ...measured, seconds: length, cpuMsPerRequest: perRequest(cpu), cpuMsPerRequestOf };
  }
}

/** However busy the processes stay, `settle` returns after this long. */
export const SETTLE_BOUND_MS = 60_000;

/**
 * Waits until every process of `pids` is idle: less than `idleMs` of CPU each over a `windowMs` window. A load
 * generator that stops abandons the requests still in flight, and a gateway (and its subgraphs) go on serving
 * them; without the wait that work would land in the next run, another gateway's on the same cores, or pile up
 * round after round when a warm-up's rounds are shorter than an answer takes. Returns the milliseconds waited.
 */
export async function settle(pids: readonly number[], { windowMs = 200, idleMs = 10, boundMs = SETTLE_BOUND_MS } = {}): Promise<number> {
  const began = Date.now();
  const sample = () => pids.map((pid) => (existsSync(`/proc/${pid}/stat`) ? cpuMs(pid) : 0));
  let before = sample();
  while (Date.now() - began < boundMs) {
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const after = sample();
    if (after.every((value, index) => value - before[index]! < idleMs)) break;
    before = after;
  }
  return Date.now() - began;
}

/** However slow the machine, a warm-up gives up after this long and leaves the verdict to the measurement. */
export const WARMUP_BOUND_MS = 300_000;

/** A warm-up round that got no answer is followed by one twice as long, up to this many times `seconds`. */
export const WARMUP_LONGEST_ROUND = 16;

/**
 * Loads `target` in rounds until a round gets answers (and at least one round was run): a cold gateway's first
 * answers to a nested query at 50 connections take about a second, the deep query's longer, longer still on a
 * busy machine, and a round that ends before them completes nothing. The first round lasts `seconds`; each one
 * that got no answer is followed by one twice as long (up to WARMUP_LONGEST_ROUND times), once what it abandoned
 * has been served (`quiesce`). A warm-up never fails the run: what it saw is logged, and only the measurement that
 * follows judges the gateway. Returns how many rounds it took.
 */
export async function warmUp(
  generator: LoadGenerator,
  target: BenchProcess,
  requests: readonly LoadRequest[],
  {
    seconds,
    connections,
    log,
    boundMs = WARMUP_BOUND_MS,
    quiesce = [target.pid],
  }: { seconds: number; connections: number; log: (line: string) => void; boundMs?: number; quiesce?: readonly number[] },
): Promise<number> {
  const deadline = Date.now() + boundMs;
  for (let round = 1; ; round += 1) {
    let outcome: string;
    try {
      const length = seconds * Math.min(2 ** (round - 1), WARMUP_LONGEST_ROUND);
      const { requests: total, failed } = await generate(generator, target, requests, length, connections);
      await settle(quiesce);
      if (total > failed) return round;
      outcome = total === 0 ? 'no answer yet' : `all ${total} requests failed`;
    } catch (error) {
      outcome = `the load generator failed: ${(error as Error).message}`;
    }
    if (Date.now() >= deadline) {
      log(`  ${target.name}: warm-up gave up after ${round} rounds (${outcome}); the measurement decides`);
      return round;
    }
    log(`  ${target.name}: warm-up round ${round}: ${outcome}; warming up again`);
  }
}
