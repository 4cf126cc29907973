"""Lua scripts the router runs in Redis (one EVALSHA each) and the key layout they share.

Keys (prefix `ns`, default `glmctl`; single-instance Redis, keys are built in the scripts):
  ns:endpoints          hash  endpoint id -> JSON {url, model, group, flavor}
  ns:health             hash  endpoint id -> JSON {ok, ts, error}
  ns:load               hash  endpoint id -> JSON LoadSnapshot + ts
  ns:epoch              string set by registrations; missing = Redis lost its data
  ns:routers            zset  router id -> lease expiry (ms)
  ns:inflight:<router>  hash  endpoint id -> requests in flight through that router (TTL)
  ns:rmetrics:<router>  string JSON metrics export of that router (TTL)
  ns:px:<bucket>        hash  prefix block hash -> endpoint id (time bucket, TTL, size cap)
  ns:sess:<key>         string session key -> "<endpoint id>\n<ms it was bound>" (TTL; a
                              value without the time, from an older router, counts as old)
  ns:apikeys            hash  sha256(api key) -> JSON {name, rate, burst}
  ns:rl:<key hash>      hash  token bucket {tokens, ts}
  ns:draining           hash  endpoint id -> time it started draining: out of every router's
                              rotation at their next refresh, in-flight streams finish
  ns:autoscale          hash  deployment -> JSON of the last scaling decision (autoscale/)
  ns:autoscale:count    hash  "deployment|direction|reason" -> scaling decisions taken
"""

from __future__ import annotations

DRAINING = "{ns}:draining"
AUTOSCALE = "{ns}:autoscale"
AUTOSCALE_COUNT = "{ns}:autoscale:count"

# ARGV: ns, newest bucket, buckets to read, n, hash_1..hash_n, session key, rl key, rate, burst
# Returns {depth, endpoint, session endpoint, allowed (1/0), retry after ms, age of the
# session's binding in ms (-1: unknown)}.
LOOKUP = """
local ns = ARGV[1]
local bucket = tonumber(ARGV[2])
local nbuckets = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local depth, endpoint = 0, ''
if n > 0 then
  local hashes = {}
  for i = 1, n do hashes[i] = ARGV[4 + i] end
  for b = 0, nbuckets - 1 do
    local found = redis.call('HMGET', ns .. ':px:' .. (bucket - b), unpack(hashes))
    for i = n, depth + 1, -1 do
      if found[i] then depth = i; endpoint = found[i]; break end
    end
  end
end
local at = 5 + n
local session, age_ms = '', -1
if ARGV[at] ~= '' then
  local value = redis.call('GET', ns .. ':sess:' .. ARGV[at])
  if value then
    local cut = string.find(value, '\\n', 1, true)
    if cut then
      local t = redis.call('TIME')
      local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      session = string.sub(value, 1, cut - 1)
      age_ms = math.max(0, now - (tonumber(string.sub(value, cut + 1)) or 0))
    else
      session = value
    end
  end
end
local allowed, retry_ms = 1, 0
if ARGV[at + 1] ~= '' then
  local key = ns .. ':rl:' .. ARGV[at + 1]
  local rate, burst = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or burst
  local last = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + (now - last) * rate / 1000)
  if tokens >= 1 then
    tokens = tokens - 1
  else
    allowed = 0
    retry_ms = math.ceil((1 - tokens) * 1000 / rate)
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
end
return {depth, endpoint, session, allowed, retry_ms, age_ms}
"""

# ARGV: ns, bucket, bucket ttl ms, max entries per bucket, session ttl ms,
#       n, (hash, endpoint) * n, m, (session key, endpoint) * m
RECORD = """
local ns = ARGV[1]
local key = ns .. ':px:' .. ARGV[2]
local n = tonumber(ARGV[6])
if n > 0 and redis.call('HLEN', key) < tonumber(ARGV[4]) then
  local args = {}
  for i = 1, 2 * n do args[i] = ARGV[6 + i] end
  redis.call('HSET', key, unpack(args))
  redis.call('PEXPIRE', key, tonumber(ARGV[3]))
end
local at = 7 + 2 * n
local m = tonumber(ARGV[at])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, m do
  local key = ns .. ':sess:' .. ARGV[at + 2 * i - 1]
  local endpoint = ARGV[at + 2 * i]
  local value = redis.call('GET', key)
  if value and string.sub(value, 1, #endpoint + 1) == endpoint .. '\\n' then
    redis.call('PEXPIRE', key, tonumber(ARGV[5]))  -- same binding: keep the time it began
  else
    redis.call('SET', key, endpoint .. '\\n' .. now, 'PX', tonumber(ARGV[5]))
  end
end
return n + m
"""

# ARGV: ns, router id, lease ms, n, (endpoint, in-flight) * n
# Returns {endpoints, health, load, {router, {ep, count, ...}}..., epoch, api keys,
#          draining endpoint ids}.
REFRESH = """
local ns = ARGV[1]
local me = ARGV[2]
local lease = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mine = ns .. ':inflight:' .. me
redis.call('DEL', mine)
if n > 0 then
  local args = {}
  for i = 1, 2 * n do args[i] = ARGV[4 + i] end
  redis.call('HSET', mine, unpack(args))
  redis.call('PEXPIRE', mine, lease)
end
redis.call('ZADD', ns .. ':routers', now + lease, me)
redis.call('ZREMRANGEBYSCORE', ns .. ':routers', '-inf', now)
local others = {}
for _, router in ipairs(redis.call('ZRANGE', ns .. ':routers', 0, -1)) do
  if router ~= me then
    table.insert(others, router)
    table.insert(others, redis.call('HGETALL', ns .. ':inflight:' .. router))
  end
end
return {
  redis.call('HGETALL', ns .. ':endpoints'),
  redis.call('HGETALL', ns .. ':health'),
  redis.call('HGETALL', ns .. ':load'),
  others,
  redis.call('GET', ns .. ':epoch') or '',
  redis.call('HGETALL', ns .. ':apikeys'),
  redis.call('HKEYS', ns .. ':draining'),
}
"""

# ARGV: ns, session key, endpoint, session ttl ms.
# Bind-or-get: the first request of a session binds it; concurrent first requests (on any
# router) all get that first binding back. Returns the endpoint the session is bound to.
BIND = """
local key = ARGV[1] .. ':sess:' .. ARGV[2]
local bound = redis.call('GET', key)
if bound then
  redis.call('PEXPIRE', key, tonumber(ARGV[4]))
  local cut = string.find(bound, '\\n', 1, true)
  if cut then return string.sub(bound, 1, cut - 1) end
  return bound
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', key, ARGV[3] .. '\\n' .. now, 'PX', tonumber(ARGV[4]))
return ARGV[3]
"""
