"""The chaos tests run only when asked for: ``-m chaos`` (or an expression naming ``chaos``
without ``not``), or ``HEARTH_CHAOS_SECONDS`` set. Otherwise they are deselected, so neither
``make test`` nor a run selecting ``postgres or redis`` picks them up. The runs on a cluster
need ``cluster`` in the expression too (``-m "chaos and cluster"``)."""

from __future__ import annotations

import os
import re

import pytest

from tests.cluster_support import deselect_cluster_tests


def _chaos_selected(config: pytest.Config) -> bool:
    if os.environ.get("HEARTH_CHAOS_SECONDS"):
        return True
    words = re.findall(r"[\w-]+", config.getoption("markexpr") or "")
    return any(
        word == "chaos" and (i == 0 or words[i - 1] != "not") for i, word in enumerate(words)
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the chaos tests unless they were asked for, and those on a cluster unless
    the cluster was asked for too."""
    deselect_cluster_tests(config, items)
    if _chaos_selected(config):
        return
    chaos = [item for item in items if item.get_closest_marker("chaos")]
    if chaos:
        config.hook.pytest_deselected(items=chaos)
        items[:] = [item for item in items if not item.get_closest_marker("chaos")]
