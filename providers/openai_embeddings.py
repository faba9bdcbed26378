"""Text embeddings through the OpenAI Embeddings API, on the official ``openai`` SDK."""

from __future__ import annotations

import array
import base64
import logging
import sys
from collections.abc import Sequence
from typing import Any

import openai
from openai.types import CreateEmbeddingResponse
from pydantic import SecretStr

from providers import checks
from providers.base import EmbeddingProvider
from providers.catalog import (
    DEFAULT_OPENAI_EMBEDDING_MODEL,
    OPENAI_EMBEDDING_MAX_INPUTS,
    OPENAI_EMBEDDING_MAX_REQUEST_TOKENS,
    openai_embedding_model,
)
from providers.errors import InvalidRequestError, ModelError
from providers.openai_client import PROVIDER, build_client, secrets_of
from providers.translate import call_sdk, unreadable_reply

logger = logging.getLogger(__name__)


class OpenAIEmbeddingProvider(EmbeddingProvider):
    """Embeddings with an OpenAI embedding model.

    Args:
        api_key: the key; ``None`` reads ``OPENAI_API_KEY``. Never logged or shown.
        model: the embedding model id.
        dimensions: the vector length. ``text-embedding-3-*`` models shorten their vectors
            to it (sent as the API's ``dimensions``); ``None`` means the model's native size.
            A model hearth does not know needs it given.
        base_url: where the API is (``None``: the SDK's default or ``OPENAI_BASE_URL``).
        timeout: seconds before one HTTP request is abandoned.
        max_retries: the SDK's own retries; keep 0 where a task layer retries.
        max_batch_size: the most texts per request (at most the API's 2048).

    Raises:
        AuthenticationError: no key given and none in the environment.
        InvalidRequestError: a bad argument, or ``dimensions`` the model cannot give.
    """

    provider_name = PROVIDER

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        model: str = DEFAULT_OPENAI_EMBEDDING_MODEL,
        dimensions: int | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 0,
        *,
        max_batch_size: int = OPENAI_EMBEDDING_MAX_INPUTS,
    ) -> None:
        self._model = checks.check_model(model)
        info = openai_embedding_model(model)
        self._dimensions, self._send_dimensions = _resolve_dimensions(model, dimensions)
        self._max_input_tokens = info.max_input_tokens if info is not None else 8_191
        if (
            isinstance(max_batch_size, bool)
            or not isinstance(max_batch_size, int)
            or not 1 <= max_batch_size <= OPENAI_EMBEDDING_MAX_INPUTS
        ):
            raise InvalidRequestError(
                f"max_batch_size must be between 1 and {OPENAI_EMBEDDING_MAX_INPUTS}; "
                f"got {max_batch_size!r}"
            )
        self._max_batch_size = max_batch_size
        self._base_url = base_url
        self._client = build_client(api_key, base_url, timeout, max_retries)

    def __repr__(self) -> str:
        return (
            f"OpenAIEmbeddingProvider(model={self._model!r}, dimensions={self._dimensions}, "
            f"base_url={self._base_url!r})"
        )

    @property
    def model_id(self) -> str:
        """The embedding model this provider calls."""
        return self._model

    @property
    def dimensions(self) -> int:
        """The length of every vector this provider returns."""
        return self._dimensions

    def embed(self, text: str) -> list[float]:
        """Embed one text (see :meth:`EmbeddingProvider.embed`)."""
        checks.check_prompt(text, max_tokens_in=self._max_input_tokens, field="text")
        return self._embed_chunk([text])[0]

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed many texts in as few requests as the API's limits allow."""
        values = checks.check_texts(texts, max_tokens_each=self._max_input_tokens)
        vectors: list[list[float]] = []
        for _, chunk in checks.chunks(
            values,
            max_items=self._max_batch_size,
            max_tokens=OPENAI_EMBEDDING_MAX_REQUEST_TOKENS,
        ):
            vectors.extend(self._embed_chunk(chunk))
        return vectors

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    def _embed_chunk(self, texts: list[str]) -> list[list[float]]:
        # Asked for explicitly so the SDK hands the body over untouched (its own decoder
        # crashes on a non-JSON reply); base64 is a third of the size of JSON floats.
        request: dict[str, Any] = {
            "model": self._model,
            "input": texts,
            "encoding_format": "base64",
        }
        if self._send_dimensions:
            request["dimensions"] = self._dimensions
        reply, latency_ms = call_sdk(
            lambda: self._client.embeddings.create(**request),
            provider=PROVIDER,
            sdk=openai,
            secrets=secrets_of(self._client),
        )
        request_id = getattr(reply, "_request_id", None)
        if not isinstance(reply, CreateEmbeddingResponse) or len(reply.data) != len(texts):
            got = len(reply.data) if isinstance(reply, CreateEmbeddingResponse) else "no"
            raise unreadable_reply(
                PROVIDER, f"asked for {len(texts)} embeddings, got {got}", request_id=request_id
            )
        vectors: list[list[float]] = []
        for item in sorted(reply.data, key=lambda d: d.index):
            vector = _decode(item.embedding)
            if vector is None:
                raise unreadable_reply(PROVIDER, "an embedding is neither base64 nor a list")
            if len(vector) != self._dimensions:
                raise ModelError(
                    f"openai model {self._model} returned {len(vector)} dimensions; "
                    f"this provider is configured for {self._dimensions}",
                    provider=PROVIDER,
                    request_id=request_id,
                    error_type="wrong_dimensions",
                )
            vectors.append(vector)
        logger.debug(
            "openai embeddings done",
            extra={
                "model": self._model,
                "texts": len(texts),
                "latency_ms": round(latency_ms, 1),
                "input_tokens": reply.usage.prompt_tokens if reply.usage else None,
                "request_id": request_id,
            },
        )
        return vectors


def _decode(raw: object) -> list[float] | None:
    """An embedding from its base64 float32 (little-endian) form, or from a JSON list."""
    if isinstance(raw, list):
        return [float(x) for x in raw]
    if not isinstance(raw, str):
        return None
    try:
        data = base64.b64decode(raw, validate=True)
    except ValueError:
        return None
    if len(data) % 4:
        return None
    values = array.array("f", data)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def _resolve_dimensions(model: str, dimensions: int | None) -> tuple[int, bool]:
    """The vector length and whether to send it as the API's ``dimensions``."""
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
    ):
        raise InvalidRequestError(f"dimensions must be a positive integer; got {dimensions!r}")
    info = openai_embedding_model(model)
    if info is None:
        if dimensions is None:
            raise InvalidRequestError(
                f"embedding model {model!r} is not one hearth knows; pass its dimensions"
            )
        return dimensions, False
    if dimensions is None:
        return info.native_dimensions, info.accepts_dimensions
    if dimensions > info.native_dimensions:
        raise InvalidRequestError(
            f"{model} gives at most {info.native_dimensions} dimensions; got {dimensions}"
        )
    if not info.accepts_dimensions and dimensions != info.native_dimensions:
        raise InvalidRequestError(
            f"{model} always gives {info.native_dimensions} dimensions and cannot be shortened; "
            f"got {dimensions}"
        )
    return dimensions, info.accepts_dimensions
