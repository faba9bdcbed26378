-- Remove a batch of sessions created at or before the cutoff from every tier and index.
-- ARGV[1] cutoff_us, ARGV[2] batch size per tenant; then one segment per tenant (see
-- `segments` in lib.lua): KEYS its five keys (see lib.lua; the session hashes are those of
-- the ids found in the created zset), no arguments of its own
-- A cold hash that expired by its TTL before the purge came is gone, but its index
-- suffixes are still in the `cix` hash (see lib.lua): its index entries go too.
-- Returns per segment {how many sessions were removed, how many the tenant still holds in
-- Redis}.
local replies = {}
for _ in segments(2, {'idle', 'created', 'quarantine', 'fence', 'cix'}, 1, 0) do
  local ids = redis.call('ZRANGEBYSCORE', CREATED, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
  for _, id in ipairs(ids) do
    local hot, cold = found_keys(id)
    local _, _, ix, tier = locate(id, hot, cold)
    if not tier then ix = cold_ix(id, '') end
    erase(id, hot, cold, ix)
  end
  local left = redis.call('ZCARD', CREATED)
  if left == 0 then
    -- Nothing of the tenant is left in Redis: it leaves the registry (here or by the
    -- caller). A missing fence token only ever refuses a promotion (see lib.lua), so the
    -- hash can go too.
    redis.call('DEL', FENCE, CIX)
  end
  settle(true, true)
  replies[#replies + 1] = {#ids, left}
end
flush()
return replies
