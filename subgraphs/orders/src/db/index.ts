import { fileURLToPath } from 'node:url';
import type { Database } from '@fed/platform';
import * as schema from './schema.ts';

export { schema };
export type OrdersDatabase = Database<typeof schema>;

/** The committed drizzle-kit migrations for this subgraph's own database. */
export const migrationsFolder = fileURLToPath(new URL('../../drizzle', import.meta.url));
