// How long a subgraph's breaker stays open: the cool-down starts short and doubles with each failed probe, so
// a subgraph back after a short outage is called again about that long after, not a fixed 10 s later, while a
// long outage is probed no more often than the longest cool-down. On the breaker itself, with a fake clock:
// which calls reach the subgraph and which are refused at once, at each moment.
import { createLogger, createTelemetry } from '@fed/platform';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CircuitOpenError, createSubgraphBreaker, type BreakerPolicy } from '../src/subgraphs/circuit-breaker.ts';

const POLICY: BreakerPolicy = { failures: 2, resetTimeoutMs: 100, maxResetTimeoutMs: 350 };

function subgraph() {
  let status = 503;
  let calls = 0;
  const breaker = createSubgraphBreaker('orders', POLICY, { metrics: createTelemetry({ service: 'gateway' }).metrics, logger: createLogger({ name: 'test', level: 'silent' }) });
  const send = async () => {
    calls += 1;
    return { status };
  };
  return {
    breaker,
    /** The status the subgraph answers, or 'refused' when the breaker did not call it. */
    call: async (): Promise<number | 'refused'> => {
      try {
        return (await breaker.call(send)).status;
      } catch (error) {
        if (error instanceof CircuitOpenError) return 'refused';
        throw error;
      }
    },
    recover: () => {
      status = 200;
    },
    fail: () => {
      status = 503;
    },
    calls: () => calls,
  };
}

describe('the breaker cool-down', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Asserts the breaker refuses calls for `ms` less a millisecond, then lets one probe through. */
  async function expectCoolDown(orders: ReturnType<typeof subgraph>, ms: number, probeAnswers: number) {
    await vi.advanceTimersByTimeAsync(ms - 1);
    const before = orders.calls();
    expect(await orders.call()).toBe('refused');
    expect(orders.breaker.state()).toBe('open');
    await vi.advanceTimersByTimeAsync(1);
    expect(orders.breaker.state()).toBe('half-open');
    expect(await orders.call()).toBe(probeAnswers);
    expect(orders.calls()).toBe(before + 1);
  }

  it('doubles after each failed probe up to its longest, and starts over once the subgraph is back', async () => {
    const orders = subgraph();
    expect(await orders.call()).toBe(503);
    expect(await orders.call()).toBe(503);
    expect(orders.breaker.state()).toBe('open');

    await expectCoolDown(orders, 100, 503);
    await expectCoolDown(orders, 200, 503);
    // 400 capped at the longest cool-down, and it stays there.
    await expectCoolDown(orders, 350, 503);
    orders.recover();
    await expectCoolDown(orders, 350, 200);
    expect(orders.breaker.state()).toBe('closed');

    // The next outage is met with the short cool-down again.
    orders.fail();
    expect(await orders.call()).toBe(503);
    expect(await orders.call()).toBe(503);
    orders.recover();
    await expectCoolDown(orders, 100, 200);
    expect(orders.breaker.state()).toBe('closed');
    orders.breaker.shutdown();
  });
});
