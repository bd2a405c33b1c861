import type { HTTPGraphQLResponse } from '@apollo/server';
import type { FormattedExecutionResult } from 'graphql';
import { DOMAIN_EVENTS_CHANNEL, isDomainEvent, type DomainEvent, type Logger, type PubSub, type RawHttpResponse, type Viewer } from '@fed/platform';
import { jsonPatch, type JsonPatchOperation } from './json-patch.ts';

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

/**
 * How a client takes updates: whole answers (the default), or RFC 6902 patches of `data` against the answer
 * before, as @n1ru4l/graphql-live-query-patch-json-patch sends them: the first answer whole with `revision: 1`,
 * then `{ patch, revision, errors? }`.
 */
export type LiveFormat = 'whole' | 'json-patch';

const EVERYTHING = '*';

/** One answer of a live query's run, for each of its clients to take in its format. */
interface Update {
  result: FormattedExecutionResult;
  /** The patch from the answer before (computed once, for the clients that take patches). */
  patch: () => JsonPatchOperation[];
  revision: number;
  /** Nothing follows it: the query ends (refused, forbidden, failed). */
  final: boolean;
}

interface Client {
  push(update: Update): void;
  /** The live query stopped (the gateway stops): its answers end. */
  end(): void;
}

/** One execution, shared by the clients that opened the same query as the same viewer. */
interface Live {
  key: string;
  body: Record<string, unknown>;
  viewer: Viewer | null;
  /** Tags of the last answer (EVERYTHING when it could not be tagged). */
  tags: ReadonlySet<string>;
  last: string;
  lastResult: FormattedExecutionResult;
  revision: number;
  lastRunAt: number;
  running: boolean;
  /** A commit came while it ran: run again once it is done. */
  dirty: boolean;
  timer?: NodeJS.Timeout;
  reason: 'event' | 'gap';
  clients: Set<Client>;
  closed: boolean;
}

const bodyOf = (response: HTTPGraphQLResponse | RawHttpResponse): string | undefined =>
  'bytes' in response ? Buffer.from(response.bytes).toString('utf8') : response.body.kind === 'complete' ? response.body.string : undefined;

/** A request error (HTTP's 4xx: validation, limits, an unknown document): no `data`, only `errors`. */
const isRefusal = (result: FormattedExecutionResult) => !('data' in result) && (result.errors?.length ?? 0) > 0;

/** An answer saying the viewer may not see it (any more): sent, and the live query ends. */
const isForbidden = (result: FormattedExecutionResult) => result.errors?.some((error) => error.extensions?.code === 'FORBIDDEN' || error.extensions?.code === 'UNAUTHENTICATED') ?? false;

