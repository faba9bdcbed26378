"""Create the customer profiles tables.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_profiles",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("merged_into_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "merged_into_id IS NULL OR merged_into_id <> id",
            name=op.f("ck_customer_profiles_not_self"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "merged_into_id"],
            ["customer_profiles.tenant_id", "customer_profiles.id"],
            name=op.f("fk_customer_profiles_tenant_id_merged_into_id_customer_profiles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_profiles")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_customer_profiles_tenant_id_id")),
    )
    op.create_index(
        "ix_customer_profiles_tenant_id_created_at",
        "customer_profiles",
        ["tenant_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "uq_customer_profiles_tenant_id_external_id",
        "customer_profiles",
        ["tenant_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.create_table(
        "channel_identities",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("channel_user_id", sa.Text(), nullable=False),
        sa.Column("verified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "profile_id"],
            ["customer_profiles.tenant_id", "customer_profiles.id"],
            name=op.f("fk_channel_identities_tenant_id_profile_id_customer_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_identities")),
        sa.UniqueConstraint(
            "tenant_id",
            "channel",
            "channel_user_id",
            name=op.f("uq_channel_identities_tenant_id_channel_channel_user_id"),
        ),
    )
    op.create_index(
        "ix_channel_identities_tenant_id_profile_id",
        "channel_identities",
        ["tenant_id", "profile_id"],
        unique=False,
    )
    op.create_table(
        "profile_assets",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("asset_type", sa.Text(), nullable=False),
        sa.Column("asset_reference", sa.Text(), nullable=False),
        sa.Column(
            "metadata",
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
            ["tenant_id", "profile_id"],
            ["customer_profiles.tenant_id", "customer_profiles.id"],
            name=op.f("fk_profile_assets_tenant_id_profile_id_customer_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_assets")),
    )
    op.create_index(
        "ix_profile_assets_tenant_id_profile_id",
        "profile_assets",
        ["tenant_id", "profile_id"],
        unique=False,
    )
    op.create_table(
        "profile_fields",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("field_name", sa.Text(), nullable=False),
        sa.Column("field_value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("source", sa.Text(), server_default="USER_PROVIDED", nullable=False),
        sa.Column("confidence", sa.Float(), server_default="1.0", nullable=False),
        sa.Column("verified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "valid_from",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "source IN ('USER_PROVIDED', 'EXTRACTED', 'INFERRED', 'SYSTEM')",
            name=op.f("ck_profile_fields_source"),
        ),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name=op.f("ck_profile_fields_confidence_range")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "profile_id"],
            ["customer_profiles.tenant_id", "customer_profiles.id"],
            name=op.f("fk_profile_fields_tenant_id_profile_id_customer_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_fields")),
    )
    op.create_index(
        "ix_profile_fields_history",
        "profile_fields",
        ["tenant_id", "profile_id", "field_name", "valid_from"],
        unique=False,
    )
    op.create_index(
        "uq_profile_fields_current",
        "profile_fields",
        ["tenant_id", "profile_id", "field_name"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_profile_fields_current",
        table_name="profile_fields",
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.drop_index("ix_profile_fields_history", table_name="profile_fields")
    op.drop_table("profile_fields")
    op.drop_index("ix_profile_assets_tenant_id_profile_id", table_name="profile_assets")
    op.drop_table("profile_assets")
    op.drop_index("ix_channel_identities_tenant_id_profile_id", table_name="channel_identities")
    op.drop_table("channel_identities")
    op.drop_index(
        "uq_customer_profiles_tenant_id_external_id",
        table_name="customer_profiles",
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.drop_index("ix_customer_profiles_tenant_id_created_at", table_name="customer_profiles")
    op.drop_table("customer_profiles")
