"""What the vendors' chat providers share: the public calls, spelled once, over vendor hooks.

:class:`ChatProvider` checks a call's arguments and builds its request through the vendor's
:meth:`~ChatProvider._request`, then hands it to the vendor to send and read; a vendor
implements only what differs (the request's shape, stop sequences, structured output).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from providers import checks
from providers.base import DEFAULT_MAX_TOKENS, LLMProvider, LLMResponse, SchemaT


class ChatProvider(LLMProvider):
    """An :class:`LLMProvider` over a vendor's chat API (see the module docstring)."""

    _model: str
    _base_url: str | None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self._model!r}, base_url={self._base_url!r})"

    @property
    def model_id(self) -> str:
        """The model this provider calls."""
        return self._model

    def generate(
        self,
        prompt: str,
        *,
        system_prompt: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float | None = None,
        stop_sequences: Sequence[str] | None = None,
    ) -> LLMResponse:
        """Generate a reply to ``prompt`` (see :meth:`LLMProvider.generate`)."""
        request = self._request(prompt, system_prompt, max_tokens, temperature)
        self._add_stops(request, stop_sequences)
        return self._generated(request)

    def generate_structured(
        self,
        prompt: str,
        schema: type[SchemaT],
        *,
        system_prompt: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float | None = None,
    ) -> tuple[SchemaT, LLMResponse]:
        """Generate a reply shaped by ``schema`` (see :meth:`LLMProvider.generate_structured`)."""
        checks.check_schema(schema)
        request = self._request(prompt, system_prompt, max_tokens, temperature)
        return self._structured(request, schema)

    @abstractmethod
    def _request(
        self, prompt: str, system_prompt: str | None, max_tokens: int, temperature: float | None
    ) -> dict[str, Any]:
        """The vendor's request for these arguments, checked."""

    @abstractmethod
    def _add_stops(self, request: dict[str, Any], stop_sequences: Sequence[str] | None) -> None:
        """Put ``stop_sequences``, checked against the vendor's limits, into ``request``."""

    @abstractmethod
    def _generated(self, request: dict[str, Any]) -> LLMResponse:
        """Send ``request`` and read its reply as text."""

    @abstractmethod
    def _structured(
        self, request: dict[str, Any], schema: type[SchemaT]
    ) -> tuple[SchemaT, LLMResponse]:
        """Ask for a reply shaped by ``schema`` in ``request``, send it and parse the reply."""


def log_response(logger: logging.Logger, response: LLMResponse) -> None:
    """Log a finished call at debug level: what it cost, never what it said."""
    logger.debug(
        "%s call done",
        response.provider,
        extra={
            "model": response.model,
            "latency_ms": round(response.latency_ms, 1),
            "input_tokens": response.usage.input_tokens,
            "output_tokens": response.usage.output_tokens,
            "request_id": response.request_id,
        },
    )
