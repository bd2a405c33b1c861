// `npm run compose`: rewrites schema/supergraph.graphql; `--check` only reports whether it is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CompositionError, composeSupergraph, SUPERGRAPH_PATH } from './index.ts';

try {
  const { supergraphSdl, hints } = composeSupergraph();
  for (const hint of hints) process.stderr.write(`hint: ${hint}\n`);
  const path = fileURLToPath(SUPERGRAPH_PATH);
  if (process.argv.includes('--check')) {
    const committed = readFileSync(path, 'utf8');
    if (committed !== supergraphSdl) {
      process.stderr.write(`${path} is stale: run \`npm run compose\` and commit the result.\n`);
      process.exit(1);
    }
    process.stderr.write('supergraph is up to date\n');
  } else {
    writeFileSync(path, supergraphSdl);
    process.stderr.write(`wrote ${path}\n`);
  }
} catch (error) {
  if (error instanceof CompositionError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  throw error;
}
