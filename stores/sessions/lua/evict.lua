-- Drop hot sessions whose copy PostgreSQL now holds, if unchanged since step 1 read them
-- (demotion, step 3; step 2 wrote the copies and returned which it wrote).
-- ARGV[1] a fresh fence token; then one segment per tenant (see `segments` in lib.lua):
-- KEYS its five keys (see lib.lua), then (hot hash, cold hash) of each session; arguments
-- (id, incarnation, version, generation) quadruples, in the order of the KEYS pairs
-- Returns per segment one code per quadruple: 'evicted', 'changed' (meanwhile: kept hot)
-- or 'gone'; then the oldest score left in the idle zset, or '' (the sweep's hint of
-- the tenant moves on to that score: see redis_hints.py), and how many sessions the tenant
-- still holds in Redis (none: the sweep takes it off the registry).
local replies = {}
for s, a, na in segments(1, {'idle', 'created', 'quarantine', 'fence', 'cix'}, 4, 2) do
  local out, ids, doomed, suffixes, fence = {}, {}, {}, {}, {}
  local seen = {}
  for i = 0, na / 4 - 1 do
    local j = a + 4 * i
    local id, hot = ARGV[j], KEYS[s + 2 * i]
    -- hot_is, and the index suffixes the eviction drops, in one call
    local h = redis.call('HMGET', hot, 'v', 'n', 'g', 'ix')
    if seen[id] then
      out[#out + 1] = 'gone'  -- named twice: the first evicts it (the moves come below)
    elseif h[1] == ARGV[j + 2] and (h[2] or '') == ARGV[j + 1] and (h[3] or '0') == ARGV[j + 3] then
      seen[id] = true
      ids[#ids + 1] = id
      doomed[#doomed + 1] = hot
      doomed[#doomed + 1] = KEYS[s + 2 * i + 1]
      suffixes[#suffixes + 1] = h[4] or ''
      -- A promotion or save that read the row before this must not land now (see lib.lua).
      fence[#fence + 1] = string.sub(id, 1, 1)
      fence[#fence + 1] = ARGV[1]
      out[#out + 1] = 'evicted'
    elseif h[1] or redis.call('EXISTS', hot) == 1 then
      out[#out + 1] = 'changed'
    else
      out[#out + 1] = 'gone'
    end
  end
  if #fence > 0 then redis.call('HSET', FENCE, unpack(fence)) end
  if #suffixes > 0 and #suffixes == redis.call('ZCARD', CREATED) then
    -- Every session the tenant held in Redis is evicted: its keys go at once (the fence
    -- hash stays: it guards the rows), and it leaves the registry (here or by the caller).
    wipe(doomed, suffixes)
    forget()
    out[#out + 1] = ''
    out[#out + 1] = 0
  else
    for k = 1, #ids do erase(ids[k], doomed[2 * k - 1], doomed[2 * k], suffixes[k]) end
    local first = redis.call('ZRANGE', IDLE, 0, 0, 'WITHSCORES')
    out[#out + 1] = first[2] or ''
    out[#out + 1] = redis.call('ZCARD', CREATED)
    settle(true, true)
  end
  replies[#replies + 1] = out
end
flush()
return replies
