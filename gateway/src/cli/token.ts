// `npm run -s token -- --sub <id> [--role admin] [--ttl 1h]`: prints a development token, and nothing else,
// on stdout, so that `TOKEN=$(npm run -s token -- --sub 1)` works. Problems go to stderr.
import { parseArgs } from 'node:util';
import { isRole, loadConfigOrExit, tryParseId } from '@fed/platform';
import { mintToken } from '../auth/tokens.ts';
import { gatewayConfigSchema, gatewaySettings } from '../config.ts';

const USAGE = 'usage: npm run -s token -- --sub <user id> [--role user|admin] [--scope "a b"] [--ttl 1h]   (ttl: 90s, 15m, 12h, 7d)';

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

function seconds(ttl: string): number {
  const match = /^(\d+)([smhd])$/.exec(ttl);
  const value = match ? Number(match[1]) * (UNITS[match[2] as string] ?? 0) : 0;
  if (value <= 0 || value > 30 * 86_400) fail(`--ttl must be like 90s, 15m, 12h or 7d, and at most 30d (got "${ttl}")`);
  return value;
}

let values: { sub?: string; role?: string; scope?: string; ttl?: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: { sub: { type: 'string' }, role: { type: 'string' }, scope: { type: 'string' }, ttl: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  }));
} catch (error) {
  fail((error as Error).message);
}
if (values.help) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(0);
}
if (!values.sub || tryParseId(values.sub) === undefined) fail('--sub must be a user id (a positive integer)');
const role = values.role ?? 'user';
if (!isRole(role)) fail(`--role must be user or admin (got "${role}")`);
const ttlSeconds = seconds(values.ttl ?? '1h');

const config = loadConfigOrExit(gatewayConfigSchema, process.env);
const { auth } = gatewaySettings(config);
if (!auth.secret) fail('This gateway verifies tokens from JWKS_URL: get tokens from that identity provider instead.');

process.stdout.write(`${await mintToken({ secret: auth.secret, issuer: auth.issuer, audience: auth.audience, sub: values.sub, role, scopes: values.scope?.split(' ').filter(Boolean), ttlSeconds })}\n`);
