// `npm run codegen`: rewrites each subgraph's src/generated/resolvers.ts; `--check` only reports stale ones.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateResolverTypes, RESOLVER_TYPES } from './codegen.ts';

const check = process.argv.includes('--check');
let stale = 0;
for (const name of Object.keys(RESOLVER_TYPES) as (keyof typeof RESOLVER_TYPES)[]) {
  const path = fileURLToPath(RESOLVER_TYPES[name].output);
  const generated = await generateResolverTypes(name);
  let committed: string | undefined;
  try {
    committed = readFileSync(path, 'utf8');
  } catch {
    committed = undefined;
  }
  if (committed === generated) continue;
  if (check) {
    process.stderr.write(`${path} is stale: run \`npm run codegen\` and commit the result.\n`);
    stale++;
  } else {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, generated);
    process.stderr.write(`wrote ${path}\n`);
  }
}
if (stale > 0) process.exit(1);
if (check) process.stderr.write('resolver types are up to date\n');
