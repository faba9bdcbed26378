"""Moving pydantic models in and out of table rows, and keyset clauses, for the PostgreSQL
backends of the configuration and memory stores."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def row_values(item: BaseModel, *, exclude: set[str] | None = None) -> dict[str, Any]:
    """The column values of ``item`` (enums as their values, nested models as dicts)."""
    data = item.model_dump(exclude=exclude)
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in data.items()}


def to_model(cls: type[M], row: sa.RowMapping | dict[str, Any]) -> M:
    """Build ``cls`` from a row, ignoring columns the model does not have (``deleted_at``)."""
    return cls.model_validate({name: row[name] for name in cls.model_fields if name in row})


def after(columns: Sequence[sa.ColumnElement[Any]], key: tuple[Any, ...] | None,
          *, descending: bool = False) -> list[sa.ColumnElement[bool]]:
    """The keyset clause "comes after ``key``" for rows ordered by ``columns``."""
    if key is None:
        return []
    left = sa.tuple_(*columns)
    right = sa.tuple_(*[sa.literal(v, c.type) for c, v in zip(columns, key, strict=True)])
    return [left < right] if descending else [left > right]
