-- Move hot sessions to the Redis cold tier if unchanged since step 1 read them.
-- KEYS[1..5] the tenant's keys (see lib.lua), then (hot hash, cold hash) of each session
-- ARGV[1] cold TTL (ms), then (id, incarnation, version, generation, compressed document)
-- quintuples, in the order of the KEYS pairs
-- Indexes and the created zset stay: with the Redis cold tier they cover both tiers. The
-- session's index suffixes move to the tenant's `cix` hash (see lib.lua).
-- Returns {how many sessions moved, the oldest score left in the idle zset or ''} (the
-- sweep's hint of the tenant moves on to that score: see redis_hints.py).
local moved = 0
for i = 2, #ARGV, 5 do
  local id, n, v, g = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local k = 6 + 2 * ((i - 2) / 5)
  local hot, cold = KEYS[k], KEYS[k + 1]
  if hot_is(hot, n, v, g) then
    local h = redis.call('HMGET', hot, 'c', 'ix')
    redis.call('HSET', cold, 'z', ARGV[i + 4], 'v', v, 'c', h[1], 'n', n, 'g', g)
    redis.call('PEXPIRE', cold, ARGV[1])
    redis.call('HSET', CIX, id, h[2] or '')
    redis.call('DEL', hot)
    redis.call('ZREM', IDLE, id)
    moved = moved + 1
  end
end
local first = redis.call('ZRANGE', IDLE, 0, 0, 'WITHSCORES')
return {moved, first[2] or ''}
