"""Create the sessions cold tier tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("customer_profile_id", sa.UUID(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("user_channel_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("active_scenario_id", sa.UUID(), nullable=True),
        sa.Column("active_scenario_version", sa.Integer(), nullable=True),
        sa.Column("current_step_id", sa.Text(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_sessions")),
    )
    op.create_index("ix_sessions_created_at", "sessions", ["created_at"], unique=False)
    op.create_index(
        "ix_sessions_scenario_step",
        "sessions",
        ["tenant_id", "active_scenario_id", "active_scenario_version", "current_step_id", "id"],
        unique=False,
        postgresql_where=sa.text("active_scenario_id IS NOT NULL"),
    )
    op.create_index(
        "ix_sessions_tenant_id_agent_id", "sessions", ["tenant_id", "agent_id", "id"], unique=False
    )
    op.create_index(
        "ix_sessions_tenant_id_channel",
        "sessions",
        ["tenant_id", "channel", "user_channel_id"],
        unique=False,
    )
    op.create_index(
        "ix_sessions_tenant_id_customer_profile_id",
        "sessions",
        ["tenant_id", "customer_profile_id", "id"],
        unique=False,
        postgresql_where=sa.text("customer_profile_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_sessions_tenant_id_customer_profile_id",
        table_name="sessions",
        postgresql_where=sa.text("customer_profile_id IS NOT NULL"),
    )
    op.drop_index("ix_sessions_tenant_id_channel", table_name="sessions")
    op.drop_index("ix_sessions_tenant_id_agent_id", table_name="sessions")
    op.drop_index(
        "ix_sessions_scenario_step",
        table_name="sessions",
        postgresql_where=sa.text("active_scenario_id IS NOT NULL"),
    )
    op.drop_index("ix_sessions_created_at", table_name="sessions")
    op.drop_table("sessions")
