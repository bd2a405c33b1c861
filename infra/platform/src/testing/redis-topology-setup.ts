import type { TestProject } from 'vitest/node';
import { startRedisCluster } from './redis-cluster.ts';
import { startRedisSentinel } from './redis-sentinel.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** REDIS_URL of the Redis set-up a topology project's tests run on (see redisTopologiesTestConfig). */
    testRedisUrl: string;
  }
}

/**
 * globalSetup of a topology project (see redisTopologiesTestConfig): starts the set-up its name ends with, once
 * for all of the project's test files, hands its URL to them, and stops it when they are done.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const topology = project.name.endsWith('sentinel') ? await startRedisSentinel() : await startRedisCluster();
  project.provide('testRedisUrl', topology.url);
  return () => topology.stop();
}
