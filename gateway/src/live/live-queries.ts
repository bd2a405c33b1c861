import { HeaderMap, type HTTPGraphQLResponse } from '@apollo/server';
import type { FormattedExecutionResult } from 'graphql';
import { isDomainEvent, subscribeToEveryEvent, type DomainEvent, type Logger, type PubSub, type RawHttpResponse, type Viewer } from '@fed/platform';
import { followAnswers, type Follower, type LiveAnswers, type LiveFormat, type Update } from './answers.ts';
import { jsonPatch, type JsonPatchOperation } from './json-patch.ts';

export type { LiveAnswers, LiveFormat } from './answers.ts';

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
  /**
   * With subgraphs reading from replicas: a commit runs what it touched again this long after (ms; 0: never), so
   * a run answered by a replica that had not applied it yet is followed by one that has.
   */
  replicaLagMs?: number;
  /** Runs the operation (its text without `@live`) as the HTTP path runs a POST of `body`, collecting tags. */
  run: (body: Record<string, unknown>, viewer: Viewer | null) => Promise<LiveRun>;
  /** Called for every commit heard: a read in flight since before it must not be shared with a run after it. */
  wrote?: () => void;
  logger: Logger;
}

/** Why a live query ran again: a commit touched what it read, the bus was away, or its last run failed. */
type RunReason = 'event' | 'gap' | 'retry';

export interface LiveQueryStats {
  /** Clients following a live query (several may share one execution). */
  open: number;
  runs: Record<'first' | RunReason, number>;
  /** Answers sent after the first (runs whose answer had changed). */
  updates: number;
}

/** A live query started: its answers; or refused by its first run (HTTP's answer, for the transport to word). */
export type LiveOpening = { refused: HTTPGraphQLResponse | RawHttpResponse } | { answers: LiveAnswers };

/** The tag of an answer that could not be tagged: any commit may have changed it. */
const EVERYTHING = '*';
/** Commits remembered, so that a run can tell which came while it ran (past this, it assumes one touched it). */
const RECENT_COMMITS = 1_024;
/** Retries of a run that failed for a passing reason wait 1 s, 2 s, 4 s… up to this. */
const MAX_RETRY_MS = 30_000;

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
  /** Why it runs next, once scheduled (the strongest reason heard since its last run). */
  reason?: RunReason;
  /** Something came while it ran: run again once it is done. */
  dirty: boolean;
  timer?: NodeJS.Timeout;
  due?: number;
  /** Runs in a row that failed for a passing reason (a subgraph down, a timeout). */
  failures: number;
  /** After such a run: how long until it is tried again (unless a commit runs it sooner). */
  retryInMs?: number;
  followers: Set<Follower>;
  closed: boolean;
}

/** What a run found, and where the bus was when it started. */
interface Outcome {
  text: string;
  result: FormattedExecutionResult;
  tags: ReadonlySet<string> | undefined;
  mark: { seq: number; gaps: number };
}

const bodyOf = (response: HTTPGraphQLResponse | RawHttpResponse): string | undefined =>
  'bytes' in response ? Buffer.from(response.bytes).toString('utf8') : response.body.kind === 'complete' ? response.body.string : undefined;

/** A request error (HTTP's 4xx: validation, limits, an unknown document): no `data`, only `errors`. */
const isRefusal = (result: FormattedExecutionResult) => !('data' in result) && (result.errors?.length ?? 0) > 0;

/** An answer saying the viewer may not see it (any more): sent, and the live query ends. */
const isForbidden = (result: FormattedExecutionResult) => result.errors?.some((error) => error.extensions?.code === 'FORBIDDEN' || error.extensions?.code === 'UNAUTHENTICATED') ?? false;

/** An answer with an error that passes (a subgraph down or slow, an unexpected failure): its reads were cut short. */
const isTransient = (result: FormattedExecutionResult) =>
  result.errors?.some((error) => {
    const code = String(error.extensions?.code ?? 'INTERNAL_SERVER_ERROR');
    return code === 'INTERNAL_SERVER_ERROR' || code.endsWith('_UNAVAILABLE') || code.endsWith('_TIMEOUT');
  }) ?? false;

const RANK: Record<RunReason, number> = { event: 0, retry: 1, gap: 2 };

/** A first run that cannot be kept live, answered as a refusal is. */
const notLive = (message: string): HTTPGraphQLResponse => ({
  status: 400,
  headers: new HeaderMap([['content-type', 'application/json; charset=utf-8']]),
  body: { kind: 'complete', string: JSON.stringify({ errors: [{ message, extensions: { code: 'BAD_REQUEST' } }] }) },
});

