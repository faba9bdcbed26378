"""Helpers for structured output shared by the providers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, PydanticUserError, ValidationError

from providers.base import LLMResponse, SchemaT
from providers.errors import InvalidRequestError, StructuredOutputError


def schema_name(schema: type[BaseModel]) -> str:
    """``schema``'s name as the vendors accept it (``^[a-zA-Z0-9_-]{1,64}$``)."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", schema.__name__)[:64]
    return name or "answer"


def json_schema_for(
    schema: type[BaseModel], convert: Callable[[type[BaseModel]], dict[str, Any]], vendor: str
) -> dict[str, Any]:
    """``convert(schema)``: the vendor's JSON schema for ``schema``, or a clear error.

    Raises:
        InvalidRequestError: ``schema`` has fields no JSON schema (or no schema the vendor
            accepts) can describe, such as ``Any`` or callables.
    """
    try:
        return convert(schema)
    except (PydanticUserError, TypeError, ValueError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidRequestError(
            f"{schema.__name__} cannot be used for {vendor} structured output: {first_line}"
        ) from exc


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
