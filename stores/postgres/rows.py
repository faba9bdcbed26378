"""Moving pydantic models in and out of table rows, and keyset clauses, for the PostgreSQL
backends of the configuration and memory stores.

Embeddings travel in pgvector's binary form both ways: a 1536-component vector costs about
half a millisecond to format or parse as text in Python and some microseconds as bytes, which
matters for a search that must answer within milliseconds.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

import sqlalchemy as sa
from pgvector import Vector
from pydantic import BaseModel
from sqlalchemy.types import UserDefinedType

M = TypeVar("M", bound=BaseModel)


class VectorBytes(UserDefinedType[Any]):
    """A ``vector`` parameter passed as a :class:`pgvector.Vector` (dumped in binary)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "VECTOR"


def vector_param(values: Sequence[float], name: str | None = None) -> sa.BindParameter[Any]:
    """A bound ``vector`` parameter; the connection must have the pgvector adapters."""
    return sa.bindparam(name, Vector(list(values)), type_=VectorBytes(), unique=name is None)


def register_vector_types(conn: sa.Connection) -> None:
    """Teach the connection's psycopg driver the ``vector`` type (once per connection)."""
    info = conn.connection.info
    if info.get("hearth_vector"):
        return
    from pgvector.psycopg import register_vector

    driver = conn.connection.driver_connection
    if driver is None:
        return
    register_vector(driver)
    info["hearth_vector"] = True


def selectable(table: sa.Table) -> list[sa.ColumnElement[Any]]:
    """The columns of ``table`` to select, with ``embedding`` in pgvector's binary form."""
    return [
        sa.func.vector_send(c, type_=sa.LargeBinary).label("embedding")
        if c.name == "embedding"
        else c
        for c in table.c
    ]


def decode_vector(data: bytes | memoryview | None) -> list[float] | None:
    """Decode pgvector's binary form (dimension, unused, big-endian float4s)."""
    if data is None:
        return None
    values = array("f")
    values.frombytes(bytes(data[4:]))
    if sys.byteorder == "little":
        values.byteswap()
    return values.tolist()


def plain_row(row: sa.RowMapping | dict[str, Any]) -> dict[str, Any]:
    """A row as a dict, with a binary ``embedding`` decoded into floats."""
    data = dict(row)
    if "embedding" in data and not isinstance(data["embedding"], (list, type(None))):
        data["embedding"] = decode_vector(data["embedding"])
    for key, value in data.items():
        # timestamptz comes back in the session's time zone; the models speak UTC.
        if isinstance(value, datetime) and value.tzinfo is not None:
            data[key] = value.astimezone(UTC)
    return data


def row_values(item: BaseModel, *, exclude: set[str] | None = None) -> dict[str, Any]:
    """The column values of ``item`` (enums as their values, nested models as dicts)."""
    data = item.model_dump(exclude=exclude)
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in data.items()}


def to_model(cls: type[M], row: sa.RowMapping | dict[str, Any]) -> M:
    """Build ``cls`` from a row, ignoring columns the model does not have (``deleted_at``)."""
    data = plain_row(row)
    return cls.model_validate({name: data[name] for name in cls.model_fields if name in data})


def after(
    columns: Sequence[sa.ColumnElement[Any]],
    key: tuple[Any, ...] | None,
    *,
    descending: bool = False,
) -> list[sa.ColumnElement[bool]]:
    """The keyset clause "comes after ``key``" for rows ordered by ``columns``."""
    if key is None:
        return []
    left = sa.tuple_(*columns)
    right = sa.tuple_(*[sa.literal(v, c.type) for c, v in zip(columns, key, strict=True)])
    return [left < right] if descending else [left > right]
