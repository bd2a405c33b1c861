import type { FormattedExecutionResult } from 'graphql';
import type { JsonPatchOperation } from './json-patch.ts';

/**
 * How a client takes updates: whole answers (the default), or RFC 6902 patches of `data` against the answer
 * before, as @n1ru4l/graphql-live-query-patch-json-patch sends them: the first answer whole with `revision: 1`,
 * then `{ patch, revision, errors? }`.
 */
export type LiveFormat = 'whole' | 'json-patch';

/** A live query's answers, as one client receives them: the first, then each one that changed. */
export type LiveAnswers = AsyncGenerator<FormattedExecutionResult>;

/** One answer of a live query's run, for each of its clients to take in its format. */
export interface Update {
  result: FormattedExecutionResult;
  /** The patch from the answer before (computed once, for the clients that take patches). */
  patch: () => JsonPatchOperation[];
  revision: number;
  /** Nothing follows it: the query ends (refused, forbidden, failed). */
  final: boolean;
}

/** One client of a live query's execution: updates go in; `end` says there will be none (the gateway stops). */
export interface Follower {
  push(update: Update): void;
  end(): void;
}

/**
 * Updates a client that does not read (a stalled socket) may have waiting. Past it only the newest is kept: a
 * live query's answer is state, so the ones in between can go; a client on patches then gets the whole of
 * `data` as one `replace`, since its patches no longer follow on.
 */
const MAX_QUEUED = 16;

/**
 * An update as a client in `format` receives it: for patches, the first whole, the others as patches (`resync`:
 * one `replace` of all of `data`, when the ones before it were dropped).
 */
function inFormat(update: Update, format: LiveFormat, as: 'first' | 'patch' | 'resync'): FormattedExecutionResult {
  if (format === 'whole') return update.result;
  const { data, errors, extensions } = update.result;
  const rest = { revision: update.revision, ...(errors && { errors }), ...(extensions && { extensions }) };
  const patch = as === 'resync' ? [{ op: 'replace', path: '', value: data ?? null }] : as === 'patch' ? update.patch() : undefined;
  // A patch answer is not an execution result: graphql-ws and SSE pass it through as it is.
  return (patch ? { patch, ...rest } : { data, ...rest }) as FormattedExecutionResult;
}

/**
 * A client's answers: `first`, then every update pushed, in `format`, until the query ends, the gateway stops or
 * the client leaves (`return()`, even before the first answer was read). `onLeave` runs once, however it ends.
 */
export function followAnswers(first: Update, format: LiveFormat, onLeave: () => void): { follower: Follower; answers: LiveAnswers } {
  const queue: Update[] = [];
  let resync = false;
  let ended = false;
  let wake: (() => void) | undefined;
  const follower: Follower = {
    push(update) {
      if (queue.length >= MAX_QUEUED) {
        queue.length = 0;
        resync = true;
      }
      queue.push(update);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
  };
  let left = false;
  const leave = () => {
    if (left) return;
    left = true;
    onLeave();
  };
  const generator = (async function* (): LiveAnswers {
    try {
      yield inFormat(first, format, 'first');
      if (first.final) return;
      for (;;) {
        const next = queue.shift();
        if (next) {
          const as = resync ? 'resync' : 'patch';
          resync = false;
          yield inFormat(next, format, as);
          if (next.final) return;
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      leave();
    }
  })();
  // Returned before it started (the client completed at once): a generator that never ran skips `finally`.
  const returnGenerator = generator.return.bind(generator);
  generator.return = (value) => {
    leave();
    follower.end();
    return returnGenerator(value);
  };
  return { follower, answers: generator };
}
