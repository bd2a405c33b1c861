// By hand, from infra/stack: `npx tsx test/replication-loss.ts [writes]`, with EVENT_STREAM_REPLICA_WAIT_MS=<ms>
// set to have each append confirmed by a replica (WAIT 1) before the relay counts it sent. Measures what asynchronous replication
// can lose: the stack on Sentinel whose replicas follow the primary through a link this script cuts; the load goes
// on while it is cut, so the primary acknowledges (and the relays mark sent) events no replica has; then the
// primary is killed and a replica promoted. It prints the failover figures and how many events were acknowledged
// in that window; every one of them is an event the promoted replica never had. Not a test: with replication
// confirmed before an event counts as sent (WAIT), the count lost should be 0, and this becomes the check of it.
import { waitFor } from '@fed/platform/testing';
import { startRedisSentinel } from '@fed/platform/testing';
import { startFailoverStack, type Topology } from './failover.ts';

const WINDOW_WRITES = Number(process.argv[2] ?? 20);
const REPLICA_WAIT_MS = Number(process.env.EVENT_STREAM_REPLICA_WAIT_MS ?? 0);

const sentinel = await startRedisSentinel({ replicationProxy: true });
let acknowledgedInWindow = 0;
const topology: Topology = {
  name: `Sentinel, the replicas cut off for ${WINDOW_WRITES} acknowledged writes before the crash, replica wait ${REPLICA_WAIT_MS} ms`,
  url: sentinel.url,
  crashStreamPrimary: async ({ ackedWrites }) => {
    const primary = await sentinel.currentPrimary();
    const link = sentinel.replication;
    if (!link) throw new Error('the set-up has no replication link to cut');
    link.setUp(false);
    link.dropConnections();
    const before = ackedWrites();
    await waitFor(() => {
      if (ackedWrites() < before + WINDOW_WRITES) throw new Error('still writing into the window');
    });
    acknowledgedInWindow = ackedWrites() - before;
    await sentinel.crash(primary);
    return primary;
  },
  promoted: async (crashed) => {
    if ((await sentinel.currentPrimary()).port === crashed.port) throw new Error('not promoted yet');
  },
  stop: () => sentinel.stop(),
};

const failover = await startFailoverStack(topology, { replicaWaitMs: REPLICA_WAIT_MS });
try {
  const { problems } = await failover.run();
  process.stdout.write(`writes acknowledged while the replicas were cut off: ${acknowledgedInWindow}\n`);
  process.stdout.write(`events lost, repeated or reordered (${problems.length}):\n${problems.map((line) => `  ${line}`).join('\n')}\n`);
} finally {
  try {
    await failover.teardown();
  } finally {
    await topology.stop();
  }
}
