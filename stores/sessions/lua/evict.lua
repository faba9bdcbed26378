-- Drop hot sessions whose copy is now in PostgreSQL, if unchanged since step 1 read them
-- (demotion, step 3; step 2 wrote the copies).
-- KEYS[1] idle zset, KEYS[2] created zset
-- ARGV[1] tenant base, then (id, version) pairs
-- Returns one code per pair: 'e' evicted, 'c' changed meanwhile (kept hot), 'd' deleted
-- meanwhile (tombstone), 'g' gone otherwise.
local base, out = ARGV[1], {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local h = redis.call('HMGET', base .. 'h:' .. id, 'v', 'ix')
  if h[1] == ARGV[i + 1] then
    erase(base, id, h[2] or '')
    moved(base, id)
    out[#out + 1] = 'e'
  elseif h[1] then
    out[#out + 1] = 'c'
  elseif redis.call('EXISTS', base .. 'x:' .. id) == 1 then
    out[#out + 1] = 'd'
  else
    out[#out + 1] = 'g'
  end
end
return out
