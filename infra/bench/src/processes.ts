import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../..', import.meta.url));

/** A service or gateway the harness started as its own process, from compiled JavaScript. */
export interface BenchProcess {
  name: string;
  /** Where it answers GraphQL. */
  url: string;
  child: ChildProcess;
  pid: number;
  /** Set when it exited on its own: how, and the end of its stderr. */
  died(): string | undefined;
  stop(): Promise<void>;
}

export interface StartOptions {
  name: string;
  /** A compiled entry (`…/gateway/dist/index.js`). */
  entry: string;
  args?: string[];
  /** Node's own flags, before the entry (`--cpu-prof`). */
  nodeArgs?: readonly string[];
  /** On top of `inherited` and production defaults: nothing else from the harness's shell reaches the process. */
  env?: Record<string, string>;
  /** What the process inherits from the harness's shell (PATH, HOME). */
  inherited: Record<string, string | undefined>;
  url: string;
  /** Resolves true once the process can take load. */
  ready: () => Promise<boolean>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** How long a process may take to become ready: a hang detector, far above the seconds it takes on a quiet machine. */
const READY_BOUND_MS = 300_000;

/** What every process gets: production mode, no telemetry, quiet logs. */
const BASE_ENV = { APOLLO_TELEMETRY_DISABLED: '1', LOG_LEVEL: 'warn', NODE_ENV: 'production' };

/** Starts a compiled entry with `node` (as the image runs it) and waits until `ready` says so. */
export async function startProcess({ name, entry, args = [], nodeArgs = [], env = {}, inherited, url, ready }: StartOptions): Promise<BenchProcess> {
  const child = spawn(process.execPath, [...nodeArgs, entry, ...args], { cwd: REPO, env: { ...inherited, ...BASE_ENV, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4_000)));
  let stopping = false;
  let death: string | undefined;
  child.once('exit', (code, signal) => {
    if (!stopping) death = `${name} exited by itself (${signal ?? `code ${code}`}):\n${stderr}`;
  });
  const stop = async () => {
    stopping = true;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + READY_BOUND_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${stderr}`);
    if (await ready().catch(() => false)) return { name, url, child, pid: child.pid!, died: () => death, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} was not ready within ${READY_BOUND_MS / 1000} s: ${stderr}`);
    }
    await sleep(100);
  }
}

export const httpOk = (url: string) => async () => (await fetch(url)).ok;

export const graphqlOk = (url: string) => async () =>
  (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' })).ok;

const statusKb = (pid: number, field: 'VmRSS' | 'VmHWM') =>
  Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

/** Resident memory now, in MB (Linux /proc). */
export const rssMb = (pid: number) => Math.round(statusKb(pid, 'VmRSS') / 1024);

/** The most resident memory the process has had since it started, in MB: its peak RSS. */
export const peakRssMb = (pid: number) => Math.round(statusKb(pid, 'VmHWM') / 1024);
