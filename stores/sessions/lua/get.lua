-- Read a session: the hot document, else the compressed cold one (Redis cold tier).
-- KEYS[1] hot hash, KEYS[2] cold hash
-- Returns {'h', document} or {'c', compressed document, version} or false.
local d = redis.call('HGET', KEYS[1], 'd')
if d then return {'h', d} end
local c = redis.call('HMGET', KEYS[2], 'z', 'v')
if c[1] then return {'c', c[1], c[2]} end
return false
