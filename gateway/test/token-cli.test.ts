import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { describe, expect, it } from 'vitest';
import { createAuthenticator } from '../src/auth/authenticate.ts';
import { DEVELOPMENT_AUTH } from '../src/config.ts';

const cwd = fileURLToPath(new URL('..', import.meta.url));

/** The CLI as `npm run -s token` runs it, with only the environment a shell would pass. */
async function token(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/token.ts', ...args], {
      cwd,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('npm run -s token', () => {
  it('prints only a token on stdout, which the gateway’s development settings accept as that user and role', async () => {
    const { code, stdout } = await token(['--sub', '5', '--role', 'admin', '--ttl', '15m']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const authenticate = createAuthenticator(DEVELOPMENT_AUTH);
    expect(await authenticate(`Bearer ${stdout.trim()}`)).toEqual({ userId: '5', role: 'admin' });
    const { iat, exp } = decodeJwt(stdout.trim());
    expect(exp! - iat!).toBe(15 * 60);
    const scoped = await token(['--sub', '5', '--scope', 'users:admin orders:read']);
    expect(await authenticate(`Bearer ${scoped.stdout.trim()}`)).toEqual({ userId: '5', role: 'user', scopes: ['users:admin', 'orders:read'] });
  });

  it('signs with JWT_SECRET, JWT_ISSUER and JWT_AUDIENCE when they are set', async () => {
    const settings = { JWT_SECRET: 'k'.repeat(40), JWT_ISSUER: 'https://auth.example', JWT_AUDIENCE: 'shop' };
    const { stdout } = await token(['--sub', '9'], settings);
    const authenticate = createAuthenticator({ secret: settings.JWT_SECRET, issuer: settings.JWT_ISSUER, audience: settings.JWT_AUDIENCE });
    expect(await authenticate(`Bearer ${stdout.trim()}`)).toEqual({ userId: '9', role: 'user' });
  });

  it.each([
    [['--role', 'admin'], /--sub/],
    [['--sub', 'abc'], /--sub/],
    [['--sub', '1', '--role', 'root'], /--role/],
    [['--sub', '1', '--ttl', 'forever'], /--ttl/],
    [['--sub', '1', '--bogus'], /bogus/],
  ])('refuses %j with a reason and the usage on stderr, exit 2, and nothing on stdout', async (args, reason) => {
    const { code, stdout, stderr } = await token(args);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(reason);
    expect(stderr).toMatch(/usage: npm run -s token/);
  });

  it('refuses when the gateway verifies tokens from an identity provider (JWKS_URL)', async () => {
    const { code, stdout, stderr } = await token(['--sub', '1'], { JWKS_URL: 'https://idp.example/jwks.json' });
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/JWKS_URL/);
  });

  it('refuses in production without a real JWT_SECRET, reporting the configuration problem', async () => {
    const { code, stdout, stderr } = await token(['--sub', '1'], { NODE_ENV: 'production' });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/JWT_SECRET: is required in production/);
  });
});
