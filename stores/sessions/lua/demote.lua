-- Move hot sessions to the Redis cold tier if unchanged since step 1 read them.
-- KEYS[1] idle zset
-- ARGV[1] tenant base, ARGV[2] cold TTL (ms), then (id, incarnation, version, generation,
-- compressed document) quintuples
-- Indexes and the created zset stay: with the Redis cold tier they cover both tiers. The
-- session's index suffixes move to the tenant's `cix` hash (see lib.lua).
-- Returns how many sessions moved.
local base, moved = ARGV[1], 0
for i = 3, #ARGV, 5 do
  local id, n, v, g = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if hot_is(base, id, n, v, g) then
    local hot, cold = base .. 'h:' .. id, base .. 'c:' .. id
    local h = redis.call('HMGET', hot, 'c', 'ix')
    redis.call('HSET', cold, 'z', ARGV[i + 4], 'v', v, 'c', h[1], 'n', n, 'g', g)
    redis.call('PEXPIRE', cold, ARGV[2])
    redis.call('HSET', base .. 'cix', id, h[2] or '')
    redis.call('DEL', hot)
    redis.call('ZREM', KEYS[1], id)
    moved = moved + 1
  end
end
return moved
