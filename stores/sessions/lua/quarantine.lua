-- Set aside hot sessions the cold tier refused, each only if unchanged since it was read.
-- KEYS[1] idle zset, KEYS[2] quarantine zset
-- ARGV[1] tenant base, ARGV[2] now_us, then (id, version) pairs
-- A quarantined session stays hot and readable but leaves the idle set, so later sweeps do
-- not read it again; its next save puts it back (see save.lua).
-- Returns how many sessions were set aside.
local base, n = ARGV[1], 0
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', base .. 'h:' .. id, 'v') == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    n = n + 1
  end
end
return n
