"""The SQL of the PostgreSQL profile store: statements, survivor resolution, row locks, merge.

Merges keep one invariant that makes survivor lookups one hop: every merged profile's
``merged_into_id`` names a surviving (unmerged) profile, because a merge repoints the
profiles merged into its source at the new survivor in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa

from stores.errors import ConflictError, NotFoundError
from stores.postgres import schema
from stores.profiles.models import CustomerProfile

P = schema.customer_profiles
I = schema.channel_identities  # noqa: E741
F = schema.profile_fields
A = schema.profile_assets

MAX_MERGE_HOPS = 64
"""Survivor lookups give up after this many hops (only reachable if data were corrupt)."""

LockMode = Literal["share", "update"]


def one(conn: sa.Connection, statement: sa.Executable) -> dict[str, Any] | None:
    """The first row of ``statement`` as a dict, or None."""
    row = conn.execute(statement).mappings().first()
    return dict(row) if row is not None else None


def owner(tenant: UUID, profile_id: UUID) -> sa.ScalarSelect[Any]:
    """The surviving profile's id of ``profile_id`` (merges always point at a survivor)."""
    return (
        sa.select(sa.func.coalesce(P.c.merged_into_id, P.c.id))
        .where(P.c.tenant_id == tenant, P.c.id == profile_id)
        .scalar_subquery()
    )


def survivor(conn: sa.Connection, tenant: UUID, profile_id: UUID) -> CustomerProfile | None:
    """Read the surviving profile of ``profile_id`` without locking."""
    current = profile_id
    for _ in range(MAX_MERGE_HOPS):
        row = one(conn, sa.select(P).where(P.c.tenant_id == tenant, P.c.id == current))
        if row is None:
            return None
        if row["merged_into_id"] is None:
            return CustomerProfile.model_validate(row)
        current = row["merged_into_id"]
    return None


def lock_survivor(
    conn: sa.Connection, tenant: UUID, profile_id: UUID, mode: LockMode, field: str = "profile_id"
) -> CustomerProfile:
    """Lock the surviving profile of ``profile_id``, or raise NotFoundError.

    Only the survivor is locked, never the merged profiles on the way to it: a merge
    repoints those, and a lock held on one of them could deadlock with it.
    """
    found = survivor(conn, tenant, profile_id)
    for _ in range(MAX_MERGE_HOPS):
        if found is None:
            break
        query = sa.select(P).where(P.c.tenant_id == tenant, P.c.id == found.id)
        row = one(conn, query.with_for_update(read=mode == "share"))
        if row is None:
            break
        if row["merged_into_id"] is None:
            return CustomerProfile.model_validate(row)
        # Merged away while this transaction waited for the lock: follow it.
        found = survivor(conn, tenant, row["merged_into_id"])
    raise NotFoundError(f"profile {profile_id} does not exist ({field})")


def lock_pair(
    conn: sa.Connection, tenant: UUID, src_id: UUID, dst_id: UUID
) -> tuple[CustomerProfile, CustomerProfile]:
    """Lock the surviving profiles of both ids for update, in id order (no deadlocks)."""
    for _ in range(MAX_MERGE_HOPS):
        source = survivor(conn, tenant, src_id)
        if source is None:
            raise NotFoundError(f"profile {src_id} does not exist (source_id)")
        target = survivor(conn, tenant, dst_id)
        if target is None:
            raise NotFoundError(f"profile {dst_id} does not exist (target_id)")
        if source.id == target.id:
            return source, target
        locked = conn.execute(
            sa.select(P.c.id, P.c.merged_into_id)
            .where(P.c.tenant_id == tenant, P.c.id.in_([source.id, target.id]))
            .order_by(P.c.id)
            .with_for_update()
        ).all()
        # A merge that committed between the read and the lock moved the survivor: re-read.
        if len(locked) == 2 and all(merged is None for _, merged in locked):
            return source, target
    raise ConflictError("profiles kept being merged concurrently; retry")


def identity_query(tenant: UUID, channel: str, channel_user_id: str) -> sa.Select[Any]:
    return sa.select(I).where(
        I.c.tenant_id == tenant, I.c.channel == channel, I.c.channel_user_id == channel_user_id
    )


def close_current(tenant: UUID, profile_id: UUID, name: str, now: datetime) -> sa.Update:
    return (
        F.update()
        .where(
            F.c.tenant_id == tenant,
            F.c.profile_id == profile_id,
            F.c.field_name == name,
            F.c.valid_to.is_(None),
        )
        .values(valid_to=sa.func.greatest(F.c.valid_from, now))
    )


def constraint_name(exc: BaseException | None) -> str | None:
    diag = getattr(getattr(exc, "orig", None), "diag", None)
    return getattr(diag, "constraint_name", None) if diag is not None else None


def merge(
    conn: sa.Connection, tenant: UUID, src_id: UUID, dst_id: UUID, now: datetime
) -> CustomerProfile:
    """Fold ``src_id``'s survivor into ``dst_id``'s inside the caller's transaction."""
    source, target = lock_pair(conn, tenant, src_id, dst_id)
    if source.id == target.id:
        return target
    src, dst = source.id, target.id

    t, s = F.alias("t"), F.alias("s")
    conflicts = conn.execute(
        sa.select(t.c.id, t.c.valid_from, s.c.id, s.c.valid_from)
        .select_from(
            t.join(
                s,
                sa.and_(
                    s.c.tenant_id == t.c.tenant_id,
                    s.c.field_name == t.c.field_name,
                    s.c.profile_id == src,
                    s.c.valid_to.is_(None),
                ),
            )
        )
        .where(t.c.tenant_id == tenant, t.c.profile_id == dst, t.c.valid_to.is_(None))
    ).all()
    # Newest wins: the value that became valid later stays current; the target's on a tie.
    losers = [t_id if s_from > t_from else s_id for t_id, t_from, s_id, s_from in conflicts]
    if losers:
        conn.execute(
            F.update()
            .where(F.c.tenant_id == tenant, F.c.id.in_(losers))
            .values(valid_to=sa.func.greatest(F.c.valid_from, now))
        )
    for table in (I, F, A):
        conn.execute(
            table.update()
            .where(table.c.tenant_id == tenant, table.c.profile_id == src)
            .values(profile_id=dst)
        )
    conn.execute(
        P.update()
        .where(
            P.c.tenant_id == tenant,
            sa.or_(P.c.merged_into_id == src, P.c.id == src),
        )
        .values(merged_into_id=dst, updated_at=now)
    )
    row = one(
        conn,
        P.update()
        .where(P.c.tenant_id == tenant, P.c.id == dst)
        .values(updated_at=now)
        .returning(*P.c),
    )
    return CustomerProfile.model_validate(row)
