-- Move hot sessions to the Redis cold tier if unchanged since step 1 read them.
-- KEYS[1] idle zset
-- ARGV[1] tenant base, ARGV[2] cold TTL (ms), then (id, version, compressed) triples
-- Indexes and the created zset stay: with the Redis cold tier they cover both tiers.
-- Returns how many sessions moved.
local base, moved = ARGV[1], 0
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local hot = base .. 'h:' .. id
  local h = redis.call('HMGET', hot, 'v', 'c', 'ix')
  if h[1] == ARGV[i + 1] then
    local cold = base .. 'c:' .. id
    redis.call('HSET', cold, 'z', ARGV[i + 2], 'v', h[1], 'c', h[2], 'ix', h[3] or '')
    redis.call('PEXPIRE', cold, ARGV[2])
    redis.call('DEL', hot)
    redis.call('ZREM', KEYS[1], id)
    moved = moved + 1
  end
end
return moved
