import { appendFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { postgresPrograms, privateServerSettings, startFailure, writeServerFile, type PostgresPrograms } from './postgres-server.ts';
import { freePort, testPostgresUrl } from './services.ts';
import { waitFor } from './wait.ts';

/** A real streaming replica of the test Postgres server, on a port of its own. */
export interface StreamingReplica {
  port: number;
  /** The replica's URL for one database of the primary (databases created later arrive through the WAL too). */
  url(database: string): string;
  /** Stops applying the primary's changes: from now on the replica lags, exactly as a slow one would. */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** Resolves once the replica has applied everything the primary has written so far. */
  caughtUp(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

// Hot standby refuses to start with less of these than its primary has.
const MATCH_PRIMARY = ['max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions', 'max_locks_per_transaction'];
const REPLICATION_RULE = 'host replication all 127.0.0.1/32 trust';

/**
 * Takes a base backup of the test server with `pg_basebackup -R` into a temporary directory and starts it as a
 * hot standby streaming from the primary, with the Postgres binaries of the primary's own version. As root,
 * the backup and the server run as the `postgres` user (Postgres refuses to run as root).
 *
 * pg_basebackup needs a replication entry in the primary's pg_hba.conf; when there is none and this process
 * may write that file (a CI or development machine), it adds one for loopback and reloads the server.
 */
export async function startStreamingReplica(): Promise<StreamingReplica> {
  const primaryUrl = new URL(testPostgresUrl());
  const primary = postgres(primaryUrl.toString(), { max: 1, onnotice: () => {} });
  let settings: string;
  let programs: PostgresPrograms;
  try {
    programs = await postgresPrograms(primary);
    await allowReplication(primary);
    const rows = await primary<{ name: string; setting: string }[]>`select name, setting from pg_settings where name in ${primary(MATCH_PRIMARY)}`;
    settings = rows.map(({ name, setting }) => `${name} = ${setting}`).join('\n');
  } finally {
    await primary.end({ timeout: 1 });
  }
  const { run } = programs;

  const dir = programs.tempDir('pg-replica-');
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const port = await freePort();
  try {
    run('pg_basebackup', ['-h', primaryUrl.hostname, '-p', primaryUrl.port || '5432', '-U', decodeURIComponent(primaryUrl.username || 'postgres'), '-D', dataDir, '-R', '-X', 'stream', '-c', 'fast']);
    // Debian keeps a cluster's configuration outside its data directory, so the backup has none of its own.
    writeServerFile(programs, dataDir, 'postgresql.conf', [...privateServerSettings(port, dir), 'hot_standby = on', settings, ''].join('\n'));
    writeServerFile(programs, dataDir, 'pg_hba.conf', 'local all all trust\nhost all all 127.0.0.1/32 trust\n');
    run('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start']);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw startFailure('a streaming replica', error, logFile);
  }

  const url = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const onReplica = async <T>(work: (sql: postgres.Sql) => Promise<T>) => {
    const sql = postgres(url('postgres'), { max: 1, onnotice: () => {} });
    try {
      return await work(sql);
    } finally {
      await sql.end({ timeout: 1 });
    }
  };
  const [state] = await onReplica((sql) => sql<{ standby: boolean }[]>`select pg_is_in_recovery() as standby`);
  if (!state?.standby) throw new Error('the replica is not in recovery: it would not be a replica');

  return {
    port,
    url,
    pauseReplay: () => onReplica((sql) => sql`select pg_wal_replay_pause()`).then(() => undefined),
    resumeReplay: () => onReplica((sql) => sql`select pg_wal_replay_resume()`).then(() => undefined),
    // Generous: the primary is shared, and every other suite's CREATE and DROP DATABASE is replayed too.
    caughtUp: async (timeoutMs = 60_000) => {
      const sql = postgres(primaryUrl.toString(), { max: 1, onnotice: () => {} });
      const [position] = await sql<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`.finally(() => sql.end({ timeout: 1 }));
      await waitFor(
        () =>
          onReplica(async (replica) => {
            const [row] = await replica<{ applied: boolean }[]>`select pg_last_wal_replay_lsn() >= ${position?.lsn ?? '0/0'}::pg_lsn as applied`;
            if (!row?.applied) throw new Error(`the replica has not applied ${position?.lsn} yet`);
          }),
        timeoutMs,
        50,
      );
    },
    stop: async () => {
      try {
        run('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

async function allowReplication(primary: postgres.Sql): Promise<void> {
  const [hba] = await primary<{ file: string }[]>`select current_setting('hba_file') as file`;
  const rules = await primary<{ type: string; database: string[]; address: string | null }[]>`
    select type, database, address from pg_hba_file_rules where error is null`;
  if (rules.some((rule) => rule.type === 'host' && rule.database.includes('replication') && (rule.address === '127.0.0.1' || rule.address === null))) return;
  if (!hba) throw new Error('the primary does not say where its pg_hba.conf is');
  try {
    appendFileSync(hba.file, `\n# Added by the read-replica tests: pg_basebackup from loopback.\n${REPLICATION_RULE}\n`);
  } catch (error) {
    throw new Error(`pg_basebackup needs "${REPLICATION_RULE}" in ${hba.file}, and this process cannot add it (${(error as Error).message}); add it and reload Postgres`);
  }
  await primary`select pg_reload_conf()`;
}
