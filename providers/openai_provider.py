"""GPT models through OpenAI Chat Completions, on the official ``openai`` SDK."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import openai
from openai.lib._pydantic import to_strict_json_schema
from openai.types.chat import ChatCompletion
from pydantic import SecretStr

from providers import checks
from providers.base import (
    FinishReason,
    LLMResponse,
    SchemaT,
    TokenUsage,
)
from providers.catalog import DEFAULT_OPENAI_MODEL, openai_input_tokens
from providers.chat import ChatProvider, log_response
from providers.errors import ContentFilterError
from providers.openai_client import PROVIDER, build_client, secrets_of
from providers.structured import json_schema_for, parse_reply, schema_name
from providers.translate import call_sdk, unreadable_reply

logger = logging.getLogger(__name__)

MAX_STOP_SEQUENCES = 4
"""Chat Completions accepts at most this many stop sequences."""

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
}


class OpenAIProvider(ChatProvider):
    """Generation and structured output with OpenAI chat models.

    Args:
        api_key: the key; ``None`` reads ``OPENAI_API_KEY``. Never logged or shown.
        model: the chat model id.
        base_url: where the API is (``None``: the SDK's default or ``OPENAI_BASE_URL``).
        timeout: seconds before one HTTP request is abandoned.
        max_retries: the SDK's own retries; keep 0 where a task layer retries.
        max_input_tokens: the model's input limit for the length check before a call
            (default: known per model family).

    Raises:
        AuthenticationError: no key given and none in the environment.
        InvalidRequestError: a bad argument.
    """

    provider_name = PROVIDER

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        model: str = DEFAULT_OPENAI_MODEL,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 0,
        *,
        max_input_tokens: int | None = None,
    ) -> None:
        self._model = checks.check_model(model)
        self._max_input_tokens = checks.check_max_tokens(
            max_input_tokens if max_input_tokens is not None else openai_input_tokens(model)
        )
        self._base_url = base_url
        self._client = build_client(api_key, base_url, timeout, max_retries)

    def _add_stops(self, request: dict[str, Any], stop_sequences: Sequence[str] | None) -> None:
        stops = checks.check_stop_sequences(stop_sequences, max_count=MAX_STOP_SEQUENCES)
        if stops:
            request["stop"] = stops

    def _generated(self, request: dict[str, Any]) -> LLMResponse:
        completion, latency_ms = self._send(request)
        return self._response(completion, latency_ms)

    def _structured(
        self, request: dict[str, Any], schema: type[SchemaT]
    ) -> tuple[SchemaT, LLMResponse]:
        # A strict json_schema response format: the API constrains the reply to the schema.
        request["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": schema_name(schema),
                "schema": json_schema_for(schema, to_strict_json_schema, PROVIDER),
                "strict": True,
            },
        }
        completion, latency_ms = self._send(request)
        response = self._response(completion, latency_ms)
        return parse_reply(schema, response.text, response), response

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    def _request(
        self, prompt: str, system_prompt: str | None, max_tokens: int, temperature: float | None
    ) -> dict[str, Any]:
        limit = self._max_input_tokens
        messages: list[dict[str, str]] = []
        system = checks.check_system_prompt(system_prompt, max_tokens_in=limit)
        if system is not None:
            messages.append({"role": "system", "content": system})
        messages.append(
            {"role": "user", "content": checks.check_prompt(prompt, max_tokens_in=limit)}
        )
        request: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            # max_tokens is refused by reasoning models; max_completion_tokens works for all.
            "max_completion_tokens": checks.check_max_tokens(max_tokens),
        }
        temp = checks.check_temperature(temperature, upper=2.0)
        if temp is not None:
            request["temperature"] = temp
        return request

    def _send(self, request: dict[str, Any]) -> tuple[ChatCompletion, float]:
        completion, latency_ms = call_sdk(
            lambda: self._client.chat.completions.create(**request),
            provider=PROVIDER,
            sdk=openai,
            secrets=secrets_of(self._client),
        )
        if not isinstance(completion, ChatCompletion) or not completion.choices:
            raise unreadable_reply(PROVIDER, "the body is not a Chat Completions reply")
        choice = completion.choices[0]
        if choice.finish_reason == "content_filter" or choice.message.refusal:
            kind = "refusal" if choice.message.refusal else "content_filter"
            raise ContentFilterError(
                f"openai: the reply was blocked ({kind})",
                provider=PROVIDER,
                request_id=completion._request_id,
                error_type=kind,
            )
        return completion, latency_ms

    def _response(self, completion: ChatCompletion, latency_ms: float) -> LLMResponse:
        choice = completion.choices[0]
        usage = completion.usage
        details = usage.prompt_tokens_details if usage is not None else None
        response = LLMResponse(
            text=choice.message.content or "",
            provider=PROVIDER,
            model=completion.model or self._model,
            finish_reason=_FINISH.get(choice.finish_reason or "", "other"),
            raw_finish_reason=choice.finish_reason,
            usage=TokenUsage(
                input_tokens=usage.prompt_tokens if usage is not None else 0,
                output_tokens=usage.completion_tokens if usage is not None else 0,
                cached_input_tokens=(details.cached_tokens or 0) if details is not None else 0,
                cache_write_tokens=(details.cache_write_tokens or 0) if details is not None else 0,
            ),
            latency_ms=latency_ms,
            request_id=completion._request_id,
        )
        log_response(logger, response)
        return response
