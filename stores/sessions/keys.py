"""The Redis key layout of the session store: the one place that names Redis keys.

Every key of a tenant carries the tenant id as a hash tag, ``{<tenant id>}``, so all keys a
script touches live in one hash slot and the store runs unchanged on Redis Cluster. Scripts
get in KEYS every key whose name the caller can know: the tenant's own keys
(:func:`tenant_keys`) and the hashes of the sessions it names. Index keys listed in a stored
copy, and the hashes of sessions a sweep script finds in a sorted set, are named inside the
script from the prefix of its first key (see ``lua/lib.lua``), which carries the same tag.

``hearth:s:{T}:h:<id>``   hash, a hot session: ``d`` JSON document, ``v`` version,
                          ``c`` created_at (µs since the epoch), ``ix`` index suffixes,
                          ``n`` incarnation, ``g`` move generation, ``w`` the token of the
                          save call that wrote it
``hearth:s:{T}:c:<id>``   hash, a cold session in the Redis cold tier: ``z`` the document
                          compressed, ``v``, ``c``, ``ix``, ``n``, ``g``; expires after
                          max_age + a day
``hearth:s:{T}:idle``     sorted set, hot session id -> when its idle time started (µs);
                          the demotion sweep reads it (no keyspace notifications)
``hearth:s:{T}:created``  sorted set, id -> created_at (µs) of every session held in Redis;
                          the max-age purge reads it
``hearth:s:{T}:quarantine`` sorted set, hot sessions the cold tier refused -> when (µs);
                          they stay hot and leave the idle set until their next save
``hearth:s:{T}:fence``    hash, bucket (first hex digit of an id) -> a random token that
                          every eviction, delete and in-place rewrite of a PostgreSQL row
                          replaces; a promotion that read a row is refused if it changed
                          (see ``lua/lib.lua``)
``hearth:s:{T}:cix``      hash, a cold session's id -> its index suffixes (Redis cold
                          tier), kept apart from the cold hash so the purge finds them
                          after the cold hash expired
``hearth:s:{T}:i:<sfx>``  sorted set, a secondary index (members are session ids):
    ``ag:<agent>`` and ``ag:<agent>:<STATUS>``        sessions of an agent (score 0)
    ``cu:<customer>`` and ``cu:<customer>:<STATUS>``  sessions of a customer (score 0)
    ``sv:<scenario>:<version>``                        on a scenario version (score 0)
    ``st:<scenario>:<version>:<hash of step>``         on a step of it (score 0)
    ``um:<scenario>:<version>``                        ...without a pending migration
    ``ch:<hash of channel identity>``                  score created_at (µs): newest last
``hearth:s:{rNN}:tenants`` set, the registry: tenant ids with sessions in Redis, split into
                          64 buckets by tenant id (NN = 00..63), each its own slot
``hearth:s:{rNN}:due-idle`` sorted set, tenant id -> a score no later than its oldest idle
                          time: the demotion sweep visits only tenants due by it
``hearth:s:{rNN}:due-created`` sorted set, tenant id -> no later than its oldest created_at:
                          the purge visits only tenants due by it
                          (writers register and lower hints beside their scripts; the sweep
                          scripts set them inside on one Redis, and beside on a cluster: see
                          ``RedisCore.run`` and ``redis_hints.py``)

Score-0 indexes are read in id order with ZRANGEBYLEX, which gives keyset pagination. With
the PostgreSQL cold tier, indexes hold hot sessions only (the ``sessions`` table indexes the
cold ones); with the Redis cold tier they hold both.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from uuid import UUID

from stores.sessions import shards
from stores.sessions.models import Session
from stores.sessions.query import Query, QueryKind

PREFIX = "hearth:s:"

HOT_PART, COLD_PART, INDEX_PART = "h:", "c:", "i:"
"""What follows a tenant's base in the name of a hot hash, a cold hash and an index."""

CHANNEL_INDEX = "ch:"
"""The suffix start of a channel-identity index (scored by creation time, not 0)."""


