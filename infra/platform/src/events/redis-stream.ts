import { Cluster, type Redis } from 'ioredis';
import { duplicateRedis, slotOf, slotTag, waitForRedis, type RedisClient } from '../redis.ts';
import type { DomainEvent } from './index.ts';
import {
  compareIds,
  formatVector,
  hashPartition,
  locate,
  spreadPartition,
  MAX_PARTITIONS,
  parseVector,
  partitionDomainChannel,
  partitionKeySpace,
  partitionUserChannel,
  qualify,
  type Located,
  type Vector,
} from './partitions.ts';
import {
  stampOf,
  type CausalFence,
  CursorExpiredError,
  DEDUPLICATION_SECONDS,
  DEFAULT_RETENTION,
  InvalidCursorError,
  parsePosition,
  type ConsumerGroup,
  type EventStream,
  type Feed,
  type Retention,
  type StoredEvent,
} from './stream.ts';

// One script per append batch, so an event's log entry, user-stream entry, id record and doorbell are one
// atomic step: a crash can never leave an event in one stream but not the other, nor notified but unstored.
// The user stream reuses the log's id, so a position means the same thing in both. Trimming is exact and
// remembers the newest position it removed from each stream (Redis itself only tracks XDEL), so a reader can
// tell "nothing after my cursor was lost" from "some was".
//
// Every key it touches is in KEYS: the log, the trimmed and sources hashes, the clearances, the recorded partition
// count, the epoch (see READ), then each event's user stream and id record. On a cluster they all carry the partition's hash tag, so they
// share one slot. Positions it returns are stream ids, `=`-prefixed for an event it already had; the doorbell's
// carry the partition (ARGV[13]: `<p>:` or '').
// Guarded (ARGV[14]), it refuses once the stream is partitioned: a writer that still thinks it is not would put a
// new user's events where the other writers do not (see RedisEventStream).
//
// With a fence (ARGV[7..12], see CausalFence), each relay instance's clearance lives in the clearance hash
// (field 'source/instance'); a new event that another source's clearance does not cover stops the batch there.
// Reading the clearances and appending in one script means no clearance can move between the check and the write.
const APPEND = `
local userChannel, domainChannel, publish = ARGV[1], ARGV[2], ARGV[3]
local logMax, userMax, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local source, instance = ARGV[7], ARGV[8]
local fenced = source ~= ''
local log, trimmed, sources, clearances = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local qualifier, guarded = ARGV[13], ARGV[14] == '1'
if guarded and tonumber(redis.call('GET', KEYS[5]) or '1') > 1 then
  return redis.error_reply('EVENTS_RELAYOUT the stream is partitioned now')
end
-- A log without entries is a new stream (or one Redis lost): its epoch starts at its first event. One that has
-- entries but no epoch predates epochs, and none of its cursors can be from before a loss it knows of.
local epoch = KEYS[6]
local needsEpoch = redis.call('EXISTS', epoch) == 0
local newStream = needsEpoch and redis.call('XLEN', log) == 0
if needsEpoch and not newStream then
  redis.call('SET', epoch, '0-0')
  needsEpoch = false
end
local covering = {}
if fenced then
  local now, reachableSince, maxStall = tonumber(ARGV[9]), tonumber(ARGV[11]), tonumber(ARGV[12])
  local highest = {}
  local all = redis.call('HGETALL', clearances)
  for i = 1, #all, 2 do
    local key, clearance = all[i], tonumber(all[i + 1])
    if now - clearance > maxStall and now - reachableSince > maxStall then
      redis.call('HDEL', clearances, key)
    else
      local of = string.match(key, '^(.*)/[^/]*$')
      if of ~= source and (highest[of] == nil or clearance > highest[of]) then highest[of] = clearance end
    end
  end
  for _, clearance in pairs(highest) do covering[#covering + 1] = clearance end
end
local function covered(stamp)
  for _, clearance in ipairs(covering) do
    if clearance < stamp then return false end
  end
  return true
end
local function add(key, max, id, json)
  local position = redis.call('XADD', key, id, 'e', json)
  local excess = redis.call('XLEN', key) - max
  if excess > 0 then
    local gone = redis.call('XRANGE', key, '-', '+', 'COUNT', excess)
    redis.call('HSET', trimmed, key, gone[#gone][1])
    redis.call('XTRIM', key, 'MAXLEN', max)
  end
  return position
end
local positions = {}
local heldFrom = nil
-- Each source's newest position, recorded once per batch rather than per event (one write less per event,
-- on the primary and on each replica).
local lastOf = {}
for i = 15, #ARGV, 5 do
  local id, user, from, json, stamp = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
  local k = 6 + (i - 15) / 5 * 2
  local userStream, seen = KEYS[k + 1], KEYS[k + 2]
  local known = heldFrom == nil and redis.call('GET', seen)
  if heldFrom ~= nil then
    if stamp < heldFrom then heldFrom = stamp end
  elseif known then
    positions[#positions + 1] = '=' .. known
  elseif not covered(stamp) then
    heldFrom = stamp
  else
    local position = add(log, logMax, '*', json)
    if needsEpoch then
      redis.call('SET', epoch, position)
      needsEpoch = false
    end
    add(userStream, userMax, position, json)
    redis.call('SET', seen, position, 'EX', ttl)
    lastOf[from] = position
    local stored = '{"position":"' .. qualifier .. position .. '",' .. string.sub(json, 2)
    redis.call(publish, userChannel .. user, stored)
    redis.call(publish, domainChannel, stored)
    positions[#positions + 1] = position
  end
end
for from, position in pairs(lastOf) do redis.call('HSET', sources, from, position) end
if fenced then
  local claim = tonumber(ARGV[10])
  if heldFrom ~= nil and heldFrom < claim then claim = heldFrom end
  local key = source .. '/' .. instance
  local old = tonumber(redis.call('HGET', clearances, key) or '-1')
  if claim > old then redis.call('HSET', clearances, key, string.format('%d', claim)) end
end
return positions
`;

