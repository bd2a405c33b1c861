import { HeaderMap, type ApolloServerPlugin, type BaseContext, type HTTPGraphQLResponse } from '@apollo/server';
import { getNamedType, TypeInfo, visit, visitWithTypeInfo, type DocumentNode, type GraphQLSchema } from 'graphql';
import {
  DOMAIN_EVENTS_CHANNEL,
  isDomainEvent,
  ResponseStoreUnavailableError,
  subscribeToEveryEvent,
  type CachedHit,
  type CachedResponse,
  type DomainEvent,
  type GraphQLExchange,
  type Logger,
  type PubSub,
  type RawHttpResponse,
  type ResponseStore,
  type StoreTicket,
  type Viewer,
} from '@fed/platform';
import type { WriteClock } from '../subgraphs/dedupe.ts';
import { cacheKeys, readCacheableRequest, schemaIdOf, type CacheableRequest } from './request-key.ts';
import { createTaggingObserver } from './fetch-observer.ts';

export interface ResponseCacheOptions {
  store: ResponseStore;
  /** The bus every subgraph announces its commits on: writes that never pass through a gateway purge too. */
  events: PubSub;
  /** No response is cached longer than this (seconds), whatever the subgraphs allow. */
  maxTtlSeconds: number;
  /** Lower caps for responses that contain a type (`{ Order: 10 }`), in seconds. */
  typeTtlSeconds?: Record<string, number>;
  /**
   * When subgraphs read from replicas: each purge is repeated this long after it (milliseconds; 0: never). A
   * query answered in between by a replica that had not yet applied the write would otherwise be cached, stale,
   * for its whole TTL. Set it above the replicas' usual replay lag.
   */
  replicaLagMs?: number;
}

/** What one request contributes: filled in by the subgraph fetches and the Apollo plugin, read by the wrapper. */
export interface ResponseCacheRequest {
  /** Whether the subgraph fetches should be tagged (a query the cache may store). */
  collecting: boolean;
  /** `subgraph/Type:id` and `subgraph/Query.field`, for every entity and root field in the response. */
  tags: Set<string>;
  /** Committed by the subgraphs while answering this request (a mutation's writes). */
  events: DomainEvent[];
  /** A subgraph operation or answer could not be tagged (an entity it cannot name, an alias clash): never stored. */
  untaggable?: boolean;
  /** performance.now() once the lookup missed: a subgraph answer sent before it may predate a purge. */
  lookedUpAt?: number;
  /** An answer came from a subgraph fetch sent before the lookup (shared by in-flight dedupe): never stored. */
  predatesLookup?: boolean;
  verdict?: Verdict;
  /**
   * The verdict again, later: for an answer written in parts, once every part ran (later fetches may have
   * shortened what the subgraphs allow).
   */
  rejudge?: () => Verdict;
}

interface Verdict {
  operation: string | undefined;
  cacheable: boolean;
  maxAge: number;
  scope: CachedResponse['scope'];
}

/**
 * An answer written in parts (@defer) says, once every part ran, what the whole answer is (its JSON, as a
 * plain request is answered), or undefined when it is not one to keep (it has errors): that is what is stored.
 */
export type AnswerInParts = HTTPGraphQLResponse & { whole?: () => Promise<string | undefined> };

interface CacheContext extends BaseContext {
  viewer: Viewer | null;
  responseCache?: ResponseCacheRequest;
}

interface Outcome {
  response?: HTTPGraphQLResponse;
  shareable: boolean;
  /** What the answer contains, to check that nothing in it was purged since the leader's ticket. */
  tags?: readonly string[];
}

interface Flight {
  generation: number;
  ticket: StoreTicket;
  outcome: Promise<Outcome>;
}

export interface ResponseCacheStats {
  hits: number;
  misses: number;
  /** Misses answered by an identical request already running on this replica. */
  coalesced: number;
  stored: number;
  /** Purges applied, from mutations through this replica and from the event bus. */
  invalidations: number;
  /** Store failures: each one a miss, a skipped write or a purge left to the recovery flush. */
  errors: number;
}

const LOG_EVERY_MS = 10_000;

/**
 * The full-response cache: answers repeated queries from the store before Apollo parses them, and purges by
 * tag when the subgraphs commit. Its parts plug into the gateway's seams: `around` wraps HTTP execution,
 * `plugin` judges each response, `observer` tags the subgraph fetches and collects the events they report.
 */
