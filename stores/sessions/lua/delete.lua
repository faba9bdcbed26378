-- Delete a session from the Redis tiers and indexes.
-- KEYS[1..5] the tenant's keys (see lib.lua), KEYS[6] hot hash, KEYS[7] cold hash
-- ARGV[1] session id, ARGV[2] cutoff_us,
-- ARGV[3] a fresh fence token ('' with the Redis cold tier, which needs none),
-- ARGV[4], ARGV[5] the incarnations PostgreSQL has marked deleted: only a copy of one of
--          them is removed ('*' removes any, with the Redis cold tier)
-- Returns 1 if a session that had not expired was deleted, else 0.
local v, c, ix, tier, n = locate(ARGV[1], KEYS[6], KEYS[7])
-- A promotion or save that read the row before it was marked must not land now.
if ARGV[3] ~= '' then bump(ARGV[1], ARGV[3]) end
if not tier then return 0 end
if ARGV[4] ~= '*' and n ~= ARGV[4] and n ~= ARGV[5] then return 0 end
erase(ARGV[1], KEYS[6], KEYS[7], ix)
if tonumber(c) <= tonumber(ARGV[2]) then return 0 end
return 1
