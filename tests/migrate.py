"""Bring a test database to the head schema."""

from __future__ import annotations


def migrate_to_head(url: str) -> None:
    """Apply every migration to the database at ``url``."""
    from workers.migrations import upgrade

    upgrade(url, "head")
