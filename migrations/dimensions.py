"""The embedding dimension the migrations create vector columns with."""

from __future__ import annotations

from alembic import context


def embedding_dimensions() -> int:
    """The configured dimension (``hearth db upgrade`` passes it; default from settings)."""
    from workers.migrations import configured_dimensions

    return configured_dimensions(context.config)