def lua_constants() -> str:
    """The parts above as Lua locals, put before every script (``scripts.source``): a script
    naming a key it could not get in KEYS builds the name from these, so this module stays
    the one place that names keys."""
    return (
        f"local HOT_PART, COLD_PART, INDEX_PART = '{HOT_PART}', '{COLD_PART}', '{INDEX_PART}'\n"
        f"local CHANNEL_INDEX = '{CHANNEL_INDEX}'\n"
    )


REGISTRY_BUCKETS = shards.BUCKETS
"""How many buckets the tenant registry and the sweeps' hints are split into (the buckets
of ``shards.py``: a sweep of one shard reads only its own)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def bucket_of(tenant_id: UUID) -> int:
    """The registry bucket of a tenant."""
    return shards.bucket_of(tenant_id)


def registry(bucket: int) -> str:
    """The set of registered tenants of one bucket."""
    return f"{PREFIX}{{r{bucket:02d}}}:tenants"


def due_idle(bucket: int) -> str:
    """The demotion sweep's hint of one bucket: tenant -> earliest possible idle time."""
    return f"{PREFIX}{{r{bucket:02d}}}:due-idle"


def due_created(bucket: int) -> str:
    """The purge's hint of one bucket: tenant -> earliest possible created_at."""
    return f"{PREFIX}{{r{bucket:02d}}}:due-created"


@lru_cache(maxsize=REGISTRY_BUCKETS)
def hint_keys(bucket: int) -> tuple[str, str, str]:
    """The keys of one bucket that a sweep script keeps on one Redis, in the order
    ``settle`` of ``lua/lib.lua`` reads them: due-idle, due-created, registry."""
    return due_idle(bucket), due_created(bucket), registry(bucket)


@lru_cache(maxsize=1 << 14)
def base(tenant_id: UUID) -> str:
    """The prefix of every key of a tenant, hash tag included."""
    # Cached: a sweep names the keys of thousands of tenants per pass, twice each.
    return f"{PREFIX}{{{tenant_id}}}:"


def hot(tenant_base: str, session_id: UUID | str) -> str:
    """The hash of a hot session."""
    return f"{tenant_base}{HOT_PART}{session_id}"


def cold(tenant_base: str, session_id: UUID | str) -> str:
    """The hash of a cold session (Redis cold tier)."""
    return f"{tenant_base}{COLD_PART}{session_id}"


def idle(tenant_base: str) -> str:
    """The sorted set of hot sessions by the start of their idle time."""
    return tenant_base + "idle"


def created(tenant_base: str) -> str:
    """The sorted set of sessions held in Redis by creation time."""
    return tenant_base + "created"


def quarantine(tenant_base: str) -> str:
    """The sorted set of hot sessions the cold tier refused, by when (see quarantine.lua)."""
    return tenant_base + "quarantine"


def fence(tenant_base: str) -> str:
    """The hash of fence tokens, by bucket of ids (see ``lua/lib.lua``)."""
    return tenant_base + "fence"


def cold_indexes(tenant_base: str) -> str:
    """The hash of the index suffixes of cold sessions (Redis cold tier; see lib.lua)."""
    return tenant_base + "cix"


def index(tenant_base: str, suffix: str) -> str:
    """A secondary index."""
    return f"{tenant_base}{INDEX_PART}{suffix}"


def tenant_keys(tenant_base: str) -> list[str]:
    """The first KEYS of every script: idle, created, quarantine, fence, cold indexes (the
    idle set comes first: scripts take the tenant base from its name)."""
    return [
        idle(tenant_base),
        created(tenant_base),
        quarantine(tenant_base),
        fence(tenant_base),
        cold_indexes(tenant_base),
    ]


