import type { HTTPGraphQLResponse } from '@apollo/server';
import type { FormattedExecutionResult } from 'graphql';
import { DOMAIN_EVENTS_CHANNEL, isDomainEvent, type DomainEvent, type Logger, type PubSub, type RawHttpResponse, type Viewer } from '@fed/platform';

/** One run of a live query's operation, as a plain query: its answer, and what the answer read. */
export interface LiveRun {
  response: HTTPGraphQLResponse | RawHttpResponse;
  /** The response cache's tags of everything the answer read; undefined when it could not be tagged. */
  tags: ReadonlySet<string> | undefined;
}

export interface LiveQueriesOptions {
  /** The bus every subgraph announces its commits on (the response cache's). */
  events: PubSub;
  /** At most one run per live query per this many ms (LIVE_QUERY_THROTTLE_MS). */
  throttleMs: number;
  /** Runs the operation (its text without `@live`) as the HTTP path runs a POST of `body`, collecting tags. */
  run: (body: Record<string, unknown>, viewer: Viewer | null) => Promise<LiveRun>;
  /** Called for every commit heard: a read in flight since before it must not be shared with a run after it. */
  wrote?: () => void;
  logger: Logger;
}

export interface LiveQueryStats {
  open: number;
  /** Runs by why they ran: the first answer, a commit that touched what it read, a gap in the bus. */
  runs: { first: number; event: number; gap: number };
  /** Answers sent after the first (runs whose answer had changed). */
  updates: number;
}

/** A live query's answers: the first, then each one that differs from the one before. */
export type LiveAnswers = AsyncGenerator<FormattedExecutionResult>;

/** A live query started: its answers; or refused by its first run (HTTP's answer, for the transport to word). */
export type LiveOpening = { refused: HTTPGraphQLResponse | RawHttpResponse } | { answers: LiveAnswers };

const EVERYTHING = '*';

interface Live {
  body: Record<string, unknown>;
  viewer: Viewer | null;
  /** Tags of the last answer (EVERYTHING when it could not be tagged). */
  tags: ReadonlySet<string>;
  last: string;
  lastRunAt: number;
  running: boolean;
  /** A commit came while it ran: run again once it is done. */
  dirty: boolean;
  timer?: NodeJS.Timeout;
  reason: 'event' | 'gap';
  deliver(result: FormattedExecutionResult, final: boolean): void;
  closed: boolean;
  /** Stops it: no more runs; a client waiting for its next answer is told it ended. */
  close(): void;
}

const bodyOf = (response: HTTPGraphQLResponse | RawHttpResponse): string | undefined =>
  'bytes' in response ? Buffer.from(response.bytes).toString('utf8') : response.body.kind === 'complete' ? response.body.string : undefined;

/** A request error (HTTP's 4xx: validation, limits, an unknown document): no `data`, only `errors`. */
const isRefusal = (result: FormattedExecutionResult) => !('data' in result) && (result.errors?.length ?? 0) > 0;

/** An answer saying the viewer may not see it (any more): sent, and the live query ends. */
const isForbidden = (result: FormattedExecutionResult) => result.errors?.some((error) => error.extensions?.code === 'FORBIDDEN' || error.extensions?.code === 'UNAUTHENTICATED') ?? false;

/**
 * Live queries: each runs as a plain query, its answer tagged as the response cache tags it (the entities and
 * lists it read), and runs again when a commit on the bus names one of those tags. Runs are coalesced (at most
 * one per `throttleMs`, and a commit during a run schedules one more, so the last answer is always of the newest
 * state); an answer identical to the one before is not sent. Tags are recomputed at every run, so a list that
 * gains an item follows it. After a gap in the bus (commits may have been missed), every live query runs again.
 */
