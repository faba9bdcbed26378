-- Drop hot sessions whose copy PostgreSQL now holds, if unchanged since step 1 read them
-- (demotion, step 3; step 2 wrote the copies and returned which it wrote).
-- KEYS[1..5] the tenant's keys (see lib.lua), then (hot hash, cold hash) of each session
-- ARGV[1] a fresh fence token, then (id, incarnation, version, generation) quadruples, in
-- the order of the KEYS pairs
-- Returns one code per quadruple: 'e' evicted, 'c' changed meanwhile (kept hot), 'g' gone;
-- then the oldest score left in the idle zset, or '' (the sweep's hint of the tenant moves
-- on to that score: see redis_hints.py), and how many sessions the tenant still holds in
-- Redis (none: the sweep takes it off the registry).
local out = {}
for i = 2, #ARGV, 4 do
  local id = ARGV[i]
  local k = 6 + 2 * ((i - 2) / 4)
  local hot, cold = KEYS[k], KEYS[k + 1]
  if hot_is(hot, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]) then
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
return out