// Checks the cursor against what the stream handed out and what it trimmed, then reads: one round trip, and no
// trim can slip between the check and the read.
//
// The epoch is the position of the first event of the stream as Redis has it now. If Redis loses the stream (a
// FLUSHALL, a new server, keys evicted), the outbox relays and the projection write it anew and its epoch is the
// first new event's: every position handed out before the loss is older (positions are times), so a reader
// resuming from one is told its cursor expired instead of silently missing what was lost.
const READ = `
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function before(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local after = ARGV[1]
if after ~= '' then
  -- A cursor from before the stream's epoch was handed out by a stream Redis has since lost.
  local epoch = redis.call('GET', KEYS[4])
  if after ~= '0-0' and epoch and before(after, epoch) then return {'expired'} end
  local last = '0-0'
  if redis.call('EXISTS', KEYS[2]) == 1 then
    local fields = redis.call('XINFO', 'STREAM', KEYS[2])
    for i = 1, #fields, 2 do
      if fields[i] == 'last-generated-id' then last = fields[i + 1] end
    end
  end
  if before(last, after) then return {'invalid'} end
  local trimmed = redis.call('HGET', KEYS[3], KEYS[1])
  if trimmed and before(after, trimmed) then return {'expired'} end
end
return {'ok', redis.call('XRANGE', KEYS[1], after == '' and '-' or '(' .. after, '+', 'COUNT', ARGV[2])}
`;

// Where each user's events go, once the stream has more than one partition: the recorded assignment, or, for a
// user who has none yet, partition 0 if the user already has events there (from before the stream was
// partitioned), else the hash the writer proposes. Recorded once (HSET only when absent, in one script), so a
// user's events never move, whatever N later processes run with. It also raises the recorded partition count to
// the writer's, which readers of every user's events go by. KEYS: the count, the assignments, then each user's
// stream in partition 0; ARGV: the writer's partition count, then (user, proposed partition) pairs.
const LAYOUT = `
local configured = tonumber(ARGV[1])
local count = tonumber(redis.call('GET', KEYS[1]) or '1')
if configured > count then
  redis.call('SET', KEYS[1], configured)
  count = configured
end
local out = {count}
for i = 2, #ARGV, 2 do
  local p = '0'
  if count > 1 then
    p = redis.call('HGET', KEYS[2], ARGV[i])
    if not p then
      if redis.call('EXISTS', KEYS[2 + i / 2]) == 1 then p = '0' else p = ARGV[i + 1] end
      redis.call('HSET', KEYS[2], ARGV[i], p)
    end
  end
  out[#out + 1] = tonumber(p)
end
return out
`;

type Entry = [string, string[]];

/** An append's stream ids, a repeat's (`=`-prefixed) as the id it already had. */
const ids = (reply: readonly string[]) => reply.map((id) => (id.startsWith('=') ? id.slice(1) : id));

/** The append script on one node's own connection (a cluster's node connections do not carry its commands). */
function appendOn(node: RedisClient | Redis, keys: readonly string[], argv: readonly (string | number)[]): Promise<string[]> {
  if (!('eventsAppend' in node)) node.defineCommand('eventsAppend', { lua: APPEND });
  const run = (node as unknown as Record<string, Run>).eventsAppend as Run;
  return run.call(node, keys.length, ...keys, ...argv) as Promise<string[]>;
}

