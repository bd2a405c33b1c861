import { createHash } from 'node:crypto';
import type { GraphQLSchema } from 'graphql';
import type { Logger, Metrics } from '@fed/platform';
import type { EngineRouter, ExecutionEngine } from '../execution/engine.ts';

/** The supergraph a gateway serves now, and what was built from it. */
export interface ServedSupergraph {
  sdl: string;
  /** The first 16 hex digits of the SDL's sha256: readiness and metrics name it, response cache keys hold it. */
  hash: string;
  engine: ExecutionEngine;
}

export type ReloadOutcome =
  | { outcome: 'loaded'; hash: string; previous: string; warmed: number }
  | { outcome: 'unchanged'; hash: string }
  | { outcome: 'refused'; hash: string; serving: string; reason: string };

export interface SupergraphReloaderOptions {
  initial: string;
  /** Parses, validates and plans with one supergraph; throws when it is not one this gateway can serve. */
  build(sdl: string): ExecutionEngine;
  /**
   * Hands a validated supergraph to what serves requests (@apollo/gateway, and through it Apollo Server's
   * schema): throws to refuse it. The new engine is current while it runs.
   */
  apply(next: ServedSupergraph): void;
  /** What follows a supergraph that took over (the response cache's keys, subscriptions, readiness). */
  follow(next: ServedSupergraph, previous: ServedSupergraph): void;
  logger: Logger;
  metrics: Metrics;
}

export const supergraphHash = (sdl: string) => createHash('sha256').update(sdl).digest('hex').slice(0, 16);

/**
 * Rolls a new supergraph out on a running gateway. A candidate is built and plans the operations clients ran
 * most recently before it takes over: one that fails any step is refused (logged, counted) and the current one
 * keeps serving. Requests validated against the old schema finish on the old engine; new ones get the new one.
 * Reloads run one at a time, in the order they were asked for.
 */
export function createSupergraphReloader(options: SupergraphReloaderOptions) {
  const { logger, metrics } = options;
  const engines = new WeakMap<GraphQLSchema, ExecutionEngine>();
  const describe = (sdl: string, engine: ExecutionEngine): ServedSupergraph => {
    engines.set(engine.apiSchema, engine);
    return { sdl, hash: supergraphHash(sdl), engine };
  };
  let served = describe(options.initial, options.build(options.initial));
  const outcomes = { loaded: 0, unchanged: 0, refused: 0 };
  metrics.counterFrom(
    { name: 'gateway_supergraph_reloads_total', help: 'Supergraph reloads by outcome (loaded; unchanged: the same SDL; refused: it failed to build, plan or apply, and the old one kept serving)', labelNames: ['outcome'] as const },
    () => Object.entries(outcomes).map(([outcome, count]) => [{ outcome }, count]),
  );
  metrics.gauge({
    name: 'gateway_supergraph_info',
    help: 'The supergraph this replica serves (1, labelled with its hash)',
    labelNames: ['hash'] as const,
    collect: (gauge) => {
      gauge.reset();
      gauge.set({ hash: served.hash }, 1);
    },
  });

  const attempt = async (sdl: string, origin: string): Promise<ReloadOutcome> => {
    const hash = supergraphHash(sdl);
    if (hash === served.hash) {
      outcomes.unchanged += 1;
      return { outcome: 'unchanged', hash };
    }
    const previous = served;
    let warmed = 0;
    try {
      const engine = options.build(sdl);
      const { planned, failed } = await engine.warm(previous.engine);
      if (failed.length > 0) {
        throw new Error(`it cannot plan ${failed.length} operation(s) clients ran recently, ${failed.map((f) => f.operationName ?? '(anonymous)').join(', ')}: ${failed[0]!.reason}`);
      }
      warmed = planned;
      served = describe(sdl, engine);
      options.apply(served);
    } catch (error) {
      served = previous;
      outcomes.refused += 1;
      const reason = error instanceof Error ? error.message : String(error);
      logger.error({ origin, hash, serving: previous.hash, reason }, 'supergraph refused; the previous one keeps serving');
      return { outcome: 'refused', hash, serving: previous.hash, reason };
    }
    outcomes.loaded += 1;
    try {
      options.follow(served, previous);
    } catch (error) {
      // Serving already moved on: a follower that failed is logged, not a reason to go back.
      logger.error({ err: error, hash }, 'a part of the gateway did not follow the new supergraph');
    }
    logger.info({ origin, hash, previous: previous.hash, warmed }, 'supergraph reloaded');
    return { outcome: 'loaded', hash, previous: previous.hash, warmed };
  };

  let queue: Promise<unknown> = Promise.resolve();
  const engineRouter: EngineRouter = { current: () => served.engine, forSchema: (schema) => engines.get(schema) };
  return {
    served: () => served,
    engines: engineRouter,
    /** Loads `sdl` if it differs from what is served; `origin` (file, signal, url, api) goes to the log line. */
    reload(sdl: string, origin: string): Promise<ReloadOutcome> {
      const next = queue.then(() => attempt(sdl, origin));
      queue = next.catch(() => undefined);
      return next;
    },
  };
}

export type SupergraphReloader = ReturnType<typeof createSupergraphReloader>;
