-- Write a session if its stored state is the one the caller expects (optimistic lock).
-- KEYS[1] hot hash, KEYS[2] cold hash, KEYS[3] idle zset, KEYS[4] created zset,
-- KEYS[5] tombstone
-- ARGV[1]  session id
-- ARGV[2]  expected state: 'none' or '<version>:<created_us>'
-- ARGV[3]  the document: JSON (target 'h') or compressed (target 'c')
-- ARGV[4]  version of the document
-- ARGV[5]  created_us of the document
-- ARGV[6]  now_us: the session's idle time starts again here
-- ARGV[7]  cutoff_us: a session created at or before it has expired
-- ARGV[8]  tenant base
-- ARGV[9]  index suffixes of the document
-- ARGV[10] the PostgreSQL cold tier's state, as looked up by the caller: '?' (not looked
--          up), 'none' or '<version>:<created_us>'; 'none' for the Redis cold tier
-- ARGV[11] target: 'h' writes the hot tier (a cold session moves up); 'H' and 'C' rewrite
--          the session in place, only if it is in the hot or (Redis) cold tier, without
--          touching its idle time
-- ARGV[12] a token unique to this save call, kept with the hot copy: a retried call whose
--          first attempt landed recognises its own write by it
-- ARGV[13] the move count returned with '?' (see lib.lua), or ''
-- Rewriting in place (ARGV[11] 'H' or 'C') requires the session to be in that tier.
-- Returns {'ok'}, or {'state', actual} where actual is 'none', '<version>:<created_us>',
-- 'moved' (not in that tier) or '?' with the move count: the caller must look in
-- PostgreSQL (holding the row's lock) and call again.
-- With ARGV[10] 'none' and a move count, a session found nowhere that moved since the count
-- was taken is looked for again ('?') rather than reported missing.
local id, base = ARGV[1], ARGV[8]
local v, c, ix, tier = locate(base, id)
if not tier and ARGV[10] == 'none' and ARGV[13] ~= '' and moves(base, id) ~= ARGV[13] then
  return {'state', '?', moves(base, id)}
end
if not tier and ARGV[10] ~= 'none' then
  if ARGV[10] == '?' then return {'state', '?', moves(base, id)} end
  if redis.call('EXISTS', KEYS[5]) == 0 then
    -- In PostgreSQL, unless deleted since the caller looked; not in any Redis index.
    tier, ix = 'p', ''
    v, c = string.match(ARGV[10], '^(%d+):(%d+)$')
  end
end
local expired = tier and tonumber(c) <= tonumber(ARGV[7])
local actual = 'none'
if tier and not expired then actual = v .. ':' .. c end
if actual ~= ARGV[2] then
  if tier == 'h' and v == ARGV[4] and redis.call('HGET', KEYS[1], 'w') == ARGV[12] then
    return {'ok'}
  end
  return {'state', actual}
end
if ARGV[11] ~= 'h' then
  if string.lower(ARGV[11]) ~= tier then return {'state', 'moved'} end
  local key, field = KEYS[1], 'd'
  if tier == 'c' then key, field = KEYS[2], 'z' end
  redis.call('HSET', key, field, ARGV[3], 'v', ARGV[4], 'ix', ARGV[9], 'w', ARGV[12])
  reindex(base, id, ix, ARGV[9], c)
  return {'ok'}
end
if expired then
  erase(base, id, ix)
  ix = ''
elseif tier == 'c' then
  redis.call('DEL', KEYS[2])
elseif tier == 'p' then
  moved(base, id)
end
if tier == 'h' and not expired and ix == ARGV[9] then
  -- The common update: created_at and the indexes are unchanged.
  redis.call('HSET', KEYS[1], 'd', ARGV[3], 'v', ARGV[4], 'w', ARGV[12])
else
  redis.call('HSET', KEYS[1], 'd', ARGV[3], 'v', ARGV[4], 'c', ARGV[5], 'ix', ARGV[9],
    'w', ARGV[12])
end
redis.call('ZADD', KEYS[3], ARGV[6], id)
-- A changed session may be storable now: the demotion sweep tries it again.
redis.call('ZREM', base .. 'quarantine', id)
if tier ~= 'h' or expired then
  redis.call('ZADD', KEYS[4], ARGV[5], id)
end
if actual == 'none' then redis.call('DEL', KEYS[5]) end
reindex(base, id, ix, ARGV[9], ARGV[5])
return {'ok'}