/** The longest a group read blocks; longer requests are cut to it (and return empty, as on a timeout). */
const MAX_BLOCK_MS = 5_000;
/** With several partitions a group read blocks on each in slices this long, so an event on any wakes it soon. */
const PARTITIONED_BLOCK_SLICE_MS = 50;
/** How long a process trusts the partition count it last read (a writer learns a change at once, see APPEND). */
const LAYOUT_TTL_MS = 1_000;
/** Assignments remembered per process; they never change, so forgetting them only costs a round trip. */
const MAX_CACHED_ASSIGNMENTS = 100_000;

const parseEntry = (qualifier: string, [id, fields]: Entry): StoredEvent => ({ ...(JSON.parse(fields[1] as string) as DomainEvent), position: qualifier + id });

type Run = (...args: (string | number)[]) => Promise<unknown>;

/**
 * One partition: its log, its users' streams, its id records, bookkeeping and clearances, all under one key space
 * (`events` for partition 0, `events:<p>` after it; a hash tag on a cluster). Positions it takes and returns are
 * the partition's stream ids; the stream qualifies them.
 */
class Partition {
  readonly space: string;
  readonly qualifier: string;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    readonly index: number,
    private readonly retention: Retention,
    private readonly replicaWaitMs: number,
  ) {
    this.space = prefix + slotTag(redis, partitionKeySpace(index));
    this.qualifier = index === 0 ? '' : `${index}:`;
  }

  get log(): string {
    return `${this.space}:log`;
  }

  userKey(userId: string): string {
    return `${this.space}:user:${userId}`;
  }

  /** Where the append rings a channel, named as RedisPubSub names it (in the partition's slot on a cluster). */
  channel(name: string): string {
    return this.redis instanceof Cluster ? `${this.space}:${name}` : this.prefix + name;
  }

  private script(name: 'eventsAppend' | 'eventsRead'): Run {
    const run = (this.redis as unknown as Record<string, Run>)[name] as Run;
    return run.bind(this.redis);
  }

  /**
   * The prefix of `events` that is in the partition now: each one's stream id (a repeat's first one). `guard`:
   * refuse if the stream became partitioned.
   */
  async append(events: readonly DomainEvent[], fence: CausalFence | undefined, guard: boolean): Promise<string[]> {
    const keys = [this.log, `${this.space}:trimmed`, `${this.space}:sources`, `${this.space}:clearance`, `${this.space}:partitions`, `${this.space}:epoch`];
    for (const event of events) keys.push(this.userKey(event.userId), `${this.space}:id:${event.id}`);
    const args = events.flatMap((event) => [event.id, event.userId, event.source, JSON.stringify(event), stampOf(event)]);
    const fenceArgs = fence
      ? [fence.source, fence.instance, fence.now, Math.floor(fence.clearance), fence.reachableSince, fence.maxStallMs]
      : ['', '', 0, 0, 0, 0];
    const channels = [
      this.channel(partitionUserChannel(this.index, '')),
      this.channel(partitionDomainChannel(this.index)),
      this.redis instanceof Cluster ? 'SPUBLISH' : 'PUBLISH',
    ];
    const limits = [this.retention.log, this.retention.perUser, DEDUPLICATION_SECONDS];
    const argv = [...channels, ...limits, ...fenceArgs, this.qualifier, guard ? 1 : 0, ...args];
    if (this.replicaWaitMs <= 0) return ids((await this.script('eventsAppend')(keys.length, ...keys, ...argv)) as string[]);
    // The append and its WAIT on one connection, picked once: WAIT counts only that connection's writes, and asked
    // of another node (a slot map refreshed in between) it would confirm nothing and answer at once.
    const primary = await this.primary();
    const reply = await appendOn(primary, keys, argv).catch((error: unknown) => {
      // A stale map (MOVED, ASK) or a connection that closed: fail, and let the next try find the owner afresh.
      if (this.redis instanceof Cluster) this.redis.refreshSlotsCache();
      throw error;
    });
    if (reply.length > 0) await this.confirmReplicated(primary);
    return ids(reply);
  }

  /** The connection the partition's scripts run on: on a cluster, the one to the primary owning its slot. */
  private async primary(): Promise<RedisClient | Redis> {
    const cluster = this.redis;
    if (!(cluster instanceof Cluster)) return cluster;
    const find = () => {
      const owner = cluster.slots[slotOf(this.log)]?.[0];
      return cluster.nodes('master').find(({ options }) => `${options.host}:${options.port}` === owner);
    };
    // A node whose connection dropped leaves the client's pool until a command routed to its slot brings it back.
    const node = find() ?? (await cluster.exists(this.log).then(find, () => undefined));
    // WAIT on any other node would confirm nothing (it has no writes outstanding) and answer at once: fail the
    // append instead, and the relay sends it again once the slot's owner is known.
    if (!node) {
      cluster.refreshSlotsCache();
      throw new Error("the partition's primary is not known yet");
    }
    return node;
  }

  /**
   * WAIT 1: the append's writes (everything this connection sent before) are on a replica, or this throws. The
   * relay then leaves its rows unsent and sends them again later (the stream drops the repeats): a failover to
   * that replica cannot lose an event the relay marked sent. Asynchronous replication otherwise acknowledges
   * writes a replica may never get.
   */
  private async confirmReplicated(primary: RedisClient | Redis): Promise<void> {
    const acknowledged = Number(await primary.call('WAIT', 1, this.replicaWaitMs));
    if (acknowledged < 1) throw new Error(`no replica confirmed the events within ${this.replicaWaitMs} ms`);
  }

  async withdraw(field: string): Promise<void> {
    await this.redis.hdel(`${this.space}:clearance`, field);
  }

  /** Entries of `key` after stream id `after` ('' : from the oldest), checked against what was handed out and trimmed. */
  async read(key: string, after: string, limit: number): Promise<StoredEvent[]> {
    const [status, entries = []] = (await this.script('eventsRead')(key, this.log, `${this.space}:trimmed`, `${this.space}:epoch`, after, limit)) as [string, Entry[]?];
    if (status === 'invalid') throw new InvalidCursorError(`unknown position ${this.qualifier}${after}`);
    if (status === 'expired') throw new CursorExpiredError(`events after ${this.qualifier}${after} are no longer retained`);
    return entries.map((entry) => parseEntry(this.qualifier, entry));
  }

  /** The newest stream id of `key`, '0-0' when it has none. */
  async last(key: string): Promise<string> {
    const [entry] = (await this.redis.xrevrange(key, '+', '-', 'COUNT', 1)) as Entry[];
    return entry?.[0] ?? '0-0';
  }

  async lastFrom(source: string): Promise<string> {
    return (await this.redis.hget(`${this.space}:sources`, source)) ?? '0-0';
  }
}

