-- Set aside hot sessions the cold tier refused, each only if unchanged since it was read.
-- ARGV[1] now_us; then one segment per tenant (see `segments` in lib.lua): KEYS its idle
-- and quarantine zsets, then the hot hash of each session; arguments (id, incarnation,
-- version, generation) quadruples, in the order of the hot hashes
-- A quarantined session stays hot and readable but leaves the idle set, so later sweeps do
-- not read it again; its next save puts it back (see save.lua).
-- Returns per segment how many sessions were set aside.
local replies = {}
for s, a, na in segments(1, {'idle', 'quarantine'}, 4, 1) do
  local count = 0
  for i = 0, na / 4 - 1 do
    local j = a + 4 * i
    local id = ARGV[j]
    if hot_is(KEYS[s + i], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]) then
      redis.call('ZREM', IDLE, id)
      redis.call('ZADD', QUARANTINE, ARGV[1], id)
      count = count + 1
    end
  end
  settle(true, false)
  replies[#replies + 1] = count
end
flush()
return replies
