"""Vector indexes of their own for tenants that hold a large share of a table's embeddings.

A filtered search walks the table's HNSW graph until enough candidates pass its filter
(``vectors.py``). Within a tenant that holds half the table, a filter on one of its agents or
episode types passes a few percent of the rows the graph yields, so the walk is long and its
candidates thin. A partial HNSW index over that tenant's rows alone (``WHERE tenant_id =
'…'``) is a graph of the rows the filter is drawn from: PostgreSQL picks it by itself for
that tenant's searches (its statements are planned with their values, never prepared), and
the other tenants keep the table's index.

These indexes are not in the schema's metadata and not made by a migration: hearth creates
them when a tenant crosses :attr:`TenantIndexPolicy.min_share` and drops them when it falls
below :attr:`TenantIndexPolicy.keep_share` (``hearth db tenant-indexes --apply``, and the
workers' periodic job). Their names start with :data:`TENANT_INDEX_PREFIX`; the drift checks
(``migrations/env.py``) leave those out. Builds are ``CONCURRENTLY``: writes go on while they
run, and a build that failed half-way (an invalid index) is dropped and made again.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from stores.driver_errors import translated
from stores.postgres.schema import VECTOR_INDEX_BUILD, vector_index_where
from stores.postgres.vectors import QUANTIZER, embedding_dimensions

VECTOR_TABLES = ("rules", "scenarios", "episodes")
"""The tables with embeddings (and so with vector indexes)."""

TENANT_INDEX_PREFIX = "ixt_"
_DIALECT: sa.Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
_NAME = re.compile(rf"^{TENANT_INDEX_PREFIX}({'|'.join(VECTOR_TABLES)})_([0-9a-f]{{32}})$")

BUILD_MEMORY = "1GB"
"""The ``maintenance_work_mem`` a build gets by default when the server's is smaller: an HNSW
graph that does not fit spills to disk while it is built, and the build slows down many
times (seen: a 50,000-row tenant index at 1536 dimensions, over ten minutes at PostgreSQL's
64 MB default)."""

_MEMORY = re.compile(r"^[1-9][0-9]*(kB|MB|GB|TB)$")

TENANT_INDEX_LOCK_KEY = 0x6865617274680002
"""The advisory lock one run of :func:`apply_changes` holds, so two never build at once."""


def tenant_index_name(table: str, tenant_id: UUID) -> str:
    """The name of ``tenant_id``'s vector index on ``table`` (46 characters at most)."""
    return f"{TENANT_INDEX_PREFIX}{table}_{tenant_id.hex}"


def is_tenant_index(name: str | None) -> bool:
    """Whether ``name`` is one of the per-tenant vector indexes this module manages."""
    return bool(name and _NAME.match(name))


@dataclass(frozen=True)
class TenantIndexPolicy:
    """When a tenant gets a vector index of its own, and when it loses it."""

    min_rows: int = 20_000
    """A tenant needs at least this many embedded rows in a table..."""
    min_share: float = 0.2
    """...and at least this share of the table's embedded rows to get an index."""
    keep_share: float = 0.1
    """An existing index is dropped only once the tenant's share falls below this (or its
    rows below half of ``min_rows``), so a tenant near the line does not flap."""

    def __post_init__(self) -> None:
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be at least 1, not {self.min_rows}")
        if not 0 < self.keep_share <= self.min_share <= 1:
            raise ValueError(
                "need 0 < keep_share <= min_share <= 1, "
                f"not keep_share={self.keep_share}, min_share={self.min_share}"
            )


@dataclass(frozen=True)
class TenantIndexChange:
    """One index to create or drop, and the counts that call for it."""

    action: Literal["create", "drop"]
    table: str
    tenant_id: UUID
    rows: int
    total: int
    reason: str

    @property
    def index(self) -> str:
        """The index's name."""
        return tenant_index_name(self.table, self.tenant_id)


def existing_indexes(conn: sa.Connection, table: str) -> dict[UUID, bool]:
    """The tenants with an index of their own on ``table``, and whether it is valid."""
    rows = conn.execute(
        sa.text(
            "SELECT c.relname, i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = CAST(:t AS regclass) AND c.relname LIKE :prefix"
        ),
        {"t": table, "prefix": f"{TENANT_INDEX_PREFIX}{table}_%"},
    ).all()
    found: dict[UUID, bool] = {}
    for name, valid in rows:
        match = _NAME.match(name)
        if match and match[1] == table:
            found[UUID(hex=match[2])] = bool(valid)
    return found


def _counts(conn: sa.Connection, table: str, at_least: int) -> tuple[int, dict[UUID, int]]:
    where = vector_index_where(table)
    total = int(conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one())
    rows = conn.execute(
        sa.text(
            f"SELECT tenant_id, count(*) FROM {table} WHERE {where} "
            "GROUP BY tenant_id HAVING count(*) >= :n"
        ),
        {"n": at_least},
    ).all()
    return total, {tenant: int(n) for tenant, n in rows}


