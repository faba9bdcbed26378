-- Fence a rewrite of a PostgreSQL row in place (a migration mark on a cold session): the
-- caller holds the row locked, and its change commits only if this returns 1.
-- KEYS[1..5] the tenant's keys (see lib.lua), KEYS[6] hot hash, KEYS[7] cold hash
-- ARGV[1] session id, ARGV[2] a fresh fence token
-- Returns 0 if the session is hot (rewrite the hot copy instead); else replaces the fence
-- token, so that a promotion which read the row before the rewrite cannot land, and
-- returns 1.
if redis.call('EXISTS', KEYS[6]) == 1 then return 0 end
bump(ARGV[1], ARGV[2])
return 1
