-- Remove a batch of sessions created at or before the cutoff from every tier and index.
-- KEYS[1] created zset
-- ARGV[1] tenant base, ARGV[2] cutoff_us, ARGV[3] batch size
-- Returns how many sessions were removed.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
  local v, c, ix = locate(ARGV[1], id)
  erase(ARGV[1], id, ix)
end
return #ids
