"""The provider interfaces and the response types every provider returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType
from typing import Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

SchemaT = TypeVar("SchemaT", bound=BaseModel)

FinishReason = Literal["stop", "max_tokens", "stop_sequence", "tool_use", "other"]
"""Why generation ended, in words shared by every vendor (its own: ``raw_finish_reason``)."""

DEFAULT_MAX_TOKENS = 1024
"""How many tokens a reply may have when the caller does not say."""


class TokenUsage(BaseModel):
    """Tokens billed for one call.

    ``input_tokens`` counts every input token, cached ones included; ``cached_input_tokens``
    is the part read from the vendor's prompt cache, ``cache_write_tokens`` the part written
    to it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


class LLMResponse(BaseModel):
    """One completed generation: its text and what it cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    provider: str
    model: str
    finish_reason: FinishReason
    raw_finish_reason: str | None = None
    usage: TokenUsage
    latency_ms: float = Field(ge=0)
    request_id: str | None = None


class _PooledClient(ABC):
    """A provider holding one HTTP connection pool, released by :meth:`close` or ``with``."""

    @abstractmethod
    def close(self) -> None:
        """Release the HTTP connection pool."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LLMProvider(_PooledClient):
    """A large language model behind a vendor API.

    Implementations validate their arguments before any network call (bad input raises
    :class:`~providers.errors.InvalidRequestError`) and translate every SDK error into
    :mod:`providers.errors`. They are thread-safe and hold one HTTP connection pool; call
    :meth:`close` (or use them as a context manager) to release it.
    """

    provider_name: str
    """The vendor's short name, e.g. ``"anthropic"``."""

    @property
    @abstractmethod
    def model_id(self) -> str:
        """The model this provider calls."""

    @abstractmethod
    def generate(
        self,
        prompt: str,
        *,
        system_prompt: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float | None = None,
        stop_sequences: Sequence[str] | None = None,
    ) -> LLMResponse:
        """Generate a reply to ``prompt``.

        Args:
            prompt: the user's message; must not be empty.
            system_prompt: instructions for the model, if any.
            max_tokens: the most tokens the reply may have (at least 1).
            temperature: sampling temperature; ``None`` leaves the model's default.
            stop_sequences: strings that end generation when produced.

        Raises:
            InvalidRequestError: bad arguments (before any call) or a 400/422 reply.
            ContentFilterError: the model refused or a content filter intervened.
            ProviderError: any other failure, as a subclass from :mod:`providers.errors`.
        """

    @abstractmethod
    def generate_structured(
        self,
        prompt: str,
        schema: type[SchemaT],
        *,
        system_prompt: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float | None = None,
    ) -> tuple[SchemaT, LLMResponse]:
        """Generate a reply shaped by the pydantic model ``schema`` and parse it.

        Uses the vendor's native structured-output mechanism and validates the reply with
        pydantic. Returns the parsed model and the response (whose ``text`` is the raw JSON).

        Raises:
            InvalidRequestError: ``schema`` is not a pydantic model class, or other bad input.
            StructuredOutputError: the reply is not valid JSON for ``schema``; carries
                ``raw_text``.
            ContentFilterError, ProviderError: as for :meth:`generate`.
        """


class EmbeddingProvider(_PooledClient):
    """A text embedding model behind a vendor API.

    Every vector has exactly :attr:`dimensions` components. Arguments are validated before
    any network call; SDK errors become :mod:`providers.errors`.
    """

    provider_name: str
    """The vendor's short name, e.g. ``"openai"``."""

    @property
    @abstractmethod
    def model_id(self) -> str:
        """The embedding model this provider calls."""

    @property
    @abstractmethod
    def dimensions(self) -> int:
        """The length of every vector this provider returns."""

    @abstractmethod
    def embed(self, text: str) -> list[float]:
        """Embed one non-empty text.

        Raises:
            InvalidRequestError: the text is empty or longer than the model accepts.
            ProviderError: the call failed, as a subclass from :mod:`providers.errors`.
        """

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed many texts, one vector per text in the same order.

        The texts are sent in as many requests as the API's per-request limits need.

        Raises:
            InvalidRequestError: the batch is empty, or a text is empty or too long (the
                message names its index).
            ProviderError: a call failed, as a subclass from :mod:`providers.errors`.
        """
