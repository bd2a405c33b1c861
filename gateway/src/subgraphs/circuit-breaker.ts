import CircuitBreaker from 'opossum';
import type { Logger, Metrics } from '@fed/platform';

/** When a subgraph's breaker opens, how long it stays open, and what it counts over. */
export interface BreakerPolicy {
  /** Calls within the window before the breaker may open at all (a run of this many failures opens it). */
  volumeThreshold: number;
  /** Share of failed calls within the window, in percent, that opens the breaker. */
  errorThresholdPercentage: number;
  /** The cool-down: open this long, then one probe call decides. */
  resetTimeoutMs: number;
  /** The rolling window failures are counted over. */
  windowMs: number;
}

export const DEFAULT_BREAKER: BreakerPolicy = { volumeThreshold: 5, errorThresholdPercentage: 50, resetTimeoutMs: 10_000, windowMs: 10_000 };

/** Thrown instead of calling a subgraph whose breaker is open: the caller answers at once. */
export class CircuitOpenError extends Error {
  override name = 'CircuitOpenError';
}

// A 5xx is an answer the fetch resolves with; the breaker must count it as a failure, and the data source
// still gets the response to report as usual.
class ServerErrorStatus extends Error {
  constructor(readonly response: Response) {
    super(`HTTP ${response.status}`);
  }
}

export type BreakerState = 'closed' | 'open' | 'half-open';
const STATE_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

export interface SubgraphBreaker {
  /** Sends through the breaker: refused with CircuitOpenError while open. */
  call(send: () => Promise<Response>): Promise<Response>;
  state(): BreakerState;
  shutdown(): void;
}

/** One subgraph's circuit breaker (opossum), reporting its state as `subgraph_circuit_state`. */
export function createSubgraphBreaker(subgraph: string, policy: BreakerPolicy, { metrics, logger }: { metrics: Metrics; logger: Logger }): SubgraphBreaker {
  const breaker = new CircuitBreaker(
    async (send: () => Promise<Response>) => {
      const response = await send();
      if (response.status >= 500) throw new ServerErrorStatus(response);
      return response;
    },
    {
      // Our fetch has its own deadline (a timeout is a failure like any other), and nothing is retried here.
      timeout: false,
      volumeThreshold: policy.volumeThreshold,
      errorThresholdPercentage: policy.errorThresholdPercentage,
      resetTimeout: policy.resetTimeoutMs,
      rollingCountTimeout: policy.windowMs,
      rollingCountBuckets: 10,
    },
  );
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
  breaker.on('close', enter('closed'));
  return {
    call: (send) =>
      breaker.fire(send).catch((error: unknown) => {
        if (error instanceof ServerErrorStatus) return error.response;
        if ((error as { code?: unknown }).code === 'EOPENBREAKER') throw new CircuitOpenError(`The ${subgraph} circuit is open`);
        throw error;
      }),
    state,
    shutdown: () => breaker.shutdown(),
  };
}
