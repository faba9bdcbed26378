-- Count one delivery of a provider task's message (workers/deliveries.py states the rule).
-- KEYS[1] the task's delivery hash
-- ARGV[1] attempt number (request.retries), ARGV[2] now (Unix seconds, as text), ARGV[3] TTL seconds
-- Fields: f first delivery time, a highest attempt seen, n deliveries of that attempt,
-- l deliveries lost with their worker, in all.
-- Returns {deliveries of this attempt, lost in all, first delivery time, 1 if stale else 0};
-- a stale delivery (an attempt older than one already seen) changes no count.
local attempt = tonumber(ARGV[1])
redis.call('HSETNX', KEYS[1], 'f', ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'a', 'n', 'l', 'f')
local highest = tonumber(h[1] or '-1')
local n = tonumber(h[2] or '0')
local lost = tonumber(h[3] or '0')
local stale = 0
if attempt < highest then
  stale = 1
elseif attempt > highest then
  n = 1
  redis.call('HSET', KEYS[1], 'a', attempt, 'n', n)
else
  n = n + 1
  lost = lost + 1
  redis.call('HSET', KEYS[1], 'n', n, 'l', lost)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {n, lost, h[4], stale}
