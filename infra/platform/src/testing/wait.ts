import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The least an outermost wait allows, whatever its caller asked: far above what any condition takes on an idle
 * machine, because CI shares its two cores with other builds. A wait returns as soon as its condition holds, so
 * the bound only decides how long a failing test takes to say why.
 */
export const WAIT_FLOOR_MS = 60_000;

// Set while a wait's check runs: a wait inside it is one attempt of a retry loop.
const insideWait = new AsyncLocalStorage<true>();

/**
 * Polls `check` until it stops throwing (an `expect` inside it), or fails with its last error once the bound has
 * passed. Used instead of fixed sleeps: it returns as soon as the condition holds.
 *
 * `timeoutMs` is raised to WAIT_FLOOR_MS, except for a wait inside another wait's check: that one is an attempt
 * ("write, then give the event a moment; else write again"), and keeps its short bound so that the outer wait,
 * which has the floor, can retry.
 */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 5_000, intervalMs = 10): Promise<T> {
  const nested = insideWait.getStore() === true;
  const deadline = Date.now() + (nested ? timeoutMs : Math.max(timeoutMs, WAIT_FLOOR_MS));
  for (;;) {
    try {
      return await insideWait.run(true, check);
    } catch (error) {
      if (Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}

/** What a subscription delivered so far, and how it ended; `sink` is what to subscribe with. */
export interface RecordedStream<TResult> {
  results: TResult[];
  completed: boolean;
  error?: unknown;
  sink: { next(result: TResult): void; error(error: unknown): void; complete(): void };
  stop(): void;
}

export function recordStream<TResult>(): RecordedStream<TResult> {
  const stream: RecordedStream<TResult> = {
    results: [],
    completed: false,
    sink: {
      next: (result) => stream.results.push(result),
      error: (error) => (stream.error = error),
      complete: () => (stream.completed = true),
    },
    stop: () => {},
  };
  return stream;
}

/** Tells, without waiting, whether a promise has settled yet. */
export function watch<T>(promise: Promise<T>): { promise: Promise<T>; settled(): boolean } {
  let settled = false;
  const done = () => {
    settled = true;
  };
  promise.then(done, done);
  return { promise, settled: () => settled };
}
