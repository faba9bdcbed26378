-- Write a session if its stored state is the one the caller expects (optimistic lock).
-- KEYS[1..5] the tenant's keys (see lib.lua), KEYS[6] hot hash, KEYS[7] cold hash
-- ARGV[1]  session id
-- ARGV[2]  expected state: 'none' or '<version>:<created_us>'
-- ARGV[3]  the document: JSON (target 'h') or compressed (target 'c')
-- ARGV[4]  version of the document
-- ARGV[5]  created_us of the document
-- ARGV[6]  now_us: the session's idle time starts again here
-- ARGV[7]  cutoff_us: a session created at or before it has expired
-- ARGV[8]  index suffixes of the document
-- ARGV[9]  the PostgreSQL cold tier's row, as the caller holds it locked: '?' (not looked
--          up), 'none', or '<version>:<created_us>:<incarnation>:<generation>' with the
--          generation the caller set on the row (g + 1); 'none' for the Redis cold tier
-- ARGV[10] target: 'h' writes the hot tier (a cold session moves up); 'H' and 'C' rewrite
--          the session in place, only if it is in the hot or (Redis) cold tier, without
--          touching its idle time
-- ARGV[11] a token unique to this save call, kept with the hot copy: a retried call whose
--          first attempt landed recognises its own write by it
-- ARGV[12] the fence token returned with '?' (see lib.lua), or ''
-- ARGV[13] the incarnation the caller expects ('' for any: a client's save)
-- ARGV[14] the incarnation of a session this call creates
-- ARGV[15] a fresh fence token, set if the bucket has none ('' sets none: the reply's
--          token is then '' and the caller decides)
-- Returns {'ok'} or {'ok', 1 if the session entered the idle set (the sweeps' hints must
-- know), else 0}, or {'state', actual} where actual is 'none', '<version>:<created_us>',
-- 'moved' (not in that tier) or '?' with the fence token: the caller must look in
-- PostgreSQL (holding the row's lock) and call again. A call that looked and finds the
-- token changed (a session moved or was deleted since) gets '?' again.
local id, hot, cold = ARGV[1], KEYS[6], KEYS[7]
local v, c, ix, tier, n, g = locate(id, hot, cold)
if not tier then
  if ARGV[9] == '?' or (ARGV[12] ~= '' and fence_of(id, '') ~= ARGV[12]) then
    return {'state', '?', fence_of(id, ARGV[15])}
  end
  if ARGV[9] ~= 'none' then
    tier, ix = 'p', ''
    v, c, n, g = string.match(ARGV[9], '^(%d+):(%d+):([^:]*):(%d+)$')
  end
end
local expired = tier and tonumber(c) <= tonumber(ARGV[7])
local actual = 'none'
if tier and not expired then actual = v .. ':' .. c end
if actual ~= ARGV[2] or (ARGV[13] ~= '' and n ~= ARGV[13]) then
  if tier == 'h' and v == ARGV[4] and redis.call('HGET', hot, 'w') == ARGV[11] then
    return {'ok'}
  end
  return {'state', actual}
end
if ARGV[10] ~= 'h' then
  if string.lower(ARGV[10]) ~= tier then return {'state', 'moved'} end
  if tier == 'c' then
    redis.call('HSET', cold, 'z', ARGV[3], 'v', ARGV[4], 'w', ARGV[11])
    redis.call('HDEL', cold, 'ix')
    redis.call('HSET', CIX, id, ARGV[8])
  else
    redis.call('HSET', hot, 'd', ARGV[3], 'v', ARGV[4], 'ix', ARGV[8], 'w', ARGV[11])
  end
  reindex(id, ix, ARGV[8], c)
  return {'ok'}
end
if actual == 'none' then
  -- A new session, or one created again under the id of an expired or deleted one.
  if expired then erase(id, hot, cold, ix) end
  ix, n, g = '', ARGV[14], '0'
elseif tier == 'c' then
  redis.call('DEL', cold)
  redis.call('HDEL', CIX, id)
  g = tostring(tonumber(g) + 1)
end
if tier == 'h' and actual ~= 'none' and ix == ARGV[8] then
  -- The common update: created_at, the indexes and the fence fields are unchanged.
  redis.call('HSET', hot, 'd', ARGV[3], 'v', ARGV[4], 'w', ARGV[11])
else
  redis.call('HSET', hot, 'd', ARGV[3], 'v', ARGV[4], 'c', ARGV[5], 'ix', ARGV[8],
    'w', ARGV[11], 'n', n, 'g', g)
end
local entered = redis.call('ZADD', IDLE, ARGV[6], id)
-- A changed session may be storable now: the demotion sweep tries it again.
redis.call('ZREM', QUARANTINE, id)
if tier ~= 'h' or actual == 'none' then
  redis.call('ZADD', CREATED, ARGV[5], id)
end
reindex(id, ix, ARGV[8], ARGV[5])
return {'ok', entered}
