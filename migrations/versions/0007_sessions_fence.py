"""Fence the sessions cold tier: incarnation, move generation and state on every row.

A row now outlives a promotion (as a backup of the hot copy) and a delete (as a marker that
stops a demotion in flight), so that every tier move can be checked against it; see
``stores/sessions/redis.py`` for the protocol. Rows written before this revision belong to
sessions whose hot copies carry no incarnation either: both read as ``''``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sessions", sa.Column("incarnation", sa.Text(), server_default="", nullable=False)
    )
    op.add_column(
        "sessions", sa.Column("generation", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column("sessions", sa.Column("state", sa.Text(), server_default="cold", nullable=False))
    op.create_check_constraint(
        op.f("ck_sessions_state"), "sessions", "state IN ('cold', 'hot', 'deleted')"
    )


def downgrade() -> None:
    # Rows that only back up a hot copy or mark a deletion are not cold sessions.
    op.execute("DELETE FROM sessions WHERE state <> 'cold'")
    op.drop_constraint(op.f("ck_sessions_state"), "sessions", type_="check")
    op.drop_column("sessions", "state")
    op.drop_column("sessions", "generation")
    op.drop_column("sessions", "incarnation")
