// The patched postgres.js (infra/platform/patches): a connection that goes away under a transaction neither
// kills the process nor poisons the pool. Each case runs in a process of its own, since the published 3.4.9
// dies of an uncaught TypeError there, which no caller can catch.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { testPostgresUrl } from '../src/testing/index.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/connection-cut.ts', import.meta.url));
const PLATFORM = fileURLToPath(new URL('..', import.meta.url));

/** What a failed statement says when its connection went away (infra/platform/src/errors.ts maps them all). */
const CONNECTION_LOST = ['CONNECTION_CLOSED', 'ECONNRESET', '57P01'];

function runCase(how: 'cut' | 'terminate'): Promise<{ exitCode: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
      cwd: PLATFORM,
      env: { ...process.env, DATABASE_URL: testPostgresUrl(), HOW: how },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (exitCode) => resolve({ exitCode, stdout, stderr }));
  });
}

describe('a Postgres connection that goes away under a transaction', () => {
  it.each([
    ['is cut mid-statement (a crash, a network fault)', 'cut'],
    ['is ended by the server (pg_ctl restart -m fast: FATAL 57P01, then close)', 'terminate'],
  ] as const)('%s: the transaction fails with a connection error, the process lives on, and the next query on the same pool succeeds', async (_, how) => {
    const { exitCode, stdout, stderr } = await runCase(how);
    expect(stderr).not.toMatch(/TypeError|reading 'write'/);
    expect(exitCode).toBe(0);
    const outcome = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { transaction?: string; next?: unknown };
    expect(CONNECTION_LOST).toContain(outcome.transaction);
    // Not 57P01 again (a stale FATAL from the old session), nor CONNECT_TIMEOUT (a write stuck behind the old one).
    expect(outcome.next).toBe(1);
  });
});
