import { spawn, type ChildProcess } from 'node:child_process';

export interface StackProcess {
  child: ChildProcess;
  /** The gateway URL the banner printed. */
  gatewayUrl: string;
  /** Everything the process wrote so far, stdout and stderr. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts `npm start`'s entry (src/index.ts of the stack in `tree`) as its own process with only `env`, and
 * resolves once its banner says it is ready. Tests and benchmarks run it this way; the banner is printed by
 * src/index.ts. `timeoutMs` only detects a hang: a first start migrates and seeds PGlite, which takes minutes on a
 * busy 2-core machine. `imports` are modules the process loads first (`--import`), as a test's probes.
 */
export async function startStackProcess(tree: string, env: Record<string, string | undefined>, timeoutMs = 300_000, imports: string[] = []): Promise<StackProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...imports.flatMap((module) => ['--import', module]), 'src/index.ts'], { cwd: `${tree}/infra/stack`, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const gatewayUrl = await new Promise<string>((resolve, reject) => {
    const fail = (error: Error) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`no banner within ${timeoutMs} ms:\n${output}`)), timeoutMs);
    child.once('exit', (code) => fail(new Error(`exited with ${code}:\n${output}`)));
    const poll = setInterval(() => {
      const match = /Gateway\s+(http:\/\/\S+)/.exec(output);
      if (match?.[1] && /ready in/.test(output)) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve(match[1]);
      }
    }, 50);
  });
  return {
    child,
    gatewayUrl,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
