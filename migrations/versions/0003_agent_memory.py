"""Create the agent memory tables.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

from workers.migrations import embedding_dimensions

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "entities",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("customer_profile_id", sa.UUID(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("entity_type", sa.Text(), nullable=False),
        sa.Column("canonical_name", sa.Text(), nullable=True),
        sa.Column(
            "attributes",
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
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entities")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_entities_tenant_id_id")),
    )
    op.create_index(
        "ix_entities_tenant_id_agent_id",
        "entities",
        ["tenant_id", "agent_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_entities_tenant_id_canonical_name",
        "entities",
        ["tenant_id", "agent_id", "canonical_name"],
        unique=False,
    )
    op.create_table(
        "episodes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("customer_profile_id", sa.UUID(), nullable=True),
        sa.Column("session_id", sa.UUID(), nullable=True),
        sa.Column("group_id", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("embedding", Vector(embedding_dimensions()), nullable=True),
        sa.Column("embedding_model", sa.Text(), nullable=True),
        sa.Column("episode_type", sa.Text(), server_default="TURN", nullable=False),
        sa.Column("importance", sa.Float(), server_default="0.5", nullable=False),
        sa.Column(
            "valid_from",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "episode_type IN ('TURN', 'SUMMARY', 'FACT', 'EVENT')",
            name=op.f("ck_episodes_episode_type"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_episodes")),
    )
    op.create_index(
        "ix_episodes_embedding_hnsw",
        "episodes",
        ["embedding"],
        unique=False,
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
        postgresql_where=sa.text("embedding IS NOT NULL"),
    )
    op.create_index(
        "ix_episodes_tenant_id_agent_id",
        "episodes",
        ["tenant_id", "agent_id", "recorded_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_episodes_tenant_id_customer_profile_id",
        "episodes",
        ["tenant_id", "customer_profile_id"],
        unique=False,
        postgresql_where=sa.text("customer_profile_id IS NOT NULL"),
    )
    op.create_index(
        "ix_episodes_tenant_id_session_id",
        "episodes",
        ["tenant_id", "session_id"],
        unique=False,
        postgresql_where=sa.text("session_id IS NOT NULL"),
    )
    op.create_table(
        "relationships",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("source_entity_id", sa.UUID(), nullable=False),
        sa.Column("target_entity_id", sa.UUID(), nullable=False),
        sa.Column("relationship_type", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), server_default="1.0", nullable=False),
        sa.Column(
            "valid_from",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
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
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name=op.f("ck_relationships_confidence_range")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "source_entity_id"],
            ["entities.tenant_id", "entities.id"],
            name=op.f("fk_relationships_tenant_id_source_entity_id_entities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "target_entity_id"],
            ["entities.tenant_id", "entities.id"],
            name=op.f("fk_relationships_tenant_id_target_entity_id_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_relationships")),
        sa.UniqueConstraint(
            "tenant_id",
            "source_entity_id",
            "target_entity_id",
            "relationship_type",
            "valid_from",
            name="uq_relationships_edge",
        ),
    )
    op.create_index(
        "ix_relationships_tenant_id_target_entity_id",
        "relationships",
        ["tenant_id", "target_entity_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_relationships_tenant_id_target_entity_id", table_name="relationships")
    op.drop_table("relationships")
    op.drop_index(
        "ix_episodes_tenant_id_session_id",
        table_name="episodes",
        postgresql_where=sa.text("session_id IS NOT NULL"),
    )
    op.drop_index(
        "ix_episodes_tenant_id_customer_profile_id",
        table_name="episodes",
        postgresql_where=sa.text("customer_profile_id IS NOT NULL"),
    )
    op.drop_index("ix_episodes_tenant_id_agent_id", table_name="episodes")
    op.drop_index(
        "ix_episodes_embedding_hnsw",
        table_name="episodes",
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
        postgresql_where=sa.text("embedding IS NOT NULL"),
    )
    op.drop_table("episodes")
    op.drop_index("ix_entities_tenant_id_canonical_name", table_name="entities")
    op.drop_index("ix_entities_tenant_id_agent_id", table_name="entities")
    op.drop_table("entities")
