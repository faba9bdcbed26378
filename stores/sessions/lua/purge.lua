-- Remove a batch of sessions created at or before the cutoff from every tier and index.
-- KEYS[1] created zset
-- ARGV[1] tenant base, ARGV[2] cutoff_us, ARGV[3] batch size
-- A cold hash that expired by its TTL before the purge came is gone, but its index
-- suffixes are still in the `cix` hash (see lib.lua): its index entries go too.
-- Returns {how many sessions were removed, how many the tenant still holds in Redis}.
local base = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
  local _, _, ix, tier = locate(base, id)
  if not tier then ix = cold_ix(base, id, '') end
  erase(base, id, ix)
end
local left = redis.call('ZCARD', KEYS[1])
if left == 0 then
  -- Nothing of the tenant is left in Redis: the caller takes it off the registry. A missing
  -- fence token only ever refuses a promotion (see lib.lua), so the hash can go too.
  redis.call('DEL', base .. 'fence', base .. 'cix')
end
return {#ids, left}
