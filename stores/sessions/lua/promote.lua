-- Bring a cold session the caller has read back into the hot tier.
-- KEYS[1] hot hash, KEYS[2] cold hash, KEYS[3] idle zset, KEYS[4] created zset,
-- KEYS[5] tombstone
-- ARGV[1] session id, ARGV[2] JSON document, ARGV[3] its version, ARGV[4] its created_us,
-- ARGV[5] now_us, ARGV[6] tenant base, ARGV[7] index suffixes,
-- ARGV[8] cold tier: 'redis' (the cold hash must still hold ARGV[3]; it is removed) or
--         'postgres' (the caller holds the row's lock and deletes the row afterwards, in
--         the same transaction; indexes are added here)
-- Returns {'ok'}, {'hot', document} if it is hot already, or {'moved'} if the cold copy
-- changed or was deleted meanwhile (read again).
local d = redis.call('HGET', KEYS[1], 'd')
if d then return {'hot', d} end
if redis.call('EXISTS', KEYS[5]) == 1 then return {'moved'} end
if ARGV[8] == 'redis' then
  if redis.call('HGET', KEYS[2], 'v') ~= ARGV[3] then return {'moved'} end
  redis.call('DEL', KEYS[2])
else
  reindex(ARGV[6], ARGV[1], '', ARGV[7], ARGV[4])
  moved(ARGV[6], ARGV[1])
end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'v', ARGV[3], 'c', ARGV[4], 'ix', ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
return {'ok'}
