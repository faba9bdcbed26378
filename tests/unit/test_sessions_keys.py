"""The key layout handed to the sweep scripts agrees with what the scripts read."""

from __future__ import annotations

import re
from importlib import resources
from uuid import uuid4

import pytest

from stores.sessions import keys


def _segment_names(script: str) -> tuple[str, ...]:
    source = resources.files("stores.sessions").joinpath(f"lua/{script}.lua").read_text()
    found = re.findall(r"segments\(\d+, \{([^}]*)\}", source)
    assert len(found) == 1, f"{script}.lua calls segments once"
    return tuple(name.strip().strip("'") for name in found[0].split(","))


@pytest.mark.parametrize("script", sorted(keys.SWEEP_TENANT_KEYS))
def test_each_sweep_script_declares_the_tenant_keys_python_sends(script: str) -> None:
    assert _segment_names(script) == keys.SWEEP_TENANT_KEYS[script]


@pytest.mark.parametrize("script", sorted(keys.SWEEP_TENANT_KEYS))
def test_sweep_tenant_keys_are_the_tenants_own_keys_in_one_slot(script: str) -> None:
    base = keys.base(uuid4())
    named = keys.sweep_tenant_keys(base, script)
    assert set(named) <= set(keys.tenant_keys(base))
    assert len(named) == len(set(named))
    # The scripts take the tenant base from the first key's name up to its hash tag.
    assert all(key.startswith(base) for key in named)
