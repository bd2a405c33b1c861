import { execFile, execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { freePort, testPostgresUrl, uniqueName } from './services.ts';

/**
 * Runs the Postgres server programs of one version. As root they run as the `postgres` user, since Postgres
 * refuses to run as root; the directories they write must then belong to that user (`own`).
 */
export interface PostgresPrograms {
  run(program: string, args: string[]): string;
  /** The same, without blocking the event loop: for what a test does while services in this process keep serving. */
  runAsync(program: string, args: string[]): Promise<string>;
  own(path: string): void;
  /** A new temporary directory the programs may write into. */
  tempDir(prefix: string): string;
}

/**
 * The programs of the test server's own major version (a base backup must match it), or of PG_BINDIR.
 * `primary` is a connection to the test server.
 */
export async function postgresPrograms(primary: postgres.Sql): Promise<PostgresPrograms> {
  const [version] = await primary<{ major: string }[]>`select current_setting('server_version_num')::int / 10000 as major`;
  const binDir = process.env.PG_BINDIR ?? `/usr/lib/postgresql/${version?.major}/bin`;
  const asRoot = process.getuid?.() === 0;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }));
  const owner = asRoot ? { uid: id('-u'), gid: id('-g') } : undefined;
  const command = (program: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', join(binDir, program), ...args]] : [join(binDir, program), args];
  const options = { encoding: 'utf8' as const, cwd: tmpdir() };
  const own = (path: string) => {
    if (owner) chownSync(path, owner.uid, owner.gid);
  };
  return {
    run: (program, args) => execFileSync(...command(program, args), { ...options, stdio: ['ignore', 'pipe', 'pipe'] }),
    runAsync: async (program, args) => (await promisify(execFile)(...command(program, args), options)).stdout,
    own,
    tempDir: (prefix) => {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      own(dir);
      return dir;
    },
  };
}

/** Writes a configuration file into a data directory, owned by the server's user. */
export function writeServerFile(programs: PostgresPrograms, dataDir: string, name: string, content: string): void {
  writeFileSync(join(dataDir, name), content);
  programs.own(join(dataDir, name));
}

/** What a failed start says, with the end of the server's log (the reason is usually there, not on stderr). */
export function startFailure(what: string, error: unknown, logFile: string): Error {
  let log = '';
  try {
    log = readFileSync(logFile, 'utf8').slice(-2000);
  } catch {
    // No log yet: the server never got as far as writing one.
  }
  return new Error(`Could not start ${what}: ${(error as { stderr?: string }).stderr ?? (error as Error).message}\n${log}`);
}

/** Settings every private server uses: loopback only, its socket in its own directory, no durability. */
export const privateServerSettings = (port: number, dir: string) => [`port = ${port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${dir}'`, 'ssl = off', 'fsync = off'];

/**
 * A Postgres server of a test's own, on a port of its own: a test may stop and restart it, which it must never
 * do to the machine's shared server (other test files run against that one in parallel).
 */
export interface PrivatePostgres {
  port: number;
  /** The URL of one database on this server. */
  url(database: string): string;
  /** Creates a uniquely named database; it goes when the server does. */
  createDatabase(prefix: string): Promise<string>;
  /**
   * `pg_ctl restart -m fast`: every session is terminated, the server stops and starts again. Resolves once it
   * accepts connections again, with when it began and ended (performance.now()): the longest it was down.
   */
  restart(): Promise<{ startedAt: number; endedAt: number }>;
  /** `pg_ctl stop -m fast`: every session is terminated, and connections are refused until up(). */
  down(): Promise<void>;
  /** Starts it again; resolves once it accepts connections. */
  up(): Promise<void>;
  stop(): Promise<void>;
}

/** initdb into a temporary directory and start the server there (trust authentication, user `postgres`). */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const shared = postgres(testPostgresUrl(), { max: 1, onnotice: () => {} });
  const programs = await postgresPrograms(shared).finally(() => shared.end({ timeout: 1 }));
  const dir = programs.tempDir('pg-private-');
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const port = await freePort();
  try {
    programs.run('initdb', ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions']);
    writeServerFile(programs, dataDir, 'postgresql.auto.conf', [...privateServerSettings(port, dir), 'shared_buffers = 32MB', ''].join('\n'));
    programs.run('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start']);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw startFailure('a private Postgres server', error, logFile);
  }
  const url = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  return {
    port,
    url,
    createDatabase: async (prefix) => {
      const name = uniqueName(prefix).toLowerCase();
      const admin = postgres(url('postgres'), { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`create database "${name}"`);
      } finally {
        await admin.end({ timeout: 1 });
      }
      return name;
    },
    restart: async () => {
      const startedAt = performance.now();
      await programs.runAsync('pg_ctl', ['-D', dataDir, '-l', logFile, '-m', 'fast', '-w', '-t', '60', 'restart']);
      return { startedAt, endedAt: performance.now() };
    },
    down: async () => {
      await programs.runAsync('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', '-t', '60', 'stop']);
    },
    up: async () => {
      await programs.runAsync('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start']);
    },
    stop: async () => {
      try {
        await programs.runAsync('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
