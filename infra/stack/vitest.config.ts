import { serviceTestConfig } from '@fed/platform/vitest';

export default serviceTestConfig('stack');
