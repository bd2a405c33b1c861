import CircuitBreaker from 'opossum';
import type { Logger, Metrics } from '@fed/platform';

/**
 * When a subgraph's breaker opens, and how long it stays open.
 *
 * Only a subgraph that does not answer counts: refused, reset, timed out, or 5xx. An answer with GraphQL errors
 * comes from a subgraph that is up, DATABASE_UNAVAILABLE included: it answers at once, so opening the breaker
 * would spare it nothing, and would stretch a database blip by a whole cool-down.
 */
export interface BreakerPolicy {
  /** A run of this many failed calls in a row (refused, reset, timed out, 5xx) opens the breaker. */
  failures: number;
  /** The first cool-down: open this long, then one probe call decides. */
  resetTimeoutMs: number;
  /**
   * Each failed probe doubles the cool-down, up to this; closing starts over from resetTimeoutMs. So a short
   * outage costs about its own length, and a long one a probe every maxResetTimeoutMs. Unset: every cool-down
   * is resetTimeoutMs.
   */
  maxResetTimeoutMs?: number;
}

export const DEFAULT_BREAKER: BreakerPolicy = { failures: 5, resetTimeoutMs: 1_000, maxResetTimeoutMs: 10_000 };

/** Thrown instead of calling a subgraph whose breaker is open: the caller answers at once. */
export class CircuitOpenError extends Error {
  override name = 'CircuitOpenError';
}

// A 5xx is an answer the fetch resolves with; the breaker must count it as a failure, and the data source
// still gets the response to report as usual.
/** What the breaker reads of an answer. */
interface Answer {
  status: number;
}

class ServerErrorStatus extends Error {
  constructor(readonly response: Answer) {
    super(`HTTP ${response.status}`);
  }
}

export type BreakerState = 'closed' | 'open' | 'half-open';
const STATE_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

export interface SubgraphBreaker {
  /** Sends through the breaker: refused with CircuitOpenError while open. */
  call<T extends Answer>(send: () => Promise<T>): Promise<T>;
  state(): BreakerState;
  shutdown(): void;
}

/** One subgraph's circuit breaker (opossum), reporting its state as `subgraph_circuit_state`. */
export function createSubgraphBreaker(subgraph: string, policy: BreakerPolicy, { metrics, logger }: { metrics: Metrics; logger: Logger }): SubgraphBreaker {
  // opossum keeps this object and reads resetTimeout each time it opens: the cool-down is changed here.
  const settings: CircuitBreaker.Options = {
    // Our fetch has its own deadline (a timeout is a failure like any other), and nothing is retried here.
    timeout: false,
    // opossum's own rule opens above a failure rate; this breaker opens on a run of failures (below), which
    // a busy subgraph's earlier successes cannot dilute. A rate above 100 % never happens.
    errorThresholdPercentage: 100,
    resetTimeout: policy.resetTimeoutMs,
  };
  const longestCoolDown = Math.max(policy.resetTimeoutMs, policy.maxResetTimeoutMs ?? policy.resetTimeoutMs);
  const breaker = new CircuitBreaker(async (send: () => Promise<Answer>) => {
    const response = await send();
    if (response.status >= 500) throw new ServerErrorStatus(response);
    return response;
  }, settings);
  let run = 0;
  breaker.on('success', () => {
    run = 0;
  });
  breaker.on('failure', () => {
    run += 1;
    // Half-open, opossum reopens on the probe's failure by itself, right after this event: for twice as long.
    if (breaker.halfOpen) settings.resetTimeout = Math.min((settings.resetTimeout ?? policy.resetTimeoutMs) * 2, longestCoolDown);
    if (run >= policy.failures && breaker.closed) breaker.open();
  });
  const state = (): BreakerState => (breaker.opened ? 'open' : breaker.halfOpen ? 'half-open' : 'closed');
  const transitions = metrics.counter({
    name: 'subgraph_circuit_transitions_total',
    help: 'Circuit breaker state changes, by subgraph and new state',
    labelNames: ['subgraph', 'state'] as const,
  });
  const gauge = metrics.gauge({
    name: 'subgraph_circuit_state',
    help: 'Circuit breaker state per subgraph: 0 closed, 1 half-open, 2 open',
    labelNames: ['subgraph'] as const,
  });
  gauge.set({ subgraph }, STATE_VALUE.closed);
  const enter = (next: BreakerState) => () => {
    gauge.set({ subgraph }, STATE_VALUE[next]);
    transitions.inc({ subgraph, state: next });
    logger[next === 'open' ? 'warn' : 'info']({ serviceName: subgraph, state: next }, `circuit ${next}`);
  };
  breaker.on('open', enter('open'));
  breaker.on('halfOpen', enter('half-open'));
  breaker.on('close', () => {
    run = 0;
    settings.resetTimeout = policy.resetTimeoutMs;
    enter('closed')();
  });
  return {
    // Whatever resolves is what `send` resolved with (a 5xx comes back out of its error): still a T.
    call: <T extends Answer>(send: () => Promise<T>) =>
      breaker.fire(send).catch((error: unknown) => {
        if (error instanceof ServerErrorStatus) return error.response;
        if ((error as { code?: unknown }).code === 'EOPENBREAKER') throw new CircuitOpenError(`The ${subgraph} circuit is open`);
        throw error;
      }) as Promise<T>,
    state,
    shutdown: () => breaker.shutdown(),
  };
}
