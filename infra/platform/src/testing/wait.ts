/**
 * Polls `check` until it stops throwing (an `expect` inside it), or fails with its last error after `timeoutMs`.
 * Used instead of fixed sleeps: it returns as soon as the condition holds.
 */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 5_000, intervalMs = 10): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
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
