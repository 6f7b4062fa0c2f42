"""The Lua scripts of the Redis sources: each one is a change that must be atomic.

Every script starts with a comment block naming its keys and arguments. Keys of one
script always share a hash slot (see :mod:`pytempest.redis.keyspace`), so they run on
Redis Cluster too. Server replies inside scripts are RESP2 (flat arrays).
"""

from __future__ import annotations

STREAM_CLAIM = """
-- KEYS[1]  the stream
-- ARGV[1]  consumer group      ARGV[2]  consumer      ARGV[3]  min idle (ms)
-- ARGV[4..] entry ids
-- Claims each id for the consumer if it is still pending and idle >= min idle (another
-- consumer may have taken or acked it since the caller looked) and returns
-- {id, fields, delivery count} for it. An id whose entry was deleted from the stream
-- can never be processed: it is acked and returned in the second list.
local claimed, missing = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if #redis.call('XRANGE', KEYS[1], id, id) == 0 then
    if redis.call('XACK', KEYS[1], ARGV[1], id) == 1 then missing[#missing + 1] = id end
  else
    local got = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], id)
    if #got == 1 then
      local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
      claimed[#claimed + 1] = {got[1][1], got[1][2], p[1][4]}
    end
  end
end
return {claimed, missing}
"""

STREAM_SETTLE = """
-- KEYS[1]  the stream
-- ARGV[1]  consumer group      ARGV[2]  min idle (ms)      ARGV[3]  '1': also XDEL
-- ARGV[4..] entry ids
-- Acks (and with ARGV[3] = '1' deletes) each id that is still pending and idle >= min
-- idle; an entry a consumer took in the meantime is left alone. Returns the ids done.
local done = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if #redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[2], id, id, 1) == 1 then
    redis.call('XACK', KEYS[1], ARGV[1], id)
    if ARGV[3] == '1' then redis.call('XDEL', KEYS[1], id) end
    done[#done + 1] = id
  end
end
return done
"""

STREAM_TRIM = """
-- KEYS[1]  the stream
-- ARGV[1]  max_len
-- Trims acked history only. The cut is the smallest of: the id after the oldest
-- entries beyond max_len (at most 10000 per call), and for every consumer group its
-- oldest pending id and the id after its last delivered one. Every entry below the cut
-- was delivered to and acked by every group. Returns the number of entries trimmed.
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return {tonumber(ms), tonumber(seq)}
end
local function less(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[1])
if excess <= 0 then return 0 end
local range = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', math.min(excess, 10000))
local last = parse(range[#range][1])
local cut = {last[1], last[2] + 1}
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  local delivered = parse(info['last-delivered-id'])
  local after = {delivered[1], delivered[2] + 1}
  if less(after, cut) then cut = after end
  if tonumber(info['pending']) > 0 then
    local oldest = parse(redis.call('XPENDING', KEYS[1], info['name'])[2])
    if less(oldest, cut) then cut = oldest end
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%.0f-%.0f', cut[1], cut[2]))
"""

LIST_TAKE = """
-- KEYS[1]  the list       KEYS[2]  this consumer's processing list
-- KEYS[3]  delivery counts (hash: entry -> times it was put back)
-- KEYS[4]  consumers (zset: consumer -> last seen, ms)
-- ARGV[1]  max entries    ARGV[2]  'RIGHT' or 'LEFT': the end entries are taken from
-- ARGV[3]  consumer       ARGV[4]  now (ms)
-- Notes the consumer as alive, moves up to ARGV[1] entries into its processing list
-- and returns {entries, their counts (false: none)}.
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
local out, counts = {}, {}
for i = 1, tonumber(ARGV[1]) do
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], ARGV[2], 'LEFT')
  if not v then break end
  out[#out + 1] = v
end
if #out > 0 and redis.call('HLEN', KEYS[3]) > 0 then
  for i = 1, #out do counts[i] = redis.call('HGET', KEYS[3], out[i]) end
end
return {out, counts}
"""

