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
for S, A in segments(1, {'idle', 'cix'}, 5, 2) do
  local moved = 0
  for i = 1, #A, 5 do
    local id, n, v, g = A[i], A[i + 1], A[i + 2], A[i + 3]
    local k = 1 + 2 * ((i - 1) / 5)
    local hot, cold = S[k], S[k + 1]
    -- hot_is, and the fields the move copies, in one call
    local h = redis.call('HMGET', hot, 'v', 'n', 'g', 'c', 'ix')
    if h[1] == v and (h[2] or '') == n and (h[3] or '0') == g then
      redis.call('HSET', cold, 'z', A[i + 4], 'v', v, 'c', h[4], 'n', n, 'g', g)
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
