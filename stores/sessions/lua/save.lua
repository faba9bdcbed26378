-- Write a session if its stored state is the one the caller expects (optimistic lock).
-- KEYS[1] hot hash, KEYS[2] cold hash, KEYS[3] idle zset, KEYS[4] created zset
-- ARGV[1]  session id
-- ARGV[2]  expected state: 'none' or '<version>:<created_us>'
-- ARGV[3]  the document: JSON (target 'h') or compressed (target 'c')
-- ARGV[4]  version of the document
-- ARGV[5]  created_us of the document
-- ARGV[6]  now_us: the session's idle time starts again here
-- ARGV[7]  cutoff_us: a session created at or before it has expired
-- ARGV[8]  tenant base
-- ARGV[9]  index suffixes of the document
-- ARGV[10] the PostgreSQL cold tier's row, as the caller holds it locked: '?' (not looked
--          up), 'none', or '<version>:<created_us>:<incarnation>:<generation>' with the
--          generation the caller set on the row (g + 1); 'none' for the Redis cold tier
-- ARGV[11] target: 'h' writes the hot tier (a cold session moves up); 'H' and 'C' rewrite
--          the session in place, only if it is in the hot or (Redis) cold tier, without
--          touching its idle time
-- ARGV[12] a token unique to this save call, kept with the hot copy: a retried call whose
--          first attempt landed recognises its own write by it
-- ARGV[13] the fence token returned with '?' (see lib.lua), or ''
-- ARGV[14] the incarnation the caller expects ('' for any: a client's save)
-- ARGV[15] the incarnation of a session this call creates
-- ARGV[16] a fresh fence token, set if the bucket has none ('' sets none: the reply's
--          token is then '' and the caller decides)
-- Returns {'ok'} or {'ok', 1 if the session entered the idle set (the sweeps' hints must
-- know), else 0}, or {'state', actual} where actual is 'none', '<version>:<created_us>',
-- 'moved' (not in that tier) or '?' with the fence token: the caller must look in
-- PostgreSQL (holding the row's lock) and call again. A call that looked and finds the
-- token changed (a session moved or was deleted since) gets '?' again.
local id, base = ARGV[1], ARGV[8]
local v, c, ix, tier, n, g = locate(base, id)
if not tier then
  if ARGV[10] == '?' or (ARGV[13] ~= '' and fence_of(base, id, '') ~= ARGV[13]) then
    return {'state', '?', fence_of(base, id, ARGV[16])}
  end
  if ARGV[10] ~= 'none' then
    tier, ix = 'p', ''
    v, c, n, g = string.match(ARGV[10], '^(%d+):(%d+):([^:]*):(%d+)$')
  end
end
local expired = tier and tonumber(c) <= tonumber(ARGV[7])
local actual = 'none'
if tier and not expired then actual = v .. ':' .. c end
if actual ~= ARGV[2] or (ARGV[14] ~= '' and n ~= ARGV[14]) then
  if tier == 'h' and v == ARGV[4] and redis.call('HGET', KEYS[1], 'w') == ARGV[12] then
    return {'ok'}
  end
  return {'state', actual}
end
if ARGV[11] ~= 'h' then
  if string.lower(ARGV[11]) ~= tier then return {'state', 'moved'} end
  if tier == 'c' then
    redis.call('HSET', KEYS[2], 'z', ARGV[3], 'v', ARGV[4], 'w', ARGV[12])
    redis.call('HDEL', KEYS[2], 'ix')
    redis.call('HSET', base .. 'cix', id, ARGV[9])
  else
    redis.call('HSET', KEYS[1], 'd', ARGV[3], 'v', ARGV[4], 'ix', ARGV[9], 'w', ARGV[12])
  end
  reindex(base, id, ix, ARGV[9], c)
  return {'ok'}
end
if actual == 'none' then
  -- A new session, or one created again under the id of an expired or deleted one.
  if expired then erase(base, id, ix) end
  ix, n, g = '', ARGV[15], '0'
elseif tier == 'c' then
  redis.call('DEL', KEYS[2])
  redis.call('HDEL', base .. 'cix', id)
  g = tostring(tonumber(g) + 1)
end
if tier == 'h' and actual ~= 'none' and ix == ARGV[9] then
  -- The common update: created_at, the indexes and the fence fields are unchanged.
  redis.call('HSET', KEYS[1], 'd', ARGV[3], 'v', ARGV[4], 'w', ARGV[12])
else
  redis.call('HSET', KEYS[1], 'd', ARGV[3], 'v', ARGV[4], 'c', ARGV[5], 'ix', ARGV[9],
    'w', ARGV[12], 'n', n, 'g', g)
end
local entered = redis.call('ZADD', KEYS[3], ARGV[6], id)
-- A changed session may be storable now: the demotion sweep tries it again.
redis.call('ZREM', base .. 'quarantine', id)
if tier ~= 'h' or actual == 'none' then
  redis.call('ZADD', KEYS[4], ARGV[5], id)
end
reindex(base, id, ix, ARGV[9], ARGV[5])
return {'ok', entered}
