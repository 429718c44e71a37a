"""The Lua scripts of `RedisStore`, each one atomic step on the server.

Every key a script touches arrives in KEYS, or (for keys only known while it runs: trimmed alerts, purged
records) is built from a prefix passed in ARGV; the key layout itself lives in `keys.py`. Timestamps are
integer microseconds (`keys.to_us`).
"""

from __future__ import annotations

# KEYS: seq, alerts, alert_refs, outbox:all, outbox:pending, outbox:delivered, outbox:dead, outbox:due,
#       alert:<id>, then one delivery hash per destination, then one delivered index per destination, then
#       the claim keys, then the keys to remember (claim keys too, set only where free, once claimed),
#       then the identity marker.
# ARGV: ttl_ms, n_destinations, alert JSON ('' = none), alert id, created_us, now_us, history_limit,
#       alert key prefix, member separator, member seq width, pending, claim value, n keys to remember,
#       then per destination three: its name, its first attempt (us), its digest flag ('1'/'0'), then the
#       marker id the caller expects ('' = no check).
# Returns 1 (claimed), 0 (held already) or -1 (the marker is gone or another: the server lost its data
# since the caller last checked, and a claim now would re-send what it had already sent).
CLAIM = """
local expect = ARGV[#ARGV]
if expect ~= '' then
  local marker = redis.call('GET', KEYS[#KEYS])
  if not marker or cjson.decode(marker).id ~= expect then return -1 end
end
local nd = tonumber(ARGV[2])
local first, last = 10 + 2 * nd, #KEYS - 1 - tonumber(ARGV[13])
for i = first, last do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
for i = first, last do redis.call('SET', KEYS[i], ARGV[12], 'PX', ARGV[1]) end
for i = last + 1, #KEYS - 1 do redis.call('SET', KEYS[i], ARGV[12], 'NX', 'PX', ARGV[1]) end
if ARGV[3] == '' then return 1 end
local id, now, sep = ARGV[4], ARGV[6], ARGV[9]
redis.call('SET', KEYS[9], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[5], id)
for j = 1, nd do
  local hkey, dest, due, digest = KEYS[9 + j], ARGV[11 + 3 * j], ARGV[12 + 3 * j], ARGV[13 + 3 * j]
  local old = redis.call('HGET', hkey, 'member')
  if old then
    for z = 4, 8 do redis.call('ZREM', KEYS[z], old) end
    redis.call('ZREM', KEYS[9 + nd + j], id)
    redis.call('DEL', hkey)
  else
    redis.call('HINCRBY', KEYS[3], id, 1)
  end
  local seq = redis.call('INCR', KEYS[1])
  local member = string.format('%0' .. ARGV[10] .. 'd', seq) .. sep .. id .. sep .. dest
  redis.call('HSET', hkey, 'alert_id', id, 'destination', dest, 'status', ARGV[11], 'attempts', '0',
             'created', now, 'next_attempt', due, 'digest', digest, 'member', member)
  redis.call('ZADD', KEYS[4], now, member)
  redis.call('ZADD', KEYS[5], now, member)
  redis.call('ZADD', KEYS[8], due, member)
end
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[7])
if excess > 0 then
  local trimmed = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
  for _, old_id in ipairs(trimmed) do
    if not redis.call('HGET', KEYS[3], old_id) then redis.call('DEL', ARGV[8] .. old_id) end
  end
end
return 1
"""

# KEYS: delivery hash, the new status's set, the two other status sets, outbox:due, delivered:<destination>.
# ARGV: new status, attempts increment, due score ('' = not due), delivered_at ('' = not delivered), the
#       delivered index's trim bound (older scores are dropped), n fields to delete, those n field names,
#       then field/value pairs to set.
TRANSITION = """
local member = redis.call('HGET', KEYS[1], 'member')
if not member then return 0 end
if ARGV[2] ~= '0' then redis.call('HINCRBY', KEYS[1], 'attempts', ARGV[2]) end
local ndel = tonumber(ARGV[6])
if ndel > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, 7, 6 + ndel)) end
redis.call('HSET', KEYS[1], 'status', ARGV[1], unpack(ARGV, 7 + ndel))
redis.call('ZREM', KEYS[3], member)
redis.call('ZREM', KEYS[4], member)
redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[1], 'created'), member)
if ARGV[3] == '' then redis.call('ZREM', KEYS[5], member)
else redis.call('ZADD', KEYS[5], ARGV[3], member) end
local id = redis.call('HGET', KEYS[1], 'alert_id')
if ARGV[4] == '' then redis.call('ZREM', KEYS[6], id)
else
  redis.call('ZADD', KEYS[6], ARGV[4], id)
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. ARGV[5])
end
return 1
"""

