import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisNode } from '../redis.ts';
import { askRedisNode } from './redis-node.ts';
import { freePort } from './services.ts';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';
import { waitFor } from './wait.ts';

/** A primary with replicas, watched by Sentinels, all of a test file's own on loopback. */
export interface PrivateRedisSentinel {
  /** REDIS_URL for it: `redis+sentinel://` with every Sentinel, and the primary's name. */
  url: string;
  name: string;
  primary: RedisNode;
  replicas: RedisNode[];
  sentinels: RedisNode[];
  /** The data node every Sentinel names as the primary now; rejects while they disagree or mid-failover. */
  currentPrimary(): Promise<RedisNode>;
  /**
   * SIGKILL for the data node on `node`'s port, as a crash would: no shutdown, no last replication. Resolves once
   * the process has exited. Sentinels notice after `down-after-milliseconds` and promote a replica.
   */
  crash(node: RedisNode): Promise<void>;
  /**
   * With `replicationProxy`: the link the replicas replicate through. Taking it down (setUp(false), then
   * dropConnections()) leaves them without the primary's next writes, which the primary still acknowledges:
   * the window asynchronous replication leaves open, held open for as long as a test needs.
   */
  replication?: TcpProxy;
  /**
   * With `clientProxies`: the loopback proxy in front of each data node, the primary's first. The Sentinels name
   * the nodes by their proxies (the primary is monitored through its own; replicas announce theirs), while the
   * replicas follow the primary directly: with every proxy down, neither the services nor the Sentinels reach a
   * data node, so nothing can be promoted, and the set-up is whole again when they are back, as in a network
   * outage between Redis and everyone else.
   */
  proxies?: TcpProxy[];
  stop(): Promise<void>;
}

export interface RedisSentinelOptions {
  replicas?: number;
  sentinels?: number;
  name?: string;
  /** Replicas follow the primary through a TCP proxy of their own (see `replication`). */
  replicationProxy?: boolean;
  /** Put a TCP proxy in front of each data node and name the nodes by them (see `proxies`). */
  clientProxies?: boolean;
}

/**
 * Starts a primary, `replicas` replicas (`--replicaof`) and `sentinels` `redis-sentinel` processes (quorum: a
 * majority) in a temp dir, and resolves once every Sentinel names the primary and sees every replica and every
 * other Sentinel. Debian's `redis-sentinel` package provides the binary.
 */
