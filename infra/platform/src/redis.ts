import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

export type { Redis, Cluster };

/**
 * What every Redis user in the platform takes: one server (standalone, or the primary Sentinel names) or a
 * Redis Cluster. Both speak the same commands; where a cluster needs more care (keys of one script in one
 * slot, pipelines within one node, sharded pub/sub), callers ask `instanceof Cluster`.
 */
export type RedisClient = Redis | Cluster;

export interface RedisNode {
  host: string;
  port: number;
}

/**
 * REDIS_URL, parsed. The forms, each also with `rediss` for TLS:
 * - `redis://[user:password@]host:port[/db]`: one server;
 * - `redis+cluster://[user:password@]host:port,host:port,...`: a Redis Cluster, given any of its nodes as seeds
 *   (the client learns the rest); a scheme of its own, because one seed alone would look like a single server;
 * - `redis+sentinel://[user:password@]host:port,host:port,.../mastername[/db]`: the primary that these
 *   Sentinels name `mastername`, followed through failovers. The password is the data nodes'; Sentinels are
 *   asked with the same credentials.
 */
export type RedisTarget =
  | { mode: 'standalone'; url: string }
  | { mode: 'cluster'; nodes: RedisNode[]; tls: boolean; username?: string; password?: string }
  | { mode: 'sentinel'; sentinels: RedisNode[]; name: string; db: number; tls: boolean; username?: string; password?: string };

const URL_FORM = /^(rediss?)(\+cluster|\+sentinel)?:\/\/(?:([^@/]*)@)?([^/?#]+)(?:\/([^?#]*))?(\?[^#]*)?$/;

const parseNode = (text: string, defaultPort: number): RedisNode | undefined => {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(text.trim());
  if (!match) return undefined;
  const port = match[2] === undefined ? defaultPort : Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (match[1] as string).replace(/^\[|\]$/g, ''), port };
};

const credentials = (userinfo: string | undefined): { username?: string; password?: string } => {
  if (!userinfo) return {};
  const colon = userinfo.indexOf(':');
  const username = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon));
  const password = colon === -1 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
  return { ...(username ? { username } : {}), ...(password ? { password } : {}) };
};

/** Returns the target, or a sentence saying what is wrong with the URL (never echoing its password). */
export function parseRedisTarget(url: string): RedisTarget | string {
  const match = URL_FORM.exec(url.trim());
  if (!match) return 'must be redis://host:port, redis+cluster://host:port,host:port or redis+sentinel://host:port,host:port/mastername (or rediss…)';
  const [, scheme, variant, userinfo, hostList, path = '', query] = match as unknown as [string, string, string | undefined, string | undefined, string, string | undefined, string | undefined];
  const tls = scheme === 'rediss';
  const hosts = hostList.split(',').filter((host) => host.trim() !== '');
  if (!variant) {
    if (hosts.length !== 1) return `a list of nodes needs ${scheme}+cluster:// (a Redis Cluster) or ${scheme}+sentinel:// (Sentinels)`;
    if (!parseNode(hosts[0] as string, 6379)) return 'has an invalid host or port';
    if (path !== '' && !/^\d{1,2}$/.test(path)) return 'the path must be a database number';
    // ioredis reads options from the query (`?family=6`): the URL goes to it whole.
    return { mode: 'standalone', url: url.trim() };
  }
  if (query !== undefined) return `${scheme}${variant}:// takes no query string`;
  const nodes = hosts.map((host) => parseNode(host, variant === '+sentinel' ? 26379 : 6379));
  if (nodes.length === 0 || nodes.some((node) => node === undefined)) return 'has an invalid host or port';
  const valid = nodes as RedisNode[];
  if (variant === '+cluster') {
    // A cluster has database 0 only: a path would be silently ignored, so it is refused.
    if (path !== '') return 'a Redis Cluster has no databases: drop the path';
    return { mode: 'cluster', nodes: valid, tls, ...credentials(userinfo) };
  }
  const [name, db = '0', ...rest] = path.split('/');
  if (!name || rest.length > 0 || !/^\d{1,2}$/.test(db)) return 'needs the monitored primary\'s name as its path: redis+sentinel://host:port,host:port/mastername[/db]';
  return { mode: 'sentinel', sentinels: valid, name: decodeURIComponent(name), db: Number(db), tls, ...credentials(userinfo) };
}

/**
 * Fail fast: with ioredis's defaults every request waited 10–42 s while Redis was down. With no offline queue
 * and short timeouts a dead Redis costs a request about 15 ms, and callers treat it as a miss.
 */
const FAIL_FAST = { maxRetriesPerRequest: 1, commandTimeout: 200, connectTimeout: 500 } satisfies RedisOptions;

/**
 * For tools and test set-up that would rather wait than fail (cleaning up after a suite on a busy machine):
 * commands queue while connecting and have no timeout. Services never use it.
 */
export interface PatientClient {
  patient: true;
}

/**
 * For tests of what Redis answers (not of how fast): the services' fail-fast client with a longer command
 * timeout, since a script on a cluster sharing two busy cores with a test run can take longer than 200 ms.
 */
export interface UnhurriedClient {
  commandTimeoutMs: number;
}

const backoff = (attempt: number) => Math.min(attempt * 100, 2_000);

