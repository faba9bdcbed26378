"""Wrong values for the bad-input suite, chosen from each parameter's annotation.

Every value a strategy here gives is wrong for the annotation it was built from (a wrong
type, NaN or infinity, an integer beyond any column, NUL, a lone surrogate, text over the
limits), except the ids of another tenant, which are well formed and must behave as missing.
So whatever the store, no call given one of them may write anything.
"""

from __future__ import annotations

import collections.abc
import enum
import math
import types
import typing
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from hypothesis import strategies as st
from pydantic import BaseModel

from stores.common.validation import MAX_TEXT_LENGTH

NAIVE = datetime(2030, 1, 1, 12, 0)
OUT_OF_RANGE = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
HUGE_INTS = [2**31, 2**40, 2**63, -(2**63) - 1, 10**30]
NOT_ANY_KIND: list[Any] = [object(), b"bytes", 1j, Ellipsis]
LONG_TEXT = "x" * (MAX_TEXT_LENGTH + 1)

_surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_text = st.text(max_size=8)


def _broken_text() -> st.SearchStrategy[str]:
    """Text that no store can hold: with a NUL, with a lone surrogate, or over the limit."""
    return st.one_of(
        st.tuples(_text, _text).map(lambda p: f"{p[0]}\x00{p[1]}"),
        st.tuples(_text, _surrogate, _text).map("".join),
        st.just(LONG_TEXT),
    )


@dataclass(frozen=True)
class Kind:
    """What a parameter or field takes, as far as wrong values are concerned."""

    name: str
    optional: bool = False
    target: Any = None
    """The model class (``model``/``models``) or enum class (``enum``/``enums``)."""


def _members(annotation: Any) -> tuple[list[Any], bool]:
    """The union members of ``annotation`` without None, and whether None was one."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = list(typing.get_args(annotation))
    elif origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    else:
        args = [annotation]
    plain = [a for a in args if a is not type(None)]
    return plain, len(plain) != len(args)


def _is_sequence(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin in (list, collections.abc.Sequence, tuple)


def classify(annotation: Any) -> Kind:
    """The :class:`Kind` of ``annotation``."""
    members, optional = _members(annotation)
    sequences = [m for m in members if _is_sequence(m)]
    plain = [m for m in members if not _is_sequence(m)]
    for member in plain:
        if isinstance(member, type) and issubclass(member, BaseModel):
            return Kind("model", optional, member)
    if UUID in plain:
        return Kind("id", optional)
    for member in plain:
        if isinstance(member, type) and issubclass(member, enum.Enum):
            return Kind("enum", optional, member)
    if sequences:
        (item,) = typing.get_args(sequences[0])[:1] or (Any,)
        inner = classify(item)
        if inner.name == "model":
            return Kind("models", optional, inner.target)
        if inner.name in ("float", "int"):
            return Kind("vector", optional)
        if inner.name == "enum":
            return Kind("enums", optional, inner.target)
        return Kind("texts", optional)
    simple = {bool: "bool", int: "int", float: "float", str: "text", datetime: "datetime"}
    for member in plain:
        if member in simple:
            return Kind(simple[member], optional)
        if typing.get_origin(member) is dict or member is dict:
            return Kind("json", optional)
    return Kind("json", optional)


def _none(kind: Kind) -> list[Any]:
    return [] if kind.optional else [None]


def bad_values(kind: Kind, *, dimensions: int, foreign: list[Any], in_model: bool) -> Any:
    """A strategy of values wrong for ``kind``.

    ``foreign`` are well-formed ids another tenant owns; ``in_model`` leaves out values that
    only a method parameter makes wrong (a negative number is a fine rule priority).
    """
    fixed: list[Any] = [*NOT_ANY_KIND, *_none(kind)]
    extra: list[st.SearchStrategy[Any]] = []
    if kind.name == "id":
        fixed += ["not-a-uuid", "", 12345, 1.5, True, [UUID(int=1)], *foreign]
        extra.append(_broken_text())
    elif kind.name == "text":
        fixed += [0, 1.5, True, [], {}]
        extra.append(_broken_text())
    elif kind.name == "int":
        fixed += ["1", 1.5, math.nan, math.inf, True, *HUGE_INTS[2 if in_model else 0 :]]
        if not in_model:
            fixed.append(-1)
    elif kind.name == "float":
        fixed += ["0.5", math.nan, math.inf, -math.inf, 10**400, True]
    elif kind.name == "bool":
        fixed += ["yes", 1, 0, 1.0]
    elif kind.name == "datetime":
        fixed += [NAIVE, "2030-01-01T00:00:00+00:00", 0, date(2030, 1, 1), OUT_OF_RANGE]
    elif kind.name == "vector":
        good = [1.0] + [0.0] * (dimensions - 1)
        fixed += [
            7,
            UUID(int=7),
            "abc",
            [1.0],
            [math.nan, *good[1:]],
            [math.inf, *good[1:]],
            [10**400, *good[1:]],
            [1e39, *good[1:]],
            ["x", *good[1:]],
            [True] * dimensions,
            [0.0] * dimensions,
        ]
    elif kind.name == "enum":
        fixed += ["NOPE", 1, "", ["X"]]
    elif kind.name == "enums":
        fixed += [5, [None], ["NOPE"], [1], ["\x00"]]
    elif kind.name == "texts":
        fixed += [5, [None], [1], ["\x00"], [LONG_TEXT], ["\ud800"]]
    elif kind.name == "json":
        fixed += [
            math.nan,
            math.inf,
            {"a": math.nan},
            {"\x00": 1},
            {"k": "\x00"},
            {"k": "\ud800"},
            {"k": {1, 2}},
            {"k": 10**5000},
        ]
    return st.one_of(st.sampled_from(fixed), *extra)


def bad_model(
    cls: type[BaseModel], good: BaseModel, others: list[BaseModel], *, dimensions: int
) -> Any:
    """A strategy of wrong values where a ``cls`` instance is expected: other types, and
    copies of ``good`` with one field made wrong without validation (as ``model_construct``
    and ``model_copy(update=...)`` allow)."""
    fixed: list[Any] = [*NOT_ANY_KIND, None, 0, "x", {}, [], *others]
    fields = sorted(cls.model_fields)

    @st.composite
    def broken(draw: st.DrawFn) -> BaseModel:
        name = draw(st.sampled_from(fields))
        kind = classify(cls.model_fields[name].annotation)
        if kind.name in ("model", "models"):
            value = draw(st.sampled_from([*NOT_ANY_KIND, "x", 5, [5], {"x": 1}]))
        else:
            value = draw(bad_values(kind, dimensions=dimensions, foreign=[], in_model=True))
        return good.model_copy(update={name: value})

    return st.one_of(st.sampled_from(fixed), broken())


def _short(value: Any, limit: int) -> str:
    if isinstance(value, BaseModel):
        fields = ", ".join(f"{k}={_short(v, 40)}" for k, v in vars(value).items())
        return f"{type(value).__name__}({fields})"
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        text = f"<{type(value).__name__} too long to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_call(method: str, kwargs: dict[str, Any]) -> str:
    """A short rendering of a call for a failure message (a model shows every field)."""
    return f"{method}(" + ", ".join(f"{k}={_short(v, 160)}" for k, v in kwargs.items()) + ")"


UTC_NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
