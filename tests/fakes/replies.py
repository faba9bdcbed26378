"""Builders for the fake server's replies, in each vendor's wire format.

Successes: :func:`anthropic_message`, :func:`anthropic_tool_use`, :func:`openai_chat`,
:func:`openai_embeddings`. Faults: :func:`api_error` (any status, vendor-shaped body),
:func:`rate_limited` (429 + ``retry-after``), :func:`overloaded` (529),
:func:`server_error` (500), :func:`unauthorized` (401), :func:`model_not_found` (404),
:func:`bad_request` (400), :func:`anthropic_refusal`, :func:`openai_content_filter`,
:func:`openai_refusal`, :func:`malformed` (a 200 whose body is not JSON) and :func:`slow`.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from dataclasses import replace
from typing import Any

from tests.fakes.server import ANTHROPIC, RecordedRequest, Reply

FAKE_ANTHROPIC_MODEL = "claude-fake-1"
FAKE_OPENAI_MODEL = "gpt-fake-1"

_EMBEDDING_SIZES = {"text-embedding-3-large": 3072}

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
}


def anthropic_message(
    text: str = "Hello from the fake Anthropic API.",
    *,
    stop_reason: str = "end_turn",
    input_tokens: int = 12,
    output_tokens: int = 7,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    model: str = FAKE_ANTHROPIC_MODEL,
    content: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Reply:
    """A Messages API reply with one text block (or the given ``content`` blocks)."""
    return Reply(
        200,
        {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content if content is not None else [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_read_input_tokens": cache_read_input_tokens,
                "cache_creation_input_tokens": cache_creation_input_tokens,
            },
            **(extra or {}),
        },
    )


def anthropic_tool_use(name: str, tool_input: dict[str, Any], **kwargs: Any) -> Reply:
    """A Messages API reply that calls tool ``name`` with ``tool_input``."""
    block = {"type": "tool_use", "id": "toolu_fake", "name": name, "input": tool_input}
    return anthropic_message(content=[block], stop_reason="tool_use", **kwargs)


def anthropic_refusal(category: str | None = "cyber") -> Reply:
    """HTTP 200 with ``stop_reason="refusal"``, as the API reports a refusal."""
    return anthropic_message(
        "",
        content=[],
        stop_reason="refusal",
        extra={"stop_details": {"type": "refusal", "category": category, "explanation": None}},
    )


def openai_chat(
    text: str | None = "Hello from the fake OpenAI API.",
    *,
    finish_reason: str = "stop",
    refusal: str | None = None,
    prompt_tokens: int = 11,
    completion_tokens: int = 6,
    cached_tokens: int = 0,
    model: str = FAKE_OPENAI_MODEL,
) -> Reply:
    """A Chat Completions reply with one choice."""
    return Reply(
        200,
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish_reason,
                    "logprobs": None,
                    "message": {"role": "assistant", "content": text, "refusal": refusal},
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": cached_tokens},
            },
        },
    )


def openai_content_filter() -> Reply:
    """A Chat Completions reply whose content the filter removed."""
    return openai_chat(None, finish_reason="content_filter")


def openai_refusal(text: str = "I can't help with that.") -> Reply:
    """A Chat Completions reply in which the model refuses (structured-output style)."""
    return openai_chat(None, refusal=text)


def openai_embeddings(
    vectors: list[list[float]],
    *,
    model: str = "text-embedding-3-small",
    base64_encoded: bool = False,
) -> Reply:
    """An Embeddings reply carrying ``vectors`` (base64 float32 when ``base64_encoded``)."""
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _b64(vector) if base64_encoded else vector,
        }
        for i, vector in enumerate(vectors)
    ]
    return Reply(
        200,
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": 3 * len(vectors), "total_tokens": 3 * len(vectors)},
        },
    )


def api_error(
    api: str,
    status: int,
    message: str = "scripted failure",
    *,
    error_type: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """A failure with the body shape of ``api``'s vendor."""
    if api == ANTHROPIC:
        kind = error_type or _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        kind = error_type or _OPENAI_ERROR_TYPES.get(status, "server_error")
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Reply(status, body, dict(headers or {}))


def rate_limited(
    api: str, *, retry_after: str | None = "1", retry_after_ms: str | None = None
) -> Reply:
    """HTTP 429 with ``retry-after`` (seconds or an HTTP date) and/or ``retry-after-ms``."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    return api_error(api, 429, "rate limited", headers=headers)


def overloaded(api: str = ANTHROPIC) -> Reply:
    """HTTP 529, Anthropic's "overloaded"."""
    return api_error(api, 529, "Overloaded", error_type="overloaded_error")


def server_error(api: str) -> Reply:
    """HTTP 500."""
    return api_error(api, 500, "internal error")


def unauthorized(api: str, message: str = "invalid x-api-key") -> Reply:
    """HTTP 401."""
    return api_error(api, 401, message)


def model_not_found(api: str, model: str = "no-such-model") -> Reply:
    """HTTP 404 for an unknown model."""
    return api_error(api, 404, f"model: {model}", code="model_not_found")


def bad_request(api: str, message: str = "bad request", code: str | None = None) -> Reply:
    """HTTP 400."""
    return api_error(api, 400, message, code=code)


def malformed(status: int = 200) -> Reply:
    """A reply that claims JSON but whose body is cut off."""
    return Reply(status, b'{"id": "msg_01", "content": [{"type": "te')


def slow(reply: Reply, delay: float) -> Reply:
    """``reply``, sent only after ``delay`` seconds."""
    return replace(reply, delay=delay)


def fake_embedding(text: str, dimensions: int) -> list[float]:
    """The unit vector the default embeddings handler returns for ``text``."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def default_anthropic(request: RecordedRequest) -> Reply:
    """Echo the last user message."""
    return anthropic_message(f"echo: {_last_user_text(request.body)}")


def default_openai_chat(request: RecordedRequest) -> Reply:
    """Echo the last user message."""
    return openai_chat(f"echo: {_last_user_text(request.body)}")


def default_openai_embeddings(request: RecordedRequest) -> Reply:
    """Deterministic vectors (:func:`fake_embedding`) of the requested size and encoding."""
    body = request.body if isinstance(request.body, dict) else {}
    texts = body.get("input", [])
    if isinstance(texts, str):
        texts = [texts]
    model = str(body.get("model", "text-embedding-3-small"))
    dimensions = int(body.get("dimensions") or _EMBEDDING_SIZES.get(model, 1536))
    vectors = [fake_embedding(str(text), dimensions) for text in texts]
    return openai_embeddings(
        vectors, model=model, base64_encoded=body.get("encoding_format") == "base64"
    )


def _last_user_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
