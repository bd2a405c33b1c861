import { serviceTestConfig } from '../platform/src/testing/vitest.ts';

// Its own Redis and Postgres: the machine's shared ones are never paused or restarted, and never needed.
export default serviceTestConfig('chaos', { needsServices: false });