/** The events of one consumer group on one partition's log (stream ids in, qualified positions out). */
function partitionGroup(redis: RedisClient, partition: Partition, name: string, blocking: () => RedisClient) {
  const log = partition.log;
  const entries = (reply: unknown): StoredEvent[] => {
    const streams = reply as [string, (Entry | null)[]][] | null;
    return (streams?.[0]?.[1] ?? []).filter((entry): entry is Entry => entry !== null && entry[1] !== null).map((entry) => parseEntry(partition.qualifier, entry));
  };
  const create = async (from: string) => {
    try {
      await redis.xgroup('CREATE', log, name, from, 'MKSTREAM');
      return true;
    } catch (error) {
      if (/BUSYGROUP/.test((error as Error).message)) return false;
      throw error;
    }
  };
  return {
    ensure: create,
    reset: async (from: string) => {
      if (await create(from)) return;
      // SETID would keep the old pending entries; a rebuilt projection must not be handed them again.
      await redis.xgroup('DESTROY', log, name);
      await create(from);
    },
    read: async (consumer: string, count: number, blockMs: number, shared = false, readyWithinMs = blockMs) => {
      // Reads that do not block can share the stream's connection (the partitioned group's first pass).
      if (shared) return entries(await redis.xreadgroup('GROUP', name, consumer, 'COUNT', count, 'STREAMS', log, '>'));
      const connection = blocking();
      // It has no offline queue (a read queued during an outage would hang its consumer's shutdown): wait for it.
      await waitForRedis(connection, Math.max(readyWithinMs, 1_000));
      // BLOCK 0 would wait forever; no BLOCK at all returns at once, as the contract says for 0.
      return entries(
        blockMs > 0
          ? await connection.xreadgroup('GROUP', name, consumer, 'COUNT', count, 'BLOCK', Math.min(blockMs, MAX_BLOCK_MS), 'STREAMS', log, '>')
          : await connection.xreadgroup('GROUP', name, consumer, 'COUNT', count, 'STREAMS', log, '>'),
      );
    },
    ack: async (ids: readonly string[]) => {
      if (ids.length > 0) await redis.xack(log, name, ...ids);
    },
    claim: async (consumer: string, minIdleMs: number, count: number) => {
      const [, claimed] = (await redis.xautoclaim(log, name, consumer, minIdleMs, '0-0', 'COUNT', count)) as [string, (Entry | null)[]];
      return entries([[log, claimed]]);
    },
    caughtUp: async (id: string) => {
      // One round trip: writers ask this before each placeOrder.
      const replies = await redis.pipeline().xinfo('GROUPS', log).xpending(log, name).exec();
      const [[groupsError, groups] = [], [pendingError, summary] = []] = replies ?? [];
      if (groupsError || pendingError) throw groupsError ?? pendingError;
      const fields = (groups as (string | number)[][]).find((group) => group[group.indexOf('name') + 1] === name);
      if (!fields) return false;
      const lastDelivered = String(fields[fields.indexOf('last-delivered-id') + 1]);
      if (compareIds(lastDelivered, id) < 0) return false;
      const [pending, oldest] = summary as [number, string | null];
      return Number(pending) === 0 || compareIds(oldest as string, id) > 0;
    },
  };
}

