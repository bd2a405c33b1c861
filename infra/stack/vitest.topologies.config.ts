import { redisTopologiesTestConfig } from '../platform/src/testing/vitest.ts';

// Issue 25: the full stack (two gateways, two users replicas, orders) on a Redis Cluster and on Sentinel, once per
// `npm test`: the response cache, subscriptions, durable events and the rate limit, as the ordinary suites test
// them on one Redis (each takes its Redis from TEST_REDIS_URL; the outage tests start a private set-up of the same
// shape behind a proxy per node).
const suites = ['test/response-cache.test.ts', 'test/subscriptions.test.ts', 'test/durable-events.test.ts', 'test/attacks.test.ts'];

export default redisTopologiesTestConfig('stack-topologies', {
  cluster: suites,
  sentinel: suites,
});
