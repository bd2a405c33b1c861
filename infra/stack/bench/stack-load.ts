import autocannon from 'autocannon';
import type { StackProcess } from '../src/process.ts';
import { NESTED_QUERY } from './stack-env.ts';
import { cpuMs } from '@fed/platform/testing';

/** A one-process stack a bench started, and the headers every request to it carries. */
export interface BenchStack {
  name: string;
  url: string;
  headers: Record<string, string>;
  process: StackProcess;
}

const BODY = JSON.stringify({ query: NESTED_QUERY });

/** The stack's answer to the nested query; anything but a clean 200 stops the bench before it times anything. */
export async function answerNested(stack: BenchStack): Promise<unknown> {
  const response = await fetch(stack.url, { method: 'POST', headers: stack.headers, body: BODY });
  const body = (await response.json()) as { data?: unknown; errors?: unknown };
  if (response.status !== 200 || body.errors) throw new Error(`${stack.name} answered ${response.status}: ${JSON.stringify(body).slice(0, 300)}`);
  return body.data;
}

/** The nested query under load for `seconds`, with the stack process's CPU time per request. */
export async function loadNested(stack: BenchStack, seconds: number, connections: number) {
  const cpuBefore = cpuMs(stack.process.child.pid!);
  const result = await autocannon({ url: stack.url, method: 'POST', headers: stack.headers, body: BODY, connections, duration: seconds });
  const cpu = cpuMs(stack.process.child.pid!) - cpuBefore;
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(`${stack.name}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`);
  }
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, cpuMsPerRequest: Number((cpu / result.requests.total).toFixed(2)) };
}