export interface RedisEventStreamOptions {
  /**
   * How many partitions new users' events are spread over (EVENT_STREAM_PARTITIONS). 1, the default, keeps the
   * stream exactly as it was before partitions. A user's events stay in the partition they first went to.
   */
  partitions?: number;
  /**
   * When the primaries have replicas: how long an append waits for one to confirm it (WAIT 1), failing
   * otherwise, so that what the relay marks sent survives a failover. 0 (the default): no wait. The WAIT runs on
   * the connection that appended, so it must end within that client's command timeout (200 ms, see redis.ts).
   */
  replicaWaitMs?: number;
}

/**
 * Redis Streams: `events:log` holds every event (consumer groups read it), `events:user:<id>` each user's
 * (what `after` resumes from), both trimmed to the retention. Live readers hear the same pub/sub channels as
 * before, now rung by the append itself.
 *
 * On a cluster every key is under the `{events}` hash tag (`{events}:log`, `{events}:user:<id>`, ...): one slot,
 * because one script writes the log and the user's stream together, and the channels are sharded channels in
 * that slot (see eventChannelShard). On one server the names are as they always were.
 *
 * Partitioned (the README's "A partitioned event stream"), partition p > 0 has the same keys under `events:<p>` (`{events:<p>}` on a cluster,
 * a slot of its own), so appends spread over the cluster's primaries. Each user's events go to one partition,
 * recorded in partition 0 on the user's first event; positions outside partition 0 carry their partition
 * (`3:<ms>-<seq>`), and readers of every user's events read every partition, with vector cursors.
 */
