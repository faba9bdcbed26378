"""hearth's Alembic migrations."""