export function createResponseCache(
  options: ResponseCacheOptions & {
    supergraphSdl: string;
    variant: string;
    logger: Logger;
    writes?: WriteClock;
    /**
     * What else makes answers to one request differ by who asks (see ExecutionEngine.cacheVariant). Entries are
     * kept apart by it, public ones too: an answer never reaches a viewer the directives would refuse part of.
     */
    variantOf?: (viewer: Viewer | null, headers: HeaderMap) => Promise<string | undefined> | undefined;
  },
) {
  const { store, events, logger, maxTtlSeconds } = options;
  const typeTtl = Object.entries(options.typeTtlSeconds ?? {});
  // Entries belong to one supergraph: a reload starts afresh without a purge (the old ones expire).
  let schemaId = schemaIdOf(options.supergraphSdl, options.variant);
  const stats: ResponseCacheStats = { hits: 0, misses: 0, coalesced: 0, stored: 0, invalidations: 0, errors: 0 };
  const flights = new Map<string, Flight>();
  /** Store lookups under way: a flight whose answer was just stored waits for them before it closes. */
  const lookups = new Set<Promise<unknown>>();
  /** Bumped by every purge this replica hears of: a request started before it must not be shared after it. */
  let generation = 0;
  const applied = new Set<string>();
  let lastLogged = 0;

  const failed = (operation: string, error: unknown) => {
    stats.errors += 1;
    const now = Date.now();
    // An outage fails every request; one line per interval says so without flooding the log.
    if (now - lastLogged < LOG_EVERY_MS) return;
    lastLogged = now;
    const err = error instanceof ResponseStoreUnavailableError ? { message: error.message } : error;
    logger.warn({ err, operation, stats }, 'response cache unavailable; serving uncached');
  };

  const repurges = new Set<NodeJS.Timeout>();
  const purge = async (tags: string[]) => {
    generation += 1;
    options.writes?.wrote();
    await store.invalidate(tags);
  };
  const purgeAgainLater = (tags: string[]) => {
    const timer = setTimeout(() => {
      repurges.delete(timer);
      purge(tags).catch((error: unknown) => failed('invalidate', error));
    }, options.replicaLagMs);
    timer.unref();
    repurges.add(timer);
  };

  const invalidate = async (committed: readonly DomainEvent[]) => {
    const fresh = committed.filter((event) => !applied.has(event.id));
    if (fresh.length === 0) return;
    const tags = [...new Set(fresh.flatMap((event) => event.changed.map((change) => `${event.source}/${change}`)))];
    if (options.replicaLagMs) purgeAgainLater(tags);
    try {
      await purge(tags);
      stats.invalidations += fresh.length;
      // A mutation's events are applied from its response and heard again on the bus: purge once.
      for (const event of fresh) applied.add(event.id);
      if (applied.size > 10_000) applied.clear();
    } catch (error) {
      // Neither the purge nor the full invalidation replacing it landed in time (the store waited for them, so
      // a mutation's answer did too). The store serves nothing until the full invalidation lands, which it keeps
      // retrying; another replica could serve the old answer until then.
      failed('invalidate', error);
    }
  };

  const typesCache = new WeakMap<DocumentNode, string[]>();
  const typesOf = (schema: GraphQLSchema, document: DocumentNode): string[] => {
    let types = typesCache.get(document);
    if (!types) {
      const found = new Set<string>();
      const typeInfo = new TypeInfo(schema);
      visit(
        document,
        visitWithTypeInfo(typeInfo, {
          Field() {
            const type = typeInfo.getType();
            if (type) found.add(getNamedType(type).name);
          },
        }),
      );
      types = [...found];
      typesCache.set(document, types);
    }
    return types;
  };

  const ttlFor = (maxAge: number, schema: GraphQLSchema, document: DocumentNode | undefined) => {
    let ttl = Math.min(maxAge, maxTtlSeconds);
    if (typeTtl.length > 0 && document) {
      const types = typesOf(schema, document);
      for (const [type, cap] of typeTtl) if (types.includes(type)) ttl = Math.min(ttl, cap);
    }
    return ttl;
  };

  const plugin: ApolloServerPlugin<CacheContext> = {
    async requestDidStart() {
      return {
        async willSendResponse({ contextValue, response, operation, overallCachePolicy, schema, document }) {
          const state = contextValue.responseCache;
          if (!state) return;
          const single = response.body.kind === 'single' ? response.body.singleResult : undefined;
          // Errors (partial data included), writes and anything without a cacheable policy are never stored.
          const judge = (complete: boolean): Verdict => {
            const policy = overallCachePolicy.policyIfCacheable();
            const maxAge = policy ? ttlFor(policy.maxAge, schema, document) : 0;
            const cacheable = !!policy && operation?.operation === 'query' && complete && maxAge > 0 && !state.untaggable && !state.predatesLookup;
            return { operation: operation?.operation, cacheable, maxAge, scope: policy?.scope ?? 'PUBLIC' };
          };
          state.verdict = judge(!!single && !single.errors?.length && single.data != null && (response.http.status ?? 200) === 200);
          // Only ever called with a whole answer free of errors.
          state.rejudge = () => judge(true);
          const { maxAge } = state.verdict;
          if (overallCachePolicy.policyIfCacheable() && maxAge > 0 && operation?.operation === 'query') {
            response.http.headers.set('cache-control', `max-age=${maxAge}, ${state.verdict.scope.toLowerCase()}`);
          } else if (operation) {
            // A write's answer, or one a cap forbids caching: the subgraphs' hints describe types, not this.
            response.http.headers.set('cache-control', 'no-store');
          }
        },
      };
    },
  };

  const observer = createTaggingObserver<CacheContext>(options.supergraphSdl);

  const hit = (cached: CachedHit, contentType: string): RawHttpResponse => ({
    status: 200,
    headers: new HeaderMap([
      ['content-type', contentType],
      ['cache-control', `max-age=${cached.maxAge}, ${cached.scope.toLowerCase()}`],
      ['age', String(Math.max(0, Math.floor((Date.now() - cached.storedAt) / 1000)))],
    ]),
    bytes: cached.body,
  });

  /** After Apollo answered: purge what a mutation committed before the client hears of it, then store. */
  const settle = async (
    state: ResponseCacheRequest,
    response: HTTPGraphQLResponse,
    storing?: { key: (scope: CachedResponse['scope']) => string | undefined; ticket: StoreTicket },
  ): Promise<{ response: HTTPGraphQLResponse; stored: Promise<unknown> }> => {
    if (state.events.length > 0) await invalidate(state.events);
    const whole = response.body.kind === 'chunked' ? (response as AnswerInParts).whole : undefined;
    if (storing && whole) return { response, stored: storeWhole(state, whole, storing) };
    const verdict = state.verdict;
    const key = verdict?.cacheable && response.body.kind === 'complete' ? storing?.key(verdict.scope) : undefined;
    if (!storing || !verdict || !key || response.body.kind !== 'complete') return { response, stored: Promise.resolve() };
    // The client does not wait for the write. One connection keeps commands in order, so this replica's
    // next lookup still sees it.
    const cached = { body: response.body.string, maxAge: verdict.maxAge, scope: verdict.scope, storedAt: Date.now() };
    const stored = store.store(key, cached, [...state.tags], storing.ticket).then(
      () => (stats.stored += 1),
      (error: unknown) => failed('store', error),
    );
    return { response, stored };
  };

  /** An answer in parts: stored once its parts all ran, whole, if it still may be. */
  const storeWhole = async (
    state: ResponseCacheRequest,
    whole: () => Promise<string | undefined>,
    storing: { key: (scope: CachedResponse['scope']) => string | undefined; ticket: StoreTicket },
  ): Promise<void> => {
    const body = await whole();
    const verdict = body === undefined ? undefined : state.rejudge?.();
    const key = verdict?.cacheable ? storing.key(verdict.scope) : undefined;
    if (body === undefined || !verdict || !key) return;
    await store.store(key, { body, maxAge: verdict.maxAge, scope: verdict.scope, storedAt: Date.now() }, [...state.tags], storing.ticket).then(
      () => (stats.stored += 1),
      (error: unknown) => failed('store', error),
    );
  };

  const around = async <TAdmission extends { viewer: Viewer | null; responseCache?: ResponseCacheRequest }>(
    exchange: GraphQLExchange<TAdmission>,
    execute: () => Promise<HTTPGraphQLResponse>,
  ): Promise<HTTPGraphQLResponse | RawHttpResponse> => {
    const state: ResponseCacheRequest = { collecting: false, tags: new Set(), events: [] };
    exchange.admission.responseCache = state;
    const { viewer } = exchange.admission;
    let request: CacheableRequest | undefined;
    let keys: { public: string; private?: string } | undefined;
    try {
      request = readCacheableRequest(exchange.method, exchange.headers, exchange.search, exchange.body);
      const variant = request && (await options.variantOf?.(viewer, exchange.headers));
      keys = request && cacheKeys(variant ? `${schemaId}\0${variant}` : schemaId, request, viewer);
    } catch {
      // Variables too deep to key (a hostile body): Apollo answers it, uncached.
    }
    if (!request || !keys) return (await settle(state, await execute())).response;
    const cacheKeysFound = keys;

    let ticket: StoreTicket | undefined;
    try {
      const lookup = store.lookup(keys.private ? [keys.private, keys.public] : [keys.public]);
      lookups.add(lookup);
      void lookup.catch(() => {}).finally(() => lookups.delete(lookup));
      const found = await lookup;
      if (found.hit) {
        stats.hits += 1;
        return hit(found.hit, request.contentType);
      }
      ticket = found.ticket;
      state.lookedUpAt = performance.now();
    } catch (error) {
      failed('lookup', error);
    }
    stats.misses += 1;

    // Identical requests by the same viewer share one execution, unless a purge came in since it started:
    // one heard here (generation) or one already in the store (the sequence moved past the leader's ticket).
    const flightKey = `${keys.private ?? keys.public}\0${request.contentType}`;
    const running = flights.get(flightKey);
    if (running && ticket && running.generation === generation) {
      const outcome = await running.outcome;
      // A purge another replica made (this one may not have heard of it yet) shows in the store.
      const fresh =
        outcome.shareable &&
        outcome.response &&
        ((running.ticket.epoch === ticket.epoch && running.ticket.seq >= ticket.seq) || !(await store.purgedSince(outcome.tags ?? [], running.ticket).catch(() => true)));
      if (fresh && outcome.response) {
        stats.coalesced += 1;
        return outcome.response;
      }
    }
    let finished!: (outcome: Outcome) => void;
    const flight: Flight | undefined = ticket && { generation, ticket, outcome: new Promise((resolve) => (finished = resolve)) };
    if (flight) flights.set(flightKey, flight);
    else finished = () => {};
    state.collecting = true;
    // The flight stays open until its answer is stored: a lookup that missed just before still joins it.
    let stored: Promise<unknown> = Promise.resolve();
    try {
      const settled = await settle(
        state,
        await execute(),
        // Anonymous viewers never create a private entry.
        ticket && { key: (scope) => (scope === 'PRIVATE' ? cacheKeysFound.private : cacheKeysFound.public), ticket },
      );
      stored = settled.stored;
      const { response } = settled;
      finished({
        response,
        shareable: state.verdict?.operation === 'query' && response.body.kind === 'complete' && !state.untaggable && !state.predatesLookup,
        tags: [...state.tags],
      });
      return response;
    } catch (error) {
      finished({ shareable: false });
      throw error;
    } finally {
      // A lookup sent before the answer was stored misses it, and must still find the flight to join.
      void stored
        .then(() => Promise.allSettled([...lookups]))
        .then(() => {
          if (flight && flights.get(flightKey) === flight) flights.delete(flightKey);
        });
    }
  };

  let stopListening: (() => Promise<void>) | undefined;

  return {
    around,
    plugin,
    observer,
    stats,
    /** After a supergraph reload: new keys, and fetches tagged by the new supergraph's entity keys. */
    useSupergraph(supergraphSdl: string): void {
      schemaId = schemaIdOf(supergraphSdl, options.variant);
      observer.useSupergraph(supergraphSdl);
    },
    /**
     * Listens for commits on the bus; a gap in it (a lost connection) may have dropped some, so purge all.
     * The first replica to listen purges all too: while no replica listened, writes outside a gateway purged
     * nothing. A replica joining others that listen (a deploy, a scale-out) keeps the shared cache warm.
     */
    async start(): Promise<void> {
      const unsubscribe = await subscribeToEveryEvent(events, (message) => {
        if (isDomainEvent(message)) void invalidate([message]);
      });
      // Subscribed first, so that two replicas starting together cannot both see the other and skip it.
      const listening = await events.subscribers(DOMAIN_EVENTS_CHANNEL).catch(() => 0);
      if (listening <= 1) await store.invalidateAll().catch((error: unknown) => failed('invalidateAll', error));
      const offGap = events.onGap((state) => {
        if (state !== 'restored') return;
        generation += 1;
        options.writes?.wrote();
        store.invalidateAll().catch((error: unknown) => failed('invalidateAll', error));
      });
      stopListening = async () => {
        offGap();
        await unsubscribe();
      };
    },
    async stop(): Promise<void> {
      for (const timer of repurges) clearTimeout(timer);
      await stopListening?.();
    },
  };
}

export type ResponseCache = ReturnType<typeof createResponseCache>;
