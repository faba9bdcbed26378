"""The SQL of the PostgreSQL cold tier (``cold_postgres.py``): the ``sessions`` table's columns as
the tier reads them, and the statements of its fenced writes, built once."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert

from stores.postgres import schema
from stores.sessions import shards
from stores.sessions.models import Session
from stores.sessions.query import Query, QueryKind
from stores.sessions.shards import Shard

T = schema.sessions
"""The table of the PostgreSQL cold tier."""
_DATA_TEXT = sa.cast(T.c.data, sa.Text).label("data")
COLUMNS = (
    T.c.id,
    T.c.version,
    T.c.created_at,
    _DATA_TEXT,
    T.c.incarnation,
    T.c.generation,
    T.c.state,
)
"""What a read of a row returns (see ``cold_postgres._row``)."""
_FENCE = ("data", "incarnation", "generation", "state")
SYNC = sa.text("SET LOCAL synchronous_commit = on")
"""Run first in every transaction a hot copy's deletion depends on: it must reach the disk."""
LIVE = T.c.state != "deleted"
"""Rows that are copies (cold, or backing up a hot copy), not deletion markers."""
EMPTY = sa.cast(sa.literal("{}"), JSONB)
"""The document of a deletion marker."""


def owned_by(shard: Shard | None) -> list[sa.ColumnElement[bool]]:
    """The condition that keeps the rows of ``shard``'s tenants: a tenant's bucket is its
    id's last byte modulo :data:`shards.BUCKETS` (see ``shards.bucket_of``)."""
    if shard is None or shard.count == 1:
        return []
    last_byte = sa.func.get_byte(sa.func.uuid_send(T.c.tenant_id), 15)
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
    columns = [c for c in T.columns if c.name not in _FENCE]
    rows = sa.select(
        *[sa.cast(doc[c.name].astext, c.type) for c in columns],
        entries.c.value["n"].astext,
        sa.cast(entries.c.value["g"].astext, sa.BigInteger),
        sa.literal(state),
        doc if keep_data else EMPTY,
    )
    return insert(T).from_select([*(c.name for c in columns), *_FENCE[1:], "data"], rows)


def _put_statement() -> Any:
    """Demotion's upsert: a copy is written over the row of the same incarnation only if the
    row's (version, generation) is not newer and the row is no deletion marker; over another
    incarnation's row only if that one is expired, or deleted and created before the copy's.
    Returns the ids it wrote."""
    stmt = _from_documents("cold", keep_data=True)
    new = stmt.excluded
    same = sa.and_(
        T.c.incarnation == new.incarnation,
        LIVE,
        sa.tuple_(T.c.version, T.c.generation) <= sa.tuple_(new.version, new.generation),
    )
    # Over a deletion marker of another incarnation only if the copy is of a later one:
    # a demotion that read an incarnation before it was deleted, and wrote after a later
    # incarnation was created and deleted in turn, must not bring the first back.
    other = sa.and_(
        T.c.incarnation != new.incarnation,
        sa.or_(
            sa.and_(T.c.state == "deleted", T.c.created_at < new.created_at),
            T.c.created_at <= sa.bindparam("cutoff"),
        ),
    )
    return stmt.on_conflict_do_update(
        index_elements=[T.c.tenant_id, T.c.id],
        set_={c.name: new[c.name] for c in T.columns if not c.primary_key},
        where=sa.or_(same, other),
    ).returning(T.c.tenant_id, T.c.id)


def _mark_statement() -> Any:
    """Delete's marker where no row exists, built from the hot copy: this incarnation is
    deleted. Returns the id if it was written (a row a demotion wrote meanwhile wins, and
    is marked in turn)."""
    stmt = _from_documents("deleted", keep_data=False)
    return stmt.on_conflict_do_nothing(index_elements=[T.c.tenant_id, T.c.id]).returning(T.c.id)


PUT = _put_statement()
"""Demotion's fenced upsert (see :func:`_put_statement`)."""
MARK = _mark_statement()
"""Delete's marker where no row exists (see :func:`_mark_statement`)."""


def params(session: Session, data: bytes) -> dict[str, object]:
    """The column values of a session's row, ``data`` its encoded document."""
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


def query_filter(q: Query) -> list[sa.ColumnElement[bool]]:
    """The conditions on the table's columns of a listing's query."""
    if q.kind is QueryKind.AGENT:
        out = [T.c.agent_id == q.owner_id]
    elif q.kind is QueryKind.CUSTOMER:
        out = [T.c.customer_profile_id == q.owner_id]
    else:
        out = [
            T.c.active_scenario_id == q.owner_id,
            T.c.active_scenario_version == q.scenario_version,
        ]
        if q.kind is QueryKind.STEP:
            out.append(T.c.current_step_id == q.step_id)
        elif q.kind is QueryKind.UNMARKED:
            out.append(T.c.data["pending_migration"] == sa.cast(sa.literal("null"), JSONB))
    if q.status is not None:
        out.append(T.c.status == q.status.value)
    return out
