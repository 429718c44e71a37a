"""The Lua scripts of `RedisStore`, each one atomic step on the server.

Every key a script touches arrives in KEYS, or (for keys only known while it runs: trimmed alerts, purged
records) is built from a prefix passed in ARGV; the key layout itself lives in `keys.py`. Timestamps are
integer microseconds (`keys.to_us`).
"""

from __future__ import annotations

# --- the bucketed dedup keys (layout v3; see `keys.RedisKeys` and `keys.DEDUP_BUCKETS`) ------------------
# A library of local functions prepended to the scripts that read or write dedup keys. `ctx` carries the
# registry read once per script, Redis time (ms), and each bucket's linear-hashing state as read or split.
# Big numbers are formatted with %d: Lua prints doubles beyond 14 digits in exponent form.
DEDUP_LIB = """
local function dd_hash(field)
  local b1, b2, b3, b4 = string.byte(field, 1, 4)
  return ((b1 * 256 + b2) * 256 + b3) * 256 + b4
end

-- The registry in one read: the series (width -> latest expiry), the buckets that hold keys (with their
-- linear-hashing state) and the legacy time. What ended (a series whose keys all expired, a bucket past
-- its end) is ignored, and dropped by the next write.
local function dd_open(registry, prefix, legacy_prefix, limit)
  local t = redis.call('TIME')
  local ctx = {registry = registry, prefix = prefix, legacy_prefix = legacy_prefix, limit = tonumber(limit),
               now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), series = {}, gone = {},
               buckets = {}, dirty = {}, legacy = 0, changed = false}
  local raw = redis.call('HGETALL', registry)
  for i = 1, #raw, 2 do
    local name, value = raw[i], raw[i + 1]
    local width, n = string.match(name, '^(%d+):(%d+)$')
    if width then
      width, n = tonumber(width), tonumber(n)
      if (n + 1) * width > ctx.now then
        local l, p = string.match(value, '^(%d+):(%d+)$')
        ctx.buckets[name] = {name = prefix .. name, field = name, l = tonumber(l), p = tonumber(p),
                             ends = string.format('%d', (n + 1) * width)}
      else ctx.gone[#ctx.gone + 1] = name end
    elseif name == 'legacy' then ctx.legacy = tonumber(value)
    elseif tonumber(value) > ctx.now then ctx.series[#ctx.series + 1] = {tonumber(name), tonumber(value)}
    else ctx.gone[#ctx.gone + 1] = name end
  end
  -- The buckets a look-up reads, once per script: those of a live series that held keys when it began
  -- (the callers pass distinct keys, and look each one up before writing it).
  ctx.live = {}
  for _, s in ipairs(ctx.series) do
    local width = s[1]
    for n = math.floor(ctx.now / width), math.floor(s[2] / width) do
      local b = ctx.buckets[string.format('%d:%d', width, n)]
      if b then ctx.live[#ctx.live + 1] = {n * width, b} end
    end
  end
  return ctx
end

local function dd_shard(b, h)
  local size = 2 ^ b.l
  local i = h % size
  if i < b.p then i = h % (2 * size) end
  return b.name .. ':' .. i
end

-- The claim value of a held key ('1': no owner, '=<owner>'), or false. A key is held while its own
-- expiry is ahead of Redis time: the bucket may outlive it by up to one width, its fields never do.
local function dd_get(ctx, field, key)
  local h = dd_hash(field)
  for _, live in ipairs(ctx.live) do
    local v = redis.call('HGET', dd_shard(live[2], h), field)
    if v then
      local cut = string.find(v, '=', 1, true)
      local offset = tonumber(cut and string.sub(v, 1, cut - 1) or v)
      if live[1] + offset > ctx.now then return cut and string.sub(v, cut) or '1' end
    end
  end
  if ctx.now < ctx.legacy then
    local v = redis.call('GET', ctx.legacy_prefix .. key)
    if v then return v end
  end
  return false
end

-- Split the bucket's shard at its split pointer in two (linear hashing), rewriting both, so each is a
-- fresh listpack again.
local function dd_split(ctx, b)
  local size = 2 ^ b.l
  local from = b.name .. string.format(':%d', b.p)
  local to = b.name .. string.format(':%d', b.p + size)
  local all = redis.call('HGETALL', from)
  local stay, move = {}, {}
  for i = 1, #all, 2 do
    local dest = (dd_hash(all[i]) % (2 * size) == b.p) and stay or move
    dest[#dest + 1] = all[i]
    dest[#dest + 1] = all[i + 1]
  end
  redis.call('DEL', from)
  if #stay > 0 then
    redis.call('HSET', from, unpack(stay))
    redis.call('PEXPIREAT', from, b.ends)
  end
  if #move > 0 then
    redis.call('HSET', to, unpack(move))
    redis.call('PEXPIREAT', to, b.ends)
  end
  b.p = b.p + 1
  if b.p == size then b.l, b.p = b.l + 1, 0 end
  ctx.dirty[b.field] = b
end

-- Hold `field` until `expires` (ms) in the buckets of `width`; `owner` is '' or '=<owner>'.
local function dd_put(ctx, field, width, expires, owner)
  local n = math.floor(expires / width)
  local id = string.format('%d:%d', width, n)
  local b = ctx.buckets[id]
  if not b then
    b = {name = ctx.prefix .. id, field = id, l = 0, p = 0, ends = string.format('%d', (n + 1) * width)}
    ctx.buckets[id] = b
    ctx.dirty[id] = b
  end
  local shard = dd_shard(b, dd_hash(field))
  redis.call('HSET', shard, field, string.format('%d', expires - n * width) .. owner)
  redis.call('PEXPIREAT', shard, b.ends)
  if redis.call('HLEN', shard) > ctx.limit then dd_split(ctx, b) end
  for _, s in ipairs(ctx.series) do
    if s[1] == width then
      if expires > s[2] then s[2], ctx.changed = expires, true end
      return
    end
  end
  ctx.series[#ctx.series + 1] = {width, expires}
  ctx.changed = true
end

-- Record the registry's changes: new buckets and split states, new latest expiries, what ended. The
-- registry lives as long as the latest expiry of any key (and the legacy keys).
local function dd_commit(ctx)
  if #ctx.gone > 0 then redis.call('HDEL', ctx.registry, unpack(ctx.gone)) end
  for id, b in pairs(ctx.dirty) do redis.call('HSET', ctx.registry, id, string.format('%d:%d', b.l, b.p)) end
  if not ctx.changed then return end
  local last = ctx.legacy
  for _, s in ipairs(ctx.series) do
    redis.call('HSET', ctx.registry, string.format('%d', s[1]), string.format('%d', s[2]))
    if s[2] > last then last = s[2] end
  end
  redis.call('PEXPIREAT', ctx.registry, string.format('%d', last))
end
"""

