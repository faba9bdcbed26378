"""Argument checks every provider runs before it sends anything.

A failure is an :class:`~providers.errors.InvalidRequestError` that says what was wrong.

Without the vendor's tokenizer, text length is judged in UTF-8 bytes against two ratios:
a text is refused up front only when even at :data:`MAX_BYTES_PER_TOKEN` it would exceed the
model's limit (so no text that fits is refused), while batches are packed assuming
:data:`MIN_BYTES_PER_TOKEN` (so a request is never over the per-request budget). A text
between the two bounds goes out and the vendor's own 400 answers it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel

from providers.errors import InvalidRequestError

MAX_BYTES_PER_TOKEN = 8
"""Hardly any real text averages more UTF-8 bytes per token than this."""

MIN_BYTES_PER_TOKEN = 3
"""Hardly any real text averages fewer bytes per token (CJK runs about 3)."""


def max_text_bytes(max_tokens: int) -> int:
    """The longest text, in UTF-8 bytes, that could fit in ``max_tokens`` tokens."""
    return max_tokens * MAX_BYTES_PER_TOKEN


def estimated_tokens_ceiling(text: str) -> int:
    """A generous estimate of the tokens in ``text``, for packing requests."""
    return math.ceil(len(text.encode("utf-8")) / MIN_BYTES_PER_TOKEN) + 1


def check_model(model: str) -> str:
    """Reject an empty model name."""
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(f"model must be a non-empty string; got {model!r}")
    return model


def check_timeout(timeout: float) -> float:
    """Reject a timeout that is not a positive number of seconds."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidRequestError(f"timeout must be a number of seconds; got {timeout!r}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise InvalidRequestError(f"timeout must be positive; got {timeout!r}")
    return float(timeout)


def check_max_retries(max_retries: int) -> int:
    """Reject a negative retry count."""
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidRequestError(f"max_retries must be an integer >= 0; got {max_retries!r}")
    return max_retries


def check_prompt(prompt: str, *, max_tokens_in: int, field: str = "prompt") -> str:
    """Reject a prompt that is not a string, is blank, or cannot fit the model's input."""
    if not isinstance(prompt, str):
        raise InvalidRequestError(f"{field} must be a string; got {type(prompt).__name__}")
    if not prompt.strip():
        raise InvalidRequestError(f"{field} is empty")
    _check_size(prompt, max_tokens_in, field)
    return prompt


def check_system_prompt(system_prompt: str | None, *, max_tokens_in: int) -> str | None:
    """Reject a system prompt that is not a string or cannot fit; blank means none."""
    if system_prompt is None:
        return None
    if not isinstance(system_prompt, str):
        raise InvalidRequestError(
            f"system_prompt must be a string; got {type(system_prompt).__name__}"
        )
    if not system_prompt.strip():
        return None
    _check_size(system_prompt, max_tokens_in, "system_prompt")
    return system_prompt


def check_max_tokens(max_tokens: int) -> int:
    """Reject a reply budget below one token."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequestError(f"max_tokens must be an integer >= 1; got {max_tokens!r}")
    return max_tokens


def check_temperature(temperature: float | None, *, upper: float) -> float | None:
    """Reject a temperature outside ``[0, upper]`` (``None`` keeps the model's default)."""
    if temperature is None:
        return None
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise InvalidRequestError(f"temperature must be a number; got {temperature!r}")
    if not math.isfinite(temperature) or not 0 <= temperature <= upper:
        raise InvalidRequestError(f"temperature must be between 0 and {upper}; got {temperature!r}")
    return float(temperature)


def check_stop_sequences(stop: Sequence[str] | None, *, max_count: int | None) -> list[str] | None:
    """Reject stop sequences that are not non-empty strings, or too many of them."""
    if stop is None:
        return None
    if isinstance(stop, str):
        raise InvalidRequestError("stop_sequences must be a list of strings, not one string")
    values = list(stop)
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value:
            raise InvalidRequestError(f"stop_sequences[{i}] must be a non-empty string")
    if max_count is not None and len(values) > max_count:
        raise InvalidRequestError(
            f"at most {max_count} stop_sequences are allowed; got {len(values)}"
        )
    return values or None


def check_schema(schema: Any) -> type[BaseModel]:
    """Reject anything but a pydantic model class."""
    if not (inspect.isclass(schema) and issubclass(schema, BaseModel)):
        raise InvalidRequestError(f"schema must be a pydantic BaseModel subclass; got {schema!r}")
    return schema


def check_texts(texts: Sequence[str], *, max_tokens_each: int) -> list[str]:
    """Reject an empty batch, or any text that is not a string, is blank or too long."""
    if isinstance(texts, str):
        raise InvalidRequestError("texts must be a sequence of strings, not one string")
    values = list(texts)
    if not values:
        raise InvalidRequestError("texts is empty; nothing to embed")
    for i, text in enumerate(values):
        check_prompt(text, max_tokens_in=max_tokens_each, field=f"texts[{i}]")
    return values


def chunks(
    texts: Sequence[str], *, max_items: int, max_tokens: int
) -> Iterator[tuple[int, list[str]]]:
    """Split ``texts`` into ``(start index, texts)`` runs that fit one request each."""
    start = 0
    current: list[str] = []
    budget = 0
    for i, text in enumerate(texts):
        cost = estimated_tokens_ceiling(text)
        if current and (len(current) >= max_items or budget + cost > max_tokens):
            yield start, current
            start, current, budget = i, [], 0
        current.append(text)
        budget += cost
    if current:
        yield start, current


def _check_size(text: str, max_tokens_in: int, field: str) -> None:
    size = len(text.encode("utf-8"))
    limit = max_text_bytes(max_tokens_in)
    if size > limit:
        raise InvalidRequestError(
            f"{field} is too long for the model: {size} bytes, which cannot fit in its "
            f"{max_tokens_in}-token input limit"
        )
