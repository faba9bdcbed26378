"""The session codec: what it refuses to write, and how it reports what it cannot read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from stores.errors import CorruptDataError, InvalidInputError, StoreError
from stores.sessions import Session
from stores.sessions.codec import (
    MAX_FLOAT,
    MAX_INT_DIGITS,
    MAX_JSON_DEPTH,
    MAX_SAVED_VERSION,
    decode,
    encode,
    stamp,
    store_fields,
)
from stores.sessions.models import MAX_VERSION

NOW = datetime(2030, 1, 1, tzinfo=UTC)
LIMIT = 1024 * 1024


def make(**fields: Any) -> Session:
    return Session(
        tenant_id=uuid4(), agent_id=uuid4(), channel="web", user_channel_id="u", **fields
    )


def document(session: Session) -> bytes:
    return encode(session, LIMIT)[1]


def with_variable(session: Session, raw: bytes) -> bytes:
    """The document of ``session`` with ``variables`` replaced by the raw JSON ``raw``: data
    stored before today's checks, or written by something else."""
    data = document(session)
    assert b'"variables":{}' in data
    return data.replace(b'"variables":{}', b'"variables":{"x":' + raw + b"}")


def test_decode_of_garbage_is_corrupt_data_with_the_parser_error_as_cause() -> None:
    with pytest.raises(CorruptDataError, match="a stored session cannot be read back") as info:
        decode(b"\x00not json")
    assert isinstance(info.value, StoreError)
    assert not isinstance(info.value, ValidationError)
    assert isinstance(info.value.__cause__, ValidationError)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"1" * (MAX_INT_DIGITS + 1), id="int-too-long"),
        pytest.param(b"[" * 250 + b"]" * 250, id="nested-too-deep"),
        pytest.param(b'"unterminated', id="truncated"),
    ],
)
def test_decode_of_an_unreadable_stored_session_names_it(raw: bytes) -> None:
    session = make()
    with pytest.raises(CorruptDataError, match=f"session {session.id} cannot be read back"):
        decode(with_variable(session, raw))


def test_decode_names_the_session_in_postgresql_text_form_and_in_str() -> None:
    # PostgreSQL gives jsonb back with spaces and keys sorted by length: "id" still leads.
    session = make()
    fields = {**json.loads(document(session)), "status": "NOPE"}
    as_postgres = json.dumps(dict(sorted(fields.items(), key=lambda kv: (len(kv[0]), kv[0]))))
    assert as_postgres.startswith('{"id": "')
    with pytest.raises(CorruptDataError, match=f"session {session.id} .*status") as info:
        decode(as_postgres)
    assert isinstance(info.value.__cause__, ValidationError)


def test_a_document_with_the_highest_stored_version_reads_back() -> None:
    stored = stamp(make(version=MAX_SAVED_VERSION), version=MAX_VERSION, created_at=NOW, now=NOW)
    clean, data = encode(stored, LIMIT)
    assert decode(data) == clean
    assert decode(data).version == MAX_VERSION


def test_a_version_past_bigint_is_refused_naming_it() -> None:
    too_far = stamp(make(), version=MAX_VERSION + 1, created_at=NOW, now=NOW)
    with pytest.raises(InvalidInputError) as info:
        encode(too_far, LIMIT)
    assert info.value.field == "version"


def test_a_caller_may_not_hand_in_a_version_whose_successor_overflows() -> None:
    session = make()
    session.version = MAX_SAVED_VERSION
    assert store_fields(session) == (MAX_SAVED_VERSION, session.created_at)
    session.version = MAX_VERSION
    with pytest.raises(InvalidInputError, match="version must be from 0 to") as info:
        store_fields(session)
    assert info.value.field == "version"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("version", True, id="version-bool"),
        pytest.param("version", -1, id="version-negative"),
        pytest.param("created_at", "2030-01-01T00:00:00Z", id="created-at-text"),
        pytest.param("created_at", datetime(2030, 1, 1), id="created-at-naive"),
    ],
)
def test_store_fields_refuses_what_a_save_cannot_start_from(field: str, value: Any) -> None:
    session = make()
    setattr(session, field, value)
    with pytest.raises(InvalidInputError) as info:
        store_fields(session)
    assert info.value.field == field


def test_refusals_locate_the_value_inside_the_variable() -> None:
    session = make()
    session.variables = {"cart": [{"qty": 1}, {"price": -MAX_FLOAT}]}
    with pytest.raises(
        InvalidInputError, match=r"variables\.cart\[1\]\.price: .*PostgreSQL"
    ) as info:
        encode(session, LIMIT)
    assert info.value.field == "variables.cart"


def test_negative_zero_is_written_as_zero_without_touching_the_callers_copy() -> None:
    session = make()
    inner: dict[str, Any] = {"z": -0.0}
    session.variables = {"a": [inner], "b": "-0.0"}
    clean, data = encode(session, LIMIT)
    assert b'"z":0.0' in data
    assert b'"b":"-0.0"' in data
    assert str(inner["z"]) == "-0.0"
    assert decode(data) == clean


def test_the_limits_sit_comfortably_inside_what_pydantic_reads_back() -> None:
    # Pins the experiments behind the limits, so an upgrade of pydantic that moves them shows.
    deep = make()
    deep.variables = {"x": json.loads("[" * (3 * MAX_JSON_DEPTH) + "]" * (3 * MAX_JSON_DEPTH))}
    data = deep.model_dump_json().encode()
    assert decode(data).variables == deep.variables
    with pytest.raises(CorruptDataError):
        decode(with_variable(make(), b"9" * (MAX_INT_DIGITS + 1)))
    assert decode(with_variable(make(), b"9" * MAX_INT_DIGITS)).variables["x"] == int("9" * 4300)
    # Floats of MAX_FLOAT and more are written in the exponent form PostgreSQL turns into
    # integers (see tests/integration/test_sessions_jsonb.py); smaller ones never are.
    assert b"e+" in make(variables={"f": MAX_FLOAT}).model_dump_json().encode()
    below = make(variables={"f": 9999999999999998.0}).model_dump_json()
    assert '"f":9999999999999998.0' in below