SWEEP_TENANT_KEYS: dict[str, tuple[str, ...]] = {
    "idle": ("idle",),
    "demote": ("idle", "cix"),
    "evict": ("idle", "created", "quarantine", "fence", "cix"),
    "quarantine": ("idle", "quarantine"),
    "purge": ("idle", "created", "quarantine", "fence", "cix"),
}
"""The tenant keys each sweep script declares per segment, by their suffixes (the script
names them alike in its ``segments`` call): only those it uses, since a sweep over many
small tenants sends them for every tenant."""


def sweep_tenant_keys(tenant_base: str, script: str) -> list[str]:
    """The first KEYS of a segment of sweep script ``script`` (:data:`SWEEP_TENANT_KEYS`)."""
    # Base + suffix is how idle(), created()... name these keys (a test holds the two to
    # each other); joined here directly, since this runs for every tenant a sweep visits.
    return [tenant_base + suffix for suffix in SWEEP_TENANT_KEYS[script]]


def session_keys(tenant_base: str, session_id: UUID | str) -> list[str]:
    """The KEYS of the per-session scripts: the tenant's keys, then hot and cold."""
    return [*tenant_keys(tenant_base), hot(tenant_base, session_id), cold(tenant_base, session_id)]


def batch_keys(tenant_base: str, session_ids: list[str]) -> list[str]:
    """The KEYS of a script over several sessions of a tenant: the tenant's keys, then each
    session's hot and cold hashes, in order."""
    return [*tenant_keys(tenant_base), *sessions_keys(tenant_base, session_ids)]


def sessions_keys(tenant_base: str, session_ids: list[str], *, cold_too: bool = True) -> list[str]:
    """Each session's hot hash (and cold hash, unless ``cold_too`` is false), in order: the
    session keys of a sweep script's segment."""
    out: list[str] = []
    for sid in session_ids:
        out.append(hot(tenant_base, sid))
        if cold_too:
            out.append(cold(tenant_base, sid))
    return out


@lru_cache(maxsize=8192)
def _digest(*parts: str) -> str:
    # Free text (channel ids, step ids) may hold any character; a digest keeps keys tidy
    # and the "\n"-joined suffix lists unambiguous.
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=16).hexdigest()


def channel_suffix(channel: str, user_channel_id: str) -> str:
    """The index of a channel identity."""
    return CHANNEL_INDEX + _digest(channel, user_channel_id)


def index_suffixes(session: Session) -> str:
    """Every index a session belongs to, "\\n"-joined, as scripts store them in ``ix``."""
    status = session.status.value
    out = [f"ag:{session.agent_id}", f"ag:{session.agent_id}:{status}"]
    if session.customer_profile_id is not None:
        cid = session.customer_profile_id
        out += [f"cu:{cid}", f"cu:{cid}:{status}"]
    if session.active_scenario_id is not None and session.active_scenario_version is not None:
        on = f"{session.active_scenario_id}:{session.active_scenario_version}"
        out.append("sv:" + on)
        if session.current_step_id is not None:
            out.append(f"st:{on}:{_digest(session.current_step_id)}")
        if session.pending_migration is None:
            out.append("um:" + on)
    out.append(channel_suffix(session.channel, session.user_channel_id))
    return "\n".join(out)


def query_suffix(q: Query) -> str:
    """The index a listing reads."""
    if q.kind is QueryKind.AGENT:
        return f"ag:{q.owner_id}" + (f":{q.status.value}" if q.status else "")
    if q.kind is QueryKind.CUSTOMER:
        return f"cu:{q.owner_id}" + (f":{q.status.value}" if q.status else "")
    on = f"{q.owner_id}:{q.scenario_version}"
    if q.kind is QueryKind.STEP:
        assert q.step_id is not None
        return f"st:{on}:{_digest(q.step_id)}"
    if q.kind is QueryKind.UNMARKED:
        return "um:" + on
    return "sv:" + on


def micros(when: datetime) -> int:
    """A datetime as integer microseconds since the epoch (exact, unlike float seconds)."""
    return (when - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    """The datetime of :func:`micros`."""
    return _EPOCH + timedelta(microseconds=value)