LIST_SETTLE = """
-- KEYS[1]  a consumer's processing list      KEYS[2]  the list
-- KEYS[3]  delivery counts (hash)             KEYS[4]  consumers (zset: last seen, ms)
-- ARGV[1]  that consumer
-- ARGV[2]  act only if it was last seen at or before this (ms); '+inf' for own entries
-- ARGV[3]  'requeue': back to the end the source takes from, counting one more
--          delivery; 'drop': removed with its count
-- ARGV[4]  'RIGHT' or 'LEFT': the end the source takes from      ARGV[5..] entries
-- Does nothing when the consumer was seen since (it is alive after all). Forgets the
-- consumer once its processing list is empty. Returns the entries handled.
local seen = redis.call('ZSCORE', KEYS[4], ARGV[1])
if ARGV[2] ~= '+inf' and seen and tonumber(seen) > tonumber(ARGV[2]) then return {} end
local done = {}
for i = 5, #ARGV do
  local v = ARGV[i]
  if redis.call('LREM', KEYS[1], -1, v) == 1 then
    if ARGV[3] == 'requeue' then
      if ARGV[4] == 'RIGHT' then redis.call('RPUSH', KEYS[2], v) else redis.call('LPUSH', KEYS[2], v) end
      redis.call('HINCRBY', KEYS[3], v, 1)
    else
      redis.call('HDEL', KEYS[3], v)
    end
    done[#done + 1] = v
  end
end
if ARGV[2] ~= '+inf' and redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return done
"""

ZSET_TAKE = """
-- KEYS[1]  the sorted set     KEYS[2]  leased members (zset: lease expiry, ms)
-- KEYS[3]  delivery counts (hash)   KEYS[4]  original scores (hash)
-- ARGV[1]  highest score that is due      ARGV[2]  max members
-- ARGV[3]  lease expiry (ms)
-- Moves up to ARGV[2] due members (lowest score first) into the leased set and
-- returns {member, delivery count, member, delivery count, ...}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local out = {}
for i = 1, #due, 2 do
  local m = due[i]
  redis.call('ZREM', KEYS[1], m)
  redis.call('ZADD', KEYS[2], ARGV[3], m)
  redis.call('HSET', KEYS[4], m, due[i + 1])
  out[#out + 1] = m
  out[#out + 1] = redis.call('HINCRBY', KEYS[3], m, 1)
end
return out
"""

ZSET_ACK = """
-- KEYS[1]  leased members (zset)   KEYS[2]  delivery counts (hash)
-- KEYS[3]  original scores (hash)
-- ARGV     members
-- Removes each leased member with its count and score; returns how many were leased.
local n = 0
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
    n = n + 1
  end
end
return n
"""

ZSET_SETTLE = """
-- KEYS[1]  the sorted set     KEYS[2]  leased members (zset: lease expiry, ms)
-- KEYS[3]  delivery counts (hash)   KEYS[4]  original scores (hash)
-- ARGV[1]  act only on leases that expired at or before this (ms)
-- ARGV[2]  'requeue': back into the sorted set with its original score (unless a
--          producer added it again meanwhile); 'drop': removed with its bookkeeping
-- ARGV[3..] members
-- A lease renewed meanwhile (its holder is alive) is left alone. Returns members done.
local done = {}
for i = 3, #ARGV do
  local m = ARGV[i]
  local expiry = redis.call('ZSCORE', KEYS[2], m)
  if expiry and tonumber(expiry) <= tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[2], m)
    if ARGV[2] == 'requeue' then
      redis.call('ZADD', KEYS[1], 'NX', redis.call('HGET', KEYS[4], m) or 0, m)
    else
      redis.call('HDEL', KEYS[3], m)
    end
    redis.call('HDEL', KEYS[4], m)
    done[#done + 1] = m
  end
end
return done
"""
