"""Timing every public method of a store or provider object, at the one place it is built.

:func:`instrument_store` and :func:`instrument_provider` wrap each public method of one
object with a timed one, set on the instance itself: the object keeps its class (callers
that check it see no difference) and no call site changes. A method that calls another
public method of the same object is counted once, as the outer call: the inner ones are part
of its time.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from stores.errors import StoreError
from workers.metrics import families

T = TypeVar("T")

PROVIDER_METHODS = ("generate", "generate_structured", "embed", "embed_batch")
"""The calls of an LLM or embedding provider that reach the vendor."""

_MARK = "_hearth_instrumented"
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "hearth_metrics_inside", default=False
)


def public_methods(obj: object) -> Iterator[str]:
    """The names of the public plain methods of ``obj``'s class (no properties, no
    class or static methods)."""
    cls = type(obj)
    for name in dir(cls):
        if not name.startswith("_") and inspect.isfunction(inspect.getattr_static(cls, name)):
            yield name


def _wrap(obj: object, names: Iterator[str] | tuple[str, ...], timed: Callable[..., Any]) -> None:
    for name in names:
        method = getattr(obj, name, None)
        if callable(method):
            setattr(obj, name, timed(name, method))
    setattr(obj, _MARK, True)


def instrument_store(store: T, name: str) -> T:
    """``store`` with every public method timed into ``hearth_store_operation_seconds{store=
    name, operation=<method>}``; a :class:`StoreError` it raises is counted in
    ``hearth_store_errors_total`` by class name. Idempotent; returns ``store``."""
    if getattr(store, _MARK, False):
        return store

    def timed(operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            if _inside.get():
                return method(*args, **kwargs)
            token = _inside.set(True)
            started = time.perf_counter()
            error: str | None = None
            try:
                return method(*args, **kwargs)
            except StoreError as exc:
                error = type(exc).__name__
                raise
            finally:
                _inside.reset(token)
                families.observe_store_call(name, operation, time.perf_counter() - started, error)

        return call

    _wrap(store, public_methods(store), timed)
    return store


def instrument_provider(provider: T, vendor: str, model: str) -> T:
    """``provider`` with its vendor calls counted and timed into the ``hearth_provider_*``
    families (outcome ``ok`` or the error's class name; tokens from the reply's usage).
    Idempotent; returns ``provider``."""
    if getattr(provider, _MARK, False):
        return provider

    def timed(_operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = method(*args, **kwargs)
            except Exception as exc:
                families.observe_provider_call(
                    vendor, model, time.perf_counter() - started, type(exc).__name__
                )
                raise
            usage = _usage(result)
            families.observe_provider_call(
                vendor,
                model,
                time.perf_counter() - started,
                "ok",
                input_tokens=getattr(usage, "input_tokens", 0),
                output_tokens=getattr(usage, "output_tokens", 0),
                cached_tokens=getattr(usage, "cached_input_tokens", 0),
            )
            return result

        return call

    _wrap(provider, PROVIDER_METHODS, timed)
    return provider


def _usage(result: Any) -> Any:
    """The token usage of a provider's reply: an ``LLMResponse``, or the ``(parsed,
    LLMResponse)`` of a structured call; embeddings report none."""
    if isinstance(result, tuple) and len(result) == 2:
        result = result[1]
    return getattr(result, "usage", None)
