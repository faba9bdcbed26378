"""The deep profile of the bad-input suite runs only when asked for with ``-m deep`` (or an
expression naming ``deep`` without ``not``); otherwise its tests are deselected, so neither
``make test`` nor a run selecting ``postgres or redis`` picks them up."""

from __future__ import annotations

import re

import pytest


def _deep_selected(config: pytest.Config) -> bool:
    words = re.findall(r"[\w-]+", config.getoption("markexpr") or "")
    return any(word == "deep" and (i == 0 or words[i - 1] != "not") for i, word in enumerate(words))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the deep profile unless it was asked for."""
    if _deep_selected(config):
        return
    deep = [item for item in items if item.get_closest_marker("deep")]
    if deep:
        config.hook.pytest_deselected(items=deep)
        items[:] = [item for item in items if not item.get_closest_marker("deep")]
