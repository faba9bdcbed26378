"""The cold tiers a RedisSessionStore demotes idle sessions to.

* :class:`PostgresColdTier` — the ``sessions`` table: JSONB document plus the indexed
  columns every lookup needs. Demoted sessions leave Redis memory entirely, so a Redis
  restart loses only the sessions that were hot.
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
from typing import Any
from uuid import UUID

import sqlalchemy as sa
import zstandard
from sqlalchemy.dialects.postgresql import JSONB, insert

from stores.errors import StoreError, StoreUnavailableError
from stores.postgres import schema
from stores.postgres.engine import create_engine, translated
from stores.sessions import shards
from stores.sessions.models import Session
from stores.sessions.query import Query, QueryKind
from stores.sessions.shards import Shard

_T = schema.sessions
_DATA_TEXT = sa.cast(_T.c.data, sa.Text).label("data")
_COLUMNS = (
    _T.c.id,
    _T.c.version,
    _T.c.created_at,
    _DATA_TEXT,
    _T.c.incarnation,
    _T.c.generation,
    _T.c.state,
)
_FENCE = ("data", "incarnation", "generation", "state")
_SYNC = sa.text("SET LOCAL synchronous_commit = on")
_LIVE = _T.c.state != "deleted"
_EMPTY = sa.cast(sa.literal("{}"), JSONB)


def _owned_by(shard: Shard | None) -> list[sa.ColumnElement[bool]]:
    """The condition that keeps the rows of ``shard``'s tenants: a tenant's bucket is its
    id's last byte modulo :data:`shards.BUCKETS` (see ``shards.bucket_of``)."""
    if shard is None or shard.count == 1:
        return []
    last_byte = sa.func.get_byte(sa.func.uuid_send(_T.c.tenant_id), 15)
    return [(last_byte % shards.BUCKETS) % shard.count == shard.index]


def _from_documents(state: str, *, keep_data: bool) -> Any:
    """Insert one row per entry of a JSON array ``[{"n": incarnation, "g": generation,
    "d": document}, ...]``, each column read by PostgreSQL from the document's field of its
    name: one statement, no parsing in Python."""
    entries = (
        sa.func.jsonb_array_elements(sa.cast(sa.bindparam("documents", type_=sa.Text), JSONB))
        .table_valued(sa.column("value", JSONB))
        .alias("entry")
    )
    doc = entries.c.value["d"]
    columns = [c for c in _T.columns if c.name not in _FENCE]
    rows = sa.select(
        *[sa.cast(doc[c.name].astext, c.type) for c in columns],
        entries.c.value["n"].astext,
        sa.cast(entries.c.value["g"].astext, sa.BigInteger),
        sa.literal(state),
        doc if keep_data else _EMPTY,
    )
    return insert(_T).from_select([*(c.name for c in columns), *_FENCE[1:], "data"], rows)


def _put_statement() -> Any:
    """Demotion's upsert: a copy is written over the row of the same incarnation only if the
    row's (version, generation) is not newer and the row is no deletion marker; over another
    incarnation's row only if that one is deleted or expired. Returns the ids it wrote."""
    stmt = _from_documents("cold", keep_data=True)
    new = stmt.excluded
    same = sa.and_(
        _T.c.incarnation == new.incarnation,
        _LIVE,
        sa.tuple_(_T.c.version, _T.c.generation) <= sa.tuple_(new.version, new.generation),
    )
    other = sa.and_(
        _T.c.incarnation != new.incarnation,
        sa.or_(_T.c.state == "deleted", _T.c.created_at <= sa.bindparam("cutoff")),
    )
    return stmt.on_conflict_do_update(
        index_elements=[_T.c.tenant_id, _T.c.id],
        set_={c.name: new[c.name] for c in _T.columns if not c.primary_key},
        where=sa.or_(same, other),
    ).returning(_T.c.tenant_id, _T.c.id)


def _mark_statement() -> Any:
    """Delete's marker where no row exists, built from the hot copy: this incarnation is
    deleted. Returns the id if it was written (a row a demotion wrote meanwhile wins, and
    is marked in turn)."""
    stmt = _from_documents("deleted", keep_data=False)
    return stmt.on_conflict_do_nothing(index_elements=[_T.c.tenant_id, _T.c.id]).returning(_T.c.id)


_PUT = _put_statement()
_MARK = _mark_statement()


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


