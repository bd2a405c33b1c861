import { EVENTS_EXTENSION, isDomainEvent } from '@fed/platform';
import type { FetchObserver, SubgraphRequest, SubgraphResponse } from '../subgraphs/data-source.ts';
import type { ResponseCacheRequest } from './response-cache.ts';
import { createFetchTagger } from './tags.ts';

/**
 * Watches a request's subgraph fetches for what its answer depends on and what it committed, into its
 * `responseCache` state: the response cache keys purges by it, live queries re-run by it. Tagging asks each
 * subgraph for the keys of the entities it returns (rewriting the fetch), so only requests that collect pay.
 */
export function createTaggingObserver<TContext extends { responseCache?: ResponseCacheRequest }>(supergraphSdl: string): FetchObserver<TContext> & { useSupergraph(sdl: string): void } {
  let tagger = createFetchTagger(supergraphSdl);
  return {
    useSupergraph(sdl: string) {
      tagger = createFetchTagger(sdl);
    },
    willSend(subgraph: string, request: SubgraphRequest, context: TContext | undefined): void {
      if (!context?.responseCache?.collecting || !request.query) return;
      const tagged = tagger.tag(subgraph, request.query);
      if (!tagged) {
        context.responseCache.untaggable = true;
        return;
      }
      request.query = tagged.query;
      for (const tag of tagged.rootTags) context.responseCache.tags.add(tag);
    },
    didReceive(subgraph: string, request: SubgraphRequest, response: SubgraphResponse, context: TContext | undefined): void {
      const state = context?.responseCache;
      if (!state) return;
      const reported = response.extensions?.[EVENTS_EXTENSION];
      if (Array.isArray(reported)) state.events.push(...reported.filter(isDomainEvent));
      if (state.collecting && !tagger.collect(subgraph, response.data, request.variables?.representations, state.tags)) state.untaggable = true;
      // Its ticket was issued after that fetch went out: a purge in between would not stop the store.
      const sentAt = (response.http as { sentAt?: number } | undefined)?.sentAt;
      if (state.lookedUpAt !== undefined && sentAt !== undefined && sentAt <= state.lookedUpAt) state.predatesLookup = true;
    },
  };
}