/** An update as a client in `format` receives it. */
const inFormat = (update: Update, format: LiveFormat, first: boolean): FormattedExecutionResult => {
  if (format === 'whole') return update.result;
  if (first) return { ...update.result, revision: update.revision } as FormattedExecutionResult;
  const { errors, extensions } = update.result;
  return { patch: update.patch(), revision: update.revision, ...(errors && { errors }), ...(extensions && { extensions }) } as FormattedExecutionResult;
};

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
  const byKey = new Map<string, Live>();
  /** First runs in flight, by key: a client that asks for the same meanwhile waits for it and joins. */
  const starting = new Map<string, Promise<Live | undefined>>();
  const stats: LiveQueryStats = { open: 0, runs: { first: 0, event: 0, gap: 0 }, updates: 0 };

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

  /** No more runs: its clients were told (or left), its tags go. */
  const retire = (live: Live) => {
    if (live.closed) return;
    live.closed = true;
    clearTimeout(live.timer);
    index(live, new Set());
    if (byKey.get(live.key) === live) byKey.delete(live.key);
  };

  const publish = (live: Live, result: FormattedExecutionResult, text: string, final: boolean) => {
    const before = live.lastResult;
    live.last = text;
    live.lastResult = result;
    live.revision += 1;
    let patch: JsonPatchOperation[] | undefined;
    const patchOnce = () => {
      if (patch) return patch;
      patch = jsonPatch(before.data ?? null, result.data ?? null);
      // A list that gained an item at its head shifts every item after it: past the whole answer's size, the
      // whole answer is the smaller patch.
      if (JSON.stringify(patch).length > text.length) patch = [{ op: 'replace', path: '', value: result.data ?? null }];
      return patch;
    };
    const update: Update = { result, revision: live.revision, final, patch: patchOnce };
    stats.updates += 1;
    for (const client of live.clients) client.push(update);
    if (final) retire(live);
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
      const result = JSON.parse(text) as FormattedExecutionResult;
      // A refusal now (its cost grew past a limit, the viewer lost access) ends it, as it would not start.
      publish(live, result, text, isRefusal(result) || isForbidden(result));
    } catch (error) {
      logger.error({ err: error }, 'a live query could not run again; it ends');
      const failed = { errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] };
      publish(live, failed, JSON.stringify(failed), true);
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

  /** A client's answers: `first`, then every update, in its format, until it leaves or the query ends. */
  const follow = (live: Live, first: Update, format: LiveFormat): LiveAnswers => {
    const queue: Update[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    const client: Client = {
      push(update) {
        queue.push(update);
        wake?.();
      },
      end() {
        ended = true;
        wake?.();
      },
    };
    live.clients.add(client);
    stats.open += 1;
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      stats.open -= 1;
      live.clients.delete(client);
      if (live.clients.size === 0) retire(live);
    };
    const answers = async function* (): LiveAnswers {
      try {
        yield inFormat(first, format, true);
        if (first.final) return;
        for (;;) {
          const next = queue.shift();
          if (next) {
            yield inFormat(next, format, false);
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
    };
    const generator = answers();
    // Returned before it started (the client completed at once): a generator that never ran skips `finally`.
    const returnGenerator = generator.return.bind(generator);
    generator.return = (value) => {
      leave();
      client.end();
      return returnGenerator(value);
    };
    return generator;
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
        for (const live of byKey.values()) schedule(live, 'gap');
      });
      stopListening = async () => {
        offGap();
        await unsubscribe();
      };
    },
    /**
     * Starts a live query (`body` without `@live`, as a POST would send it), or joins the same one of the same
     * viewer already running here: its answers, in `format`, until `return()`; or the first run's response when
     * it is refused (HTTP's answer, for the transport to word as it does).
     */
    async open(body: Record<string, unknown>, viewer: Viewer | null, format: LiveFormat = 'whole'): Promise<LiveOpening> {
      const key = JSON.stringify([viewer, body.query, body.operationName ?? null, body.variables ?? null, body.extensions ?? null]);
      // Running, or being started by another client of the same viewer (joined once its first answer is in):
      // its last answer is current, kept so by the same commits that would run a new one. No await before the
      // start is registered, so clients that arrive together start it once.
      for (let pending = starting.get(key); ; pending = starting.get(key)) {
        const running = byKey.get(key);
        if (running && !running.closed) return { answers: follow(running, { result: running.lastResult, revision: running.revision, final: false, patch: () => [] }, format) };
        if (!pending) break;
        await pending;
      }
      let started!: (live: Live | undefined) => void;
      starting.set(key, new Promise((resolve) => (started = resolve)));
      let live: Live | undefined;
      try {
        const opening = await start(key, body, viewer, format);
        live = opening.live;
        return opening;
      } finally {
        starting.delete(key);
        started(live);
      }
    },
    async stop(): Promise<void> {
      await stopListening?.();
      for (const live of [...byKey.values()]) {
        for (const client of live.clients) client.end();
        retire(live);
      }
    },
  };

  /** The first run of a live query nobody here runs yet, and its first client's answers (and the execution, when it goes on). */
  async function start(key: string, body: Record<string, unknown>, viewer: Viewer | null, format: LiveFormat): Promise<LiveOpening & { live?: Live }> {
    stats.runs.first += 1;
    const startedAt = performance.now();
    const first = await options.run(body, viewer);
    const text = bodyOf(first.response);
    const result = text === undefined ? undefined : (JSON.parse(text) as FormattedExecutionResult);
    if (text === undefined || !result || isRefusal(result)) return { refused: first.response };
    // The first answer says the viewer may not see it: sent, and nothing to keep current.
    const final = isForbidden(result);
    const live: Live = {
      key,
      body,
      viewer,
      tags: new Set(),
      last: text,
      lastResult: result,
      revision: 1,
      lastRunAt: startedAt,
      running: false,
      dirty: false,
      reason: 'event',
      clients: new Set(),
      closed: final,
    };
    if (!final) {
      byKey.set(key, live);
      index(live, first.tags ?? new Set([EVERYTHING]));
    }
    return { answers: follow(live, { result, revision: 1, final, patch: () => [] }, format), ...(!final && { live }) };
  }
}

export type LiveQueries = ReturnType<typeof createLiveQueries>;
