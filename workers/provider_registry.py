"""The AI providers a worker process uses, built from settings once per process.

Inside a worker the task layer owns retries, so every SDK client is built with
``max_retries=0`` (with both retrying, attempts would multiply). The settings are checked
before anything is built or sent: a missing provider, a model of another vendor, an
embedding model hearth does not know or one that cannot give the configured vector size is
a :class:`ProviderSettingsError` naming the ``HEARTH_*`` variable to fix.

Providers are cached per process and per settings (a test may run several apps in one
process). Nothing is built at import: a prefork parent would otherwise hand one HTTP pool to
every child, so :func:`reset_after_fork` forgets inherited providers and
:func:`close_providers` releases them at shutdown.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from providers.base import EmbeddingProvider, LLMProvider
from providers.catalog import (
    DEFAULT_ANTHROPIC_MODEL,
    DEFAULT_OPENAI_MODEL,
    OPENAI_EMBEDDING_MODELS,
    is_anthropic_chat_model,
    is_openai_chat_model,
)
from providers.errors import InvalidRequestError, ProviderError
from workers.metrics.instrument import instrument_provider
from workers.settings import Settings

SDK_MAX_RETRIES = 0
"""The SDKs' own retries inside tasks: none, the task layer retries."""


class ProviderSettingsError(ProviderError):
    """The provider settings are missing or wrong; the message names the variable to fix."""


@dataclass(frozen=True)
class LLMSpec:
    """A checked description of the LLM provider the settings ask for."""

    provider: str
    model: str
    base_url: str | None
    timeout: float
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class EmbeddingSpec:
    """A checked description of the embedding provider the settings ask for."""

    provider: str
    model: str
    dimensions: int
    base_url: str | None
    timeout: float
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Vendor:
    default_model: str
    is_chat_model: Callable[[str], bool]
    models: str  # what its model ids look like, for the error naming a wrong one


_VENDORS = {
    "anthropic": _Vendor(
        DEFAULT_ANTHROPIC_MODEL,
        is_anthropic_chat_model,
        "an Anthropic model (Claude model ids look like 'claude-sonnet-4-6')",
    ),
    "openai": _Vendor(
        DEFAULT_OPENAI_MODEL,
        is_openai_chat_model,
        "an OpenAI chat model (expected a gpt-*, chatgpt-* or o-series model id)",
    ),
}
"""The chat vendors: settings ``<vendor>_api_key`` and ``<vendor>_base_url`` are theirs."""


def llm_spec(settings: Settings) -> LLMSpec:
    """The LLM provider of ``settings``, checked.

    Raises:
        ProviderSettingsError: no provider configured, or a model that is not the vendor's.
    """
    kind = settings.llm_provider
    if kind is None:
        raise ProviderSettingsError(
            "no LLM provider configured: set HEARTH_LLM_PROVIDER to anthropic or openai",
            error_type="not_configured",
        )
    if kind not in _VENDORS:  # pragma: no cover - the settings type admits no other value
        raise ProviderSettingsError(f"HEARTH_LLM_PROVIDER={kind!r} is not a known provider")
    vendor = _VENDORS[kind]
    model = (settings.llm_model or vendor.default_model).strip()
    if not vendor.is_chat_model(model):
        raise ProviderSettingsError(
            f"HEARTH_LLM_MODEL={model!r} is not {vendor.models}",
            provider=kind,
            error_type="unknown_model",
        )
    key = getattr(settings, f"{kind}_api_key")
    base_url = getattr(settings, f"{kind}_base_url")
    return LLMSpec(
        provider=kind,
        model=model,
        base_url=base_url,
        timeout=settings.provider_timeout_seconds,
        api_key=key.get_secret_value() if key is not None else None,
    )


def embedding_spec(settings: Settings) -> EmbeddingSpec | None:
    """The embedding provider of ``settings``, checked; ``None`` when none is configured.

    Raises:
        ProviderSettingsError: a model hearth does not know, or one that cannot give
            ``HEARTH_EMBEDDING_DIMENSIONS`` components.
    """
    kind = settings.embedding_provider
    if kind is None:
        return None
    model = settings.embedding_model.strip()
    info = OPENAI_EMBEDDING_MODELS.get(model)
    if info is None:
        known = ", ".join(sorted(OPENAI_EMBEDDING_MODELS))
        raise ProviderSettingsError(
            f"HEARTH_EMBEDDING_MODEL={model!r} is not an embedding model hearth knows "
            f"(known: {known})",
            provider=kind,
            error_type="unknown_model",
        )
    dimensions = settings.embedding_dimensions
    if dimensions > info.native_dimensions or (
        not info.accepts_dimensions and dimensions != info.native_dimensions
    ):
        raise ProviderSettingsError(
            f"HEARTH_EMBEDDING_MODEL={model!r} cannot give HEARTH_EMBEDDING_DIMENSIONS="
            f"{dimensions} components (it gives {info.native_dimensions}"
            f"{', or fewer on request' if info.accepts_dimensions else ''})",
            provider=kind,
            error_type="wrong_dimensions",
        )
    key = settings.openai_api_key
    return EmbeddingSpec(
        provider=kind,
        model=model,
        dimensions=dimensions,
        base_url=settings.openai_base_url,
        timeout=settings.provider_timeout_seconds,
        api_key=key.get_secret_value() if key is not None else None,
    )


