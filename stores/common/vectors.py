"""Vector arithmetic for the in-memory backends, matching what pgvector stores and computes."""

from __future__ import annotations

import math
import operator
from array import array
from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel

from stores.common.validation import validate_embedding
from stores.errors import InvalidInputError

ModelT = TypeVar("ModelT", bound=BaseModel)


def float32_list(vector: Sequence[float] | None) -> list[float] | None:
    """Round ``vector`` to float32 precision, as a ``vector`` column stores it."""
    if vector is None:
        return None
    return array("f", vector).tolist()


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine similarity of two non-zero vectors (1 - pgvector's ``<=>`` distance).

    Computed as pgvector does it, ``dot / sqrt(|a|² · |b|²)`` clamped to [-1, 1], so that
    two equal vectors score exactly 1.0; pass both at float32 precision, as a ``vector``
    holds them (see :func:`float32_list`).
    """
    if len(a) != len(b):
        raise ValueError(f"vectors differ in length: {len(a)} and {len(b)}")
    dot = sum(map(operator.mul, a, b))
    norms = sum(map(operator.mul, a, a)) * sum(map(operator.mul, b, b))
    return float(max(-1.0, min(1.0, dot / math.sqrt(norms))))


def checked_query(
    embedding: Sequence[float], dimensions: int, field: str = "embedding"
) -> list[float]:
    """Validate a query vector as :func:`validate_embedding` does, quickly on valid input.

    The vector comes back at float32 precision, as pgvector sees a ``vector`` parameter.
    A query is validated on every search; the plain per-component loop costs about half a
    millisecond at 1536 dimensions, this path some tens of microseconds.
    """
    try:
        # Exactly int and float (not bool, not numpy scalars), as validate_embedding allows.
        if len(embedding) == dimensions and set(map(type, embedding)) <= {float, int}:
            values = array("f", embedding)
            if all(map(math.isfinite, values)) and any(values):
                return values.tolist()
    except (TypeError, OverflowError):
        pass
    checked = validate_embedding(embedding, dimensions, field)
    if checked is None:  # pragma: no cover - validate_embedding only returns None for None
        raise InvalidInputError(f"{field} is required", field=field)
    return array("f", checked).tolist()


def check_min_score(min_score: float | None) -> float | None:
    """Reject a ``min_score`` that is not a finite number (None means no threshold)."""
    if min_score is None:
        return None
    if (
        isinstance(min_score, bool)
        or not isinstance(min_score, (int, float))
        or not math.isfinite(min_score)
    ):
        raise InvalidInputError(
            f"min_score must be a finite number; got {min_score!r}", field="min_score"
        )
    return float(min_score)


def found(item: ModelT, include_embedding: bool) -> ModelT:
    """A search hit as returned: a copy, its ``embedding`` left out unless asked for."""
    if include_embedding:
        return item.model_copy(deep=True)
    # Drop the embedding in a shallow copy first, so that the deep copy does not copy it.
    return item.model_copy(update={"embedding": None}).model_copy(deep=True)
