"""pytest-alembic's standard tests on a real PostgreSQL: single head, upgrade from empty,
model definitions match the DDL the migrations make, every revision down and up again.

They are imported rather than enabled with ``--test-alembic``, so that they carry this
module's ``postgres`` marker and run wherever the PostgreSQL tests run.
"""

from __future__ import annotations

import pytest
from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)

pytestmark = pytest.mark.postgres

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]
