"""The shared input checks every store runs before touching a backend."""

from __future__ import annotations

import math
import uuid
from enum import StrEnum

import pytest

from stores.common import (
    check_limit,
    check_text,
    decode_cursor,
    encode_cursor,
    parse_enum,
    parse_id,
    validate_embedding,
)
from stores.errors import InvalidInputError


class Color(StrEnum):
    RED = "RED"
    BLUE = "BLUE"


def test_parse_id_accepts_uuid_and_string_and_names_the_field() -> None:
    u = uuid.uuid4()
    assert parse_id(u, "tenant_id") is u
    assert parse_id(str(u), "tenant_id") == u
    with pytest.raises(InvalidInputError, match="tenant_id is not a valid UUID") as info:
        parse_id("not-a-uuid", "tenant_id")
    assert info.value.field == "tenant_id"
    with pytest.raises(InvalidInputError):
        parse_id(42, "agent_id")  # type: ignore[arg-type]


def test_parse_enum_lists_allowed_values() -> None:
    assert parse_enum(Color, "RED", "color") is Color.RED
    with pytest.raises(InvalidInputError, match="color must be one of RED, BLUE; got 'GREEN'"):
        parse_enum(Color, "GREEN", "color")


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ([1.0, 2.0], "has 2 dimensions; this store expects 3"),
        ([1.0, math.nan, 0.0], r"embedding\[1\] is nan"),
        ([1.0, math.inf, 0.0], r"embedding\[1\] is inf"),
        ([1.0, "x", 0.0], r"embedding\[1\] is not a number"),
        ([0.0, 0.0, 0.0], "zero vector"),
    ],
)
def test_validate_embedding_rejects_bad_vectors(vector: list[float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        validate_embedding(vector, 3)


def test_validate_embedding_returns_floats() -> None:
    assert validate_embedding([1, 0, 2], 3) == [1.0, 0.0, 2.0]
    assert validate_embedding(None, 3) is None


def test_check_text_limits_length_and_nul() -> None:
    check_text("ok", "name", 2)
    with pytest.raises(InvalidInputError, match="name is 3 characters; the limit is 2"):
        check_text("abc", "name", 2)
    with pytest.raises(InvalidInputError, match="NUL"):
        check_text("a\x00b", "name")


@pytest.mark.parametrize("limit", [0, -1, 1001, True, 2.5])
def test_check_limit_rejects_out_of_range(limit: object) -> None:
    with pytest.raises(InvalidInputError, match="limit must be an integer from 1 to 1000"):
        check_limit(limit)  # type: ignore[arg-type]


def test_cursor_round_trip_and_tampering() -> None:
    u = uuid.uuid4()
    cursor = encode_cursor("2030-01-01T00:00:00+00:00", u)
    assert decode_cursor(cursor, 2) == ["2030-01-01T00:00:00+00:00", str(u)]
    with pytest.raises(InvalidInputError, match="cursor is not valid"):
        decode_cursor("%%%not-base64", 2)
    with pytest.raises(InvalidInputError, match="cursor is not valid"):
        decode_cursor(cursor, 3)
