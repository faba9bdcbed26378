"""Vector arithmetic for the in-memory backends, matching what pgvector stores and computes."""

from __future__ import annotations

import math
import operator
from array import array
from collections.abc import Sequence


def float32_list(vector: Sequence[float] | None) -> list[float] | None:
    """Round ``vector`` to float32 precision, as a ``vector`` column stores it."""
    if vector is None:
        return None
    return array("f", vector).tolist()


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine similarity of two non-zero vectors (1 - pgvector's ``<=>`` distance)."""
    if len(a) != len(b):
        raise ValueError(f"vectors differ in length: {len(a)} and {len(b)}")
    dot = sum(map(operator.mul, a, b))
    norm = math.sqrt(sum(map(operator.mul, a, a))) * math.sqrt(sum(map(operator.mul, b, b)))
    return float(dot / norm)
