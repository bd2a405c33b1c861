import { serviceTestConfig } from '../platform/src/testing/vitest.ts';

export default serviceTestConfig('k8s', { needsServices: false });
