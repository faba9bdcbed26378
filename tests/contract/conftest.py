"""The deep profile of the bad-input suite runs only when asked for with ``-m deep`` (or an
expression naming ``deep`` without ``not``); otherwise its tests are deselected, so neither
``make test`` nor a run selecting ``postgres or redis`` picks them up. The same holds for the
tests on a Redis Cluster and ``-m cluster``."""

from __future__ import annotations

import re

import pytest

from tests.cluster_support import deselect_cluster_tests


def _deep_selected(config: pytest.Config) -> bool:
    words = re.findall(r"[\w-]+", config.getoption("markexpr") or "")
    return any(word == "deep" and (i == 0 or words[i - 1] != "not") for i, word in enumerate(words))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the deep profile and the cluster tests unless they were asked for."""
    deselect_cluster_tests(config, items)
    if _deep_selected(config):
        return
    deep = [item for item in items if item.get_closest_marker("deep")]
    if deep:
        config.hook.pytest_deselected(items=deep)
        items[:] = [item for item in items if not item.get_closest_marker("deep")]