export function createLiveQueries(options: LiveQueriesOptions) {
  const { events, throttleMs, logger } = options;
  const byTag = new Map<string, Set<Live>>();
  const stats: LiveQueryStats = { open: 0, runs: { first: 0, event: 0, gap: 0 }, updates: 0 };
  const all = new Set<Live>();

  const index = (live: Live, tags: ReadonlySet<string>) => {
    for (const tag of live.tags) {
      const set = byTag.get(tag);
      set?.delete(live);
      if (set?.size === 0) byTag.delete(tag);
    }
    live.tags = tags;
    if (live.closed) return;
    for (const tag of tags) {
      const set = byTag.get(tag) ?? new Set<Live>();
      set.add(live);
      byTag.set(tag, set);
    }
  };

  const runAgain = async (live: Live) => {
    live.timer = undefined;
    if (live.closed) return;
    live.running = true;
    live.dirty = false;
    live.lastRunAt = performance.now();
    stats.runs[live.reason] += 1;
    try {
      const { response, tags } = await options.run(live.body, live.viewer);
      const text = bodyOf(response);
      if (live.closed || text === undefined) return;
      index(live, tags ?? new Set([EVERYTHING]));
      if (text === live.last) return;
      live.last = text;
      const result = JSON.parse(text) as FormattedExecutionResult;
      stats.updates += 1;
      // A refusal now (its cost grew past a limit, the viewer lost access) ends it, as it would not start.
      live.deliver(result, isRefusal(result) || isForbidden(result));
    } catch (error) {
      logger.error({ err: error }, 'a live query could not run again; it ends');
      live.deliver({ errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] }, true);
    } finally {
      live.running = false;
      if (live.dirty && !live.closed) schedule(live, live.reason);
    }
  };

  const schedule = (live: Live, reason: Live['reason']) => {
    if (live.closed) return;
    if (live.running) {
      live.dirty = true;
      return;
    }
    if (live.timer) return;
    live.reason = reason;
    const wait = Math.max(0, live.lastRunAt + throttleMs - performance.now());
    live.timer = setTimeout(() => void runAgain(live), wait);
  };

  const heard = (event: DomainEvent) => {
    options.wrote?.();
    const touched = new Set<Live>(byTag.get(EVERYTHING));
    for (const change of event.changed) for (const live of byTag.get(`${event.source}/${change}`) ?? []) touched.add(live);
    for (const live of touched) schedule(live, 'event');
  };

  let stopListening: (() => Promise<void>) | undefined;

  return {
    stats,
    async start(): Promise<void> {
      const unsubscribe = await events.subscribe(DOMAIN_EVENTS_CHANNEL, (message) => {
        if (isDomainEvent(message)) heard(message);
      });
      // Commits while the bus was away are unknown: every live query runs again, once.
      const offGap = events.onGap((state) => {
        if (state !== 'restored') return;
        options.wrote?.();
        for (const live of all) schedule(live, 'gap');
      });
      stopListening = async () => {
        offGap();
        await unsubscribe();
      };
    },
    /**
     * Starts a live query (`body` without `@live`, as a POST would send it): its first run's response when it is
     * refused (HTTP's answer, for the transport to word as it does), else its answers, until `return()`.
     */
    async open(body: Record<string, unknown>, viewer: Viewer | null): Promise<LiveOpening> {
      stats.runs.first += 1;
      const startedAt = performance.now();
      const first = await options.run(body, viewer);
      const text = bodyOf(first.response);
      const result = text === undefined ? undefined : (JSON.parse(text) as FormattedExecutionResult);
      if (text === undefined || !result || isRefusal(result)) return { refused: first.response };

      const queue: { result: FormattedExecutionResult; final: boolean }[] = [];
      let wake: (() => void) | undefined;
      const live: Live = {
        body,
        viewer,
        tags: new Set(),
        last: text,
        lastRunAt: startedAt,
        running: false,
        dirty: false,
        reason: 'event',
        closed: false,
        deliver(next, final) {
          queue.push({ result: next, final });
          wake?.();
        },
        close() {
          if (live.closed) return;
          live.closed = true;
          clearTimeout(live.timer);
          index(live, new Set());
          all.delete(live);
          stats.open -= 1;
          wake?.();
        },
      };
      const close = () => live.close();
      all.add(live);
      stats.open += 1;
      index(live, first.tags ?? new Set([EVERYTHING]));
      const answers = async function* (): LiveAnswers {
        try {
          yield result;
          // The first answer says the viewer may not see it: nothing to keep current.
          if (isForbidden(result)) return;
          for (;;) {
            const next = queue.shift();
            if (next) {
              yield next.result;
              if (next.final) return;
              continue;
            }
            if (live.closed) return;
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
          }
        } finally {
          close();
        }
      };
      const generator = answers();
      // Returned before it started (the client completed at once): a generator that never ran skips `finally`.
      const returnGenerator = generator.return.bind(generator);
      generator.return = (value) => {
        close();
        return returnGenerator(value);
      };
      return { answers: generator };
    },
    async stop(): Promise<void> {
      await stopListening?.();
      for (const live of [...all]) live.close();
    },
  };
}

export type LiveQueries = ReturnType<typeof createLiveQueries>;
