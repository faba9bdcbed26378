"""What PostgreSQL's jsonb gives back, which the session codec's limits rest on.

The cold tier stores a session's document as jsonb and reads it back as ``CAST(data AS
TEXT)``; pydantic then parses that text. These tests pin the behaviour of the server the
suite runs against, so a server that behaves otherwise shows up here first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pydantic_core
import pytest
import sqlalchemy as sa

from stores.postgres.engine import create_engine
from stores.sessions.codec import MAX_FLOAT, MAX_INT_DIGITS, MAX_JSON_DEPTH

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    built = create_engine(database_url, pool_size=1)
    try:
        yield built
    finally:
        built.dispose()


def through_jsonb(engine: sa.Engine, value: Any) -> Any:
    """``value`` written as pydantic writes it, stored as jsonb, read back as pydantic does."""
    with engine.connect() as conn:
        text = conn.execute(
            sa.text("SELECT CAST(CAST(:doc AS jsonb) AS text)"),
            {"doc": pydantic_core.to_json(value).decode()},
        ).scalar_one()
    return pydantic_core.from_json(text)


def test_floats_below_the_limit_come_back_bit_for_bit(engine: sa.Engine) -> None:
    floats = [9999999999999998.0, -9999999999999998.0, 5e-324, 2.2250738585072014e-308, 0.1]
    back = through_jsonb(engine, floats)
    assert [type(x) for x in back] == [float] * len(floats)
    assert [x.hex() for x in back] == [x.hex() for x in floats]


def test_floats_at_the_limit_come_back_as_integers(engine: sa.Engine) -> None:
    back = through_jsonb(engine, [MAX_FLOAT, 1e23, 1.7976931348623157e308])
    assert [type(x) for x in back] == [int, int, int]
    assert back[1] == 10**23 != 1e23


def test_negative_zero_loses_its_sign(engine: sa.Engine) -> None:
    assert through_jsonb(engine, [-0.0])[0].hex() == (0.0).hex()


def test_integers_pydantic_reads_come_back_exactly(engine: sa.Engine) -> None:
    ints = [10**MAX_INT_DIGITS - 1, -(10**MAX_INT_DIGITS - 1), 2**63, -(2**64)]
    assert through_jsonb(engine, ints) == ints


def test_nesting_far_beyond_the_limit_is_stored(engine: sa.Engine) -> None:
    # pydantic's parser gives up near 200 levels, so the server's answer is checked there.
    depth = 100 * MAX_JSON_DEPTH
    doc = "[" * depth + "]" * depth
    with engine.connect() as conn:
        text = conn.execute(
            sa.text("SELECT CAST(CAST(:doc AS jsonb) AS text)"), {"doc": doc}
        ).scalar_one()
    assert text == doc