export class RedisEventStream implements EventStream {
  private readonly blocking = new Map<number, RedisClient>();
  private readonly parts: Partition[] = [];
  private readonly configured: number;
  private readonly replicaWaitMs: number;
  readonly writerPartitions: number;
  /** The partition count recorded in Redis as last read, and when (see LAYOUT_TTL_MS). */
  private recorded = { count: 1, at: -Infinity };
  private readonly assignments = new Map<string, number>();

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix = '',
    private readonly retention: Retention = DEFAULT_RETENTION,
    options: RedisEventStreamOptions = {},
  ) {
    redis.defineCommand('eventsAppend', { lua: APPEND });
    redis.defineCommand('eventsRead', { numberOfKeys: 4, lua: READ });
    redis.defineCommand('eventsLayout', { lua: LAYOUT });
    const partitions = options.partitions ?? retention.partitions ?? 1;
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) throw new Error(`partitions must be 1 to ${MAX_PARTITIONS}`);
    this.configured = partitions;
    this.writerPartitions = partitions;
    this.replicaWaitMs = options.replicaWaitMs ?? retention.replicaWaitMs ?? 0;
  }

  private partition(index: number): Partition {
    for (let next = this.parts.length; next <= index; next++) this.parts.push(new Partition(this.redis, this.prefix, next, this.retention, this.replicaWaitMs));
    return this.parts[index] as Partition;
  }

  private get zero(): Partition {
    return this.partition(0);
  }

  private learn(count: number): void {
    this.recorded = { count: Math.max(count, this.recorded.count), at: Date.now() };
  }

  /**
   * The recorded partition count, read again once it is LAYOUT_TTL_MS old. A process configured for more
   * partitions than recorded raises it first: its clearances, groups and readers must cover all of them before
   * its first event goes to one.
   */
  private async count(): Promise<number> {
    if (Date.now() - this.recorded.at > LAYOUT_TTL_MS) {
      if (this.configured > this.recorded.count) await this.assign([], true);
      else this.learn(Number((await this.redis.get(`${this.zero.space}:partitions`)) ?? 1));
    }
    return this.recorded.count;
  }

  /**
   * On a cluster, the primary serving each of the configured partitions, as the client's slot map has it (new
   * users are spread evenly over those primaries, see spreadPartition); undefined elsewhere, or while unknown.
   */
  private owners(): string[] | undefined {
    const cluster = this.redis;
    if (!(cluster instanceof Cluster) || this.configured <= 1) return undefined;
    const owners = Array.from({ length: this.configured }, (_, partition) => cluster.slots[slotOf(this.partition(partition).log)]?.[0]);
    return owners.every((owner) => owner !== undefined) ? owners : undefined;
  }

  /** Partitioned: new users are assigned (recorded), not simply put in partition 0. */
  private async partitioned(): Promise<boolean> {
    return this.configured > 1 || (await this.count()) > 1;
  }

  /** The partition of each user, assigning those that have none (see LAYOUT). */
  private async assign(userIds: readonly string[], raise = false): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    const missing: string[] = [];
    for (const userId of userIds) {
      const known = this.assignments.get(userId);
      if (known === undefined) {
        if (!missing.includes(userId)) missing.push(userId);
      } else {
        found.set(userId, known);
      }
    }
    if (missing.length === 0 && !raise) return found;
    const keys = [`${this.zero.space}:partitions`, `${this.zero.space}:partition-of`, ...missing.map((userId) => this.zero.userKey(userId))];
    const owners = this.owners();
    const args = missing.flatMap((userId) => [userId, owners ? spreadPartition(userId, owners) : hashPartition(userId, this.configured)]);
    const run = (this.redis as unknown as Record<string, Run>).eventsLayout as Run;
    const [count, ...partitions] = (await run.call(this.redis, keys.length, ...keys, this.configured, ...args)) as number[];
    this.learn(count as number);
    if (this.assignments.size > MAX_CACHED_ASSIGNMENTS) this.assignments.clear();
    missing.forEach((userId, i) => {
      const partition = partitions[i] as number;
      found.set(userId, partition);
      // Unpartitioned, a user without events has no assignment yet: only a partitioned stream's answers are final.
      if ((count as number) > 1) this.assignments.set(userId, partition);
    });
    return found;
  }

  /** The partition holding `userId`'s events (partition 0 while the stream is not partitioned). */
  private async partitionOf(userId: string): Promise<Partition> {
    if (!(await this.partitioned())) return this.zero;
    return this.partition((await this.assign([userId])).get(userId) ?? 0);
  }

  async append(events: readonly DomainEvent[], fence?: CausalFence): Promise<string[]> {
    // Without a fence there is nothing to record; with one, even an empty batch renews the clearance.
    if (events.length === 0 && !fence) return [];
    if (!(await this.partitioned())) {
      try {
        return await this.zero.append(events, fence, true);
      } catch (error) {
        if (!/EVENTS_RELAYOUT/.test((error as Error).message)) throw error;
        this.recorded.at = -Infinity;
        await this.count();
      }
    }
    return this.appendPartitioned(events, fence);
  }

  /**
   * Each partition's share of the batch in one script of its own, in parallel. A fenced append runs on every
   * partition, those without events too: a relay's clearance must stay fresh on each, or it would hold the
   * other sources back there once it is stale (see CausalFence). Each partition appends a prefix of its share;
   * the answer is the batch's prefix up to the first event held back. Events after it that did go in (other
   * users', in other partitions) are sent again with the rest and found by their id.
   */
  private async appendPartitioned(events: readonly DomainEvent[], fence: CausalFence | undefined): Promise<string[]> {
    const placed = await this.assign(events.map((event) => event.userId));
    const count = Math.max(await this.count(), ...[...placed.values()].map((partition) => partition + 1));
    const shares = new Map<number, DomainEvent[]>();
    if (fence && fence.everywhere !== false) for (let partition = 0; partition < count; partition++) shares.set(partition, []);
    const where = events.map((event) => {
      const partition = placed.get(event.userId) ?? 0;
      const share = shares.get(partition) ?? [];
      shares.set(partition, share);
      share.push(event);
      return { partition, index: share.length - 1 };
    });
    const appended = new Map<number, string[]>();
    const settled = await Promise.allSettled(
      [...shares].map(async ([partition, share]) => {
        appended.set(partition, await this.partition(partition).append(share, fence, false));
      }),
    );
    const positions: string[] = [];
    for (const { partition, index } of where) {
      const id = appended.get(partition)?.[index];
      if (id === undefined) break;
      positions.push(qualify(partition, id));
    }
    const failed = settled.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    return positions;
  }

  async withdraw(source: string, instance: string): Promise<void> {
    const count = (await this.partitioned()) ? await this.count() : 1;
    await Promise.all(Array.from({ length: count }, (_, partition) => this.partition(partition).withdraw(`${source}/${instance}`)));
  }

  /** The stream id in `partition` that `after` names for a feed within that partition; throws when it names another. */
  private idIn(partition: Partition, after: string): string {
    if (after === '0-0') return after;
    const vector = parseVector(after);
    if (!vector) throw new InvalidCursorError(`malformed position ${after}`);
    const id = vector.get(partition.index);
    // A single position of another partition says nothing about this one.
    if (id === undefined) {
      if (vector.size === 1) throw new InvalidCursorError(`position ${after} is not one of this feed's`);
      return '0-0';
    }
    return id;
  }

  async read(feed: Feed, after: string | null, limit: number): Promise<StoredEvent[]> {
    if (after !== null && !parseVector(after)) throw new InvalidCursorError(`malformed position ${after}`);
    if (feed.userId !== undefined) {
      const partition = await this.partitionOf(feed.userId);
      return partition.read(partition.userKey(feed.userId), after === null ? '' : this.idIn(partition, after), limit);
    }
    if (feed.partition !== undefined) {
      const partition = this.partition(feed.partition);
      return partition.read(partition.log, after === null ? '' : this.idIn(partition, after), limit);
    }
    const count = await this.count();
    if (count <= 1) {
      if (after !== null && !parsePosition(after)) throw new InvalidCursorError(`position ${after} is not one of this stream's`);
      return this.zero.read(this.zero.log, after ?? '', limit);
    }
    return this.readAll(count, after, limit);
  }

  /**
   * Every user's events over `count` partitions: up to `limit` from each, merged by stream id (an order only
   * within each partition; across them, a fair interleaving), each with the cursor that resumes after it.
   */
  private async readAll(count: number, after: string | null, limit: number): Promise<StoredEvent[]> {
    const vector = after === null ? new Map<number, string>() : (parseVector(after) as Vector);
    for (const partition of vector.keys()) if (partition >= count) throw new InvalidCursorError(`position ${after} names a partition this stream does not have`);
    const pages = await Promise.all(
      Array.from({ length: count }, (_, index) => {
        const partition = this.partition(index);
        const from = vector.get(index);
        return partition.read(partition.log, after === null ? '' : (from ?? '0-0'), limit);
      }),
    );
    const merged = pages
      .flatMap((page, partition) => page.map((event) => ({ event, partition, id: (locate(event.position) as Located).id })))
      .sort((a, b) => compareIds(a.id, b.id) || a.partition - b.partition)
      .slice(0, limit);
    const cursor: Vector = new Map(Array.from({ length: count }, (_, partition) => [partition, vector.get(partition) ?? '0-0']));
    return merged.map(({ event, partition, id }) => {
      cursor.set(partition, id);
      return { ...event, cursor: formatVector(cursor, count) };
    });
  }

  async last(feed: Feed): Promise<string> {
    if (feed.userId !== undefined) {
      const partition = await this.partitionOf(feed.userId);
      const id = await partition.last(partition.userKey(feed.userId));
      return id === '0-0' ? id : qualify(partition.index, id);
    }
    if (feed.partition !== undefined) return qualify(feed.partition, await this.partition(feed.partition).last(this.partition(feed.partition).log));
    return this.vectorOf((partition) => partition.last(partition.log));
  }

  /** A cursor over every partition, each component from `of`: a plain position while there is one partition. */
  private async vectorOf(of: (partition: Partition) => Promise<string>): Promise<string> {
    const count = await this.count();
    const ids = await Promise.all(Array.from({ length: count }, (_, partition) => of(this.partition(partition))));
    return formatVector(new Map(ids.map((id, partition) => [partition, id])), count);
  }

  async lastFrom(source: string): Promise<string> {
    return this.vectorOf((partition) => partition.lastFrom(source));
  }

  async partitions(): Promise<number> {
    return this.count();
  }

  async channel(feed: Feed): Promise<string> {
    if (feed.userId !== undefined) return partitionUserChannel((await this.partitionOf(feed.userId)).index, feed.userId);
    return partitionDomainChannel(feed.partition ?? 0);
  }

  /**
   * XREADGROUP BLOCK holds its connection, so group reads get one of their own per partition, with a timeout
   * above any block (a read on a link that went silent must still end, or its consumer could never stop).
   */
  private blockingConnection(partition: number): RedisClient {
    let connection = this.blocking.get(partition);
    if (!connection) {
      connection = duplicateRedis(this.redis, { commandTimeout: MAX_BLOCK_MS + 2_000 });
      connection.on('error', () => {}); // reconnects by itself; the consumer loop retries
      this.blocking.set(partition, connection);
    }
    return connection;
  }

  group(name: string): ConsumerGroup {
    const on = (partition: number) => partitionGroup(this.redis, this.partition(partition), name, () => this.blockingConnection(partition));
    const all = async () => Array.from({ length: await this.count() }, (_, partition) => on(partition));
    /** `from` as a stream id per partition: '$' for each, or a cursor's components (0-0 where it names none). */
    const ids = (from: string, count: number): string[] => {
      if (from === '$') return Array.from({ length: count }, () => '$');
      const vector = parseVector(from);
      if (!vector) throw new InvalidCursorError(`malformed position ${from}`);
      return Array.from({ length: count }, (_, partition) => vector.get(partition) ?? '0-0');
    };
    const byPartition = (positions: readonly string[]) => {
      const grouped = new Map<number, string[]>();
      for (const position of positions) {
        const located = locate(position);
        if (!located) continue;
        grouped.set(located.partition, [...(grouped.get(located.partition) ?? []), located.id]);
      }
      return grouped;
    };
    /**
     * A partition added after the group was made has no group yet: it starts at the partition's beginning, since
     * all of it came after the group's position. Partition 0 always has the group; if it is gone (Redis lost it),
     * NOGROUP reaches the consumer, which knows where to start again.
     */
    let rotation = 0;
    const readOrJoin = async (group: ReturnType<typeof on>, partition: number, consumer: string, count: number, blockMs: number, shared = false, readyWithinMs = blockMs) => {
      try {
        return await group.read(consumer, count, blockMs, shared, readyWithinMs);
      } catch (error) {
        if (partition === 0 || !/NOGROUP/.test((error as Error).message)) throw error;
        await group.ensure('0-0');
        return group.read(consumer, count, 0, true);
      }
    };
    return {
      ensure: async (from) => {
        const groups = await all();
        const starts = ids(from, groups.length);
        const created = await Promise.all(groups.map((group, partition) => group.ensure(starts[partition] as string)));
        return created.some(Boolean);
      },
      reset: async (from) => {
        const groups = await all();
        const starts = ids(from, groups.length);
        await Promise.all(groups.map((group, partition) => group.reset(starts[partition] as string)));
      },
      read: async (consumer, count, blockMs) => {
        const first = await all();
        if (first.length === 1 && this.configured === 1) return (first[0] as ReturnType<typeof on>).read(consumer, count, blockMs);
        const deadline = Date.now() + Math.min(blockMs, MAX_BLOCK_MS);
        for (;;) {
          const groups = await all();
          // Partition by partition, from a different one each time so that none starves the others, up to `count`.
          const events: StoredEvent[] = [];
          const from = rotation++;
          for (let i = 0; i < groups.length && events.length < count; i++) {
            const partition = (from + i) % groups.length;
            events.push(...(await readOrJoin(groups[partition] as ReturnType<typeof on>, partition, consumer, count - events.length, 0, true)));
          }
          const remaining = deadline - Date.now();
          if (events.length > 0 || remaining <= 0) return events;
          // Nothing yet. A blocking read on one partition would not see the others': each blocks briefly, until
          // any has events. Then each hands over at most its share, so `count` holds unless it is below the
          // partition count (one each, then).
          const share = Math.max(1, Math.floor(count / groups.length));
          const slice = Math.min(remaining, PARTITIONED_BLOCK_SLICE_MS);
          // A partition's connection opening under load may take longer than a slice: the whole wait is its to use.
          const woken = (await Promise.all(groups.map((group, partition) => readOrJoin(group, partition, consumer, share, slice, false, remaining)))).flat();
          if (woken.length > 0) return woken;
        }
      },
      ack: async (positions) => {
        await Promise.all([...byPartition(positions)].map(([partition, partitionIds]) => on(partition).ack(partitionIds)));
      },
      claim: async (consumer, minIdleMs, count) => {
        const claimed: StoredEvent[] = [];
        for (const group of await all()) {
          if (claimed.length >= count) break;
          claimed.push(...(await group.claim(consumer, minIdleMs, count - claimed.length)));
        }
        return claimed;
      },
      caughtUp: async (position) => {
        const groups = await all();
        const targets = ids(position, groups.length);
        const answers = await Promise.all(groups.map((group, partition) => group.caughtUp(targets[partition] as string)));
        return answers.every(Boolean);
      },
    };
  }

  async close(): Promise<void> {
    for (const connection of this.blocking.values()) connection.disconnect();
    this.blocking.clear();
  }
}