def build_llm_provider(spec: LLMSpec) -> LLMProvider:
    """A new LLM provider for ``spec``, with the SDK's retries off.

    Raises:
        AuthenticationError: no key in the settings nor the vendor's environment variable.
    """
    with _refused_as_settings_error("the LLM provider", spec.provider):
        if spec.provider == "anthropic":
            from providers.anthropic_provider import AnthropicProvider

            return AnthropicProvider(**_client_options(spec))
        from providers.openai_provider import OpenAIProvider

        return OpenAIProvider(**_client_options(spec))


def build_embedding_provider(spec: EmbeddingSpec) -> EmbeddingProvider:
    """A new embedding provider for ``spec``, with the SDK's retries off.

    Raises:
        AuthenticationError: no key in the settings nor ``OPENAI_API_KEY``.
    """
    from providers.openai_embeddings import OpenAIEmbeddingProvider

    with _refused_as_settings_error("the embedding provider", spec.provider):
        return OpenAIEmbeddingProvider(dimensions=spec.dimensions, **_client_options(spec))


def _client_options(spec: LLMSpec | EmbeddingSpec) -> dict[str, Any]:
    """What every provider's constructor takes from a spec; the SDK's retries are off."""
    return {
        "api_key": spec.api_key,
        "model": spec.model,
        "base_url": spec.base_url,
        "timeout": spec.timeout,
        "max_retries": SDK_MAX_RETRIES,
    }


@contextlib.contextmanager
def _refused_as_settings_error(what: str, provider: str) -> Iterator[None]:
    """A provider refusing its settings is a settings error, not a bad request."""
    try:
        yield
    except InvalidRequestError as exc:
        raise ProviderSettingsError(
            f"{what} settings are wrong: {exc.message}", provider=provider
        ) from None


_lock = threading.Lock()
_llm: dict[LLMSpec, LLMProvider] = {}
_embedding: dict[EmbeddingSpec, EmbeddingProvider] = {}


def llm_provider(settings: Settings) -> LLMProvider:
    """This process's LLM provider for ``settings``, built on first use.

    Raises:
        ProviderSettingsError: see :func:`llm_spec`.
        AuthenticationError: no API key anywhere.
    """
    spec = llm_spec(settings)
    with _lock:
        provider = _llm.get(spec)
        if provider is None:
            provider = _llm[spec] = instrument_provider(
                build_llm_provider(spec), spec.provider, spec.model
            )
        return provider


def embedding_provider(settings: Settings) -> EmbeddingProvider | None:
    """This process's embedding provider for ``settings`` (``None`` if none is configured).

    Raises:
        ProviderSettingsError: see :func:`embedding_spec`.
        AuthenticationError: no API key anywhere.
    """
    spec = embedding_spec(settings)
    if spec is None:
        return None
    with _lock:
        provider = _embedding.get(spec)
        if provider is None:
            provider = _embedding[spec] = instrument_provider(
                build_embedding_provider(spec), spec.provider, spec.model
            )
        return provider


def require_embedding_provider(settings: Settings) -> EmbeddingProvider:
    """:func:`embedding_provider`, or a :class:`ProviderSettingsError` when none is set."""
    provider = embedding_provider(settings)
    if provider is None:
        raise ProviderSettingsError(
            "no embedding provider configured: set HEARTH_EMBEDDING_PROVIDER=openai",
            error_type="not_configured",
        )
    return provider


def reset_after_fork() -> None:
    """Forget providers inherited from the parent process; their sockets are the parent's."""
    with _lock:
        _llm.clear()
        _embedding.clear()


def close_providers() -> None:
    """Close and forget every provider of this process."""
    with _lock:
        built: list[LLMProvider | EmbeddingProvider] = [*_llm.values(), *_embedding.values()]
        _llm.clear()
        _embedding.clear()
    for provider in built:
        with contextlib.suppress(Exception):
            provider.close()
