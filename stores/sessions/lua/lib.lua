-- Helpers prepended to every session script (not a script of its own), after the key name
-- parts of keys.py (HOT_PART, COLD_PART, INDEX_PART, CHANNEL_INDEX: see keys.lua_constants).
-- Every script's KEYS start with the tenant's own keys, named by keys.py (the sweep
-- scripts declare, per segment, only those they use: see `segments`):
--   KEYS[1] idle zset, KEYS[2] created zset, KEYS[3] quarantine zset, KEYS[4] fence hash,
--   KEYS[5] cold index suffixes hash (`cix`)
-- and go on with the session keys the caller knows (see each script's header). All of
-- them carry the tenant's hash tag, so they share one slot. Two kinds of keys cannot be
-- named before the call: the index keys listed in a stored copy's `ix`, and the hashes of
-- sessions a script finds in a sorted set (idle.lua, purge.lua). Their names are built
-- from the prefix of the tenant's first key (never from ARGV), so they are in the same
-- slot.
-- Index suffixes are "\n"-joined lists (see keys.py).
-- Every copy of a session carries its incarnation `n` (random at creation) and its move
-- generation `g` (bumped by each promotion and each save over a cold copy) beside its
-- version `v`; a conditional step acts only if all three are still what it read.

local IDLE, CREATED, QUARANTINE, FENCE, CIX, BASE

-- Make the tenant whose five keys start at KEYS[k] the one the helpers below act on. BASE
-- is the tenant base ("hearth:s:{<tenant>}:"): KEYS[k] is "<base>idle".
local function tenant_at(k)
  IDLE, CREATED, QUARANTINE, FENCE, CIX = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  BASE = string.sub(IDLE, 1, #IDLE - 4)
end
tenant_at(1)

-- The sweep scripts (idle, demote, evict, quarantine, purge) act on one or more tenants,
-- a segment each, and declare of each tenant only the keys they use (`names`, in the order
-- keys.py's SWEEP_TENANT_KEYS gives for the script). ARGV[1..common] apply to all segments;
-- then each segment gives in ARGV its argument count, the KEYS index of its registry
-- bucket's hint keys (0 for none) and its arguments, `arity` per item; its KEYS are the
-- tenant's `names` keys, then `keys_each` session keys per item, then, in the first
-- segment of its bucket in the call, its bucket's hint keys: due-idle, due-created,
-- registry (see keys.py). On a cluster a call holds one segment (one slot, no hint keys);
-- on one Redis it holds many, each bucket's hint keys given once, and the script keeps the
-- hints itself (`settle`).
-- Yields, for each segment, the KEYS index of its first session key, the ARGV index of its
-- first argument and its argument count, with its tenant made current (IDLE... as named,
-- BASE, MEMBER its name in the registry, HINT the index of its hint keys). Nothing is
-- copied: a sweep over many small tenants pays for every table and string it makes.
local HINT, MEMBER = 0, ''

local function segments(common, names, arity, keys_each)
  local k, a = 1, common + 1
  local named = #names
  return function()
    if a > #ARGV then return nil end
    local na, h = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    IDLE, CREATED, QUARANTINE, FENCE, CIX = nil, nil, nil, nil, nil
    for i = 1, named do
      local name, key = names[i], KEYS[k + i - 1]
      if name == 'idle' then IDLE = key
      elseif name == 'cix' then CIX = key
      elseif name == 'created' then CREATED = key
      elseif name == 'quarantine' then QUARANTINE = key
      else FENCE = key end
    end
    -- "<prefix>{<tenant>}:<name>": the tenant is the hash tag, the base runs to its end.
    local first = KEYS[k]
    local open = string.find(first, '{', 1, true)
    local close = string.find(first, '}', open, true)
    BASE, MEMBER, HINT = string.sub(first, 1, close + 1), string.sub(first, open + 1, close - 1), h
    local s = k + named
    k = s + (na / arity) * keys_each
    if h == k then k = k + 3 end
    local at = a + 2
    a = at + na
    return s, at, na
  end
end

-- Hint writes queued by `settle`, by key and verb: writes to the same hint or registry key
-- go out as one command (see `flush`).
local settled = {}

local function queue(key, verb, member)
  settled[key] = settled[key] or {ZADD = {}, ZREM = {}, SREM = {}}
  local args = settled[key][verb]
  args[#args + 1] = member
end

local function queue_score(key, score, member)
  settled[key] = settled[key] or {ZADD = {}, ZREM = {}, SREM = {}}
  local args = settled[key].ZADD
  args[#args + 1] = score
  args[#args + 1] = member
end

-- Take the current tenant, which holds nothing in Redis any more, off the registry and
-- both hints (only on one Redis, as `settle`). Returns whether it did.
local function forget()
  if HINT == 0 then return false end
  queue(KEYS[HINT + 2], 'SREM', MEMBER)
  queue(KEYS[HINT], 'ZREM', MEMBER)
  queue(KEYS[HINT + 1], 'ZREM', MEMBER)
  return true
end

-- Set the current tenant's sweep hints to the truth: its oldest idle time (if `idle`) and
-- oldest creation time (if `created`, where the script may have emptied the tenant: then,
-- if it holds nothing in Redis any more, it leaves both hints and the registry instead).
-- A script settles the hints of the sets it changed: a set that only lost members leaves
-- its hint early, which costs a sweep one visit, never late. Only on one Redis, where hint
-- keys and tenant keys can meet in one script (HINT is not 0; see `segments`): being
-- atomic with the sweep's own changes, it needs none of the second looks the cluster's way
-- needs (see redis_hints.py). Returns whether it did (false: the caller reports instead).
local function settle(idle, created)
  if HINT == 0 then return false end
  local member = MEMBER
  local due_idle, due_created = KEYS[HINT], KEYS[HINT + 1]
  if created and redis.call('ZCARD', CREATED) == 0 then return forget() end
  if idle then
    local first = redis.call('ZRANGE', IDLE, 0, 0, 'WITHSCORES')
    if first[2] then queue_score(due_idle, first[2], member) else queue(due_idle, 'ZREM', member) end
  end
  if created then
    local first = redis.call('ZRANGE', CREATED, 0, 0, 'WITHSCORES')
    if first[2] then
      queue_score(due_created, first[2], member)
    else
      queue(due_created, 'ZREM', member)
    end
  end
  return true
end

-- Write what `settle` queued; every sweep script calls it last.
local function flush()
  for key, verbs in pairs(settled) do
    for _, verb in ipairs({'ZADD', 'ZREM', 'SREM'}) do
      local args = verbs[verb]
      for i = 1, #args, 400 do
        redis.call(verb, key, unpack(args, i, math.min(i + 399, #args)))
      end
    end
  end
  settled = {}
end

local function split(joined)
  local out = {}
  if joined and joined ~= '' then
    for part in string.gmatch(joined, '[^\n]+') do out[#out + 1] = part end
  end
  return out
end

-- Move session `id` from the indexes listed in `old_ix` to those in `new_ix`. The channel
-- index is scored by creation time (as a string: Lua numbers would print 1.9e+15).
local function reindex(id, old_ix, new_ix, created)
  if old_ix == new_ix then return end
  local old, new = split(old_ix), split(new_ix)
  local in_new, in_old = {}, {}
  for _, s in ipairs(new) do in_new[s] = true end
  for _, s in ipairs(old) do
    in_old[s] = true
    if not in_new[s] then redis.call('ZREM', BASE .. INDEX_PART .. s, id) end
  end
  for _, s in ipairs(new) do
    if not in_old[s] then
      local score = 0
      if string.sub(s, 1, #CHANNEL_INDEX) == CHANNEL_INDEX then score = created end
      redis.call('ZADD', BASE .. INDEX_PART .. s, score, id)
    end
  end
end

-- The fence token of session `id`'s bucket (first hex digit of its id). Whatever makes a
-- read of a PostgreSQL row stale before its hot copy exists (an eviction, a delete, an
-- in-place rewrite of the row) replaces the token, so a promotion or a save that read the
-- row carries the token it saw and is refused if it changed. A missing token is set to
-- `fresh` (a random value from the caller) when given: after Redis lost the hash, a token
-- read before the loss no longer matches.
local function fence_of(id, fresh)
  local bucket = string.sub(id, 1, 1)
  local token = redis.call('HGET', FENCE, bucket)
  if not token and fresh ~= '' then
    redis.call('HSET', FENCE, bucket, fresh)
    token = fresh
  end
  return token or ''
end

local function bump(id, token)
  redis.call('HSET', FENCE, string.sub(id, 1, 1), token)
end

-- The hot and cold hashes of a session a script found in a sorted set (callers that know
-- the id beforehand pass these in KEYS).
local function found_keys(id)
  return BASE .. HOT_PART .. id, BASE .. COLD_PART .. id
end

-- Remove session `id` (hashes `hot`, `cold`) from every Redis tier, sorted set and index
-- of its tenant.
local function erase(id, hot, cold, ix)
  reindex(id, ix, '', 0)
  redis.call('DEL', hot, cold)
  redis.call('HDEL', CIX, id)
  redis.call('ZREM', IDLE, id)
  redis.call('ZREM', CREATED, id)
  redis.call('ZREM', QUARANTINE, id)
end

-- Remove every key the current tenant holds in Redis but its fence hash (which the caller
-- deletes too if it may): a sweep found that all of its sessions go. `doomed` holds their
-- hot and cold hashes, `suffixes` their index suffixes. The end is that of erasing each
-- session in turn (its indexes hold only these sessions), in a few calls instead of
-- several per session: a sweep over many one-session tenants pays for every call.
local function wipe(doomed, suffixes)
  local prefix = BASE .. INDEX_PART
  -- A key named twice is deleted once: no need to tell repeated suffixes apart.
  for _, joined in ipairs(suffixes) do
    local at = 1
    while at <= #joined do
      local stop = string.find(joined, '\n', at, true) or #joined + 1
      if stop > at then doomed[#doomed + 1] = prefix .. string.sub(joined, at, stop - 1) end
      at = stop + 1
    end
  end
  local n = #doomed
  doomed[n + 1], doomed[n + 2], doomed[n + 3], doomed[n + 4] = IDLE, CREATED, QUARANTINE, CIX
  for i = 1, n + 4, 1000 do
    redis.call('DEL', unpack(doomed, i, math.min(i + 999, n + 4)))
  end
end

-- The index suffixes of a cold session (Redis cold tier). They live in the tenant's `cix`
-- hash, not in the cold hash, so that the purge still finds them once the cold hash has
-- expired by its TTL; cold hashes written before that keep theirs in `ix`.
local function cold_ix(id, own)
  return redis.call('HGET', CIX, id) or own or ''
end

-- The stored (version, created, index suffixes, tier, incarnation, generation) of session
-- `id`, hot tier first. Copies written before incarnations existed read as ('', '0').
local function locate(id, hot, cold)
  local h = redis.call('HMGET', hot, 'v', 'c', 'ix', 'n', 'g')
  if h[1] then return h[1], h[2], h[3] or '', 'h', h[4] or '', h[5] or '0' end
  local c = redis.call('HMGET', cold, 'v', 'c', 'ix', 'n', 'g')
  if c[1] then return c[1], c[2], cold_ix(id, c[3]), 'c', c[4] or '', c[5] or '0' end
  return nil, nil, nil, nil, nil, nil
end

-- Whether hot copy `hot` still is (incarnation, version, generation) as a caller read it.
local function hot_is(hot, n, v, g)
  local h = redis.call('HMGET', hot, 'v', 'n', 'g')
  return h[1] == v and (h[2] or '') == n and (h[3] or '0') == g
end
