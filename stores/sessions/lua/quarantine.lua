-- Set aside hot sessions the cold tier refused, each only if unchanged since it was read.
-- KEYS[1..5] the tenant's keys (see lib.lua), then the hot hash of each session
-- ARGV[1] now_us, then (id, incarnation, version, generation) quadruples, in the order of
-- the hot hashes
-- A quarantined session stays hot and readable but leaves the idle set, so later sweeps do
-- not read it again; its next save puts it back (see save.lua).
-- Returns how many sessions were set aside.
local count = 0
for i = 2, #ARGV, 4 do
  local id = ARGV[i]
  if hot_is(KEYS[6 + (i - 2) / 4], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]) then
    redis.call('ZREM', IDLE, id)
    redis.call('ZADD', QUARANTINE, ARGV[1], id)
    count = count + 1
  end
end
return count
