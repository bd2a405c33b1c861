// Compiles every workspace's TypeScript (src/**/*.ts) to JavaScript in dist/, file for file, so that each
// file keeps its place relative to the SDL, migrations and supergraph it reads via import.meta.url.
//   node infra/docker/scripts/compile.mjs               dist/ next to src/ in every workspace
//   node infra/docker/scripts/compile.mjs --out DIR     also assemble what the image ships into DIR
// Types are not checked here (`npm run typecheck` does that); esbuild only strips them.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { build, stop } from 'esbuild';

const root = join(import.meta.dirname, '../../..');
const { values } = parseArgs({ options: { out: { type: 'string' } } });
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));

const rootManifest = readJson(join(root, 'package.json'));
// Workspace patterns here are `dir` or `dir/*`.
const expand = (pattern) =>
  pattern.endsWith('/*') ? readdirSync(join(root, pattern.slice(0, -2))).map((name) => `${pattern.slice(0, -2)}/${name}`) : [pattern];
const workspaces = rootManifest.workspaces
  .flatMap(expand)
  .filter((dir) => existsSync(join(root, dir, 'package.json')))
  .sort();

// Sources import each other as `./x.ts` (what tsx and tsc's allowImportingTsExtensions expect). Node needs
// `./x.js`: every import stays external, relative ones with the extension rewritten.
const keepImportsExternal = {
  name: 'keep-imports-external',
  setup(builder) {
    builder.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      return { path: args.path.startsWith('.') ? args.path.replace(/\.ts$/, '.js') : args.path, external: true };
    });
  },
};

for (const dir of workspaces) {
  const src = join(root, dir, 'src');
  if (!existsSync(src)) continue;
  const dist = join(root, dir, 'dist');
  rmSync(dist, { recursive: true, force: true });
  const files = readdirSync(src, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name));
  const sources = files.filter((path) => path.endsWith('.ts') && !path.endsWith('.d.ts'));
  await build({
    entryPoints: sources,
    outdir: dist,
    outbase: src,
    bundle: true,
    plugins: [keepImportsExternal],
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
  // Files the code serves or reads next to itself (the explorer's client script and styles).
  for (const path of files.filter((path) => !path.endsWith('.ts'))) {
    cpSync(path, join(dist, relative(src, path)));
  }
  process.stderr.write(`compiled ${dir}: ${sources.length} files\n`);
}

await vendorExplorerAssets();
if (values.out) assemble(values.out);
// Stops esbuild's service while this process can still reap it: an orphan becomes a zombie where PID 1 does not.
await stop();

/**
 * What the image ships: each workspace that declares `files` in its package.json, with exactly those files and
 * its exports pointed at dist/. Workspaces without `files` (tooling, tests) are not shipped.
 */
function assemble(out) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const toDist = (target) => (typeof target === 'string' ? target.replace(/^\.\/src\/(.*)\.ts$/, './dist/$1.js') : target);
  for (const dir of workspaces) {
    const manifest = readJson(join(root, dir, 'package.json'));
    if (!manifest.files) continue;
    for (const path of manifest.files) cpSync(join(root, dir, path), join(out, dir, path), { recursive: true });
    const shipped = { ...manifest, exports: manifest.exports && Object.fromEntries(Object.entries(manifest.exports).map(([key, target]) => [key, toDist(target)])) };
    delete shipped.devDependencies;
    delete shipped.scripts;
    mkdirSync(join(out, dir), { recursive: true });
    writeFileSync(join(out, dir, 'package.json'), `${JSON.stringify(shipped, null, 2)}\n`);
    process.stderr.write(`assembled ${dir}\n`);
  }
}

/**
 * The explorer's browser files (GraphiQL, React, the graphql-ws and graphql-sse clients) are copied out of their packages next to the compiled explorer,
 * which reads them there first: the image ships these few files, not the packages and the hundred they depend on.
 */
async function vendorExplorerAssets() {
  const explorer = join(root, 'gateway/dist/explorer');
  const { ASSET_SOURCES, VENDOR_DIR, vendoredFrom } = await import(pathToFileURL(join(explorer, 'assets.js')).href);
  mkdirSync(join(explorer, VENDOR_DIR), { recursive: true });
  const names = Object.keys(ASSET_SOURCES).filter((name) => vendoredFrom(name));
  for (const name of names) cpSync(vendoredFrom(name), join(explorer, VENDOR_DIR, name));
  process.stderr.write(`vendored the explorer's ${names.join(', ')}\n`);
}
