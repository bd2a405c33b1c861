import { isAdmin } from '@fed/platform';
import type { Policy } from './rules.ts';

/**
 * The policies this repository's graph names in `@policy`, which a gateway gets unless it is given its own
 * (GatewayDeps.policies). A policy sees only the verified viewer: decisions that need the data stay in the
 * subgraph that owns it.
 */
export const DEFAULT_POLICIES: Readonly<Record<string, Policy>> = {
  admin: (viewer) => isAdmin(viewer),
};
