// `npm run db:migrate`: one-shot migration of both subgraphs' databases (advisory-locked on Postgres).
import { loadConfigOrExit, startOrExit } from '@fed/platform';
import { databaseToolsConfigSchema } from '../config.ts';
import { locationsFrom, openDatabases } from '../databases.ts';

const config = loadConfigOrExit(databaseToolsConfigSchema, process.env);
const locations = locationsFrom(config);
await startOrExit(async () => {
  const databases = await openDatabases(locations, { migrate: true });
  await databases.close();
  for (const [name, location] of Object.entries(locations)) {
    process.stderr.write(`migrated ${name} (${'url' in location ? 'Postgres' : `PGlite in ${location.dataDir}`})\n`);
  }
}, 'Migration failed');