/**
 * A primary demoted under a live connection answers every write READONLY, and ioredis would keep that connection
 * forever: a managed Redis whose primary endpoint (a DNS name, a virtual IP) moved to the promoted replica, or a
 * Sentinel switchover that reached the old primary before its clients were dropped. Reconnecting reaches whatever
 * the address, or the Sentinels, name now. The command that met READONLY fails (`true`, not 2: with no offline
 * queue a resend during the reconnect would fail anyway) and its caller's own retry lands on the new primary.
 * Scripts that write fail with the same word in their message.
 */
const reconnectOnReadonly = (error: Error) => /\bREADONLY\b/.test(error.message);

/** The one place a Redis client is made: a Redis for a server or a Sentinel-named primary, a Cluster for a cluster. */
export function createRedisClient(target: RedisTarget | string, tuning?: PatientClient | UnhurriedClient): RedisClient {
  const parsed = typeof target === 'string' ? parseRedisTarget(target) : target;
  if (typeof parsed === 'string') throw new Error(`Invalid Redis URL: ${parsed}`);
  const patient = tuning !== undefined && 'patient' in tuning;
  const timeouts: RedisOptions = patient ? { connectTimeout: 5_000 } : tuning ? { ...FAIL_FAST, commandTimeout: tuning.commandTimeoutMs } : FAIL_FAST;
  const offlineQueue = patient;
  switch (parsed.mode) {
    case 'standalone':
      return new Redis(parsed.url, { ...timeouts, enableOfflineQueue: offlineQueue, retryStrategy: backoff, reconnectOnError: reconnectOnReadonly });
    case 'sentinel':
      return new Redis({
        ...timeouts,
        enableOfflineQueue: offlineQueue,
        retryStrategy: backoff,
        reconnectOnError: reconnectOnReadonly,
        sentinels: parsed.sentinels,
        name: parsed.name,
        db: parsed.db,
        username: parsed.username,
        password: parsed.password,
        sentinelUsername: parsed.username,
        sentinelPassword: parsed.password,
        enableTLSForSentinelMode: parsed.tls,
        sentinelRetryStrategy: backoff,
        ...(parsed.tls ? { tls: {} } : {}),
      });
    case 'cluster': {
      const options: ClusterOptions = {
        enableOfflineQueue: offlineQueue,
        clusterRetryStrategy: backoff,
        // Primaries only: a replica may not have a purge or an append yet, and every read here must see them.
        scaleReads: 'master',
        // SSUBSCRIBE goes to the node that owns the channel's slot (see RedisPubSub).
        shardedSubscribers: true,
        redisOptions: {
          ...timeouts,
          reconnectOnError: reconnectOnReadonly,
          username: parsed.username,
          password: parsed.password,
          ...(parsed.tls ? { tls: {} } : {}),
        },
        // Managed clusters announce IPs whose certificates name the host: keep the seed's name for TLS.
        ...(parsed.tls ? { dnsLookup: (address: string, callback: (error: null, address: string) => void) => callback(null, address) } : {}),
      };
      return new Cluster(parsed.nodes, options);
    }
  }
}

/**
 * A connection to one server (or to the primary Sentinels name), for callers that hold a `Redis` (tests,
 * benchmarks, tools): a cluster URL is refused rather than handed back as something else.
 */
export function createRedis(target: RedisTarget | string): Redis {
  const client = createRedisClient(target);
  if (client instanceof Cluster) {
    client.disconnect();
    throw new Error('createRedis connects to one server; use createRedisClient for a Redis Cluster');
  }
  return client;
}

/** Another connection to the same Redis or cluster, with a few settings changed (a subscriber's, a blocking reader's). */
export function duplicateRedis(client: RedisClient, overrides: { enableOfflineQueue?: boolean; commandTimeout?: number | undefined }): RedisClient {
  if (client instanceof Cluster) {
    const { enableOfflineQueue, ...redisOverrides } = overrides;
    return client.duplicate([], {
      ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
      redisOptions: { ...client.options.redisOptions, ...redisOverrides },
    });
  }
  return client.duplicate(overrides);
}

const CRC16 = (() => {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte += 1) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[byte] = crc;
  }
  return table;
})();

/**
 * The hash slot of a key or shard channel: CRC16 (XMODEM) of its `{hash tag}`, or of the whole name when it has
 * none, modulo 16384, exactly as Redis Cluster computes it. Written out here rather than taken from ioredis's
 * untyped dependency.
 */
export function slotOf(key: string): number {
  let bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (CRC16[((crc >> 8) ^ byte) & 0xff] as number);
  return crc % 16384;
}

/**
 * Groups items so that each group's keys are served by one cluster node, as a cluster pipeline requires (one
 * group on a standalone Redis). A slot whose owner is not known yet gets a group of its own.
 */
export function groupByNode<T>(client: RedisClient, items: readonly T[], keyOf: (item: T) => string): T[][] {
  if (!(client instanceof Cluster)) return items.length > 0 ? [[...items]] : [];
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const slot = slotOf(keyOf(item));
    const owner = client.slots[slot]?.join(',') ?? `slot:${slot}`;
    const group = groups.get(owner) ?? [];
    groups.set(owner, group);
    group.push(item);
  }
  return [...groups.values()];
}

/**
 * A `{hash tag}` in a key name puts it in the tag's slot on a cluster. On one server the names stay as they
 * always were (no braces), so nothing outside this platform that reads them has to change.
 */
export const slotTag = (client: RedisClient, name: string): string => (client instanceof Cluster ? `{${name}}` : name);

/** Resolves once the client is ready, so a misconfigured REDIS_URL fails at startup rather than at first use. */
export async function waitForRedis(redis: RedisClient, timeoutMs = 5_000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis was not ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}
