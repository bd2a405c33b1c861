import { defineConfig } from 'vitest/config';

export default defineConfig({
  // graphql 16 ships index.js (CJS, what Node and so Apollo load) and index.mjs (what Vite would pick for code it
  // transforms). Two copies break `instanceof GraphQLError` between our code and Apollo's, which never happens
  // outside tests; resolve the bare specifier to the same file Node uses.
  resolve: { alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }] },
  test: {
    globalSetup: ['./src/testing/global-setup.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 20000,
    hookTimeout: 30000,
  },
});
