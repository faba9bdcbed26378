"""Enable the pgvector extension.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Two CREATE EXTENSION at once collide on pg_extension_name_index even with IF NOT EXISTS;
# this transaction-level lock also covers runs that bypass hearth's migration lock.
EXTENSION_LOCK_KEY = 0x6865617274680002


def upgrade() -> None:
    op.execute(sa.text(f"SELECT pg_advisory_xact_lock({EXTENSION_LOCK_KEY})"))
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")


def downgrade() -> None:
    # Another application may use pgvector too: drop it only when nothing depends on it.
    op.execute(sa.text(f"SELECT pg_advisory_xact_lock({EXTENSION_LOCK_KEY})"))
    op.execute(
        """
        DO $$
        BEGIN
            IF NOT EXISTS (
                SELECT 1 FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
                WHERE e.extname = 'vector' AND d.deptype = 'n'
                  AND d.classid = 'pg_attribute'::regclass
            ) AND NOT EXISTS (
                SELECT 1 FROM pg_attribute a JOIN pg_type t ON a.atttypid = t.oid
                WHERE t.typname IN ('vector', 'halfvec', 'sparsevec') AND a.attnum > 0
                  AND NOT a.attisdropped
            ) THEN
                DROP EXTENSION IF EXISTS vector;
            END IF;
        END $$;
        """
    )