/**
 * Live queries: each runs as a plain query, its answer tagged as the response cache tags it (the entities and
 * lists it read), and runs again when a commit on the bus names one of those tags. Runs are coalesced (at most
 * one per `throttleMs`), and a commit heard while a run was reading is checked against what that run read, so
 * the last answer is always of the newest state; an answer identical to the one before is not sent. Tags are
 * recomputed at every run, so a list that gains an item follows it. After a gap in the bus (commits may have been
 * missed), every live query runs again; a run cut short by a passing failure keeps what the run before read and
 * is retried, with backoff, until one completes.
 */
export function createLiveQueries(options: LiveQueriesOptions) {
  const { events, throttleMs, logger } = options;
  const byTag = new Map<string, Set<Live>>();
  const byKey = new Map<string, Live>();
  /** First runs in flight, by key: a client that asks for the same meanwhile waits for it and joins. */
  const starting = new Map<string, Promise<Live | undefined>>();
  const stats: LiveQueryStats = { open: 0, runs: { first: 0, event: 0, gap: 0, retry: 0 }, updates: 0 };
  /** Commits heard (a sequence), the latest of them with their tags, and gaps in the bus. */
  let heardSeq = 0;
  let gaps = 0;
  const recent: { seq: number; tags: readonly string[] }[] = [];

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

  /** No more runs: its followers were told (or left), its tags go. */
  const retire = (live: Live) => {
    if (live.closed) return;
    live.closed = true;
    clearTimeout(live.timer);
    index(live, new Set());
    if (byKey.get(live.key) === live) byKey.delete(live.key);
  };

  const schedule = (live: Live, reason: RunReason, delayMs = 0) => {
    if (live.closed) return;
    if (!live.reason || RANK[reason] > RANK[live.reason]) live.reason = reason;
    if (live.running) {
      live.dirty = true;
      return;
    }
    live.dirty = false;
    const due = Math.max(live.lastRunAt + throttleMs, performance.now() + delayMs);
    // A commit does not wait behind a retry's backoff.
    if (live.timer && live.due !== undefined && live.due <= due) return;
    clearTimeout(live.timer);
    live.due = due;
    live.timer = setTimeout(() => void runAgain(live), Math.max(0, due - performance.now()));
  };

  /** Why to run again for what came while a run read `tags` (commits naming them, a gap), if anything did. */
  const cameDuring = (mark: Outcome['mark'], tags: ReadonlySet<string>): RunReason | undefined => {
    if (gaps !== mark.gaps) return 'gap';
    if (heardSeq === mark.seq) return undefined;
    // The log no longer reaches back to the run's start: assume one touched it.
    if ((recent[0]?.seq ?? Infinity) > mark.seq + 1) return 'event';
    for (let at = recent.length - 1; at >= 0 && recent[at]!.seq > mark.seq; at -= 1) {
      if (tags.has(EVERYTHING) || recent[at]!.tags.some((tag) => tags.has(tag))) return 'event';
    }
    return undefined;
  };

  const execute = async (body: Record<string, unknown>, viewer: Viewer | null): Promise<Outcome | { refused: HTTPGraphQLResponse | RawHttpResponse }> => {
    const mark = { seq: heardSeq, gaps };
    const { response, tags } = await options.run(body, viewer);
    const text = bodyOf(response);
    if (text === undefined) return { refused: response };
    const result = JSON.parse(text) as FormattedExecutionResult;
    return isRefusal(result) ? { refused: response } : { text, result, tags, mark };
  };

  /** What follows a run that read `outcome`: its tags indexed, and another run if one is already due. */
  const settle = (live: Live, outcome: Outcome) => {
    const { result, tags, mark } = outcome;
    const transient = isTransient(result);
    // Cut short, it read less than the run before: keep both, so no commit of what it missed slips by.
    const read = tags === undefined ? new Set([EVERYTHING]) : transient ? new Set([...live.tags, ...tags]) : tags;
    index(live, read);
    const missed = cameDuring(mark, read);
    if (missed) schedule(live, missed);
    live.failures = transient ? live.failures + 1 : 0;
    live.retryInMs = transient ? Math.min(MAX_RETRY_MS, 1_000 * 2 ** (live.failures - 1)) : undefined;
    if (!live.running) next(live);
  };

  /** Once a run is over: again soon if something came meanwhile, and after its backoff if it failed. */
  const next = (live: Live) => {
    if (live.closed) return;
    if (live.dirty) schedule(live, live.reason ?? 'event');
    if (live.retryInMs !== undefined) schedule(live, 'retry', live.retryInMs);
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
    for (const follower of live.followers) follower.push(update);
    if (final) retire(live);
  };

  const runAgain = async (live: Live) => {
    live.timer = undefined;
    live.due = undefined;
    if (live.closed) return;
    const reason = live.reason ?? 'event';
    live.reason = undefined;
    live.running = true;
    live.dirty = false;
    live.lastRunAt = performance.now();
    stats.runs[reason] += 1;
    try {
      const outcome = await execute(live.body, live.viewer);
      if (live.closed) return;
      if ('refused' in outcome) {
        // Refused now (its cost grew past a limit, its persisted document is gone): it ends, as it would not start.
        const text = bodyOf(outcome.refused) ?? '';
        publish(live, JSON.parse(text || '{"errors":[]}') as FormattedExecutionResult, text, true);
        return;
      }
      settle(live, outcome);
      if (outcome.text !== live.last) publish(live, outcome.result, outcome.text, isForbidden(outcome.result));
    } catch (error) {
      logger.error({ err: error }, 'a live query could not run again; it ends');
      const failed = { errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] };
      publish(live, failed, JSON.stringify(failed), true);
    } finally {
      live.running = false;
      next(live);
    }
  };

  const heard = (event: DomainEvent) => {
    options.wrote?.();
    const tags = event.changed.map((change) => `${event.source}/${change}`);
    heardSeq += 1;
    recent.push({ seq: heardSeq, tags });
    if (recent.length > RECENT_COMMITS) recent.shift();
    const touched = new Set<Live>(byTag.get(EVERYTHING));
    for (const tag of tags) for (const live of byTag.get(tag) ?? []) touched.add(live);
    for (const live of touched) {
      schedule(live, 'event');
      if (options.replicaLagMs) setTimeout(() => schedule(live, 'event'), options.replicaLagMs).unref();
    }
  };

  /** A client's answers from `first` on, following `live` until it leaves; the execution ends with its last client. */
  const follow = (live: Live, first: Update, format: LiveFormat): LiveAnswers => {
    stats.open += 1;
    const { follower, answers } = followAnswers(first, format, () => {
      stats.open -= 1;
      live.followers.delete(follower);
      if (live.followers.size === 0) retire(live);
    });
    live.followers.add(follower);
    return answers;
  };
  const join = (live: Live, format: LiveFormat) => follow(live, { result: live.lastResult, revision: live.revision, final: false, patch: () => [] }, format);

  /** The first run of a live query nobody here runs yet, and its first client's answers (and the execution, when it goes on). */
  const start = async (key: string, body: Record<string, unknown>, viewer: Viewer | null, format: LiveFormat): Promise<LiveOpening & { live?: Live }> => {
    stats.runs.first += 1;
    const startedAt = performance.now();
    const outcome = await execute(body, viewer);
    if ('refused' in outcome) return outcome;
    if (outcome.tags === undefined) return { refused: notLive('This query cannot be kept live: the gateway cannot tell which entities its answer read.') };
    // The first answer says the viewer may not see it: sent, and nothing to keep current.
    const final = isForbidden(outcome.result);
    const live: Live = {
      key,
      body,
      viewer,
      tags: new Set(),
      last: outcome.text,
      lastResult: outcome.result,
      revision: 1,
      lastRunAt: startedAt,
      running: false,
      dirty: false,
      failures: 0,
      followers: new Set(),
      closed: final,
    };
    const answers = follow(live, { result: outcome.result, revision: 1, final, patch: () => [] }, format);
    if (final) return { answers };
    byKey.set(key, live);
    settle(live, outcome);
    return { answers, live };
  };

  let stopListening: (() => Promise<void>) | undefined;

  return {
    stats,
    async start(): Promise<void> {
      const unsubscribe = await subscribeToEveryEvent(events, (message) => {
        if (isDomainEvent(message)) heard(message);
      });
      // Commits while the bus was away are unknown: every live query runs again, once; runs under way too.
      const offGap = events.onGap((state) => {
        if (state !== 'restored') return;
        gaps += 1;
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
     * viewer running here: its answers, in `format`, until `return()`; or the first run's response when it is
     * refused (HTTP's answer, for the transport to word as it does).
     */
    async open(body: Record<string, unknown>, viewer: Viewer | null, format: LiveFormat = 'whole'): Promise<LiveOpening> {
      const key = JSON.stringify([viewer, body.query, body.operationName ?? null, body.variables ?? null, body.extensions ?? null]);
      // Running, or being started by another client of the same viewer (joined once its first answer is in). No
      // await before the start is registered, so clients that arrive together start it once.
      for (let pending = starting.get(key); ; pending = starting.get(key)) {
        const running = byKey.get(key);
        if (running && !running.closed) return { answers: join(running, format) };
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
        for (const follower of live.followers) follower.end();
        retire(live);
      }
    },
  };
}

export type LiveQueries = ReturnType<typeof createLiveQueries>;
