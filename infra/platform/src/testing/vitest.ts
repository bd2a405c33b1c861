import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

/** Per test, and per hook (a stack start, a seed, a browser launch): far above any idle figure, on purpose. */
export const TEST_TIMEOUT_MS = 300_000;
export const HOOK_TIMEOUT_MS = 600_000;

const globalSetup = fileURLToPath(new URL('./global-setup.ts', import.meta.url));
const topologySetup = fileURLToPath(new URL('./redis-topology-setup.ts', import.meta.url));
const topologyEnv = fileURLToPath(new URL('./redis-topology-env.ts', import.meta.url));

/**
 * Every package's vitest config. With VITEST_REPORT_DIR set (as .ci/run does) each package also writes a JSON
 * report there, which CI sums into one "N passed, N failed" line.
 */
export function serviceTestConfig(name: string, { needsServices = true } = {}) {
  const reportDir = process.env.VITEST_REPORT_DIR;
  return defineConfig({
    // graphql 16 ships ESM and CJS builds; under vitest our code would load one and Apollo the other, and
    // `instanceof GraphQLError` would fail between them. Node itself never mixes them, so neither must tests.
    resolve: { alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }] },
    test: {
      include: ['test/**/*.test.ts'],
      // Fails the run at once, saying how to start them, when Postgres or Redis is down.
      globalSetup: needsServices ? [globalSetup] : [],
      env: { APOLLO_TELEMETRY_DISABLED: '1' },
      // Limits that catch a hang, not a slow machine: CI once measured 120 s of module imports alone while another
      // build shared the two cores, and a kustomize test died at a 30 s limit. Waits inside tests poll for their
      // condition (waitFor) and return as soon as it holds, so a generous limit costs nothing when all is well.
      testTimeout: TEST_TIMEOUT_MS,
      hookTimeout: HOOK_TIMEOUT_MS,
      reporters: reportDir ? ['default', 'json'] : ['default'],
      outputFile: reportDir ? { json: join(reportDir, `${name}.json`) } : undefined,
    },
  });
}

/**
 * Test files run on a Redis Cluster of 6 nodes (3 primaries, 3 replicas) and on Sentinel (1 primary, 2 replicas,
 * 3 Sentinels): a project for each, `cluster` and `sentinel`, that starts its set-up once for all its files and
 * points TEST_REDIS_URL at it. The files are the ordinary suites, which take every Redis they use from
 * TEST_REDIS_URL; `files` names them for each set-up.
 */
export function redisTopologiesTestConfig(name: string, files: Record<'cluster' | 'sentinel', string[]>) {
  const base = serviceTestConfig(name);
  const { include: _all, globalSetup: _check, reporters: _reporters, outputFile: _output, ...shared } = base.test ?? {};
  const project = (topology: 'cluster' | 'sentinel') => ({
    resolve: base.resolve,
    test: { ...shared, name: topology, include: files[topology], globalSetup: [globalSetup, topologySetup], setupFiles: [topologyEnv] },
  });
  return defineConfig({ test: { reporters: base.test?.reporters, outputFile: base.test?.outputFile, projects: [project('cluster'), project('sentinel')] } });
}
