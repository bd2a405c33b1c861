import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisNode } from '../redis.ts';
import { askRedisNode } from './redis-node.ts';
import { freePort } from './services.ts';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';
import { waitFor } from './wait.ts';

/** A Redis Cluster of a test file's own, on loopback: primaries first in `nodes`, then their replicas. */
export interface PrivateRedisCluster {
  /** REDIS_URL for it: `redis+cluster://` with every node as a seed. */
  url: string;
  nodes: RedisNode[];
  /** The node serving `slot` as a primary, as `asking` (any live node) sees the cluster now. */
  primaryOf(slot: number, asking?: RedisNode): Promise<RedisNode>;
  /**
   * SIGKILL for the node on `node`'s port, as a crash would. Resolves once the process has exited; its replica
   * takes over once the others have marked it failing (`cluster-node-timeout`, 5 s here).
   */
  crash(node: RedisNode): Promise<void>;
  /**
   * With `clientProxies`: the loopback proxy in front of each node, in the order of `nodes`. Every address the
   * cluster gives out (CLUSTER SLOTS, MOVED, a replica's link to its primary) is its proxy's, while the nodes
   * talk to each other on their bus ports directly: with every proxy down, clients cannot reach the cluster,
   * yet the cluster itself stays whole (no node is marked failing, nothing fails over), as in a network outage
   * between the services and Redis.
   */
  proxies?: TcpProxy[];
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  primaries?: number;
  replicasPerPrimary?: number;
  /** Put a TCP proxy in front of each node and make the node announce it (see `proxies`). */
  clientProxies?: boolean;
}

/** Runs a command to its end; rejects with its output when it fails. */
function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(output) : reject(new Error(`${command} ${args.join(' ')} exited ${code}:\n${output}`))));
  });
}

/**
 * Starts `primaries × (1 + replicasPerPrimary)` `redis-server --cluster-enabled yes` processes in a temp dir,
 * joins them with `redis-cli --cluster create`, and resolves once every node reports `cluster_state:ok` with all
 * 16384 slots assigned. Each node's cluster bus gets a free port of its own (`--cluster-port`), so no fixed
 * port can collide with the machine's Redis on 6379 or with another test file's cluster.
 */
export async function startRedisCluster({ primaries = 3, replicasPerPrimary = 1, clientProxies = false }: RedisClusterOptions = {}): Promise<PrivateRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'redis-cluster-'));
  const processes: ChildProcess[] = [];
  const exits: Promise<void>[] = [];
  const nodes: RedisNode[] = [];
  const proxies: TcpProxy[] = [];
  const byPort = new Map<number, { child: ChildProcess; exited: Promise<void> }>();
  const stop = async () => {
    await Promise.all(proxies.map((proxy) => proxy.close()));
    for (const child of processes) child.kill('SIGKILL');
    await Promise.all(exits);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let index = 0; index < primaries * (1 + replicasPerPrimary); index += 1) {
      const port = await freePort();
      const busPort = await freePort();
      const nodeDir = join(dir, String(port));
      await mkdir(nodeDir);
      const proxy = clientProxies ? await startTcpProxy(`redis://127.0.0.1:${port}`) : undefined;
      if (proxy) proxies.push(proxy);
      // The address clients are told (its proxy's, with clientProxies); the bus stays direct.
      const announced = proxy ? Number(new URL(proxy.url).port) : port;
      // prettier-ignore
      const child = spawn('redis-server', [
        '--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000',
        '--dir', nodeDir, '--save', '', '--appendonly', 'no', '--logfile', join(nodeDir, 'redis.log'),
        // A replica's first sync otherwise waits 5 s for more replicas to share the transfer.
        '--repl-diskless-sync-delay', '0',
        ...(proxy ? ['--cluster-announce-ip', '127.0.0.1', '--cluster-announce-port', String(announced), '--cluster-announce-bus-port', String(busPort)] : []),
      ], { stdio: 'ignore' });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      processes.push(child);
      exits.push(exited);
      byPort.set(announced, { child, exited });
      nodes.push({ host: '127.0.0.1', port: announced });
    }
    await Promise.all(nodes.map((node) => waitFor(() => askRedisNode(node, ['PING']), 10_000, 25)));
    await run('redis-cli', ['--cluster', 'create', ...nodes.map(({ host, port }) => `${host}:${port}`), '--cluster-replicas', String(replicasPerPrimary), '--cluster-yes']);
    // `create` returns once the slots are assigned; each node then learns the others through the bus.
    await waitFor(
      async () => {
        for (const node of nodes) {
          const info = String(await askRedisNode(node, ['CLUSTER', 'INFO']));
          if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info) || !new RegExp(`cluster_known_nodes:${nodes.length}\\b`).test(info)) {
            throw new Error(`node ${node.port} not ready:\n${info}`);
          }
          // Replicas are attached after the slots are assigned: until every node sees them, a failover test or
          // a count of replicas would find primaries where replicas should be.
          const roles = String(await askRedisNode(node, ['CLUSTER', 'NODES'])).trim().split('\n').map((line) => line.split(' ')[2] ?? '');
          if (roles.filter((flags) => flags.includes('slave')).length !== primaries * replicasPerPrimary) {
            throw new Error(`node ${node.port} does not see every replica yet`);
          }
          // A replica that has never synced cannot be promoted (its data counts as too old): a failover test
          // started before then would wait for a promotion that never comes.
          const replication = String(await askRedisNode(node, ['INFO', 'replication']));
          if (/role:slave/.test(replication) && !/master_link_status:up/.test(replication)) throw new Error(`replica ${node.port} not in sync yet`);
        }
      },
      60_000,
      100,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  const primaryOf = async (slot: number, asking: RedisNode = nodes[0] as RedisNode): Promise<RedisNode> => {
    const ranges = (await askRedisNode(asking, ['CLUSTER', 'SLOTS'])) as [number, number, [string, number, ...unknown[]], ...unknown[]][];
    const range = ranges.find(([from, to]) => from <= slot && slot <= to);
    if (!range) throw new Error(`no node of the cluster serves slot ${slot} now`);
    return { host: range[2][0], port: Number(range[2][1]) };
  };
  const crash = async ({ port }: RedisNode) => {
    const node = byPort.get(port);
    if (!node) throw new Error(`no node of this cluster listens on ${port}`);
    node.child.kill('SIGKILL');
    await node.exited;
  };
  return { url: `redis+cluster://${nodes.map(({ host, port }) => `${host}:${port}`).join(',')}`, nodes, primaryOf, crash, ...(clientProxies && { proxies }), stop };
}
