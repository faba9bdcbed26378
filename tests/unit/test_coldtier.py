"""The cold tier strategy: a tier keeping rows must define every step of its own."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stores.sessions.coldtier import ColdTier, RedisColdTier


def test_a_row_tier_that_leaves_a_step_to_the_defaults_is_refused_at_definition() -> None:
    with pytest.raises(TypeError, match=r"does not define \[.*'put'"):

        class Forgetful(ColdTier):
            name = "forgetful"
            in_redis = False

            def locate(self, tenant_id, session_id):  # type: ignore[no-untyped-def]
                return None


def test_a_redis_tier_keeps_no_rows() -> None:
    tier = RedisColdTier(ttl=timedelta(days=1))
    assert tier.in_redis
    assert tier.name == "redis"
    assert tier.unpack(tier.pack(b"{}")) == b"{}"
    assert tier.stats() is None
