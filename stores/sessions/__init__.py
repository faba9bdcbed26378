"""Sessions: a two-tier store of conversation state (hot tier, cold tier, sweeps)."""

from stores.sessions.cold_postgres import PostgresColdTier
from stores.sessions.coldtier import ColdTier, RedisColdTier
from stores.sessions.inmemory import InMemorySessionStore
from stores.sessions.models import (
    PendingMigration,
    Session,
    SessionStatus,
    StepVisit,
    Tier,
    TierStats,
)
from stores.sessions.redis import RedisSessionStore
from stores.sessions.shards import Shard
from stores.sessions.store import SessionStore

__all__ = [
    "ColdTier",
    "InMemorySessionStore",
    "PendingMigration",
    "PostgresColdTier",
    "RedisColdTier",
    "RedisSessionStore",
    "Session",
    "SessionStatus",
    "SessionStore",
    "Shard",
    "StepVisit",
    "Tier",
    "TierStats",
]