# KEYS: seq, alerts, alert_refs, outbox:all, outbox:pending, outbox:delivered, outbox:dead, outbox:due,
#       alert:<id>, then one delivery hash per destination, then one delivered index per destination, then
#       the dedup registry, then the identity marker.
# ARGV: ttl_ms, n_destinations, alert JSON ('' = none), alert id, created_us, now_us, history_limit,
#       alert key prefix, member separator, member seq width, pending, claim value, n keys to remember,
#       then per destination three: its name, its first attempt (us), its digest flag ('1'/'0'), then the
#       dedup bucket prefix, the layout-2 claim key prefix, the shard limit, the bucket width (ms), the
#       number of keys to claim, then per key to claim and then per key to remember (set only where free,
#       once claimed) two: its field (`keys.dedup_field`) and the key, then the marker id the caller
#       expects ('' = no check).
# Returns 1 (claimed), 0 (held already) or -1 (the marker is gone or another: the server lost its data
# since the caller last checked, and a claim now would re-send what it had already sent).
CLAIM = (
    DEDUP_LIB
    + """
local expect = ARGV[#ARGV]
if expect ~= '' then
  local marker = redis.call('GET', KEYS[#KEYS])
  if not marker or cjson.decode(marker).id ~= expect then return -1 end
end
local nd = tonumber(ARGV[2])
local at = 14 + 3 * nd
local ctx = dd_open(KEYS[#KEYS - 1], ARGV[at], ARGV[at + 1], ARGV[at + 2])
local width, nclaim, nkeep = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]), tonumber(ARGV[13])
local first = at + 5
for i = 0, nclaim - 1 do
  if dd_get(ctx, ARGV[first + 2 * i], ARGV[first + 2 * i + 1]) then return 0 end
end
local expires = ctx.now + tonumber(ARGV[1])
local owner = ARGV[12] == '1' and '' or ARGV[12]
for i = 0, nclaim - 1 do dd_put(ctx, ARGV[first + 2 * i], width, expires, owner) end
for i = nclaim, nclaim + nkeep - 1 do
  if not dd_get(ctx, ARGV[first + 2 * i], ARGV[first + 2 * i + 1]) then
    dd_put(ctx, ARGV[first + 2 * i], width, expires, owner)
  end
end
dd_commit(ctx)
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
)

# KEYS: the dedup registry.
# ARGV: the dedup bucket prefix, the layout-2 claim key prefix, then per key two: its field and the key.
# Returns per key its claim value ('1': no owner, '=<owner>'), or nil when it is not held.
HELD = (
    DEDUP_LIB
    + """
local ctx = dd_open(KEYS[1], ARGV[1], ARGV[2], 0)
local found = {}
for i = 3, #ARGV, 2 do found[#found + 1] = dd_get(ctx, ARGV[i], ARGV[i + 1]) end
return found
"""
)

# KEYS: the dedup registry.
# ARGV: the dedup bucket prefix, the layout-2 claim key prefix, the shard limit, the bucket width (ms), the
#       ttl (ms), the owner's claim value, then per key two: its field and the key.
# Holds each key not held already for the owner (`Store.remember`).
REMEMBER = (
    DEDUP_LIB
    + """
local ctx = dd_open(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
local width, expires = tonumber(ARGV[4]), ctx.now + tonumber(ARGV[5])
local owner = ARGV[6] == '1' and '' or ARGV[6]
for i = 7, #ARGV, 2 do
  if not dd_get(ctx, ARGV[i], ARGV[i + 1]) then dd_put(ctx, ARGV[i], width, expires, owner) end
end
dd_commit(ctx)
return 1
"""
)

# KEYS: the dedup registry.
# ARGV: how long (ms, from now) the longest-lived layout-2 claim key lives.
# The upgrade to layout 3: look-ups read the old keys until then (a later time already recorded is kept).
LEGACY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
if until_ms <= tonumber(redis.call('HGET', KEYS[1], 'legacy') or '0') then return 0 end
redis.call('HSET', KEYS[1], 'legacy', string.format('%d', until_ms))
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 or now + ttl < until_ms then redis.call('PEXPIREAT', KEYS[1], string.format('%d', until_ms)) end
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

# KEYS: one lease, its holder record. ARGV: this replica's token, the lease period (ms), how long the holder
# record lasts (ms; '' = keep none). Take-or-extend in one step: only the holder may extend its lease (a lease
# that expired and was taken is not ours); a free lease is taken, and the holder record names who held it
# last. Returns 0 (another replica holds it), 1 (ours: extended, or taken with no other holder on record) or
# 2 (taken over: the record names another replica, whose lease lapsed without being released).
LEASE_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3]) end
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] == '' then return 1 end
local last = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
if last and last ~= ARGV[1] then return 2 end
return 1
"""

# KEYS: one lease, its holder record. ARGV: this replica's token.
# Compare-and-delete: a replica releases only its own lease, never one another replica took after it expired,
# and forgets a holder record that names it (a released lease is taken over without waiting).
LEASE_RELEASE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
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
