"""The cold tiers a RedisSessionStore demotes idle sessions to.

* :class:`PostgresColdTier` — the ``sessions`` table: JSONB document plus the indexed
  columns every lookup needs. Demoted sessions leave Redis memory entirely, so a Redis
  restart loses only the sessions that were hot.
* :class:`RedisColdTier` — compressed documents in Redis itself with a long TTL, for
  deployments with no database. Its keys sit beside the hot ones (see ``keys.py``) and the
  store's scripts move sessions between the two atomically.

A session moves from PostgreSQL to Redis only while its row is locked (:meth:`locked`): the
row cannot change or go away between being read and being deleted, so the copy written to
Redis is the current one. Writes of copies are conditional on the version, so the orderings
of the store (copy before evicting, promote before deleting the row) are safe against races.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
import zstandard
from sqlalchemy.dialects.postgresql import JSONB, insert

from stores.errors import StoreError, StoreUnavailableError
from stores.postgres import schema
from stores.postgres.engine import create_engine, translated
from stores.sessions.models import Session
from stores.sessions.query import Query, QueryKind

_T = schema.sessions
_DATA_TEXT = sa.cast(_T.c.data, sa.Text).label("data")
_COLUMNS = (_T.c.id, _T.c.version, _T.c.created_at, _DATA_TEXT)


def _put_statement() -> sa.Insert:
    """Upsert every document of a JSON array, each column from the field of its name."""
    docs = (
        sa.func.jsonb_array_elements(sa.cast(sa.bindparam("documents", type_=sa.Text), JSONB))
        .table_valued(sa.column("value", JSONB))
        .alias("doc")
    )
    columns = [c for c in _T.columns if c.name != "data"]
    rows = sa.select(*[sa.cast(docs.c.value[c.name].astext, c.type) for c in columns], docs.c.value)
    stmt = insert(_T).from_select([*(c.name for c in columns), "data"], rows)
    return stmt.on_conflict_do_update(
        index_elements=[_T.c.tenant_id, _T.c.id],
        set_={c.name: stmt.excluded[c.name] for c in _T.columns if not c.primary_key},
        where=_T.c.version <= stmt.excluded.version,
    )


_PUT = _put_statement()


@dataclass(frozen=True)
class ColdRow:
    """A session as the PostgreSQL cold tier holds it."""

    id: UUID
    version: int
    created_at: datetime
    data: str


@dataclass
class LockedRow:
    """A session's row, deleted inside a transaction that is still open.

    The deletion holds the row's lock; it commits only if :meth:`delete` is called before
    the block ends, else it rolls back and the row is back as it was.
    """

    row: ColdRow | None
    conn: sa.Connection
    taken: bool = False

    def delete(self) -> None:
        """Keep the deletion: it commits when the block ends."""
        self.taken = True


class PostgresColdTier:
    """Idle sessions in the ``sessions`` table of PostgreSQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, database_url: str, *, pool_size: int = 5) -> PostgresColdTier:
        """A cold tier on its own engine."""
        return cls(create_engine(database_url, pool_size=pool_size))

    def get(self, tenant_id: UUID, session_id: UUID) -> ColdRow | None:
        """The stored copy of one session, expired or not."""
        stmt = sa.select(*_COLUMNS).where(_T.c.tenant_id == tenant_id, _T.c.id == session_id)
        with translated(), self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _row(row) if row else None

    @contextmanager
    def locked(self, tenant_id: UUID, session_id: UUID) -> Iterator[LockedRow]:
        """Read a session's row and hold its lock until the block ends.

        Demotions, rewrites and deletes of the row wait meanwhile. The row is deleted in the
        same statement, so moving it out costs no extra round trip; the deletion commits
        only if the block calls :meth:`LockedRow.delete`, and any error rolls it back.
        """
        stmt = (
            sa.delete(_T)
            .where(_T.c.tenant_id == tenant_id, _T.c.id == session_id)
            # A tier move waits for the disk whatever the server's default: the hot copy is
            # written before this commits, and a lost commit would bring the row back.
            .returning(*_COLUMNS, sa.func.set_config("synchronous_commit", "on", True))
        )
        with translated(), self.engine.connect() as conn:
            row = conn.execute(stmt).first()
            locked = LockedRow(_row(row) if row else None, conn)
            try:
                yield locked
            except BaseException:
                conn.rollback()
                raise
            if locked.taken:
                conn.commit()
            else:
                conn.rollback()

    def get_many(self, tenant_id: UUID, ids: Sequence[UUID]) -> dict[UUID, ColdRow]:
        """The stored copies of several sessions of one tenant."""
        if not ids:
            return {}
        stmt = sa.select(*_COLUMNS).where(_T.c.tenant_id == tenant_id, _T.c.id.in_(ids))
        with translated(), self.engine.connect() as conn:
            return {r.id: _row(r) for r in conn.execute(stmt)}

    def put(self, documents: Sequence[bytes]) -> list[int]:
        """Write stored documents, each only over an older or equal version (demotion,
        step 2); returns the positions of the documents the table refused.

        The batch travels as one JSON array and PostgreSQL reads the columns out of each
        document itself: one statement, no parsing in Python. If the table refuses the batch
        (a document stored before a check that now refuses it, say), each document is
        written on its own, so one unstorable session never holds back the others.
        """
        if not documents:
            return []
        try:
            self._put(documents)
        except StoreUnavailableError:
            raise
        except StoreError:
            if len(documents) == 1:
                return [0]
            refused = []
            for position, document in enumerate(documents):
                try:
                    self._put([document])
                except StoreUnavailableError:
                    raise
                except StoreError:
                    refused.append(position)
            return refused
        return []

    def _put(self, documents: Sequence[bytes]) -> None:
        with translated(), self.engine.begin() as conn:
            # Demotion deletes the hot copy once this commits: it must reach the disk.
            conn.execute(sa.text("SET LOCAL synchronous_commit = on"))
            conn.execute(_PUT, {"documents": "[" + b",".join(documents).decode() + "]"})

    def rewrite(self, session: Session, data: bytes, expected_version: int) -> bool:
        """Replace a copy in place if it still has ``expected_version``; True if it did."""
        values = _params(session, data)
        values.pop("tenant_id")
        values.pop("id")
        values["data"] = sa.cast(sa.literal(values["data"], sa.Text), JSONB)
        stmt = (
            sa.update(_T)
            .where(
                _T.c.tenant_id == session.tenant_id,
                _T.c.id == session.id,
                _T.c.version == expected_version,
            )
            .values(**values)
        )
        with translated(), self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def delete(self, tenant_id: UUID, session_id: UUID) -> ColdRow | None:
        """Delete a copy whatever its version; returns what was deleted."""
        stmt = (
            sa.delete(_T)
            .where(_T.c.tenant_id == tenant_id, _T.c.id == session_id)
            .returning(_T.c.id, _T.c.version, _T.c.created_at, sa.literal("").label("data"))
        )
        with translated(), self.engine.begin() as conn:
            row = conn.execute(stmt).first()
        return _row(row) if row else None

    def delete_versions(self, tenant_id: UUID, versions: Iterable[tuple[UUID, int]]) -> None:
        """Delete copies, each only if it still has the given version (they are stale)."""
        pairs = list(versions)
        if not pairs:
            return
        stmt = sa.delete(_T).where(
            _T.c.tenant_id == tenant_id,
            sa.tuple_(_T.c.id, _T.c.version).in_(pairs),
        )
        with translated(), self.engine.begin() as conn:
            conn.execute(stmt)

    def find(self, q: Query, after: str | None, limit: int, cutoff: datetime) -> list[ColdRow]:
        """Up to ``limit`` unexpired copies matching ``q`` with ids after ``after``, by id."""
        where = [_T.c.tenant_id == q.tenant_id, _T.c.created_at > cutoff, *_filter(q)]
        if after is not None:
            where.append(_T.c.id > UUID(after))
        stmt = sa.select(*_COLUMNS).where(*where).order_by(_T.c.id).limit(limit)
        with translated(), self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(stmt)]

    def newest_by_channel(
        self, tenant_id: UUID, channel: str, user_channel_id: str, cutoff: datetime, limit: int
    ) -> list[ColdRow]:
        """The newest unexpired copies of a channel identity, newest first."""
        stmt = (
            sa.select(*_COLUMNS)
            .where(
                _T.c.tenant_id == tenant_id,
                _T.c.channel == channel,
                _T.c.user_channel_id == user_channel_id,
                _T.c.created_at > cutoff,
            )
            .order_by(_T.c.created_at.desc(), _T.c.id.desc())
            .limit(limit)
        )
        with translated(), self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(stmt)]

    def purge(self, cutoff: datetime, limit: int) -> int:
        """Delete up to ``limit`` copies created at or before ``cutoff``, oldest first."""
        oldest = (
            sa.select(_T.c.tenant_id, _T.c.id)
            .where(_T.c.created_at <= cutoff)
            .order_by(_T.c.created_at)
            .limit(limit)
        )
        stmt = sa.delete(_T).where(sa.tuple_(_T.c.tenant_id, _T.c.id).in_(oldest))
        with translated(), self.engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def count_expired(self, cutoff: datetime) -> int:
        """How many copies were created at or before ``cutoff`` (what :meth:`purge` takes)."""
        stmt = sa.select(sa.func.count()).select_from(_T).where(_T.c.created_at <= cutoff)
        with translated(), self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def stats(self) -> tuple[int, int]:
        """How many copies the table holds and its size on disk with its indexes."""
        stmt = sa.select(
            sa.select(sa.func.count()).select_from(_T).scalar_subquery(),
            sa.func.pg_total_relation_size(sa.literal_column("'sessions'::regclass")),
        )
        with translated(), self.engine.connect() as conn:
            count, size = conn.execute(stmt).one()
        return int(count), int(size)

    def close(self) -> None:
        """Dispose of the engine's connections."""
        self.engine.dispose()


