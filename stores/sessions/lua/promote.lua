-- Bring a cold session the caller has read back into the hot tier.
-- KEYS[1] hot hash, KEYS[2] cold hash, KEYS[3] idle zset, KEYS[4] created zset
-- ARGV[1] session id, ARGV[2] JSON document, ARGV[3] its version, ARGV[4] its created_us,
-- ARGV[5] now_us, ARGV[6] tenant base, ARGV[7] index suffixes, ARGV[8] incarnation,
-- ARGV[9] cold tier, with what it needs:
--   'redis': ARGV[10] the generation read; the cold hash must still hold (n, v, g), it is
--            removed and the hot copy gets g + 1;
--   'postgres': ARGV[10] the generation the caller set on the row it holds locked (g + 1),
--            ARGV[11] the fence token get.lua gave before the row was read; indexes are
--            added here (they hold hot sessions only).
-- Returns {'ok'}, {'hot', document} if it is hot already, or {'moved'} if the cold copy
-- changed, moved or was deleted meanwhile (read again).
local d = redis.call('HGET', KEYS[1], 'd')
if d then return {'hot', d} end
local id, base, g = ARGV[1], ARGV[6], ARGV[10]
if ARGV[9] == 'redis' then
  local c = redis.call('HMGET', KEYS[2], 'v', 'n', 'g')
  if c[1] ~= ARGV[3] or (c[2] or '') ~= ARGV[8] or (c[3] or '0') ~= g then
    return {'moved'}
  end
  redis.call('DEL', KEYS[2])
  redis.call('HDEL', base .. 'cix', id)
  g = tostring(tonumber(g) + 1)
else
  if fence_of(base, id, '') ~= ARGV[11] then return {'moved'} end
  reindex(base, id, '', ARGV[7], ARGV[4])
end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'v', ARGV[3], 'c', ARGV[4], 'ix', ARGV[7],
  'n', ARGV[8], 'g', g)
redis.call('ZADD', KEYS[3], ARGV[5], id)
redis.call('ZADD', KEYS[4], ARGV[4], id)
return {'ok'}
