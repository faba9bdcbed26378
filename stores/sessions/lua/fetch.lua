-- Read several sessions of one tenant at once (listings).
-- KEYS[1..5] the tenant's keys (see lib.lua), then (hot hash, cold hash) of each session
-- ARGV: the session ids, in the order of the KEYS pairs
-- Returns per id: 'h', document, incarnation | 'c', compressed document, incarnation |
-- '', '', ''.
local out = {}
for i = 1, #ARGV do
  local h = redis.call('HMGET', KEYS[4 + 2 * i], 'd', 'n')
  if h[1] then
    out[#out + 1] = 'h'
    out[#out + 1] = h[1]
    out[#out + 1] = h[2] or ''
  else
    local c = redis.call('HMGET', KEYS[5 + 2 * i], 'z', 'n')
    out[#out + 1] = c[1] and 'c' or ''
    out[#out + 1] = c[1] or ''
    out[#out + 1] = c[2] or ''
  end
end
return out
