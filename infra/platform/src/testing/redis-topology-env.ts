import { inject } from 'vitest';
import './redis-topology-setup.ts';

// A topology project's setup file: every Redis client a test makes from TEST_REDIS_URL (testRedisUrl()) goes to the
// project's set-up.
process.env.TEST_REDIS_URL = inject('testRedisUrl');
