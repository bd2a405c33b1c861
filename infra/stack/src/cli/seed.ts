// `npm run seed -- --users N --orders-per-user M`: replaces all data with a deterministic dataset.
import { parseArgs } from 'node:util';
import { loadConfigOrExit, startOrExit } from '@fed/platform';
import { databaseToolsConfigSchema } from '../config.ts';
import { locationsFrom, openDatabases } from '../databases.ts';
import { DEFAULT_SEED, seed } from '../seed.ts';

const USAGE = 'usage: npm run seed -- [--users N] [--orders-per-user M]';

function count(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) > 10_000_000) {
    process.stderr.write(`--${flag} must be a whole number up to 10000000\n${USAGE}\n`);
    process.exit(2);
  }
  return Number(value);
}

let values: { users?: string; 'orders-per-user'?: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: { users: { type: 'string' }, 'orders-per-user': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  }));
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(`${USAGE}\nDefaults: --users ${DEFAULT_SEED.users} --orders-per-user ${DEFAULT_SEED.ordersPerUser}\n`);
  process.exit(0);
}
const users = count(values.users, DEFAULT_SEED.users, 'users');
const ordersPerUser = count(values['orders-per-user'], DEFAULT_SEED.ordersPerUser, 'orders-per-user');

const config = loadConfigOrExit(databaseToolsConfigSchema, process.env);
await startOrExit(async () => {
  const databases = await openDatabases(locationsFrom(config), { migrate: true });
  const started = performance.now();
  try {
    // Progress is a diagnostic: stderr, so stdout stays clean for scripts.
    const log = (line: string) => process.stderr.write(`${line}\n`);
    await seed(databases, { users, ordersPerUser, log });
  } finally {
    await databases.close();
  }
  process.stderr.write(`seeded ${users} users with ${ordersPerUser} orders each in ${Math.round(performance.now() - started)} ms\n`);
}, 'Seeding failed');