export async function startRedisSentinel({ replicas = 2, sentinels = 3, name = 'fedprimary', replicationProxy = false, clientProxies = false }: RedisSentinelOptions = {}): Promise<PrivateRedisSentinel> {
  const dir = await mkdtemp(join(tmpdir(), 'redis-sentinel-'));
  const processes: ChildProcess[] = [];
  const exits: Promise<void>[] = [];
  const spawnErrors: string[] = [];
  const dataProcesses = new Map<number, { child: ChildProcess; exited: Promise<void> }>();
  let replication: TcpProxy | undefined;
  const proxies: TcpProxy[] = [];
  const stop = async () => {
    await replication?.close();
    await Promise.all(proxies.map((proxy) => proxy.close()));
    for (const child of processes) child.kill('SIGKILL');
    await Promise.all(exits);
    await rm(dir, { recursive: true, force: true });
  };
  const start = (command: string, args: string[]) => {
    const child = spawn(command, args, { stdio: 'ignore' });
    // A binary that is missing never starts, so never exits: its spawn error ends it instead (and fails the
    // readiness wait below with the reason), or stop() would wait forever.
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', (error) => {
        spawnErrors.push(`${command}: ${error.message}`);
        resolve();
      });
    });
    processes.push(child);
    exits.push(exited);
    return { child, exited };
  };
  /** A data node: its own address, and the one everyone else is told (its proxy's, with clientProxies). */
  const server = async (extra: string[]): Promise<{ own: RedisNode; announced: RedisNode }> => {
    const port = await freePort();
    const nodeDir = join(dir, String(port));
    await mkdir(nodeDir);
    const proxy = clientProxies ? await startTcpProxy(`redis://127.0.0.1:${port}`) : undefined;
    if (proxy) proxies.push(proxy);
    const announced = proxy ? Number(new URL(proxy.url).port) : port;
    const announce = proxy && extra.length > 0 ? ['--replica-announce-ip', '127.0.0.1', '--replica-announce-port', String(announced)] : [];
    // prettier-ignore
    dataProcesses.set(announced, start('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', nodeDir, '--save', '', '--appendonly', 'no', '--logfile', join(nodeDir, 'redis.log'), ...extra, ...announce]));
    return { own: { host: '127.0.0.1', port }, announced: { host: '127.0.0.1', port: announced } };
  };
  try {
    const { own, announced: primary } = await server([]);
    if (replicationProxy) replication = await startTcpProxy(`redis://${own.host}:${own.port}`);
    const upstream = new URL(replication?.url ?? `redis://${own.host}:${own.port}`);
    const replicaNodes: RedisNode[] = [];
    for (let index = 0; index < replicas; index += 1) {
      replicaNodes.push((await server(['--replicaof', upstream.hostname, upstream.port])).announced);
    }
    const sentinelNodes: RedisNode[] = [];
    for (let index = 0; index < sentinels; index += 1) {
      const port = await freePort();
      const config = join(dir, `sentinel-${port}.conf`);
      // Sentinel rewrites its config file as it learns the set-up, so each gets a writable one of its own.
      await writeFile(
        config,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `logfile ${join(dir, `sentinel-${port}.log`)}`,
          `sentinel monitor ${name} ${primary.host} ${primary.port} ${Math.floor(sentinels / 2) + 1}`,
          `sentinel down-after-milliseconds ${name} 2000`,
          `sentinel failover-timeout ${name} 10000`,
          '',
        ].join('\n'),
      );
      start('redis-sentinel', [config]);
      sentinelNodes.push({ host: '127.0.0.1', port });
    }
    await waitFor(
      async () => {
        if (spawnErrors.length > 0) throw new Error(`cannot start the set-up: ${spawnErrors.join('; ')}`);
        for (const sentinel of sentinelNodes) {
          const fields = (await askRedisNode(sentinel, ['SENTINEL', 'MASTER', name])) as string[];
          const field = (key: string) => fields[fields.indexOf(key) + 1];
          if (field('port') !== String(primary.port) || field('num-slaves') !== String(replicas) || field('num-other-sentinels') !== String(sentinels - 1)) {
            throw new Error(`sentinel ${sentinel.port} does not see the whole set-up yet: ${fields.join(' ')}`);
          }
        }
        for (const replica of replicaNodes) {
          if (!/master_link_status:up/.test(String(await askRedisNode(replica, ['INFO', 'replication'])))) throw new Error(`replica ${replica.port} not in sync`);
        }
      },
      60_000,
      100,
    );
    const url = `redis+sentinel://${sentinelNodes.map(({ host, port }) => `${host}:${port}`).join(',')}/${name}`;
    const currentPrimary = async (): Promise<RedisNode> => {
      const named = new Set<string>();
      for (const sentinel of sentinelNodes) {
        const [host, port] = (await askRedisNode(sentinel, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name])) as [string, string];
        named.add(`${host}:${port}`);
      }
      if (named.size !== 1) throw new Error(`the Sentinels disagree on the primary: ${[...named].join(', ')}`);
      const [host, port] = [...named][0]!.split(':') as [string, string];
      return { host, port: Number(port) };
    };
    const crash = async ({ port }: RedisNode) => {
      const node = dataProcesses.get(port);
      if (!node) throw new Error(`no data node of this set-up listens on ${port}`);
      node.child.kill('SIGKILL');
      await node.exited;
    };
    return { url, name, primary, replicas: replicaNodes, sentinels: sentinelNodes, currentPrimary, crash, ...(replication && { replication }), ...(clientProxies && { proxies }), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