# KEYS: delivery hash, outbox:due.
# ARGV: pending, next attempt (us).
DEFER = """
local f = redis.call('HMGET', KEYS[1], 'status', 'member')
if f[1] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'next_attempt', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], f[2])
return 1
"""

# KEYS: the counter of one window.
# ARGV: its lifetime (ms), set when the window's first count creates it.
COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

# KEYS: outbox:pending, outbox:dead, outbox:due.
# ARGV: now_us, filter by destination ('1'/'0'), destination, delivery key prefix, member seq width, pending,
#       alert id ('' for any).
RETRY = """
local n = 0
-- Both lists are read before any change: a revived dead record must not be seen again as pending.
local lists = {redis.call('ZRANGE', KEYS[2], 0, -1), redis.call('ZRANGE', KEYS[1], 0, -1)}
for _, members in ipairs(lists) do
  for _, m in ipairs(members) do
    local hkey = ARGV[4] .. string.sub(m, tonumber(ARGV[5]) + 2)
    local f = redis.call('HMGET', hkey, 'destination', 'alert_id')
    if (ARGV[2] == '0' or f[1] == ARGV[3]) and (ARGV[7] == '' or f[2] == ARGV[7]) then
      redis.call('HSET', hkey, 'status', ARGV[6], 'next_attempt', ARGV[1])
      redis.call('ZREM', KEYS[2], m)
      redis.call('ZADD', KEYS[1], redis.call('HGET', hkey, 'created'), m)
      redis.call('ZADD', KEYS[3], ARGV[1], m)
      n = n + 1
    end
  end
end
return n
"""

# KEYS: outbox:<status>, outbox:all, outbox:due, alert_refs, alerts.
# ARGV: filter by destination ('1'/'0'), destination, delivery key prefix, member seq width, alert key prefix,
#       delivered index key prefix, the highest creation score to delete ('+inf': any; '(<us>': before),
#       at most how many (-1: all).
PURGE = """
local n = 0
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[7], 'LIMIT', 0, ARGV[8])
for _, m in ipairs(members) do
  local hkey = ARGV[3] .. string.sub(m, tonumber(ARGV[4]) + 2)
  local f = redis.call('HMGET', hkey, 'alert_id', 'destination')
  if ARGV[1] == '0' or f[2] == ARGV[2] then
    redis.call('DEL', hkey)
    for z = 1, 3 do redis.call('ZREM', KEYS[z], m) end
    if f[1] and f[2] then redis.call('ZREM', ARGV[6] .. f[2], f[1]) end
    if f[1] and redis.call('HINCRBY', KEYS[4], f[1], -1) <= 0 then
      redis.call('HDEL', KEYS[4], f[1])
      if not redis.call('ZSCORE', KEYS[5], f[1]) then redis.call('DEL', ARGV[5] .. f[1]) end
    end
    n = n + 1
  end
end
return n
"""

# KEYS: one source's state, the identity marker.
# ARGV: the state JSON, the marker id the caller expects ('' = no check).
# Returns 1 (written) or -1 (the marker is gone or another: not written, as for CLAIM).
PUT_SOURCE = """
if ARGV[2] ~= '' then
  local marker = redis.call('GET', KEYS[2])
  if not marker or cjson.decode(marker).id ~= ARGV[2] then return -1 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

# KEYS: the layout version key.
# ARGV: the version to record; a newer one already recorded is kept.
SET_VERSION = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""


# --- leases and replicas (`store.leases`) -----------------------------------------------------------------

# KEYS: one lease. ARGV: this replica's token, the lease period (ms).
# Compare-and-extend: only the holder may extend its lease (a lease that expired and was taken is not ours).
LEASE_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: one lease. ARGV: this replica's token.
# Compare-and-delete: a replica releases only its own lease, never one another replica took after it expired.
LEASE_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: the replicas zset. ARGV: this replica's token, how long its membership lasts (ms); '' = leave.
# Drops expired members (scores are expiry times in Redis time, ms), (re)adds or removes this one, keeps the
# key itself alive as long as its newest member, and returns the live members.
REPLICAS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[2] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[1], newest[2])
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
