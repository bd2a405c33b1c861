import { execFile, execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { freePort } from '@fed/platform/testing';

/** A Postgres cluster of the suite's own, on a free port: restarting it never touches the machine's server. */
export interface PrivatePostgres {
  port: number;
  url(database: string): string;
  createDatabase(name: string): Promise<void>;
  /** `pg_ctl restart -m fast`: connections are cut, the server comes back on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** The newest Postgres installed (Debian keeps each major version's binaries apart), unless the caller names one. */
function binDir(given: string | undefined): string {
  if (given) return given;
  const versions = readdirSync('/usr/lib/postgresql').map(Number).filter(Number.isFinite).sort((a, b) => b - a);
  if (versions.length === 0) throw new Error('no Postgres under /usr/lib/postgresql (pass binDir)');
  return `/usr/lib/postgresql/${versions[0]}/bin`;
}

/**
 * initdb into a temporary directory and start it on a free loopback port. As root, everything runs as the
 * `postgres` user (Postgres refuses to run as root), as the read-replica fixture does.
 */
export async function startPrivatePostgres(options: { binDir?: string } = {}): Promise<PrivatePostgres> {
  const bin = binDir(options.binDir);
  const asRoot = process.getuid?.() === 0;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }));
  const owner = asRoot ? { uid: id('-u'), gid: id('-g') } : undefined;
  const command = (program: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, program), ...args]] : [join(bin, program), args];
  const run = async (program: string, args: string[]) => {
    const [file, argv] = command(program, args);
    await promisify(execFile)(file, argv, { cwd: tmpdir(), encoding: 'utf8' });
  };

  const dir = mkdtempSync(join(tmpdir(), 'chaos-pg-'));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  const port = await freePort();
  const ctl = (...args: string[]) => run('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '300', ...args]);
  const withLog = async (what: string, step: () => Promise<void>) => {
    try {
      await step();
    } catch (error) {
      let tail = '';
      try {
        tail = readFileSync(log, 'utf8').slice(-2_000);
      } catch {
        // no log yet
      }
      throw new Error(`private Postgres: ${what} failed: ${(error as { stderr?: string }).stderr || (error as Error).message}\n${tail}`);
    }
  };

  await withLog('initdb', () => run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']));
  const conf = [`port = ${port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${dir}'`, 'fsync = off', 'full_page_writes = off', ''];
  writeFileSync(join(data, 'postgresql.conf'), `${readFileSync(join(data, 'postgresql.conf'), 'utf8')}\n${conf.join('\n')}`);
  await withLog('start', () => ctl('start'));

  const url = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  return {
    port,
    url,
    createDatabase: async (name) => {
      const sql = postgres(url('postgres'), { max: 1, onnotice: () => {} });
      try {
        await sql.unsafe(`create database "${name}"`);
      } finally {
        await sql.end({ timeout: 1 });
      }
    },
    restart: () => withLog('restart', () => ctl('restart', '-m', 'fast')),
    stop: async () => {
      try {
        await ctl('stop', '-m', 'immediate');
      } catch {
        // already down; the directory goes anyway
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
