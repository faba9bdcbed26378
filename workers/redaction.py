"""Credentials kept out of what a worker stores, sends and logs (:mod:`providers.redaction`).

Three hooks, installed by :func:`workers.app.create_app`:

* **the result backend**: :func:`redacting_backend` subclasses whichever backend the URL
  chooses so that every exception it stores (a FAILURE, a RETRY) has its arguments and
  string attributes redacted, and its traceback text too;
* **task events**: :class:`RedactingEvents` hands the worker an event dispatcher that
  redacts every string field (``exception``, ``traceback``, ``result``, ``args`` …) of every
  event before it is sent;
* **log records**: :func:`install_log_redaction` wraps the log record factory, so that every
  record made in the process (hearth's, Celery's, the SDKs') carries its message already
  formatted and redacted, and its exception and traceback text redacted.

:func:`register_settings_keys` registers the keys of the settings, and the vendors'
environment variables, so that a process that never builds a provider (the parent of a
prefork pool, which sends the events) still knows them.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import cache
from typing import Any

from celery.app.events import Events
from celery.events.dispatcher import EventDispatcher

from providers.redaction import redact, redact_exception, redact_value, register_secret
from workers.settings import Settings

KEY_ENV_VARS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_AUTH_TOKEN")
"""The vendors' own variables, read by the SDKs when no key is given."""


def register_settings_keys(settings: Settings) -> None:
    """Redact the keys of ``settings`` and of the vendors' environment variables."""
    for secret in (settings.anthropic_api_key, settings.openai_api_key):
        if secret is not None:
            register_secret(secret.get_secret_value())
    for name in KEY_ENV_VARS:
        register_secret(os.environ.get(name))


class _RedactingBackend:
    """Mixed in before a Celery result backend class (see :func:`redacting_backend`)."""

    def store_result(
        self,
        task_id: Any,
        result: Any,
        state: Any,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        if isinstance(result, BaseException):
            result = redact_exception(result)
        if isinstance(traceback, str):
            traceback = redact(traceback)
        return super().store_result(  # type: ignore[misc]
            task_id, result, state, traceback=traceback, request=request, **kwargs
        )


@cache
def redacting_backend(backend_cls: type[Any]) -> type[Any]:
    """``backend_cls`` with every stored exception and traceback redacted."""
    return type(f"Redacting{backend_cls.__name__}", (_RedactingBackend, backend_cls), {})


class RedactingEventDispatcher(EventDispatcher):
    """An event dispatcher that redacts every field of every event it sends."""

    def send(self, type: str, *args: Any, **fields: Any) -> None:
        # Keyword arguments are the event's fields (and the options, left as they are).
        super().send(type, *args, **redact_value(fields))

    def publish(self, type: str, fields: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        super().publish(type, redact_value(fields), *args, **kwargs)


class RedactingEvents(Events):
    """``app.events`` whose dispatchers are :class:`RedactingEventDispatcher`."""

    dispatcher_cls = f"{__name__}:RedactingEventDispatcher"


_install_lock = threading.Lock()
_installed = False


def install_log_redaction() -> None:
    """Redact every log record made in this process from now on (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def redact_record(record: logging.LogRecord) -> None:
    """Format ``record``'s message and traceback now, redacted, in place.

    The attributes a caller passes with ``extra=`` are set after the factory returns, so
    they are not seen here: Celery's ``data`` extra repeats the task's exception and
    traceback, which is why provider tasks redact an unexpected exception where it is
    raised (:func:`workers.tasks.providers.run_attempt`).
    """
    try:
        message = record.getMessage()
    except Exception:
        # A record whose arguments do not fit its format: the handler reports that itself.
        return
    clean = redact(message)
    if clean != message:
        record.msg = clean
        record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        kind, exc, tb = record.exc_info
        # Handlers that render the exception themselves (rich) never read exc_text.
        record.exc_info = (kind, redact_exception(exc), tb)
        if not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
