-- Drop hot sessions whose copy PostgreSQL now holds, if unchanged since step 1 read them
-- (demotion, step 3; step 2 wrote the copies and returned which it wrote).
-- KEYS[1] idle zset, KEYS[2] created zset
-- ARGV[1] tenant base, ARGV[2] a fresh fence token, then (id, incarnation, version,
-- generation) quadruples
-- Returns one code per quadruple: 'e' evicted, 'c' changed meanwhile (kept hot), 'g' gone.
local base, out = ARGV[1], {}
for i = 3, #ARGV, 4 do
  local id = ARGV[i]
  if hot_is(base, id, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]) then
    local ix = redis.call('HGET', base .. 'h:' .. id, 'ix')
    erase(base, id, ix or '')
    bump(base, id, ARGV[2])
    out[#out + 1] = 'e'
  elseif redis.call('EXISTS', base .. 'h:' .. id) == 1 then
    out[#out + 1] = 'c'
  else
    out[#out + 1] = 'g'
  end
end
return out