def plan_changes(
    conn: sa.Connection, policy: TenantIndexPolicy | None = None
) -> list[TenantIndexChange]:
    """The indexes to create and drop so that exactly the large tenants have one."""
    policy = policy or TenantIndexPolicy()
    with translated():
        return _plan(conn, policy)


def _plan(conn: sa.Connection, policy: TenantIndexPolicy) -> list[TenantIndexChange]:
    changes: list[TenantIndexChange] = []
    for table in VECTOR_TABLES:
        total, counts = _counts(conn, table, max(1, policy.min_rows // 2))
        have = existing_indexes(conn, table)
        for tenant, rows in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))):
            share = rows / total
            wanted = rows >= policy.min_rows and share >= policy.min_share
            if wanted and not have.get(tenant, False):
                reason = f"{rows} of {total} rows ({share:.0%})"
                if tenant in have:
                    reason += "; its index is invalid (a build stopped half-way)"
                changes.append(TenantIndexChange("create", table, tenant, rows, total, reason))
        for tenant in sorted(have, key=str):
            rows = counts.get(tenant, 0)
            share = rows / total if total else 0.0
            if share < policy.keep_share or rows < policy.min_rows // 2:
                reason = f"{rows} of {total} rows ({share:.0%}) is below what keeps an index"
                changes.append(TenantIndexChange("drop", table, tenant, rows, total, reason))
    return changes


def create_statement(table: str, tenant_id: UUID, dimensions: int) -> str:
    """``CREATE INDEX CONCURRENTLY`` of ``tenant_id``'s index on ``table``.

    The same key, operator class and build parameters as the table's own index
    (``schema.vector_index``), over the tenant's rows only.
    """
    key = QUANTIZER.index_key(sa.column("embedding"), dimensions)
    key_sql = str(key.compile(dialect=_DIALECT))
    build = ", ".join(f"{k} = {v}" for k, v in VECTOR_INDEX_BUILD.items())
    return (
        f"CREATE INDEX CONCURRENTLY {tenant_index_name(table, tenant_id)} ON {table} "
        f"USING hnsw (({key_sql}) {QUANTIZER.opclass}) WITH ({build}) "
        f"WHERE {vector_index_where(table)} AND tenant_id = '{tenant_id}'"
    )


@contextmanager
def _locked(engine: sa.Engine) -> Iterator[sa.Connection | None]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        got = conn.execute(
            sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": TENANT_INDEX_LOCK_KEY}
        ).scalar_one()
        if not got:
            yield None
            return
        try:
            yield conn
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": TENANT_INDEX_LOCK_KEY})


def check_build_memory(value: str) -> str:
    """``value`` if it is a PostgreSQL memory size in whole units (``512MB``, ``2GB``), else
    ValueError naming it."""
    if not isinstance(value, str) or not _MEMORY.match(value):
        raise ValueError(
            "the build memory must be a PostgreSQL memory size such as 512MB or 2GB "
            f"(a whole number and kB, MB, GB or TB), not {value!r}"
        )
    return value


def raise_build_memory(conn: sa.Connection, want: str) -> str:
    """Raise this session's ``maintenance_work_mem`` to ``want`` unless it is already at least
    that (a server an operator gave more keeps it); returns the session's value now."""
    check_build_memory(want)
    return str(
        conn.execute(
            sa.text(
                "SELECT CASE WHEN pg_size_bytes(:want) > "
                "pg_size_bytes(current_setting('maintenance_work_mem')) "
                "THEN set_config('maintenance_work_mem', :want, false) "
                "ELSE current_setting('maintenance_work_mem') END"
            ),
            {"want": want},
        ).scalar_one()
    )


def apply_changes(
    engine: sa.Engine,
    policy: TenantIndexPolicy | None = None,
    *,
    build_memory: str = BUILD_MEMORY,
) -> list[TenantIndexChange] | None:
    """Plan and make the changes; ``None`` when another run holds the lock.

    Each build runs ``CONCURRENTLY`` (so outside a transaction) and may take minutes on a
    large tenant. Its memory budget, ``maintenance_work_mem``, is raised to ``build_memory``
    for this run's session if the server's is smaller (see :data:`BUILD_MEMORY`), and put
    back after.
    """
    check_build_memory(build_memory)
    with translated(), _locked(engine) as conn:
        if conn is None:
            return None
        changes = plan_changes(conn, policy)
        if any(change.action == "create" for change in changes):
            raise_build_memory(conn, build_memory)
        try:
            for change in changes:
                name = change.index
                # A failed concurrent build leaves an invalid index behind: drop it first.
                conn.execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
                if change.action == "create":
                    dims = embedding_dimensions(conn, change.table)
                    conn.execute(sa.text(create_statement(change.table, change.tenant_id, dims)))
        finally:
            # The connection goes back to a pool: the next user gets the server's budget (a
            # broken connection is discarded by the pool, and its error is the one to see).
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.execute(sa.text("RESET maintenance_work_mem"))
        return changes
