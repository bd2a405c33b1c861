import type { Readiness } from '@fed/platform';

export interface SubgraphHealthOptions {
  /** Sends a minimal query (`{ __typename }`) to a subgraph; resolves when it answered. */
  probe: (subgraph: string) => Promise<void>;
  /** A subgraph silent for this long is probed. */
  intervalMs?: number;
  /** The gateway is not ready while a subgraph has not answered for this long. */
  staleAfterMs?: number;
}

export interface GatewayReadiness {
  /** A subgraph the supergraph routes to: the gateway is ready only while it answers. */
  track(subgraph: string): void;
  /** The subgraphs a reloaded supergraph routes to: tracked, and any other no longer. */
  routeOnly(subgraphs: Iterable<string>): void;
  /** Any answer from a subgraph (a client's fetch or a probe). */
  answered(subgraph: string): void;
  /** The supergraph is loaded: the gateway can plan. */
  loaded(): void;
  /** From now on, /readyz says draining whatever else holds. */
  drain(): void;
  isDraining(): boolean;
  check(): Readiness;
  stop(): void;
}

/**
 * Ready means: a supergraph is loaded, every subgraph answered recently, and no drain has started. Client
 * traffic counts as answers; a subgraph nobody asked for a while is probed, so an idle gateway stays ready.
 * Redis is not asked: the cache is optional.
 */
export function createGatewayReadiness({ probe, intervalMs = 5_000, staleAfterMs = 15_000, supergraph }: SubgraphHealthOptions & { supergraph?: () => string }): GatewayReadiness {
  const subgraphs = new Set<string>();
  const lastAnswer = new Map<string, number>();
  let isLoaded = false;
  let draining = false;
  const probing = new Set<string>();

  const probeSilent = () => {
    const now = Date.now();
    for (const subgraph of subgraphs) {
      if (probing.has(subgraph) || now - (lastAnswer.get(subgraph) ?? 0) < intervalMs) continue;
      probing.add(subgraph);
      // A failed probe is the answer it is looking for: nothing to report beyond the fetch's own log line.
      probe(subgraph)
        .catch(() => {})
        .finally(() => probing.delete(subgraph));
    }
  };
  let timer: NodeJS.Timeout | undefined;

  return {
    track: (subgraph) => subgraphs.add(subgraph),
    routeOnly: (routed) => {
      const keep = new Set(routed);
      for (const subgraph of subgraphs) if (!keep.has(subgraph)) subgraphs.delete(subgraph);
      // One removed and added back keeps its data source (same URL), so nothing else would track it again.
      for (const subgraph of keep) subgraphs.add(subgraph);
    },
    answered: (subgraph) => lastAnswer.set(subgraph, Date.now()),
    loaded: () => {
      isLoaded = true;
      probeSilent();
      timer ??= setInterval(probeSilent, intervalMs).unref();
    },
    drain: () => {
      draining = true;
    },
    isDraining: () => draining,
    check: () => {
      const now = Date.now();
      const checks: Record<string, boolean> = { supergraph: isLoaded };
      for (const subgraph of subgraphs) checks[subgraph] = now - (lastAnswer.get(subgraph) ?? 0) < staleAfterMs;
      // Which supergraph this replica serves: a roll-out is done when every replica names the new hash.
      const info = supergraph ? { supergraph: supergraph() } : undefined;
      if (draining) return { ready: false, status: 'draining', checks, info };
      const ready = Object.values(checks).every(Boolean);
      return { ready, status: ready ? 'ready' : isLoaded ? 'unavailable' : 'starting', checks, info };
    },
    stop: () => clearInterval(timer),
  };
}
