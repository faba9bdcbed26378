-- Drop hot sessions whose copy PostgreSQL now holds, if unchanged since step 1 read them
-- (demotion, step 3; step 2 wrote the copies and returned which it wrote).
-- ARGV[1] a fresh fence token; then one segment per tenant (see `segments` in lib.lua):
-- KEYS its five keys (see lib.lua), then (hot hash, cold hash) of each session; arguments
-- (id, incarnation, version, generation) quadruples, in the order of the KEYS pairs
-- Returns per segment one code per quadruple: 'evicted', 'changed' (meanwhile: kept hot)
-- or 'gone'; then the oldest score left in the idle zset, or '' (the sweep's hint of
-- the tenant moves on to that score: see redis_hints.py), and how many sessions the tenant
-- still holds in Redis (none: the sweep takes it off the registry).
local replies = {}
for s, a, na in segments(1, {'idle', 'created', 'quarantine', 'fence', 'cix'}, 4, 2) do
  local out = {}
  for i = 0, na / 4 - 1 do
    local j = a + 4 * i
    local id = ARGV[j]
    local hot, cold = KEYS[s + 2 * i], KEYS[s + 2 * i + 1]
    if hot_is(hot, ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]) then
      local ix = redis.call('HGET', hot, 'ix')
      erase(id, hot, cold, ix or '')
      bump(id, ARGV[1])
      out[#out + 1] = 'evicted'
    elseif redis.call('EXISTS', hot) == 1 then
      out[#out + 1] = 'changed'
    else
      out[#out + 1] = 'gone'
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
