-- Helpers prepended to every session script (not a script of its own).
-- Every key a script touches starts with the tenant base ("hearth:s:{<tenant>}:"), so all
-- of them share one hash slot. Index suffixes are "\n"-joined lists (see keys.py).

local function split(joined)
  local out = {}
  if joined and joined ~= '' then
    for part in string.gmatch(joined, '[^\n]+') do out[#out + 1] = part end
  end
  return out
end

-- Move session `id` from the indexes listed in `old_ix` to those in `new_ix`. The channel
-- index is scored by creation time (as a string: Lua numbers would print 1.9e+15).
local function reindex(base, id, old_ix, new_ix, created)
  if old_ix == new_ix then return end
  local old, new = split(old_ix), split(new_ix)
  local in_new, in_old = {}, {}
  for _, s in ipairs(new) do in_new[s] = true end
  for _, s in ipairs(old) do
    in_old[s] = true
    if not in_new[s] then redis.call('ZREM', base .. 'i:' .. s, id) end
  end
  for _, s in ipairs(new) do
    if not in_old[s] then
      local score = 0
      if string.sub(s, 1, 3) == 'ch:' then score = created end
      redis.call('ZADD', base .. 'i:' .. s, score, id)
    end
  end
end

-- Sessions move between Redis and the PostgreSQL cold tier; counting the moves (per
-- bucket of ids) lets a reader that found a session in neither place tell "missing" from
-- "moved while I looked": if the count did not change, it is missing.
local function bucket(id)
  return string.sub(id, 1, 2)
end

local function moves(base, id)
  return redis.call('HGET', base .. 'moves', bucket(id)) or '0'
end

local function moved(base, id)
  redis.call('HINCRBY', base .. 'moves', bucket(id), 1)
end

-- Remove session `id` from every tier, sorted set and index of its tenant.
local function erase(base, id, ix)
  reindex(base, id, ix, '', 0)
  redis.call('DEL', base .. 'h:' .. id, base .. 'c:' .. id)
  redis.call('ZREM', base .. 'idle', id)
  redis.call('ZREM', base .. 'created', id)
  redis.call('ZREM', base .. 'quarantine', id)
end

-- The stored (version, created, index suffixes, tier) of session `id`, hot tier first.
local function locate(base, id)
  local h = redis.call('HMGET', base .. 'h:' .. id, 'v', 'c', 'ix')
  if h[1] then return h[1], h[2], h[3] or '', 'h' end
  local c = redis.call('HMGET', base .. 'c:' .. id, 'v', 'c', 'ix')
  if c[1] then return c[1], c[2], c[3] or '', 'c' end
  return nil, nil, nil, nil
end
