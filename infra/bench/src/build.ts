import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, realpathSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO } from './processes.ts';

/**
 * Compiles every workspace and lays out what the image ships (`compile.mjs --out`: compiled JavaScript, with each
 * workspace's exports pointing at dist/), plus the bench's own gateway entries. Instead of the image's
 * `npm ci --omit=dev`, node_modules links to this checkout's packages, except that `@fed/*` resolve to the
 * compiled workspaces: nothing in the tree runs TypeScript.
 */
export function buildCompiledTree(out: string, repo = REPO): void {
  execFileSync(process.execPath, ['infra/docker/scripts/compile.mjs', '--out', out], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  cpSync(join(repo, 'infra/bench/dist'), join(out, 'infra/bench/dist'), { recursive: true });
  cpSync(join(repo, 'infra/bench/package.json'), join(out, 'infra/bench/package.json'));

  const modules = join(repo, 'node_modules');
  mkdirSync(join(out, 'node_modules/@fed'), { recursive: true });
  for (const entry of readdirSync(modules)) {
    if (entry === '@fed' || entry === '.bin' || entry.startsWith('.')) continue;
    symlinkSync(join(modules, entry), join(out, 'node_modules', entry));
  }
  for (const workspace of readdirSync(join(modules, '@fed'))) {
    const compiled = join(out, relative(repo, realpathSync(join(modules, '@fed', workspace))));
    if (existsSync(compiled)) symlinkSync(compiled, join(out, 'node_modules/@fed', workspace));
  }
  // Versions npm could not hoist live in the workspace's own node_modules.
  for (const workspace of readdirSync(join(modules, '@fed'))) {
    const source = realpathSync(join(modules, '@fed', workspace));
    const compiled = join(out, relative(repo, source));
    if (existsSync(join(source, 'node_modules')) && existsSync(compiled)) symlinkSync(join(source, 'node_modules'), join(compiled, 'node_modules'));
  }
}

/**
 * The tree of commit `rev` in `dir` (git archive: nothing of this checkout's git state changes), with this
 * checkout's installed packages linked in, so that buildCompiledTree(out, dir) compiles that commit. Its
 * package-lock must be this checkout's (a commit of the same round), or the packages it runs on are not its own.
 */
export function checkOutCommit(rev: string, dir: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('sh', ['-c', `git archive --format=tar "$0" | tar -x -C "$1"`, rev, dir], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
  const modules = join(REPO, 'node_modules');
  mkdirSync(join(dir, 'node_modules/@fed'), { recursive: true });
  for (const entry of readdirSync(modules)) {
    if (entry === '@fed' || entry.startsWith('.')) continue;
    symlinkSync(join(modules, entry), join(dir, 'node_modules', entry));
  }
  for (const workspace of readdirSync(join(modules, '@fed'))) {
    const source = realpathSync(join(modules, '@fed', workspace));
    const there = join(dir, relative(REPO, source));
    if (!existsSync(there)) continue;
    symlinkSync(there, join(dir, 'node_modules/@fed', workspace));
    if (existsSync(join(source, 'node_modules'))) symlinkSync(join(source, 'node_modules'), join(there, 'node_modules'));
  }
}
