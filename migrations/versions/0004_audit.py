"""Create the audit tables.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "turn_records",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("turn_number", sa.Integer(), nullable=False),
        sa.Column("user_message", sa.Text(), nullable=False),
        sa.Column("assistant_response", sa.Text(), nullable=True),
        sa.Column(
            "context_extracted",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "rules_matched",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "scenario_state",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "tools_executed",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "token_usage",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "turn_number >= 0", name=op.f("ck_turn_records_turn_number_nonnegative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turn_records")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_turn_records_tenant_id_id")),
        sa.UniqueConstraint(
            "tenant_id",
            "session_id",
            "turn_number",
            name=op.f("uq_turn_records_tenant_id_session_id_turn_number"),
        ),
    )
    op.create_index(
        "ix_turn_records_tenant_id_created_at",
        "turn_records",
        ["tenant_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=True),
        sa.Column("turn_id", sa.UUID(), nullable=True),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column(
            "event_data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "turn_id"],
            ["turn_records.tenant_id", "turn_records.id"],
            name=op.f("fk_audit_events_tenant_id_turn_id_turn_records"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(
        "ix_audit_events_tenant_id_created_at",
        "audit_events",
        ["tenant_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_audit_events_tenant_id_event_type",
        "audit_events",
        ["tenant_id", "event_type", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_audit_events_tenant_id_session_id",
        "audit_events",
        ["tenant_id", "session_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_tenant_id_session_id", table_name="audit_events")
    op.drop_index("ix_audit_events_tenant_id_event_type", table_name="audit_events")
    op.drop_index("ix_audit_events_tenant_id_created_at", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_turn_records_tenant_id_created_at", table_name="turn_records")
    op.drop_table("turn_records")
