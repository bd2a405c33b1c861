// Which installed packages the shipped code can load at run time, and the pruning of every other one.
//   node infra/docker/scripts/runtime-packages.mjs --tree DIR            names, one per line, on stdout
//   node infra/docker/scripts/runtime-packages.mjs --prune DIR --keep F  deletes DIR's packages not named in F
//   node infra/docker/scripts/runtime-packages.mjs --list DIR            DIR's installed packages, one per line
// A production install still holds packages no service loads: the Express stack @apollo/server depends on for its
// own integrations, optional peers, type declarations. Every compiled file the image ships is an entry, esbuild
// follows the imports (production dependencies only: a test helper's import of vitest leads nowhere), and what
// it reaches is kept. A `require(name)` with a computed name is not seen; no service relies on one (the image
// check runs every service from the pruned image).
import { spawnSync } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const NODE_MODULES = /^(.*\/node_modules\/(?:@[^/]+\/)?[^/]+)/;
/** The package a file belongs to: its directory, and its name (what follows the last node_modules/). */
const packageOf = (path) => {
  const match = NODE_MODULES.exec(path.replace(/\\/g, '/'));
  const dir = match?.[1];
  return dir ? { dir, name: dir.slice(dir.lastIndexOf('/node_modules/') + '/node_modules/'.length) } : undefined;
};

/** The names of the packages the JavaScript files under `tree` reach, resolved from the install at `root`. */
export async function runtimePackages({ root, tree }) {
  const { build } = await import('esbuild');
  // npm exits non-zero on a missing optional peer; its list is still complete.
  const listed = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 }).stdout;
  const production = new Set(listed.split('\n').filter((line) => line.includes('/node_modules/')).map((line) => resolve(line)));
  const entries = readdirSync(tree, { recursive: true })
    .filter((file) => file.endsWith('.js') && !file.split('/').includes('node_modules') && !file.includes('/vendor/'))
    .map((file) => join(tree, file));
  const skip = Symbol('resolving');
  const productionOnly = {
    name: 'production-only',
    setup(builder) {
      builder.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData === skip) return undefined;
        if (isBuiltin(args.path)) return { external: true };
        const resolved = await builder.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: skip });
        const owner = resolved.errors.length === 0 ? packageOf(resolved.path) : undefined;
        // Not installed (an optional peer), or only a development dependency: never loaded in the image.
        if (!owner || !production.has(resolve(owner.dir))) return { external: true };
        return { path: resolved.path };
      });
    },
  };
  const { metafile } = await build({
    entryPoints: entries,
    absWorkingDir: root,
    nodePaths: [join(root, 'node_modules')],
    bundle: true,
    write: false,
    metafile: true,
    outdir: join(tree, '.runtime-packages'),
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'silent',
    loader: { '.node': 'empty' },
    plugins: [productionOnly],
  });
  const names = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const owner = packageOf(resolve(root, input));
    if (owner) names.add(owner.name);
  }
  return [...names].sort();
}

/** Every package directory installed under `nodeModules` (nested installs too), by name; workspace links left out. */
export function installedPackages(nodeModules) {
  const found = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      if (entry.name.startsWith('@') && entry.isDirectory()) {
        for (const scoped of readdirSync(path, { withFileTypes: true })) visit(join(path, scoped.name), `${entry.name}/${scoped.name}`);
      } else {
        visit(path, entry.name);
      }
    }
  };
  const visit = (path, name) => {
    if (lstatSync(path).isSymbolicLink()) return;
    found.push({ name, path });
    try {
      walk(join(path, 'node_modules'));
    } catch {
      // No nested installs.
    }
  };
  walk(nodeModules);
  return found;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { tree: { type: 'string' }, prune: { type: 'string' }, keep: { type: 'string' }, list: { type: 'string' } } });
  if (values.tree) {
    const root = join(import.meta.dirname, '../../..');
    process.stdout.write(`${(await runtimePackages({ root, tree: resolve(values.tree) })).join('\n')}\n`);
  } else if (values.list) {
    process.stdout.write(`${[...new Set(installedPackages(values.list).map(({ name }) => name))].sort().join('\n')}\n`);
  } else if (values.prune && values.keep) {
    const keep = new Set(readFileSync(values.keep, 'utf8').split('\n').filter(Boolean));
    const pruned = installedPackages(values.prune).filter(({ name }) => !keep.has(name));
    // Outermost first: a nested install goes with its parent.
    for (const { path } of pruned) rmSync(path, { recursive: true, force: true });
    process.stderr.write(`pruned ${pruned.length} packages no service loads: ${[...new Set(pruned.map(({ name }) => name))].sort().join(' ')}\n`);
  } else {
    process.stderr.write('usage: runtime-packages.mjs --tree DIR | --prune NODE_MODULES --keep FILE | --list NODE_MODULES\n');
    process.exit(2);
  }
}
