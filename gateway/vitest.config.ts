import { serviceTestConfig } from '../infra/platform/src/testing/vitest.ts';

export default serviceTestConfig('gateway');
