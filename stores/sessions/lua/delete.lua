-- Delete a session from the Redis tiers and indexes.
-- KEYS[1] hot hash, KEYS[2] cold hash, KEYS[3] idle zset, KEYS[4] created zset
-- ARGV[1] session id, ARGV[2] tenant base, ARGV[3] cutoff_us,
-- ARGV[4] a fresh fence token ('' with the Redis cold tier, which needs none),
-- ARGV[5], ARGV[6] the incarnations PostgreSQL has marked deleted: only a copy of one of
--          them is removed ('*' removes any, with the Redis cold tier)
-- Returns 1 if a session that had not expired was deleted, else 0.
local v, c, ix, tier, n = locate(ARGV[2], ARGV[1])
-- A promotion or save that read the row before it was marked must not land now.
if ARGV[4] ~= '' then bump(ARGV[2], ARGV[1], ARGV[4]) end
if not tier then return 0 end
if ARGV[5] ~= '*' and n ~= ARGV[5] and n ~= ARGV[6] then return 0 end
erase(ARGV[2], ARGV[1], ix)
if tonumber(c) <= tonumber(ARGV[3]) then return 0 end
return 1
