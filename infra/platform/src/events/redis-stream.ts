import { Cluster } from 'ioredis';
import { duplicateRedis, slotTag, waitForRedis, type RedisClient } from '../redis.ts';
import { DOMAIN_EVENTS_CHANNEL, EVENTS_KEY_SPACE, userEventsChannel, type DomainEvent } from './index.ts';
import {
  stampOf,
  type CausalFence,
  comparePositions,
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
// Every key it touches is in KEYS: the log, the trimmed and sources hashes, the clearances, then each event's user
// stream and id record. On a cluster they all carry the stream's hash tag, so they share one slot.
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
for i = 13, #ARGV, 5 do
  local id, user, from, json, stamp = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
  local k = 4 + (i - 13) / 5 * 2
  local userStream, seen = KEYS[k + 1], KEYS[k + 2]
  local known = heldFrom == nil and redis.call('GET', seen)
  if heldFrom ~= nil then
    if stamp < heldFrom then heldFrom = stamp end
  elseif known then
    positions[#positions + 1] = known
  elseif not covered(stamp) then
    heldFrom = stamp
  else
    local position = add(log, logMax, '*', json)
    add(userStream, userMax, position, json)
    redis.call('SET', seen, position, 'EX', ttl)
    redis.call('HSET', sources, from, position)
    local stored = '{"position":"' .. position .. '",' .. string.sub(json, 2)
    redis.call(publish, userChannel .. user, stored)
    redis.call(publish, domainChannel, stored)
    positions[#positions + 1] = position
  end
end
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

type Entry = [string, string[]];

/** The longest a group read blocks; longer requests are cut to it (and return empty, as on a timeout). */
const MAX_BLOCK_MS = 5_000;

const toEvent = ([position, fields]: Entry): StoredEvent => ({ ...(JSON.parse(fields[1] as string) as DomainEvent), position });

/**
 * Redis Streams: `events:log` holds every event (consumer groups read it), `events:user:<id>` each user's
 * (what `after` resumes from), both trimmed to the retention. Live readers hear the same pub/sub channels as
 * before, now rung by the append itself.
 *
 * On a cluster every key is under the `{events}` hash tag (`{events}:log`, `{events}:user:<id>`, ...): one slot,
 * because one script writes the log and the user's stream together, and the channels are sharded channels in
 * that slot (see eventChannelShard). On one server the names are as they always were.
 */
export class RedisEventStream implements EventStream {
  private blocking: RedisClient | undefined;
  /** `events`, or `{events}` on a cluster, after the prefix: every key and channel of the stream starts with it. */
  private readonly space: string;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix = '',
    private readonly retention: Retention = DEFAULT_RETENTION,
  ) {
    redis.defineCommand('eventsAppend', { lua: APPEND });
    redis.defineCommand('eventsRead', { numberOfKeys: 3, lua: READ });
    this.space = prefix + slotTag(redis, EVENTS_KEY_SPACE);
  }

  private key(feed: Feed): string {
    return feed.userId === undefined ? `${this.space}:log` : `${this.space}:user:${feed.userId}`;
  }

  /** Where the append rings a channel, named as RedisPubSub names it (in the stream's slot on a cluster). */
  private channel(name: string): string {
    return this.redis instanceof Cluster ? `${this.space}:${name}` : this.prefix + name;
  }

  async append(events: readonly DomainEvent[], fence?: CausalFence): Promise<string[]> {
    // Without a fence there is nothing to record; with one, even an empty batch renews the clearance.
    if (events.length === 0 && !fence) return [];
    const keys = [this.key({}), `${this.space}:trimmed`, `${this.space}:sources`, `${this.space}:clearance`];
    for (const event of events) keys.push(this.key({ userId: event.userId }), `${this.space}:id:${event.id}`);
    const args = events.flatMap((event) => [event.id, event.userId, event.source, JSON.stringify(event), stampOf(event)]);
    const fenceArgs = fence
      ? [fence.source, fence.instance, fence.now, Math.floor(fence.clearance), fence.reachableSince, fence.maxStallMs]
      : ['', '', 0, 0, 0, 0];
    const channels = [this.channel(userEventsChannel('')), this.channel(DOMAIN_EVENTS_CHANNEL), this.redis instanceof Cluster ? 'SPUBLISH' : 'PUBLISH'];
    const run = (this.redis as unknown as { eventsAppend(...args: (string | number)[]): Promise<string[]> }).eventsAppend;
    return run.call(this.redis, keys.length, ...keys, ...channels, this.retention.log, this.retention.perUser, DEDUPLICATION_SECONDS, ...fenceArgs, ...args);
  }

  async withdraw(source: string, instance: string): Promise<void> {
    await this.redis.hdel(`${this.space}:clearance`, `${source}/${instance}`);
  }

  async read(feed: Feed, after: string | null, limit: number): Promise<StoredEvent[]> {
    if (after !== null && !parsePosition(after)) throw new InvalidCursorError(`malformed position ${after}`);
    const run = (this.redis as unknown as { eventsRead(...args: (string | number)[]): Promise<[string, Entry[]?]> }).eventsRead;
    const [status, entries = []] = await run.call(this.redis, this.key(feed), this.key({}), `${this.space}:trimmed`, after ?? '', limit);
    if (status === 'invalid') throw new InvalidCursorError(`unknown position ${after}`);
    if (status === 'expired') throw new CursorExpiredError(`events after ${after} are no longer retained`);
    return entries.map(toEvent);
  }

  async last(feed: Feed): Promise<string> {
    const [entry] = (await this.redis.xrevrange(this.key(feed), '+', '-', 'COUNT', 1)) as Entry[];
    return entry?.[0] ?? '0-0';
  }

  async lastFrom(source: string): Promise<string> {
    return (await this.redis.hget(`${this.space}:sources`, source)) ?? '0-0';
  }

  /**
   * XREADGROUP BLOCK holds its connection, so group reads get one of their own, with a timeout above any block
   * (a read on a link that went silent must still end, or its consumer could never stop).
   */
  private blockingConnection(): RedisClient {
    if (!this.blocking) {
      this.blocking = duplicateRedis(this.redis, { commandTimeout: MAX_BLOCK_MS + 2_000 });
      this.blocking.on('error', () => {}); // reconnects by itself; the consumer loop retries
    }
    return this.blocking;
  }

  group(name: string): ConsumerGroup {
    const log = this.key({});
    const entries = (reply: unknown): StoredEvent[] => {
      const streams = reply as [string, (Entry | null)[]][] | null;
      return (streams?.[0]?.[1] ?? []).filter((entry): entry is Entry => entry !== null && entry[1] !== null).map(toEvent);
    };
    const create = async (from: string) => {
      try {
        await this.redis.xgroup('CREATE', log, name, from, 'MKSTREAM');
        return true;
      } catch (error) {
        if (/BUSYGROUP/.test((error as Error).message)) return false;
        throw error;
      }
    };
    return {
      ensure: create,
      reset: async (from) => {
        if (await create(from)) return;
        // SETID would keep the old pending entries; a rebuilt projection must not be handed them again.
        await this.redis.xgroup('DESTROY', log, name);
        await create(from);
      },
      read: async (consumer, count, blockMs) => {
        const connection = this.blockingConnection();
        // It has no offline queue (a read queued during an outage would hang its consumer's shutdown): wait for it.
        await waitForRedis(connection, Math.max(blockMs, 1_000));
        // BLOCK 0 would wait forever; no BLOCK at all returns at once, as the contract says for 0.
        return entries(
          blockMs > 0
            ? await connection.xreadgroup('GROUP', name, consumer, 'COUNT', count, 'BLOCK', Math.min(blockMs, MAX_BLOCK_MS), 'STREAMS', log, '>')
            : await connection.xreadgroup('GROUP', name, consumer, 'COUNT', count, 'STREAMS', log, '>'),
        );
      },
      ack: async (positions) => {
        if (positions.length > 0) await this.redis.xack(log, name, ...positions);
      },
      claim: async (consumer, minIdleMs, count) => {
        const [, claimed] = (await this.redis.xautoclaim(log, name, consumer, minIdleMs, '0-0', 'COUNT', count)) as [string, (Entry | null)[]];
        return entries([[log, claimed]]);
      },
      caughtUp: async (position) => {
        // One round trip: writers ask this before each placeOrder.
        const replies = await this.redis.pipeline().xinfo('GROUPS', log).xpending(log, name).exec();
        const [[groupsError, groups] = [], [pendingError, summary] = []] = replies ?? [];
        if (groupsError || pendingError) throw groupsError ?? pendingError;
        const fields = (groups as (string | number)[][]).find((group) => group[group.indexOf('name') + 1] === name);
        if (!fields) return false;
        const lastDelivered = String(fields[fields.indexOf('last-delivered-id') + 1]);
        if (comparePositions(lastDelivered, position) < 0) return false;
        const [pending, oldest] = summary as [number, string | null];
        return Number(pending) === 0 || comparePositions(oldest as string, position) > 0;
      },
    };
  }

  async close(): Promise<void> {
    this.blocking?.disconnect();
  }
}
