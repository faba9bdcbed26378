"""Packing texts into requests, and the length bounds behind the up-front checks."""

from __future__ import annotations

import pytest

from providers.checks import (
    MAX_BYTES_PER_TOKEN,
    check_prompt,
    chunks,
    estimated_tokens_ceiling,
    max_text_bytes,
)
from providers.errors import InvalidRequestError


def test_chunks_respect_the_item_limit_and_keep_order() -> None:
    texts = [str(i) for i in range(10)]
    out = list(chunks(texts, max_items=4, max_tokens=10**9))
    assert out == [(0, texts[0:4]), (4, texts[4:8]), (8, texts[8:10])]


def test_chunks_respect_the_token_budget() -> None:
    texts = ["a" * 300] * 5  # about 101 tokens each by the packing estimate
    out = list(chunks(texts, max_items=100, max_tokens=250))
    assert [len(chunk) for _, chunk in out] == [2, 2, 1]
    for _, chunk in out:
        assert sum(estimated_tokens_ceiling(t) for t in chunk) <= 250


def test_a_text_over_the_budget_still_goes_alone() -> None:
    out = list(chunks(["small", "b" * 3000, "small"], max_items=100, max_tokens=100))
    assert [chunk for _, chunk in out] == [["small"], ["b" * 3000], ["small"]]


def test_no_texts_no_chunks() -> None:
    assert list(chunks([], max_items=5, max_tokens=5)) == []


def test_the_packing_estimate_never_undercounts_cjk() -> None:
    # CJK runs close to one token per character, i.e. 3 UTF-8 bytes per token.
    assert estimated_tokens_ceiling("漢" * 1000) >= 1000


def test_the_up_front_check_only_refuses_what_cannot_fit() -> None:
    limit = 100
    check_prompt("x" * max_text_bytes(limit), max_tokens_in=limit)
    with pytest.raises(InvalidRequestError, match="too long"):
        check_prompt("x" * (limit * MAX_BYTES_PER_TOKEN + 1), max_tokens_in=limit)
