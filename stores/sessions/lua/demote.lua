-- Move hot sessions to the Redis cold tier if unchanged since step 1 read them.
-- ARGV[1] cold TTL (ms); then one segment per tenant (see `segments` in lib.lua): KEYS its
-- idle zset and cold index hash, then (hot hash, cold hash) of each session; arguments (id,
-- incarnation, version, generation, compressed document) quintuples, in the order of the
-- KEYS pairs
-- Indexes and the created zset stay: with the Redis cold tier they cover both tiers. The
-- session's index suffixes move to the tenant's `cix` hash (see lib.lua).
-- Returns per segment {how many sessions moved, the oldest score left in the idle zset or
-- ''} (the sweep's hint of the tenant moves on to that score: see redis_hints.py; '' too
-- when the script set the hint itself).
local replies = {}
for s, a, na in segments(1, {'idle', 'cix'}, 5, 2) do
  local moved = 0
  for i = 0, na / 5 - 1 do
    local j = a + 5 * i
    local id, n, v, g = ARGV[j], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]
    local hot, cold = KEYS[s + 2 * i], KEYS[s + 2 * i + 1]
    -- hot_is, and the fields the move copies, in one call
    local h = redis.call('HMGET', hot, 'v', 'n', 'g', 'c', 'ix')
    if h[1] == v and (h[2] or '') == n and (h[3] or '0') == g then
      redis.call('HSET', cold, 'z', ARGV[j + 4], 'v', v, 'c', h[4], 'n', n, 'g', g)
      redis.call('PEXPIRE', cold, ARGV[1])
      redis.call('HSET', CIX, id, h[5] or '')
      redis.call('DEL', hot)
      redis.call('ZREM', IDLE, id)
      moved = moved + 1
    end
  end
  if settle(true, false) then
    replies[#replies + 1] = {moved, ''}
  else
    local first = redis.call('ZRANGE', IDLE, 0, 0, 'WITHSCORES')
    replies[#replies + 1] = {moved, first[2] or ''}
  end
end
flush()
return replies