class RedisColdTier:
    """Idle sessions kept in Redis as compressed documents with a long TTL."""

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

    def compress(self, data: bytes) -> bytes:
        """The stored form of a document."""
        return self._codecs()[0].compress(data)

    def decompress(self, blob: bytes) -> bytes:
        """The document of a stored form."""
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


def _row(row: Any) -> ColdRow:
    return ColdRow(id=row.id, version=int(row.version), created_at=row.created_at, data=row.data)


def _params(session: Session, data: bytes) -> dict[str, object]:
    return {
        "tenant_id": session.tenant_id,
        "id": session.id,
        "agent_id": session.agent_id,
        "customer_profile_id": session.customer_profile_id,
        "channel": session.channel,
        "user_channel_id": session.user_channel_id,
        "status": session.status.value,
        "active_scenario_id": session.active_scenario_id,
        "active_scenario_version": session.active_scenario_version,
        "current_step_id": session.current_step_id,
        "version": session.version,
        "created_at": session.created_at,
        "last_activity_at": session.last_activity_at,
        "data": data.decode(),
    }


def _filter(q: Query) -> list[sa.ColumnElement[bool]]:
    if q.kind is QueryKind.AGENT:
        out = [_T.c.agent_id == q.owner_id]
    elif q.kind is QueryKind.CUSTOMER:
        out = [_T.c.customer_profile_id == q.owner_id]
    else:
        out = [
            _T.c.active_scenario_id == q.owner_id,
            _T.c.active_scenario_version == q.scenario_version,
        ]
        if q.kind is QueryKind.STEP:
            out.append(_T.c.current_step_id == q.step_id)
        elif q.kind is QueryKind.UNMARKED:
            out.append(_T.c.data["pending_migration"] == sa.cast(sa.literal("null"), JSONB))
    if q.status is not None:
        out.append(_T.c.status == q.status.value)
    return out
