import type { Metrics } from '@fed/platform';
import type { LiveQueryStats } from '../live/live-queries.ts';
import type { ResponseCacheStats } from '../response-cache/response-cache.ts';

export interface GatewayMetricSources {
  /** The response cache's running totals; unset when it is off. */
  cache?: ResponseCacheStats;
  /** Open graphql-ws sockets and the subscriptions on them; unset without a Subscription type. */
  sockets?: () => { sockets: number; subscriptions: number };
  /** Subscription streams open over server-sent events; unset without a Subscription type. */
  eventStreams?: () => number;
  /** Subscription streams open over Apollo's multipart protocol; unset without a Subscription type. */
  multipartStreams?: () => number;
  /** Live queries' running totals; unset when they are off. */
  live?: LiveQueryStats;
}

/** The gateway's cache_, ws_, sse_, multipart_ and live_ series, read from the totals those components keep. */
export function registerGatewayMetrics(metrics: Metrics, { cache, sockets, eventStreams, multipartStreams, live }: GatewayMetricSources): void {
  if (cache) {
    metrics.counterFrom(
      { name: 'cache_requests_total', help: 'Response cache lookups by result (hit, miss, coalesced: a miss served by an identical request in flight)', labelNames: ['result'] as const },
      () => [
        [{ result: 'hit' }, cache.hits],
        [{ result: 'miss' }, cache.misses],
        [{ result: 'coalesced' }, cache.coalesced],
      ],
    );
    metrics.counterFrom({ name: 'cache_stores_total', help: 'Responses written to the response cache' }, () => [[{}, cache.stored]]);
    metrics.counterFrom({ name: 'cache_invalidations_total', help: 'Response cache purges applied (mutations and the event bus)' }, () => [[{}, cache.invalidations]]);
    metrics.counterFrom({ name: 'cache_errors_total', help: 'Response cache store failures (each served uncached)' }, () => [[{}, cache.errors]]);
  }
  if (sockets) {
    metrics.gauge({ name: 'ws_connections_open', help: 'Open graphql-ws sockets', collect: (gauge) => gauge.set(sockets().sockets) });
    metrics.gauge({ name: 'ws_subscriptions_active', help: 'Subscriptions running over graphql-ws', collect: (gauge) => gauge.set(sockets().subscriptions) });
  }
  if (eventStreams) {
    metrics.gauge({ name: 'sse_streams_open', help: 'Subscriptions running over server-sent events (one per stream)', collect: (gauge) => gauge.set(eventStreams()) });
  }
  if (multipartStreams) {
    metrics.gauge({
      name: 'multipart_streams_open',
      help: "Subscriptions running over Apollo's multipart HTTP protocol (one per stream)",
      collect: (gauge) => gauge.set(multipartStreams()),
    });
  }
  if (live) {
    metrics.gauge({ name: 'live_queries_open', help: 'Clients following a live query (graphql-ws and server-sent events)', collect: (gauge) => gauge.set(live.open) });
    metrics.counterFrom({ name: 'live_query_runs_total', help: 'Live query runs by why they ran (first: the first answer; event: a commit touched what it read; gap: the bus was away; retry: the run before failed for a passing reason)', labelNames: ['reason'] as const }, () => [
      [{ reason: 'first' }, live.runs.first],
      [{ reason: 'event' }, live.runs.event],
      [{ reason: 'gap' }, live.runs.gap],
      [{ reason: 'retry' }, live.runs.retry],
    ]);
    metrics.counterFrom({ name: 'live_query_updates_total', help: 'Live query answers sent after the first (runs whose answer changed)' }, () => [[{}, live.updates]]);
  }
}
