"""The PostgreSQL cold tier: idle sessions as rows of the ``sessions`` table, each the
durable fence of its session's moves (see ``coldtier.py`` and ``redis.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from stores.driver_errors import TranslatedEdge, translated
from stores.errors import StoreError, StoreUnavailableError
from stores.postgres.engine import create_engine
from stores.sessions.cold_sql import (
    COLUMNS,
    EMPTY,
    LIVE,
    MARK,
    PUT,
    SYNC,
    T,
    owned_by,
    params,
    query_filter,
)
from stores.sessions.coldtier import Claim, ColdRow, ColdTier
from stores.sessions.models import Session
from stores.sessions.query import Query
from stores.sessions.shards import Shard


class PostgresColdTier(ColdTier, TranslatedEdge):
    """Idle sessions in the ``sessions`` table of PostgreSQL (every public method inside the
    PostgreSQL error policy of ``stores.driver_errors``)."""

    _driver_errors = translated

    name = "postgres"
    in_redis = False

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, database_url: str, *, pool_size: int = 5) -> PostgresColdTier:
        """A cold tier on its own engine."""
        return cls(create_engine(database_url, pool_size=pool_size))

    def locate(self, tenant_id: UUID, session_id: UUID) -> ColdRow | None:
        """See :meth:`ColdTier.locate`."""
        stmt = sa.select(*COLUMNS).where(T.c.tenant_id == tenant_id, T.c.id == session_id, LIVE)
        with self.engine.connect() as conn:
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
            sa.update(T)
            .where(
                T.c.tenant_id == tenant_id,
                T.c.id == session_id,
                LIVE,
                T.c.created_at > cutoff,
            )
            .values(state="hot", generation=T.c.generation + 1)
            # A tier move waits for the disk whatever the server's default.
            .returning(*COLUMNS, sa.func.set_config("synchronous_commit", "on", True))
        )
        # Translated here too, though at the edge: the claim is taken, used and settled
        # in one block, and the edge's policy over it is the same.
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

    def locate_many(self, tenant_id: UUID, ids: Sequence[UUID]) -> dict[UUID, ColdRow]:
        """See :meth:`ColdTier.locate_many`."""
        if not ids:
            return {}
        stmt = sa.select(*COLUMNS).where(T.c.tenant_id == tenant_id, T.c.id.in_(ids), LIVE)
        with self.engine.connect() as conn:
            return {r.id: _row(r) for r in conn.execute(stmt)}

    def put(
        self, entries: Sequence[tuple[str, int, bytes]], cutoff: datetime
    ) -> tuple[set[tuple[UUID, UUID]], list[int]]:
        """Write demoted copies, each ``(incarnation, generation, document)``, as far as the
        fence allows (see ``cold_sql.PUT``); returns the (tenant id, id) pairs written and
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
        # Translated here, not only at the edge: put() tells a refused batch (StoreError)
        # from an unavailable database.
        with translated(), self.engine.begin() as conn:
            # Demotion deletes the hot copy once this commits: it must reach the disk.
            conn.execute(SYNC)
            result = conn.execute(PUT, {"documents": "[" + array.decode() + "]", "cutoff": cutoff})
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
        values = params(session, data)
        values.pop("tenant_id")
        values.pop("id")
        values["data"] = sa.cast(sa.literal(values["data"], sa.Text), JSONB)
        stmt = (
            sa.update(T)
            .where(
                T.c.tenant_id == session.tenant_id,
                T.c.id == session.id,
                T.c.incarnation == incarnation,
                T.c.version == expected_version,
                LIVE,
            )
            .values(**values)
        )
        with self.engine.connect() as conn:
            conn.execute(SYNC)
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
            sa.select(*COLUMNS)
            .where(T.c.tenant_id == tenant_id, T.c.id == session_id)
            .with_for_update()
        )
        mark = sa.update(T).where(T.c.tenant_id == tenant_id, T.c.id == session_id)
        with self.engine.begin() as conn:
            conn.execute(SYNC)
            row = conn.execute(before).first()
            if row is None and hot is not None:
                if self._mark(conn, hot):
                    return None
                # A demotion's row landed since, or the copy cannot be stored: look again.
                row = conn.execute(before).first()
            if row is not None and hot is not None:
                conn.execute(mark.values(state="deleted", data=EMPTY, incarnation=hot[0]))
            elif row is not None and row.state != "deleted":
                conn.execute(mark.values(state="deleted", data=EMPTY))
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
            # Translated here: a document the table refuses is told apart below.
            with translated():
                written = conn.execute(MARK, {"documents": entry.decode()}).first()
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
        where = [T.c.tenant_id == q.tenant_id, T.c.created_at > cutoff, LIVE, *query_filter(q)]
        if after is not None:
            where.append(T.c.id > UUID(after))
        stmt = sa.select(T.c.id).where(*where).order_by(T.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [str(i) for i in conn.execute(stmt).scalars()]

    def newest_ids_by_channel(
        self, tenant_id: UUID, channel: str, user_channel_id: str, cutoff: datetime, limit: int
    ) -> list[UUID]:
        """The ids of the newest unexpired rows of a channel identity, newest first."""
        stmt = (
            sa.select(T.c.id)
            .where(
                T.c.tenant_id == tenant_id,
                T.c.channel == channel,
                T.c.user_channel_id == user_channel_id,
                T.c.created_at > cutoff,
                LIVE,
            )
            .order_by(T.c.created_at.desc(), T.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def purge(self, cutoff: datetime, limit: int, *, shard: Shard | None = None) -> int:
        """Delete up to ``limit`` rows of sessions created at or before ``cutoff``, oldest
        first, whatever their state, of the tenants ``shard`` owns (all without one);
        returns how many were cold copies."""
        oldest = (
            sa.select(T.c.tenant_id, T.c.id)
            .where(T.c.created_at <= cutoff, *owned_by(shard))
            .order_by(T.c.created_at)
            .limit(limit)
        )
        stmt = sa.delete(T).where(sa.tuple_(T.c.tenant_id, T.c.id).in_(oldest)).returning(T.c.state)
        with self.engine.begin() as conn:
            return sum(1 for state in conn.execute(stmt).scalars() if state == "cold")

    def count_expired(self, cutoff: datetime) -> int:
        """How many cold copies were created at or before ``cutoff`` (what :meth:`purge`
        removes)."""
        stmt = (
            sa.select(sa.func.count())
            .select_from(T)
            .where(T.c.created_at <= cutoff, T.c.state == "cold")
        )
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def stats(self) -> tuple[int, int]:
        """How many cold copies the table holds, and its size on disk with its indexes."""
        stmt = sa.select(
            sa.select(sa.func.count()).select_from(T).where(T.c.state == "cold").scalar_subquery(),
            sa.func.pg_total_relation_size(sa.literal_column("'sessions'::regclass")),
        )
        with self.engine.connect() as conn:
            count, size = conn.execute(stmt).one()
        return int(count), int(size)

    def close(self) -> None:
        """Dispose of the engine's connections."""
        self.engine.dispose()


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
