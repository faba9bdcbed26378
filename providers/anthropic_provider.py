"""Claude through the Anthropic Messages API, on the official ``anthropic`` SDK."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Literal

import anthropic
from anthropic.types import Message
from pydantic import BaseModel, SecretStr

from providers import checks
from providers.base import (
    FinishReason,
    LLMResponse,
    SchemaT,
    TokenUsage,
)
from providers.catalog import ANTHROPIC_INPUT_TOKENS, DEFAULT_ANTHROPIC_MODEL
from providers.chat import ChatProvider, log_response
from providers.credentials import resolve_api_key
from providers.errors import ContentFilterError, InvalidRequestError
from providers.http import shared_ssl_context
from providers.structured import json_schema_for, parse_reply, schema_name
from providers.translate import call_sdk, unreadable_reply

logger = logging.getLogger(__name__)

PROVIDER = "anthropic"
API_KEY_ENV = "ANTHROPIC_API_KEY"

StructuredMode = Literal["json_schema", "tool"]

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
}


class AnthropicProvider(ChatProvider):
    """Generation and structured output with Claude.

    Args:
        api_key: the key; ``None`` reads ``ANTHROPIC_API_KEY``. Never logged or shown.
        model: the Claude model id.
        base_url: where the API is (``None``: the SDK's default or ``ANTHROPIC_BASE_URL``).
        timeout: seconds before one HTTP request is abandoned.
        max_retries: the SDK's own retries; keep 0 where a task layer retries.
        structured_output: ``"json_schema"`` uses the API's structured outputs
            (``output_config.format``, constrained decoding); ``"tool"`` forces a tool call
            whose input is the answer, for models without structured outputs.
        max_input_tokens: the model's input limit, for the length check before a call.

    ``temperature`` is checked (0 to 1) but not sent: the Messages API version of the
    installed SDK refuses sampling parameters. A warning is logged the first time.

    Raises:
        AuthenticationError: no key given and none in the environment.
        InvalidRequestError: a bad argument.
    """

    provider_name = PROVIDER

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        model: str = DEFAULT_ANTHROPIC_MODEL,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 0,
        *,
        structured_output: StructuredMode = "json_schema",
        max_input_tokens: int = ANTHROPIC_INPUT_TOKENS,
    ) -> None:
        self._model = checks.check_model(model)
        if structured_output not in ("json_schema", "tool"):
            raise InvalidRequestError(
                f"structured_output must be 'json_schema' or 'tool'; got {structured_output!r}"
            )
        self._structured_output: StructuredMode = structured_output
        self._max_input_tokens = checks.check_max_tokens(max_input_tokens)
        self._base_url = base_url
        self._warned_temperature = False
        key = resolve_api_key(api_key, provider=PROVIDER, env_var=API_KEY_ENV)
        self._client = anthropic.Anthropic(
            api_key=key,
            base_url=base_url,
            timeout=checks.check_timeout(timeout),
            max_retries=checks.check_max_retries(max_retries),
            http_client=anthropic.DefaultHttpxClient(verify=shared_ssl_context()),
        )

    def _add_stops(self, request: dict[str, Any], stop_sequences: Sequence[str] | None) -> None:
        stops = checks.check_stop_sequences(stop_sequences, max_count=None)
        if stops:
            request["stop_sequences"] = stops

    def _generated(self, request: dict[str, Any]) -> LLMResponse:
        message, latency_ms = self._send(request)
        return self._response(message, _text_of(message), latency_ms)

    def _structured(
        self, request: dict[str, Any], schema: type[SchemaT]
    ) -> tuple[SchemaT, LLMResponse]:
        if self._structured_output == "json_schema":
            json_schema = json_schema_for(schema, anthropic.transform_schema, PROVIDER)
            request["output_config"] = {"format": {"type": "json_schema", "schema": json_schema}}
        else:
            name = schema_name(schema)
            request["tools"] = [
                {
                    "name": name,
                    "description": (schema.__doc__ or "").strip()
                    or f"Record the answer as a {schema.__name__}.",
                    "input_schema": json_schema_for(schema, _plain_schema, PROVIDER),
                }
            ]
            request["tool_choice"] = {"type": "tool", "name": name}
        message, latency_ms = self._send(request)
        raw_text = self._structured_text(message)
        response = self._response(message, raw_text, latency_ms)
        return parse_reply(schema, raw_text, response), response

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    def _request(
        self, prompt: str, system_prompt: str | None, max_tokens: int, temperature: float | None
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self._model,
            "max_tokens": checks.check_max_tokens(max_tokens),
            "messages": [
                {
                    "role": "user",
                    "content": checks.check_prompt(prompt, max_tokens_in=self._max_input_tokens),
                }
            ],
        }
        system = checks.check_system_prompt(system_prompt, max_tokens_in=self._max_input_tokens)
        if system is not None:
            request["system"] = system
        if checks.check_temperature(temperature, upper=1.0) is not None:
            self._warn_temperature_once()
        return request

    def _warn_temperature_once(self) -> None:
        # The API version the SDK speaks refuses every sampling parameter with a 400, even
        # temperature=1.0. Callers written against the vendor-neutral interface should not
        # break on that, so the value is dropped and the fact logged once per provider.
        if not self._warned_temperature:
            self._warned_temperature = True
            logger.warning(
                "anthropic: the Messages API takes no temperature; ignoring it for %s",
                self._model,
            )

    def _send(self, request: dict[str, Any]) -> tuple[Message, float]:
        message, latency_ms = call_sdk(
            lambda: self._client.messages.create(**request),
            provider=PROVIDER,
            sdk=anthropic,
            secrets=(self._client.api_key, self._client.auth_token),
        )
        if not isinstance(message, Message):
            raise unreadable_reply(PROVIDER, "the body is not a Messages API reply")
        if message.stop_reason == "refusal":
            details = message.stop_details
            category = details.category if details is not None else None
            raise ContentFilterError(
                f"anthropic: the model refused (category: {category or 'unspecified'})",
                provider=PROVIDER,
                request_id=message._request_id,
                error_type="refusal",
            )
        return message, latency_ms

    def _structured_text(self, message: Message) -> str:
        if self._structured_output == "json_schema":
            return _text_of(message)
        for block in message.content:
            if block.type == "tool_use":
                return json.dumps(block.input, ensure_ascii=False)
        return _text_of(message)

    def _response(self, message: Message, text: str, latency_ms: float) -> LLMResponse:
        usage = message.usage
        cache_read = usage.cache_read_input_tokens or 0
        cache_write = usage.cache_creation_input_tokens or 0
        response = LLMResponse(
            text=text,
            provider=PROVIDER,
            model=str(message.model or self._model),
            finish_reason=_FINISH.get(message.stop_reason or "", "other"),
            raw_finish_reason=message.stop_reason,
            usage=TokenUsage(
                input_tokens=(usage.input_tokens or 0) + cache_read + cache_write,
                output_tokens=usage.output_tokens or 0,
                cached_input_tokens=cache_read,
                cache_write_tokens=cache_write,
            ),
            latency_ms=latency_ms,
            request_id=message._request_id,
        )
        log_response(logger, response)
        return response


def _text_of(message: Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def _plain_schema(schema: type[BaseModel]) -> dict[str, Any]:
    return schema.model_json_schema()
