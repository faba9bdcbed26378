"""Embedding indexes over half-precision copies of the vectors; pgvector 0.8 or newer.

The HNSW index of each embedded table (rules, scenarios, episodes) moves from the full
``vector`` to ``embedding::halfvec(n)``: half the bytes per row, so the graph stays in memory
and each distance is cheaper, and room for up to 4000 dimensions. The graph is built denser
than pgvector's defaults (m=32 and ef_construction=128 instead of 16 and 64): with those,
noisy embeddings stay below a recall of 0.98 however wide the search. Searches re-rank the index's
candidates on the full vectors (``stores/postgres/vectors.py``), so results keep full precision.

Tables that already hold rows are indexed here: ``CREATE INDEX`` blocks writes to the table
(not reads) while it builds, and the build takes ``maintenance_work_mem`` as its budget.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MIN_PGVECTOR = (0, 8)
TABLES = {
    "rules": "embedding IS NOT NULL AND deleted_at IS NULL",
    "scenarios": "embedding IS NOT NULL AND deleted_at IS NULL",
    "episodes": "embedding IS NOT NULL",
}
VECTOR_INDEX_LIMIT = 2000


def _dimensions(bind: sa.Connection, table: str) -> int:
    return int(
        bind.execute(
            sa.text(
                "SELECT atttypmod FROM pg_attribute "
                "WHERE attrelid = CAST(:t AS regclass) AND attname = 'embedding'"
            ),
            {"t": table},
        ).scalar_one()
    )


def upgrade() -> None:
    bind = op.get_bind()
    version = str(
        bind.execute(
            sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar_one()
    )
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) < MIN_PGVECTOR:
        raise RuntimeError(
            f"hearth needs pgvector 0.8 or newer; this database has {version}: "
            "install a newer pgvector on the server, then run the migrations again"
        )
    for table, where in TABLES.items():
        dims = _dimensions(bind, table)
        op.execute(f"DROP INDEX IF EXISTS ix_{table}_embedding_hnsw")
        op.execute(
            f"CREATE INDEX ix_{table}_embedding_halfvec ON {table} USING hnsw "
            f"((embedding::halfvec({dims})) halfvec_cosine_ops) "
            f"WITH (m = 32, ef_construction = 128) WHERE {where}"
        )


def downgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        dims = _dimensions(bind, table)
        if dims > VECTOR_INDEX_LIMIT:
            raise RuntimeError(
                f"{table}.embedding has {dims} dimensions: a full-vector HNSW index takes at "
                f"most {VECTOR_INDEX_LIMIT}, so this revision cannot be undone"
            )
    for table, where in TABLES.items():
        op.execute(f"DROP INDEX IF EXISTS ix_{table}_embedding_halfvec")
        op.execute(
            f"CREATE INDEX ix_{table}_embedding_hnsw ON {table} USING hnsw "
            f"(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64) WHERE {where}"
        )
