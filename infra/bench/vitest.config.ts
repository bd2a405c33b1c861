import { serviceTestConfig } from '../platform/src/testing/vitest.ts';

export default serviceTestConfig('bench');
