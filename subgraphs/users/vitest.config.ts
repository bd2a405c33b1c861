import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Fails the run at once, saying how to start them, when Postgres or Redis is down.
    globalSetup: ['../../infra/platform/src/testing/global-setup.ts'],
    env: { APOLLO_TELEMETRY_DISABLED: '1' },
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
