-- Read a session: the hot document, else the compressed cold one (Redis cold tier).
-- KEYS[1..5] the tenant's keys (see lib.lua), KEYS[6] hot hash, KEYS[7] cold hash
-- ARGV[1] session id, ARGV[2] a fresh fence token to set if the bucket has none, or '' to
-- set none (see lib.lua)
-- Returns {'h', document}, {'c', compressed document, version, incarnation, generation},
-- or {'n', fence token} when Redis holds neither: the caller looks in PostgreSQL and hands
-- the token to promote.lua.
local d = redis.call('HGET', KEYS[6], 'd')
if d then return {'h', d} end
local c = redis.call('HMGET', KEYS[7], 'z', 'v', 'n', 'g')
if c[1] then return {'c', c[1], c[2], c[3] or '', c[4] or '0'} end
return {'n', fence_of(ARGV[1], ARGV[2])}
