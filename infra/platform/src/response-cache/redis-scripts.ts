/**
 * The response store's Lua scripts. Each runs on one bucket (see RedisResponseStore) and names every key it
 * touches in KEYS; a bucket's keys share one hash tag, so on a cluster each script stays in one slot.
 *
 * A bucket holds:
 * - `seq`: the newest purge sequence the bucket has heard of. Bucket 0's is the sequence itself (advanced by
 *   every purge); the others get each purge's number as it is fanned out to them.
 * - `floor`: entries with a sequence below it are from before a full invalidation.
 * - `stamps`: a hash, tag → the sequence of its last purge; `stamp-expiry` a sorted set of when each stamp stops
 *   mattering (every entry it could make stale has expired), swept a little by every purge.
 * - `entry:<key>`: `meta \n tags \n body`: the scripts read the tags, Node reads the meta, nobody parses the body.
 */

// A tag's stamp is compared with each entry's sequence: HMGET a thousand at a time (unpack has a stack limit).
const STALE = `
local function stale(stamps, tags, seq)
  for first = 1, #tags, 1000 do
    local names = {}
    for j = first, math.min(first + 999, #tags) do names[#names + 1] = tags[j] end
    for _, stamp in ipairs(redis.call('HMGET', stamps, unpack(names))) do
      if stamp and tonumber(stamp) > seq then return true end
    end
  end
  return false
end
`;

/**
 * KEYS: seq, floor, stamps, then the entries asked for, in order. ARGV: '1' where `seq` is the sequence itself
 * (bucket 0), so that an entry numbered past it can only come from before the sequence went back. Another
 * bucket hears of a purge a moment after bucket 0 numbered it, and may already hold entries numbered after it:
 * there the check would throw good entries away (a purge numbered far behind what such a bucket heard stamps one
 * past it instead). Returns `{ meta, body, index }` for the first valid entry (index into the entries, from 1),
 * deleting invalid ones on the way; else `{ seq }`.
 */
export const LOOKUP = `${STALE}
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
local authoritative = ARGV[1] == '1'
for i = 4, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if value then
    local a = string.find(value, '\\n', 1, true)
    local b = string.find(value, '\\n', a + 1, true)
    local meta = string.sub(value, 1, a - 1)
    local seq = cjson.decode(meta).s
    -- An entry from "the future" means the sequence went back (a failover): no purge could reach it.
    local valid = seq >= floor and (seq <= current or not authoritative) and not stale(KEYS[3], cjson.decode(string.sub(value, a + 1, b - 1)), seq)
    if valid then return { meta, string.sub(value, b + 1), tostring(i - 3) } end
    redis.call('DEL', KEYS[i])
  end
end
return { string.format('%.0f', current) }
`;

/**
 * Stores only if nothing the entry is tagged with was purged after its ticket: checked and written in one step.
 * KEYS: entry, floor, stamps. ARGV: value, ttl (ms), the ticket's sequence. The tags travel inside the value
 * (one argument: a command with hundreds costs more to write than to run).
 */
export const STORE = `${STALE}
local seq = tonumber(ARGV[3])
if seq < tonumber(redis.call('GET', KEYS[2]) or '0') then return 0 end
local value = ARGV[1]
local a = string.find(value, '\\n', 1, true)
local b = string.find(value, '\\n', a + 1, true)
if stale(KEYS[3], cjson.decode(string.sub(value, a + 1, b - 1)), seq) then return 0 end
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return 1
`;

/** KEYS: floor, stamps. ARGV: the ticket's sequence, the tags as JSON. */
export const PURGED_SINCE = `${STALE}
local seq = tonumber(ARGV[1])
if seq < tonumber(redis.call('GET', KEYS[1]) or '0') then return 1 end
if stale(KEYS[2], cjson.decode(ARGV[2]), seq) then return 1 end
return 0
`;

/**
 * The sequence this bucket stamps with.
 *
 * '' (bucket 0): the next one, taken from the server's clock in microseconds when that is ahead (it is, below a
 * million purges a second). A primary that lost the newest numbers in a failover then resumes past every number
 * handed out before, unless its clock is behind the old primary's by more than the failover took. The numbers
 * (about 1.7e15, exact in a Lua double) are written with '%.0f': Lua's own conversion keeps 14 digits.
 *
 * Otherwise the number bucket 0 handed out. A bucket that has already heard of a later one heard two purges'
 * fan-outs out of order (two replicas purging at once), and stamps this one with its own number: an entry stored
 * here with a later ticket was computed after this purge was numbered, so after its write. Only a number further
 * behind than any fan-out takes (REORDER_WINDOW, a second) stands for a sequence that went back; that stamps one
 * past the newest heard, which covers every entry stored here before it, and refuses new stores with the tags
 * until the sequence passes it.
 */
const NEXT = `
local REORDER_WINDOW = 1000000
local function next(seqKey, given)
  local heard = tonumber(redis.call('GET', seqKey) or '0')
  if given == '' then
    local time = redis.call('TIME')
    local seq = math.max(heard + 1, tonumber(time[1]) * 1000000 + tonumber(time[2]))
    redis.call('SET', seqKey, string.format('%.0f', seq))
    return seq, seq
  end
  local seq = tonumber(given)
  if seq > heard then
    redis.call('SET', seqKey, given)
    return seq, seq
  end
  if heard - seq <= REORDER_WINDOW then return seq, seq, true end
  return seq, heard + 1
end
`;

/**
 * KEYS: seq, stamps, stamp-expiry. ARGV: the sequence ('' to take the next), how long a stamp must last (ms),
 * then the tags. Returns the sequence.
 */
export const INVALIDATE = `${NEXT}
local seq, stamp, reordered = next(KEYS[1], ARGV[1])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local expires = now + tonumber(ARGV[2])
for first = 3, #ARGV, 1000 do
  local fields, scores = {}, {}
  local last = math.min(first + 999, #ARGV)
  -- A purge heard out of order must not lower the stamp a later purge of the same tag left.
  local current = reordered and redis.call('HMGET', KEYS[2], unpack(ARGV, first, last)) or {}
  for j = first, last do
    local held = current[j - first + 1]
    if not (held and tonumber(held) >= stamp) then
      fields[#fields + 1] = ARGV[j]
      fields[#fields + 1] = string.format('%.0f', stamp)
      scores[#scores + 1] = expires
      scores[#scores + 1] = ARGV[j]
    end
  end
  if #fields > 0 then
    redis.call('HSET', KEYS[2], unpack(fields))
    redis.call('ZADD', KEYS[3], unpack(scores))
  end
end
-- Stamps that protect nothing any more: a hundred per purge keeps the hash bounded without a long script.
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)
if #gone > 0 then
  redis.call('HDEL', KEYS[2], unpack(gone))
  redis.call('ZREM', KEYS[3], unpack(gone))
end
return seq
`;

/** KEYS: seq, floor. ARGV: the sequence ('' to take the next). Returns the sequence. */
export const INVALIDATE_ALL = `${NEXT}
local seq, floor = next(KEYS[1], ARGV[1])
if floor > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], string.format('%.0f', floor)) end
return seq
`;
