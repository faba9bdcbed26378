"""Bring the pgvector extension to the version installed on the server.

A database upgraded to a new PostgreSQL (``pg_upgrade``), or a server whose pgvector package
was upgraded, keeps the extension's old SQL objects until ``ALTER EXTENSION vector UPDATE``
runs: the new types (``halfvec``) and functions (``binary_quantize``) that vector search relies
on are missing until then. The statement runs only when the versions differ, so a role that
may not alter the extension is not bothered where nothing needs doing; where it would be
needed and is refused, the migration fails and says what an administrator must run.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same key as 0001's: extension changes by concurrent runs must not collide.
EXTENSION_LOCK_KEY = 0x6865617274680002


def upgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.text(f"SELECT pg_advisory_xact_lock({EXTENSION_LOCK_KEY})"))
    installed, available = bind.execute(
        sa.text(
            "SELECT e.extversion, a.default_version FROM pg_extension e "
            "JOIN pg_available_extensions a ON a.name = e.extname WHERE e.extname = 'vector'"
        )
    ).one()
    if installed == available:
        return
    try:
        with bind.begin_nested():
            bind.execute(sa.text("ALTER EXTENSION vector UPDATE"))
    except sa.exc.DBAPIError as exc:
        raise RuntimeError(
            f"the vector extension is at {installed} and the server has {available}: "
            f"a superuser must run ALTER EXTENSION vector UPDATE in this database ({exc.orig})"
        ) from exc


def downgrade() -> None:
    # An extension's SQL is never downgraded: the newer objects are a superset.
    pass
