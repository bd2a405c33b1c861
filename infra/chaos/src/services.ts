import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../..', import.meta.url));

/** A service running as its own process, from source under tsx, as `npm run start -w …` runs it. */
export interface ServiceProcess {
  name: string;
  port: number;
  /** Where it answers GraphQL. */
  url: string;
  pid(): number | undefined;
  /** SIGKILL, as a crash or an OOM kill would: no drain, no goodbye. Not counted as a death. */
  kill(): Promise<void>;
  /** Starts it again with the same environment and port, and waits until it is ready. */
  start(): Promise<void>;
  /** Every exit the suite did not cause, with the end of what it printed. */
  deaths: string[];
  stop(): Promise<void>;
}

/** Ready is a hang detector, not a speed target: five processes compile their TypeScript on two busy cores. */
const READY_BOUND_MS = 300_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startService(options: {
  name: string;
  entry: string;
  port: number;
  env: Record<string, string>;
  /** What it inherits from the suite's shell (PATH, HOME); nothing else of it reaches the process. */
  inherited: Record<string, string | undefined>;
}): Promise<ServiceProcess> {
  const { name, entry, port, env, inherited } = options;
  let child: ChildProcess | undefined;
  let output = '';
  let expectingExit = false;
  const deaths: string[] = [];
  const base = `http://127.0.0.1:${port}`;

  const start = async () => {
    expectingExit = false;
    output = '';
    const current = spawn(process.execPath, ['--import', 'tsx', entry], {
      cwd: REPO,
      env: { ...inherited, APOLLO_TELEMETRY_DISABLED: '1', NODE_ENV: 'production', LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = current;
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4_000));
    current.stdout?.on('data', keep);
    current.stderr?.on('data', keep);
    current.once('exit', (code, signal) => {
      if (!expectingExit) deaths.push(`${name} (pid ${current.pid}) exited by itself (${signal ?? `code ${code}`}):\n${output}`);
    });
    const deadline = Date.now() + READY_BOUND_MS;
    for (;;) {
      if (current.exitCode !== null || current.signalCode !== null) throw new Error(`${name} exited while starting:\n${output}`);
      try {
        if ((await fetch(`${base}/readyz`)).ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`${name} was not ready within ${READY_BOUND_MS / 1000} s:\n${output}`);
      await sleep(100);
    }
  };

  const end = async (signal: NodeJS.Signals) => {
    const current = child;
    if (!current || current.exitCode !== null || current.signalCode !== null) return;
    expectingExit = true;
    const exited = new Promise((resolve) => current.once('exit', resolve));
    current.kill(signal);
    // A drain that never ends would hold the suite: after a generous grace, it is killed.
    const stuck = setTimeout(() => current.kill('SIGKILL'), 60_000);
    await exited;
    clearTimeout(stuck);
  };

  await start();
  return {
    name,
    port,
    url: `${base}/graphql`,
    pid: () => child?.pid,
    kill: () => end('SIGKILL'),
    start,
    deaths,
    stop: () => end('SIGTERM'),
  };
}
