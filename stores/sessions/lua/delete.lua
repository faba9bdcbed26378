-- Delete a session from the Redis tiers and indexes and leave a tombstone.
-- KEYS[1] hot hash, KEYS[2] cold hash, KEYS[3] idle zset, KEYS[4] created zset,
-- KEYS[5] tombstone
-- ARGV[1] session id, ARGV[2] tenant base, ARGV[3] cutoff_us, ARGV[4] tombstone TTL (ms)
-- Returns 1 if a session that had not expired was deleted, else 0.
local v, c, ix, tier = locate(ARGV[2], ARGV[1])
redis.call('SET', KEYS[5], '1', 'PX', ARGV[4])
if not tier then return 0 end
erase(ARGV[2], ARGV[1], ix)
if tonumber(c) <= tonumber(ARGV[3]) then return 0 end
return 1
