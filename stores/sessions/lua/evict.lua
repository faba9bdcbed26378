-- Drop hot sessions whose copy PostgreSQL now holds, if unchanged since step 1 read them
-- (demotion, step 3; step 2 wrote the copies and returned which it wrote).
-- ARGV[1] a fresh fence token; then one segment per tenant (see `segments` in lib.lua):
-- KEYS its five keys (see lib.lua), then (hot hash, cold hash) of each session; arguments
-- (id, incarnation, version, generation) quadruples, in the order of the KEYS pairs
-- Returns per segment one code per quadruple: 'e' evicted, 'c' changed meanwhile (kept
-- hot), 'g' gone; then the oldest score left in the idle zset, or '' (the sweep's hint of
-- the tenant moves on to that score: see redis_hints.py), and how many sessions the tenant
-- still holds in Redis (none: the sweep takes it off the registry).
local replies = {}
for S, A in segments(1, {'idle', 'created', 'quarantine', 'fence', 'cix'}, 4, 2) do
  local out = {}
  for i = 1, #A, 4 do
    local id = A[i]
    local k = 1 + 2 * ((i - 1) / 4)
    local hot, cold = S[k], S[k + 1]
    if hot_is(hot, A[i + 1], A[i + 2], A[i + 3]) then
      local ix = redis.call('HGET', hot, 'ix')
      erase(id, hot, cold, ix or '')
      bump(id, ARGV[1])
      out[#out + 1] = 'e'
    elseif redis.call('EXISTS', hot) == 1 then
      out[#out + 1] = 'c'
    else
      out[#out + 1] = 'g'
    end
  end
  local first = redis.call('ZRANGE', IDLE, 0, 0, 'WITHSCORES')
  out[#out + 1] = first[2] or ''
  out[#out + 1] = redis.call('ZCARD', CREATED)
  settle(true, true)
  replies[#replies + 1] = out
end
flush()
return replies
