-- Read several sessions of one tenant at once (listings).
-- KEYS[1] idle zset (only to route the call to the tenant's slot)
-- ARGV[1] tenant base, then session ids
-- Returns per id: 'h', document | 'c', compressed document | '', ''.
local base, out = ARGV[1], {}
for i = 2, #ARGV do
  local d = redis.call('HGET', base .. 'h:' .. ARGV[i], 'd')
  if d then
    out[#out + 1] = 'h'
    out[#out + 1] = d
  else
    local z = redis.call('HGET', base .. 'c:' .. ARGV[i], 'z')
    out[#out + 1] = z and 'c' or ''
    out[#out + 1] = z or ''
  end
end
return out
