"""Helpers for structured output shared by the providers."""

from __future__ import annotations

import re

from pydantic import BaseModel, ValidationError

from providers.base import LLMResponse, SchemaT
from providers.errors import StructuredOutputError


def schema_name(schema: type[BaseModel]) -> str:
    """``schema``'s name as the vendors accept it (``^[a-zA-Z0-9_-]{1,64}$``)."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", schema.__name__)[:64]
    return name or "answer"


def parse_reply(schema: type[SchemaT], raw_text: str, response: LLMResponse) -> SchemaT:
    """``raw_text`` validated as ``schema``.

    Raises:
        StructuredOutputError: it is not JSON, or not valid for ``schema``; carries
            ``raw_text``.
    """
    try:
        return schema.model_validate_json(raw_text)
    except ValidationError as exc:
        cut = " (the reply was cut at max_tokens)" if response.finish_reason == "max_tokens" else ""
        first = exc.errors()[0]["msg"] if exc.error_count() else "invalid"
        raise StructuredOutputError(
            f"{response.provider} reply does not match {schema.__name__}{cut}: "
            f"{exc.error_count()} error(s), first: {first}",
            raw_text=raw_text,
            provider=response.provider,
            request_id=response.request_id,
            error_type="schema_mismatch",
        ) from None
