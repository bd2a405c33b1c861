import { spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { freePort, testPostgresUrl } from './services.ts';
import { waitFor } from './wait.ts';

/**
 * A PgBouncer of a test's own, in transaction mode, in front of the test Postgres: each transaction (or statement
 * outside one) gets whichever server connection is free, as in production behind a pooler.
 */
export interface PrivatePgBouncer {
  /** `directUrl` (a database on the test Postgres) as reached through this PgBouncer: same database and user. */
  urlFor(directUrl: string): string;
  port: number;
  stop(): Promise<void>;
}

export interface PgBouncerOptions {
  /**
   * Server connections per database and user (`default_pool_size`). 1 makes every client share one server
   * connection, so that a test can look at that connection's session state (`pg_prepared_statements`).
   */
  poolSize?: number;
  /** The server it pools (its host, port and password): the test Postgres unless set (a replica's URL, say). */
  upstreamUrl?: string;
}

/** Debian's `pgbouncer` package (see .ci/run) puts it here; PGBOUNCER overrides. */
const PGBOUNCER = () => process.env.PGBOUNCER || '/usr/sbin/pgbouncer';

/** Whether PgBouncer is installed: tests that need it skip, saying why, when it is not. */
export const hasPgBouncer = () => spawnSync(PGBOUNCER(), ['--version'], { stdio: 'ignore' }).status === 0;

export async function startPgBouncer(options: PgBouncerOptions = {}): Promise<PrivatePgBouncer> {
  const upstream = new URL(options.upstreamUrl ?? testPostgresUrl());
  const user = decodeURIComponent(upstream.username || 'postgres');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'pgbouncer-'));
  // PgBouncer refuses to run as root: as root it is told to switch to `postgres` (-u), which must read its files.
  const asRoot = process.getuid?.() === 0;
  const quote = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  // Any database name goes to the same-named database on the test server (a `*` fallback): tests create
  // databases of their own with unique names. The server's password, if the test server has one, is given here.
  const server = [`host=${upstream.hostname}`, `port=${upstream.port || 5432}`, ...(upstream.password ? [`password=${quote(decodeURIComponent(upstream.password))}`] : [])];
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = ${server.join(' ')}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      // No Unix socket: nothing here needs one, and the default directory may be another PgBouncer's.
      'unix_socket_dir =',
      'pool_mode = transaction',
      // Clients on loopback are the tests themselves; trust still wants each user listed in the auth file.
      'auth_type = trust',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      `default_pool_size = ${options.poolSize ?? 20}`,
      'max_client_conn = 500',
      // Drivers send it at startup; PgBouncer would refuse the connection over a parameter it does not know.
      'ignore_startup_parameters = extra_float_digits',
      'log_connections = 0',
      'log_disconnections = 0',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'userlist.txt'), `"${user.replace(/"/g, '""')}" ""\n`);
  if (asRoot) {
    const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout);
    for (const file of ['', 'pgbouncer.ini', 'userlist.txt']) chownSync(join(dir, file), id('-u'), id('-g'));
  }
  const child = spawn(PGBOUNCER(), [...(asRoot ? ['-u', 'postgres'] : []), join(dir, 'pgbouncer.ini')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let running = true;
  void exited.then(() => (running = false));
  const stop = async () => {
    if (running) child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  const urlFor = (directUrl: string) => {
    const url = new URL(directUrl);
    url.hostname = '127.0.0.1';
    url.port = String(port);
    // PgBouncer itself checks no password here (trust); it logs in to the server with the one configured above.
    url.password = '';
    return url.toString();
  };
  try {
    // Ready once it answers a query through to the server (its admin console needs a listed admin user).
    // A PgBouncer that exits (a bad config, a taken port) fails the start at once, not after the wait's bound.
    const died = exited.then(() => {
      throw new Error('pgbouncer exited');
    });
    died.catch(() => {});
    const ready = waitFor(async () => {
      if (!running) return; // `died` has the answer
      const probe = postgres(urlFor(upstream.toString()), { max: 1, connect_timeout: 2, prepare: false, onnotice: () => {} });
      try {
        await probe`select 1`;
      } finally {
        await probe.end({ timeout: 1 });
      }
    }, 10_000, 50);
    await Promise.race([ready, died]);
  } catch (error) {
    await stop();
    throw new Error(`PgBouncer did not start on port ${port}: ${(error as Error).message}\n${log}`);
  }
  return { urlFor, port, stop };
}
