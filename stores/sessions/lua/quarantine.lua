-- Set aside hot sessions the cold tier refused, each only if unchanged since it was read.
-- KEYS[1] idle zset, KEYS[2] quarantine zset
-- ARGV[1] tenant base, ARGV[2] now_us, then (id, incarnation, version, generation)
-- quadruples
-- A quarantined session stays hot and readable but leaves the idle set, so later sweeps do
-- not read it again; its next save puts it back (see save.lua).
-- Returns how many sessions were set aside.
local base, count = ARGV[1], 0
for i = 3, #ARGV, 4 do
  local id = ARGV[i]
  if hot_is(base, id, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]) then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    count = count + 1
  end
end
return count
