-- Read a session: the hot document, else the compressed cold one (Redis cold tier).
-- KEYS[1] hot hash, KEYS[2] cold hash
-- ARGV[1] tenant base, ARGV[2] session id
-- Returns {'h', document}, {'c', compressed document, version}, or {'n', moves} when Redis
-- holds neither, with the move count of the session's bucket (see lib.lua).
local d = redis.call('HGET', KEYS[1], 'd')
if d then return {'h', d} end
local c = redis.call('HMGET', KEYS[2], 'z', 'v')
if c[1] then return {'c', c[1], c[2]} end
return {'n', moves(ARGV[1], ARGV[2])}
