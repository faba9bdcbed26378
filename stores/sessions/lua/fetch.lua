-- Read several sessions of one tenant at once (listings).
-- KEYS[1] idle zset (only to route the call to the tenant's slot)
-- ARGV[1] tenant base, then session ids
-- Returns per id: 'h', document, incarnation | 'c', compressed document, incarnation |
-- '', '', ''.
local base, out = ARGV[1], {}
for i = 2, #ARGV do
  local h = redis.call('HMGET', base .. 'h:' .. ARGV[i], 'd', 'n')
  if h[1] then
    out[#out + 1] = 'h'
    out[#out + 1] = h[1]
    out[#out + 1] = h[2] or ''
  else
    local c = redis.call('HMGET', base .. 'c:' .. ARGV[i], 'z', 'n')
    out[#out + 1] = c[1] and 'c' or ''
    out[#out + 1] = c[1] or ''
    out[#out + 1] = c[2] or ''
  end
end
return out
