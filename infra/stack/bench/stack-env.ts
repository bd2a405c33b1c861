import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The nested users → orders → items query every gateway bench times, as admin. */
export const NESTED_QUERY = `query Nested { users(first: 20) { edges { node {
  id name email orderCount
  orders(first: 5) { edges { node { id status totalCents items { sku quantity unitPriceCents } } } }
} } } }`;

/**
 * The environment a benchmark gives the stack process it starts: production mode, free ports, quiet logs, no
 * seeding and no telemetry, plus `extra` (databases, Redis, secrets, limits).
 */
export function stackEnv(extra: Record<string, string>): Record<string, string | undefined> {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GATEWAY_PORT: '0',
    USERS_PORT: '0',
    ORDERS_PORT: '0',
    LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
    SEED_ON_FIRST_START: 'false',
    APOLLO_TELEMETRY_DISABLED: '1',
    ...extra,
  };
}

/**
 * An earlier commit of this repo, checked out under .bench/<name> and installed on first use, for a bench
 * that compares it with the working tree side by side.
 */
export function checkoutAt(commit: string, name: string, log: (line: string) => void): string {
  const repo = fileURLToPath(new URL('../../..', import.meta.url));
  const tree = `${repo}.bench/${name}`;
  if (existsSync(`${tree}/node_modules`)) return tree;
  log(`checking out ${commit} into .bench/${name} and installing it (once)`);
  if (!existsSync(tree)) execFileSync('git', ['worktree', 'add', '--detach', tree, commit], { cwd: repo, stdio: 'inherit' });
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: tree, stdio: ['ignore', 'ignore', 'inherit'] });
  return tree;
}
