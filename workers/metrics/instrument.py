"""Timing every public method of a store or provider object, at the one place it is built.

:func:`instrument_store` and :func:`instrument_provider` give one object a subclass of its
own class whose public methods are timed: the object still passes every ``isinstance``
check, no call site changes, and no reference cycle keeps it alive after its last user lets
go (wrappers set on the instance itself would). The subclasses are made once per class and
label set. A method that calls another public method of the same object is counted once, as
the outer call: the inner ones are part of its time.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from stores.errors import StoreError
from workers.metrics import families

T = TypeVar("T")
Timed = Callable[[str, Callable[..., Any]], Callable[..., Any]]

PROVIDER_METHODS = ("generate", "generate_structured", "embed", "embed_batch")
"""The calls of an LLM or embedding provider that reach the vendor."""

_MARK = "_hearth_instrumented"
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "hearth_metrics_inside", default=False
)
_lock = threading.Lock()
_classes: dict[tuple[type, tuple[str, ...]], type] = {}


def public_methods(cls: type) -> list[str]:
    """The names of the public plain methods of ``cls`` (no properties, no class or static
    methods)."""
    return [
        name
        for name in dir(cls)
        if not name.startswith("_") and inspect.isfunction(inspect.getattr_static(cls, name))
    ]


def _instrument(obj: T, labels: tuple[str, ...], names: Iterable[str], timed: Timed) -> T:
    cls = type(obj)
    if getattr(cls, _MARK, False):
        return obj
    with _lock:
        sub = _classes.get((cls, labels))
        if sub is None:
            namespace: dict[str, Any] = {
                name: timed(name, getattr(cls, name))
                for name in names
                if inspect.isfunction(inspect.getattr_static(cls, name, None))
            }
            namespace[_MARK] = True
            namespace["__module__"] = cls.__module__
            namespace["__qualname__"] = cls.__qualname__
            # The same name: reprs, logs and error messages read as before.
            sub = _classes[(cls, labels)] = type(cls.__name__, (cls,), namespace)
    obj.__class__ = sub
    return obj


def instrument_store(store: T, name: str) -> T:
    """``store`` with every public method timed into ``hearth_store_operation_seconds{store=
    name, operation=<method>}``; a :class:`StoreError` it raises is counted in
    ``hearth_store_errors_total`` by class name. Idempotent; returns ``store``."""

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

    return _instrument(store, (name,), public_methods(type(store)), timed)


def instrument_provider(provider: T, vendor: str, model: str) -> T:
    """``provider`` with its vendor calls counted and timed into the ``hearth_provider_*``
    families (outcome ``ok`` or the error's class name; tokens from the reply's usage).
    Idempotent; returns ``provider``."""

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

    return _instrument(provider, (vendor, model), PROVIDER_METHODS, timed)


def _usage(result: Any) -> Any:
    """The token usage of a provider's reply: an ``LLMResponse``, or the ``(parsed,
    LLMResponse)`` of a structured call; embeddings report none."""
    if isinstance(result, tuple) and len(result) == 2:
        result = result[1]
    return getattr(result, "usage", None)
