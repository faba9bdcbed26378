-- Read a batch of hot sessions idle since the cutoff, oldest first (demotion, step 1).
-- ARGV[1] cutoff_us, ARGV[2] batch size per tenant; then one segment per tenant (see
-- `segments` in lib.lua): KEYS its idle zset (the hot hashes are those of the ids found in
-- it), no arguments of its own
-- Returns per segment {id, document, version, created_us, index suffixes, incarnation,
-- generation, ...}.
local replies = {}
for _ in segments(2, {'idle'}, 1, 0) do
  local ids = redis.call('ZRANGEBYSCORE', IDLE, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
  local out = {}
  for _, id in ipairs(ids) do
    local hot = found_keys(id)
    local h = redis.call('HMGET', hot, 'd', 'v', 'c', 'ix', 'n', 'g')
    if h[1] then
      out[#out + 1] = id
      out[#out + 1] = h[1]
      out[#out + 1] = h[2]
      out[#out + 1] = h[3]
      out[#out + 1] = h[4] or ''
      out[#out + 1] = h[5] or ''
      out[#out + 1] = h[6] or '0'
    else
      redis.call('ZREM', IDLE, id)
    end
  end
  -- A tenant with nothing read needs its hint moved on; the others' moves do that.
  if #out == 0 then settle(true, false) end
  replies[#replies + 1] = out
end
flush()
return replies
