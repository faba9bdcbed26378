"""The cold tiers a RedisSessionStore demotes idle sessions to.

* :class:`PostgresColdTier` (``cold_postgres.py``) — the ``sessions`` table: JSONB
  document plus the indexed columns every lookup needs. Demoted sessions leave Redis
  memory entirely, so a Redis restart loses only the sessions that were hot.
* :class:`RedisColdTier` — compressed documents in Redis itself with a long TTL, for
  deployments with no database. Its keys sit beside the hot ones (see ``keys.py``) and the
  store's scripts move sessions between the two atomically.

A ``sessions`` row is the durable fence of the moves between Redis and PostgreSQL (see
``redis.py`` for the protocol). It carries the session's incarnation and move generation
beside its version, and a ``state``: ``cold`` (the session's copy), ``hot`` (promoted: the
hot copy is the truth, the row a backup of it) or ``deleted`` (a marker that stops a
demotion in flight from bringing the session back). Only the purge removes rows. Every
write of a row that a hot copy's deletion depends on commits with ``synchronous_commit =
on``, whatever the server's default.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

import zstandard

from stores.sessions.models import Session
from stores.sessions.query import Query
from stores.sessions.shards import Shard


@dataclass(frozen=True)
class ColdRow:
    """A session as the PostgreSQL cold tier holds it."""

    id: UUID
    version: int
    created_at: datetime
    data: str
    incarnation: str = ""
    generation: int = 0
    state: str = "cold"


@dataclass
class Claim:
    """A row taken for a promotion inside a transaction that is still open.

    The row is already marked hot with its generation bumped (``row`` shows it so), and
    holds its lock; the change commits only if :meth:`keep` is called before the block ends.
    """

    row: ColdRow | None
    kept: bool = False

    def keep(self) -> None:
        """Commit the claim when the block ends: the hot copy was written."""
        self.kept = True


class ColdTier:
    """What a RedisSessionStore asks of its cold tier: the fenced steps of the moves.

    Two strategies: :class:`PostgresColdTier` keeps rows, each the durable fence of its
    session's moves (locate, claim for promotion, conditional put of a demoted batch, delete
    marker, in-place rewrite, purge, counts); :class:`RedisColdTier` keeps compressed copies
    beside the hot ones, moved by the store's scripts alone. The defaults here are those of
    a tier that keeps no rows: nothing to locate, claim, list or purge.
    """

    name: ClassVar[str]
    """The tier's name, as the scripts and the configuration take it."""

    in_redis: ClassVar[bool]
    """Whether cold copies live in Redis (the scripts move them) rather than in rows."""

    ROW_STEPS: ClassVar[tuple[str, ...]] = (
        "locate",
        "locate_many",
        "claim",
        "put",
        "mark_deleted",
        "rewrite",
        "find_ids",
        "newest_ids_by_channel",
        "purge",
        "count_expired",
        "stats",
    )
    """The steps a tier keeping rows must define itself: the defaults here keep nothing,
    and a row tier that fell back on one would lose sessions without an error."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Checked before anything else wraps the inherited defaults (see TranslatedEdge).
        if not cls.in_redis:
            own = {
                name for klass in cls.__mro__[: cls.__mro__.index(ColdTier)] for name in vars(klass)
            }
            missing = [step for step in ColdTier.ROW_STEPS if step not in own]
            if missing:
                raise TypeError(f"{cls.__name__} keeps rows but does not define {missing}")
        super().__init_subclass__(**kwargs)

    @property
    def ttl_ms(self) -> int:
        """How long a cold copy kept in Redis lives, in milliseconds (0: none kept there)."""
        return 0

    def pack(self, data: bytes) -> bytes:
        """A document as a cold copy in Redis holds it."""
        return data

    def unpack(self, blob: bytes) -> bytes:
        """The document of a cold copy read from Redis."""
        return blob

    def locate(self, tenant_id: UUID, session_id: UUID) -> ColdRow | None:
        """The row of one session unless it marks a deletion, expired or not."""
        return None

    def locate_many(self, tenant_id: UUID, ids: Sequence[UUID]) -> dict[UUID, ColdRow]:
        """The rows of several sessions of one tenant, deletion markers left out."""
        return {}

    @contextmanager
    def claim(self, tenant_id: UUID, session_id: UUID, cutoff: datetime) -> Iterator[Claim]:
        """Take a session's unexpired, undeleted row for a promotion (see :class:`Claim`)."""
        yield Claim(None)

    def put(
        self, entries: Sequence[tuple[str, int, bytes]], cutoff: datetime
    ) -> tuple[set[tuple[UUID, UUID]], list[int]]:
        """Write demoted copies as far as the fence allows: the (tenant id, id) pairs
        written, and the positions of the entries refused outright."""
        return set(), []

    def mark_deleted(
        self, tenant_id: UUID, session_id: UUID, hot: tuple[str, bytes] | None
    ) -> ColdRow | None:
        """Mark a session deleted; its row as it was before (None: there was none)."""
        return None

    def rewrite(
        self,
        session: Session,
        data: bytes,
        *,
        incarnation: str,
        expected_version: int,
        fence: Callable[[], bool],
    ) -> bool:
        """Replace a row in place if it still holds ``incarnation`` at ``expected_version``
        and ``fence`` agrees; True if it did."""
        return False

    def find_ids(self, q: Query, after: str | None, limit: int, cutoff: datetime) -> list[str]:
        """Up to ``limit`` ids of unexpired rows matching ``q`` after ``after``, by id."""
        return []

    def newest_ids_by_channel(
        self, tenant_id: UUID, channel: str, user_channel_id: str, cutoff: datetime, limit: int
    ) -> list[UUID]:
        """The ids of the newest unexpired rows of a channel identity, newest first."""
        return []

    def purge(self, cutoff: datetime, limit: int, *, shard: Shard | None = None) -> int:
        """Remove up to ``limit`` rows created at or before ``cutoff`` of ``shard``'s
        tenants; how many were cold copies."""
        return 0

    def count_expired(self, cutoff: datetime) -> int:
        """How many cold rows were created at or before ``cutoff``."""
        return 0

    def stats(self) -> tuple[int, int] | None:
        """How many cold copies the rows hold and their size (None: the store samples
        Redis instead)."""
        return None

    def close(self) -> None:
        """Release what the tier holds open."""


class RedisColdTier(ColdTier):
    """Idle sessions kept in Redis as compressed documents with a long TTL."""

    name = "redis"
    in_redis = True

    def __init__(self, *, ttl: timedelta, level: int = 1) -> None:
        self.ttl = ttl
        # Level 1 compresses session JSON about as well as zlib's default at several times
        # the speed, which is what a sweep moving thousands of sessions a second needs.
        self.level = level
        self._local = threading.local()

    @property
    def ttl_ms(self) -> int:
        """The TTL of a cold key in milliseconds."""
        return int(self.ttl / timedelta(milliseconds=1))

    def pack(self, data: bytes) -> bytes:
        """A document compressed, as its cold copy holds it."""
        return self._codecs()[0].compress(data)

    def unpack(self, blob: bytes) -> bytes:
        """The document of a compressed cold copy."""
        return self._codecs()[1].decompress(blob)

    def _codecs(self) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
        # zstandard's (de)compressor objects must not be shared between threads; making
        # one per call costs as much as compressing a session, so each thread keeps its own.
        codecs: tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor] | None = getattr(
            self._local, "codecs", None
        )
        if codecs is None:
            codecs = (zstandard.ZstdCompressor(level=self.level), zstandard.ZstdDecompressor())
            self._local.codecs = codecs
        return codecs
