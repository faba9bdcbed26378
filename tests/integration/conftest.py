"""The tests on a Redis Cluster run only when asked for with ``-m cluster`` (or an
expression naming ``cluster`` without ``not``); otherwise they are deselected."""

from __future__ import annotations

import pytest

from tests.cluster_support import deselect_cluster_tests


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the cluster tests unless they were asked for."""
    deselect_cluster_tests(config, items)
