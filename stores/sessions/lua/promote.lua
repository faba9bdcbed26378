-- Bring a cold session the caller has read back into the hot tier.
-- KEYS[1..5] the tenant's keys (see lib.lua), KEYS[6] hot hash, KEYS[7] cold hash
-- ARGV[1] session id, ARGV[2] JSON document, ARGV[3] its version, ARGV[4] its created_us,
-- ARGV[5] now_us, ARGV[6] index suffixes, ARGV[7] incarnation,
-- ARGV[8] cold tier, with what it needs:
--   'redis': ARGV[9] the generation read; the cold hash must still hold (n, v, g), it is
--            removed and the hot copy gets g + 1;
--   'postgres': ARGV[9] the generation the caller set on the row it holds locked (g + 1),
--            ARGV[10] the fence token get.lua gave before the row was read; indexes are
--            added here (they hold hot sessions only).
-- Returns {'ok'}, {'hot', document} if it is hot already, or {'moved'} if the cold copy
-- changed, moved or was deleted meanwhile (read again).
local hot, cold = KEYS[6], KEYS[7]
local d = redis.call('HGET', hot, 'd')
if d then return {'hot', d} end
local id, g = ARGV[1], ARGV[9]
if ARGV[8] == 'redis' then
  local c = redis.call('HMGET', cold, 'v', 'n', 'g')
  if c[1] ~= ARGV[3] or (c[2] or '') ~= ARGV[7] or (c[3] or '0') ~= g then
    return {'moved'}
  end
  redis.call('DEL', cold)
  redis.call('HDEL', CIX, id)
  g = tostring(tonumber(g) + 1)
else
  if fence_of(id, '') ~= ARGV[10] then return {'moved'} end
  reindex(id, '', ARGV[6], ARGV[4])
end
redis.call('HSET', hot, 'd', ARGV[2], 'v', ARGV[3], 'c', ARGV[4], 'ix', ARGV[6],
  'n', ARGV[7], 'g', g)
redis.call('ZADD', IDLE, ARGV[5], id)
redis.call('ZADD', CREATED, ARGV[4], id)
return {'ok'}
