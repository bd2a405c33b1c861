// Issue 25's failover tests: the stack on a Redis that replicates (Sentinel, then a Redis Cluster), under a write
// load through the gateway with subscribers following the writers' users, while the primary holding the event
// stream is killed with SIGKILL (see failover.ts). A replica is promoted; the services must find it, the relays
// must resend what their outboxes still hold, and every write acknowledged to a client must reach its user's
// subscribers, and the `userEvents(after:)` replay, exactly once and in order. The figures (requests failed, time
// to recover, events lost, repeated or reordered) are printed as a `failover figures` line per scenario; times
// are never asserted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { summarise } from '../../chaos/src/analysis.ts';
import { clusterTopology, LEAK, sentinelTopology, startFailoverStack, type FailoverStack, type Topology } from './failover.ts';

function describeFailover(topologyName: string, start: () => Promise<Topology>) {
  describe(`a Redis primary killed under write load: ${topologyName}`, () => {
    let topology: Topology | undefined;
    let failover: FailoverStack | undefined;

    beforeAll(async () => {
      topology = await start();
      failover = await startFailoverStack(topology);
    });

    afterAll(async () => {
      // The Redis processes outlive this one unless stopped: a stack that fails to stop must not leave them behind.
      try {
        await failover?.teardown();
      } finally {
        await topology?.stop();
      }
    });

    it('loses, repeats and reorders no acknowledged event; the services reconnect; failed requests say why with a code', async () => {
      const { problems, failures, probeRefusals, eventsHeard } = await (failover as FailoverStack).run();
      expect(summarise(problems, 20)).toEqual([]);
      // The load reached every subscriber (an empty stream would pass the lines above).
      for (const events of eventsHeard) expect(events).toBeGreaterThan(0);
      for (const failure of failures) {
        expect(failure.code, failure.message).toMatch(/^[A-Z_]+$/);
        expect(failure.message).not.toMatch(LEAK);
      }
      for (const refusal of probeRefusals) expect(refusal).toMatch(/^[A-Z_]+(,[A-Z_]+)*$/);
    });
  });
}

describeFailover('Sentinel', sentinelTopology);
describeFailover('Redis Cluster', clusterTopology);
