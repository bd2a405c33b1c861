import { serviceTestConfig } from './src/testing/vitest.ts';

export default serviceTestConfig('platform');
