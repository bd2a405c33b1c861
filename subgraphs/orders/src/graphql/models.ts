import type { Connection } from '@fed/platform';
import type { OrderRow } from '../db/schema.ts';

/** A page of orders plus a deferred count: the count is its own statement, run only if a client asks. */
export type OrderConnectionModel = Connection<OrderRow> & { countTotal: () => Promise<number> };

/** The users subgraph owns User; here a user is only ever the reference the gateway sends. */
export interface UserReference {
  id: string;
}
