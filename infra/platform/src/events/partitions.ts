// Positions and cursors of a stream split into partitions (see the README, "A partitioned event stream").
//
// A *position* names one event: `<ms>-<seq>` in partition 0 (what every position was before partitions, so old
// cursors keep their meaning), `<p>:<ms>-<seq>` in partition p > 0. A user's events all live in one partition,
// so two positions of one user always compare.
//
// A *cursor* on every user's events (the firehose, consumer groups) is a vector: one position per partition,
// joined by commas. A partition it does not name is at `0-0`: it did not exist when the cursor was made, so
// everything in it came later. With one partition a cursor is a plain position, exactly as before.

import type { Listener, PubSub, Unsubscribe } from '../pubsub/index.ts';

/** The longest a partition count may be: each partition is a Redis key space, with its own scripts' round trips. */
export const MAX_PARTITIONS = 64;

const QUALIFIED = /^(?:(\d{1,2}):)?(\d{1,15}-\d{1,15})$/;
const PLAIN = /^(\d{1,15})-(\d{1,15})$/;

/** A position split into its partition and its id within the partition's streams. */
export interface Located {
  partition: number;
  id: string;
}

/** The partition and stream id of a position; undefined when malformed. Partition-0 positions carry no prefix. */
export function locate(position: string): Located | undefined {
  const match = QUALIFIED.exec(position);
  if (!match) return undefined;
  const partition = match[1] === undefined ? 0 : Number(match[1]);
  // `0:` is never handed out: partition 0 is written without a prefix, so one spelling means one position.
  if (match[1] !== undefined && (partition === 0 || String(partition) !== match[1])) return undefined;
  if (partition >= MAX_PARTITIONS) return undefined;
  return { partition, id: match[2] as string };
}

/** The position of stream id `id` in `partition`. */
export const qualify = (partition: number, id: string) => (partition === 0 ? id : `${partition}:${id}`);

/** Orders two stream ids (`<ms>-<seq>`). */
export function compareIds(a: string, b: string): number {
  const [, am = '0', as = '0'] = PLAIN.exec(a) ?? [];
  const [, bm = '0', bs = '0'] = PLAIN.exec(b) ?? [];
  return Number(am) !== Number(bm) ? Number(am) - Number(bm) : Number(as) - Number(bs);
}

/** Per partition, the stream id a reader has got to. */
export type Vector = Map<number, string>;

/**
 * Parses a cursor on every user's events: positions separated by commas, at most one per partition. A single
 * position is a cursor too. Undefined when malformed.
 */
export function parseVector(cursor: string): Vector | undefined {
  const vector: Vector = new Map();
  for (const part of cursor.split(',')) {
    const located = locate(part);
    if (!located || vector.has(located.partition)) return undefined;
    vector.set(located.partition, located.id);
  }
  return vector;
}

/** The cursor of `vector` over `count` partitions: a plain position when there is one partition. */
export function formatVector(vector: Vector, count: number): string {
  const parts: string[] = [];
  for (let partition = 0; partition < count; partition++) parts.push(qualify(partition, vector.get(partition) ?? '0-0'));
  return parts.join(',');
}

/**
 * Where a new user's events go among `count` partitions: FNV-1a over the id, so every process agrees without
 * asking anyone. Only a user's first event consults it; the stream records the answer (see RedisEventStream).
 */
export function hashPartition(userId: string, count: number): number {
  return count <= 1 ? 0 : fnv1a(userId) % count;
}

function fnv1a(value: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) {
    hash ^= value.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * Where a new user's events go when the partitions' owners are known (a cluster's primaries, `owners[p]` the one
 * serving partition p): first an owner, evenly by the hash, then one of its partitions. Four partitions on three
 * primaries sit 1/2/1 whatever their hash tags; this gives each primary a third of new users rather than a quarter,
 * a half and a quarter. The owners are told apart by the partitions they serve, in the order of their first one,
 * never by address: a replica promoted in a failover serves what its primary did, so the proposals stay the same,
 * and a user whose recorded assignment the failover lost is proposed the partition that holds their events. A
 * process that sees the owners differently (a slot moving) only proposes otherwise: the stream records the first
 * proposal, so users still never move.
 */
export function spreadPartition(userId: string, owners: readonly string[]): number {
  const served = new Map<string, number[]>();
  owners.forEach((owner, partition) => served.set(owner, [...(served.get(owner) ?? []), partition]));
  if (served.size <= 1) return hashPartition(userId, owners.length);
  const groups = [...served.values()];
  const hash = fnv1a(userId);
  const mine = groups[hash % groups.length] as number[];
  return mine[Math.floor(hash / groups.length) % mine.length] as number;
}

/** The key space (cluster hash tag) of a partition: `events` for partition 0, as before partitions, then `events:<p>`. */
export const partitionKeySpace = (partition: number) => (partition === 0 ? 'events' : `events:${partition}`);

/**
 * A partition's channels. Partition 0 keeps the channel names of an unpartitioned stream; the others put their
 * partition first, so that RedisPubSub can route them to their partition's slot from the name alone.
 */
export const partitionDomainChannel = (partition: number) => (partition === 0 ? 'domain-events' : `p${partition}:domain-events`);
export const partitionUserChannel = (partition: number, userId: string) => (partition === 0 ? `user-events:${userId}` : `p${partition}:user-events:${userId}`);

/**
 * Hears every event of every partition, as each partition's append rings it (in the same script as the write, so
 * no event is stored unheard). For whoever watches all users (the gateway's cache purges, live queries). Every
 * partition a deployment may configure is listened to: the count can grow between deployments, and the listener
 * does not read it. Partition 0's channel is the unpartitioned stream's, as the embedded one rings it.
 */
export async function subscribeToEveryEvent(pubsub: PubSub, listener: Listener): Promise<Unsubscribe> {
  const settled = await Promise.allSettled(Array.from({ length: MAX_PARTITIONS }, (_, partition) => pubsub.subscribe(partitionDomainChannel(partition), listener)));
  const unsubscribes = settled.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
  const unsubscribe = async () => {
    await Promise.all(unsubscribes.map((each) => each()));
  };
  const failed = settled.find((outcome) => outcome.status === 'rejected');
  // All or nothing: a caller that sees the error has no handle on the channels that did subscribe.
  if (failed) {
    await unsubscribe().catch(() => undefined);
    throw failed.reason;
  }
  return unsubscribe;
}

const PARTITION_CHANNEL = /^p(\d{1,2}):(?:domain-events$|user-events:)/;

/** The key space a channel of the stream belongs to, or undefined for any other channel. */
export function partitionOfChannel(channel: string): string | undefined {
  if (channel === 'domain-events' || channel.startsWith('user-events:')) return partitionKeySpace(0);
  const match = PARTITION_CHANNEL.exec(channel);
  return match ? partitionKeySpace(Number(match[1])) : undefined;
}