class PostgresColdTier:
    """Idle sessions in the ``sessions`` table of PostgreSQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, database_url: str, *, pool_size: int = 5) -> PostgresColdTier:
        """A cold tier on its own engine."""
        return cls(create_engine(database_url, pool_size=pool_size))

    def get(self, tenant_id: UUID, session_id: UUID) -> ColdRow | None:
        """The row of one session unless it marks a deletion, expired or not."""
        stmt = sa.select(*_COLUMNS).where(_T.c.tenant_id == tenant_id, _T.c.id == session_id, _LIVE)
        with translated(), self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _row(row) if row else None

    @contextmanager
    def claim(self, tenant_id: UUID, session_id: UUID, cutoff: datetime) -> Iterator[Claim]:
        """Take a session's unexpired, undeleted row for a promotion (see :class:`Claim`).

        One statement marks the row hot, bumps its generation, returns it and takes its lock;
        demotions, rewrites, deletes and other promotions of the row wait meanwhile. Any
        error, or a block that does not call :meth:`Claim.keep`, rolls the change back.
        """
        stmt = (
            sa.update(_T)
            .where(
                _T.c.tenant_id == tenant_id,
                _T.c.id == session_id,
                _LIVE,
                _T.c.created_at > cutoff,
            )
            .values(state="hot", generation=_T.c.generation + 1)
            # A tier move waits for the disk whatever the server's default.
            .returning(*_COLUMNS, sa.func.set_config("synchronous_commit", "on", True))
        )
        with translated(), self.engine.connect() as conn:
            row = conn.execute(stmt).first()
            claim = Claim(_row(row) if row else None)
            try:
                yield claim
            except BaseException:
                conn.rollback()
                raise
            if claim.kept:
                conn.commit()
            else:
                conn.rollback()

    def get_many(self, tenant_id: UUID, ids: Sequence[UUID]) -> dict[UUID, ColdRow]:
        """The rows of several sessions of one tenant, deletion markers left out."""
        if not ids:
            return {}
        stmt = sa.select(*_COLUMNS).where(_T.c.tenant_id == tenant_id, _T.c.id.in_(ids), _LIVE)
        with translated(), self.engine.connect() as conn:
            return {r.id: _row(r) for r in conn.execute(stmt)}

    def put(
        self, entries: Sequence[tuple[str, int, bytes]], cutoff: datetime
    ) -> tuple[set[tuple[UUID, UUID]], list[int]]:
        """Write demoted copies, each ``(incarnation, generation, document)``, as far as the
        fence allows (see :func:`_put_statement`); returns the (tenant id, id) pairs written and
        the positions
        of the entries the table refused outright.

        If the table refuses the batch (a document stored before a check that now refuses
        it, say), each entry is written on its own, so one unstorable session never holds
        back the others.
        """
        if not entries:
            return set(), []
        try:
            return self._put(entries, cutoff), []
        except StoreUnavailableError:
            raise
        except StoreError:
            if len(entries) == 1:
                return set(), [0]
        written: set[tuple[UUID, UUID]] = set()
        refused = []
        for position, entry in enumerate(entries):
            try:
                written |= self._put([entry], cutoff)
            except StoreUnavailableError:
                raise
            except StoreError:
                refused.append(position)
        return written, refused

    def _put(
        self, entries: Sequence[tuple[str, int, bytes]], cutoff: datetime
    ) -> set[tuple[UUID, UUID]]:
        array = b",".join(
            b'{"n":"%s","g":%d,"d":%s}' % (n.encode(), g, doc) for n, g, doc in entries
        )
        with translated(), self.engine.begin() as conn:
            # Demotion deletes the hot copy once this commits: it must reach the disk.
            conn.execute(_SYNC)
            result = conn.execute(_PUT, {"documents": "[" + array.decode() + "]", "cutoff": cutoff})
            return {(r.tenant_id, r.id) for r in result}

    def rewrite(
        self,
        session: Session,
        data: bytes,
        *,
        incarnation: str,
        expected_version: int,
        fence: Callable[[], bool],
    ) -> bool:
        """Replace a row in place if it still holds ``incarnation`` at ``expected_version``;
        True if it did.

        ``fence`` runs while the row is locked and the change not yet committed; the change
        commits only if it returns True (see ``fence.lua``: no hot copy, and promotions
        that read the row before are refused from now on).
        """
        values = _params(session, data)
        values.pop("tenant_id")
        values.pop("id")
        values["data"] = sa.cast(sa.literal(values["data"], sa.Text), JSONB)
        stmt = (
            sa.update(_T)
            .where(
                _T.c.tenant_id == session.tenant_id,
                _T.c.id == session.id,
                _T.c.incarnation == incarnation,
                _T.c.version == expected_version,
                _LIVE,
            )
            .values(**values)
        )
        with translated(), self.engine.connect() as conn:
            conn.execute(_SYNC)
            if conn.execute(stmt).rowcount != 1 or not fence():
                conn.rollback()
                return False
            conn.commit()
            return True

    def mark_deleted(
        self, tenant_id: UUID, session_id: UUID, hot: tuple[str, bytes] | None
    ) -> ColdRow | None:
        """Mark a session deleted; returns its row as it was before (None if there was none).

        ``hot`` is the hot copy's (incarnation, document) if there is one: the marker then
        names that incarnation, and is written even where no row existed, so that a
        demotion of the copy already under way is refused. Without it, an existing row is
        marked with its own incarnation.
        """
        before = (
            sa.select(*_COLUMNS)
            .where(_T.c.tenant_id == tenant_id, _T.c.id == session_id)
            .with_for_update()
        )
        mark = sa.update(_T).where(_T.c.tenant_id == tenant_id, _T.c.id == session_id)
        with translated(), self.engine.begin() as conn:
            conn.execute(_SYNC)
            row = conn.execute(before).first()
            if row is None and hot is not None:
                if self._mark(conn, hot):
                    return None
                # A demotion's row landed since, or the copy cannot be stored: look again.
                row = conn.execute(before).first()
            if row is not None and hot is not None:
                conn.execute(mark.values(state="deleted", data=_EMPTY, incarnation=hot[0]))
            elif row is not None and row.state != "deleted":
                conn.execute(mark.values(state="deleted", data=_EMPTY))
        return _row(row) if row else None

    @staticmethod
    def _mark(conn: sa.Connection, hot: tuple[str, bytes]) -> bool:
        """Write the marker of a hot copy where no row was; False if a row was written
        meanwhile, or if the table cannot hold that document (then no demotion can write
        it either, and no marker is needed)."""
        n, doc = hot
        entry = b'[{"n":"%s","g":0,"d":%s}]' % (n.encode(), doc)
        savepoint = conn.begin_nested()
        try:
            with translated():
                written = conn.execute(_MARK, {"documents": entry.decode()}).first()
        except StoreUnavailableError:
            raise
        except StoreError:
            savepoint.rollback()
            return False
        savepoint.commit()
        return written is not None

    def find_ids(self, q: Query, after: str | None, limit: int, cutoff: datetime) -> list[str]:
        """Up to ``limit`` ids of unexpired rows matching ``q`` after ``after``, by id
        (rows backing up hot copies included: they may be all that is left of them)."""
        where = [_T.c.tenant_id == q.tenant_id, _T.c.created_at > cutoff, _LIVE, *_filter(q)]
        if after is not None:
            where.append(_T.c.id > UUID(after))
        stmt = sa.select(_T.c.id).where(*where).order_by(_T.c.id).limit(limit)
        with translated(), self.engine.connect() as conn:
            return [str(i) for i in conn.execute(stmt).scalars()]

    def newest_ids_by_channel(
        self, tenant_id: UUID, channel: str, user_channel_id: str, cutoff: datetime, limit: int
    ) -> list[UUID]:
        """The ids of the newest unexpired rows of a channel identity, newest first."""
        stmt = (
            sa.select(_T.c.id)
            .where(
                _T.c.tenant_id == tenant_id,
                _T.c.channel == channel,
                _T.c.user_channel_id == user_channel_id,
                _T.c.created_at > cutoff,
                _LIVE,
            )
            .order_by(_T.c.created_at.desc(), _T.c.id.desc())
            .limit(limit)
        )
        with translated(), self.engine.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def purge(self, cutoff: datetime, limit: int, *, shard: Shard | None = None) -> int:
        """Delete up to ``limit`` rows of sessions created at or before ``cutoff``, oldest
        first, whatever their state, of the tenants ``shard`` owns (all without one);
        returns how many were cold copies."""
        oldest = (
            sa.select(_T.c.tenant_id, _T.c.id)
            .where(_T.c.created_at <= cutoff, *_owned_by(shard))
            .order_by(_T.c.created_at)
            .limit(limit)
        )
        stmt = (
            sa.delete(_T)
            .where(sa.tuple_(_T.c.tenant_id, _T.c.id).in_(oldest))
            .returning(_T.c.state)
        )
        with translated(), self.engine.begin() as conn:
            return sum(1 for state in conn.execute(stmt).scalars() if state == "cold")

    def count_expired(self, cutoff: datetime) -> int:
        """How many cold copies were created at or before ``cutoff`` (what :meth:`purge`
        removes)."""
        stmt = (
            sa.select(sa.func.count())
            .select_from(_T)
            .where(_T.c.created_at <= cutoff, _T.c.state == "cold")
        )
        with translated(), self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def stats(self) -> tuple[int, int]:
        """How many cold copies the table holds and its size on disk with its indexes."""
        stmt = sa.select(
            sa.select(sa.func.count())
            .select_from(_T)
            .where(_T.c.state == "cold")
            .scalar_subquery(),
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
    return ColdRow(
        id=row.id,
        version=int(row.version),
        created_at=row.created_at,
        data=row.data,
        incarnation=row.incarnation,
        generation=int(row.generation),
        state=row.state,
    )


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
