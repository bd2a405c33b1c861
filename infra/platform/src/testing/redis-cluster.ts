import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisNode } from '../redis.ts';
import { askRedisNode } from './redis-node.ts';
import { freePort } from './services.ts';
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
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  primaries?: number;
  replicasPerPrimary?: number;
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
export async function startRedisCluster({ primaries = 3, replicasPerPrimary = 1 }: RedisClusterOptions = {}): Promise<PrivateRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'redis-cluster-'));
  const processes: ChildProcess[] = [];
  const exits: Promise<void>[] = [];
  const nodes: RedisNode[] = [];
  const byPort = new Map<number, { child: ChildProcess; exited: Promise<void> }>();
  const stop = async () => {
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
      // prettier-ignore
      const child = spawn('redis-server', [
        '--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000',
        '--dir', nodeDir, '--save', '', '--appendonly', 'no', '--logfile', join(nodeDir, 'redis.log'),
        // A replica's first sync otherwise waits 5 s for more replicas to share the transfer.
        '--repl-diskless-sync-delay', '0',
      ], { stdio: 'ignore' });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      processes.push(child);
      exits.push(exited);
      byPort.set(port, { child, exited });
      nodes.push({ host: '127.0.0.1', port });
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
  return { url: `redis+cluster://${nodes.map(({ host, port }) => `${host}:${port}`).join(',')}`, nodes, primaryOf, crash, stop };
}
