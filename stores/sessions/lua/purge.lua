-- Remove a batch of sessions created at or before the cutoff from every tier and index.
-- ARGV[1] cutoff_us, ARGV[2] batch size per tenant; then one segment per tenant (see
-- `segments` in lib.lua): KEYS its five keys (see lib.lua; the session hashes are those of
-- the ids found in the created zset), no arguments of its own
-- A cold hash that expired by its TTL before the purge came is gone, but its index
-- suffixes are still in the `cix` hash (see lib.lua): its index entries go too.
-- Returns per segment {how many sessions were removed, how many the tenant still holds in
-- Redis}.
local cutoff, size = tonumber(ARGV[1]), tonumber(ARGV[2])
local replies = {}
for _ in segments(2, {'idle', 'created', 'quarantine', 'fence', 'cix'}, 1, 0) do
  -- The oldest batch and the next member, with their scores (creation times in
  -- microseconds, exact in a Lua number): whether the batch is all the tenant holds.
  local first = redis.call('ZRANGE', CREATED, 0, size, 'WITHSCORES')
  local ids = {}
  for i = 1, math.min(#first, 2 * size), 2 do
    if tonumber(first[i + 1]) > cutoff then break end
    ids[#ids + 1] = first[i]
  end
  local left
  if #ids == #first / 2 then
    left = 0
    -- Nothing of the tenant is left in Redis once these go: all its keys go at once, and
    -- it leaves the registry (here or by the caller). A missing fence token only ever
    -- refuses a promotion (see lib.lua), so the hash goes too.
    local doomed, suffixes = {FENCE}, {}
    -- A cold session's index suffixes are in the `cix` hash, one call for all of them; only
    -- a session without an entry there (hot, or cold from before the hash) is looked up.
    local found = #ids > 0 and redis.call('HMGET', CIX, unpack(ids)) or {}
    for i, id in ipairs(ids) do
      local hot, cold = found_keys(id)
      doomed[#doomed + 1] = hot
      doomed[#doomed + 1] = cold
      if found[i] then
        suffixes[#suffixes + 1] = found[i]
      else
        local h = redis.call('HMGET', hot, 'v', 'ix')
        suffixes[#suffixes + 1] = h[1] and (h[2] or '') or redis.call('HGET', cold, 'ix') or ''
      end
    end
    wipe(doomed, suffixes)
    forget()
  else
    for _, id in ipairs(ids) do
      local hot, cold = found_keys(id)
      local _, _, ix, tier = locate(id, hot, cold)
      if not tier then ix = cold_ix(id, '') end
      erase(id, hot, cold, ix)
    end
    left = redis.call('ZCARD', CREATED)
    settle(true, true)
  end
  replies[#replies + 1] = {#ids, left}
end
flush()
return replies
