"""Credentials kept out of what a worker stores, sends and logs (:mod:`providers.redaction`).

Customer text is kept out the same way: a task that takes prompts or texts names those
parameters, and :func:`private_reprs` gives the ``argsrepr``/``kwargsrepr`` its messages carry
(what task events, Flower and the worker log show of its arguments), each such value
replaced by a note of its type and size. :func:`hide_results_of` does the same for the
``result`` of such a task's ``task-succeeded`` event and "succeeded" log line.

Three hooks, installed by :func:`workers.app.create_app`:

* **the result backend**: :func:`redacting_backend` subclasses whichever backend the URL
  chooses so that every exception it stores (a FAILURE, a RETRY) has its arguments and
  string attributes redacted, and its traceback text too;
* **task events**: :class:`RedactingEvents` hands the worker an event dispatcher that
  redacts every string field (``exception``, ``traceback``, ``result``, ``args`` …) of every
  event before it is sent;
* **log records**: :func:`install_log_redaction` wraps the log record factory, so that every
  record made in the process (hearth's, Celery's, the SDKs') carries its message already
  formatted and redacted, and its exception and traceback text redacted; and it filters
  Celery's trace logger, whose "succeeded" line would show a hidden result.

:func:`register_settings_keys` registers the keys of the settings, and the vendors'
environment variables, so that a process that never builds a provider (the parent of a
prefork pool, which sends the events) still knows them.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import cache
from typing import Any

from celery.app.events import Events
from celery.events.dispatcher import EventDispatcher
from celery.utils.saferepr import saferepr

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


def hidden(value: Any) -> str:
    """What is shown of a private value: its type and size, never its content."""
    if isinstance(value, str):
        return f"<hidden: {len(value)} characters>"
    if isinstance(value, list | tuple | dict):
        return f"<hidden: {type(value).__name__} of {len(value)}>"
    return f"<hidden: {type(value).__name__}>"


def private_reprs(
    fn: Callable[..., Any],
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    private: Collection[str],
) -> tuple[str, str]:
    """``(argsrepr, kwargsrepr)`` of a call of ``fn``, its ``private`` parameters hidden.

    Positional arguments are matched to ``fn``'s parameters by position, so a prompt passed
    positionally is hidden too; an argument that matches no parameter is hidden, as its
    meaning is unknown.
    """
    args = tuple(args or ())
    kwargs = dict(kwargs or {})
    try:
        names = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        names = []
    shown_args = tuple(
        hidden(value) if i >= len(names) or names[i] in private else value
        for i, value in enumerate(args)
    )
    shown_kwargs = {
        name: hidden(value) if name in private and value is not None else value
        for name, value in kwargs.items()
    }
    return redact(saferepr(shown_args)), redact(saferepr(shown_kwargs))


_private_tasks: set[str] = set()
HIDDEN_RESULT = "<hidden: result of a task that handles customer text>"


def hide_results_of(task_name: str) -> None:
    """Show no result of task ``task_name`` in task events and worker log lines."""
    _private_tasks.add(task_name)


def hides_results_of(task_name: object) -> bool:
    """Whether results of task ``task_name`` are hidden (see :func:`hide_results_of`)."""
    return isinstance(task_name, str) and task_name in _private_tasks


class RedactingEventDispatcher(EventDispatcher):
    """An event dispatcher that redacts every field of every event it sends.

    A ``task-succeeded`` event carries the task's id, not its name: the names of the tasks
    it received are remembered (the last :attr:`REMEMBERED` of them), so that the result
    of a task whose results are hidden is replaced by :data:`HIDDEN_RESULT`.
    """

    REMEMBERED = 10_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._private_ids: OrderedDict[str, None] = OrderedDict()
        self._ids_lock = threading.Lock()

    def send(self, type: str, *args: Any, **fields: Any) -> None:
        # Keyword arguments are the event's fields (and the options, left as they are).
        self._hide_private_result(type, fields)
        super().send(type, *args, **redact_value(fields))

    def _hide_private_result(self, type: str, fields: dict[str, Any]) -> None:
        task_id = fields.get("uuid")
        if not isinstance(task_id, str):
            return
        with self._ids_lock:
            if hides_results_of(fields.get("name")):
                self._private_ids[task_id] = None
                while len(self._private_ids) > self.REMEMBERED:
                    self._private_ids.popitem(last=False)
            if type == "task-succeeded" and task_id in self._private_ids:
                fields["result"] = HIDDEN_RESULT
            if type in ("task-succeeded", "task-failed", "task-revoked", "task-rejected"):
                self._private_ids.pop(task_id, None)

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
        logging.getLogger(TRACE_LOGGER).addFilter(HidePrivateResults())
        _installed = True


def redact_record(record: logging.LogRecord) -> None:
    """Format ``record``'s message and traceback now, redacted, in place.

    The attributes a caller passes with ``extra=`` are set after the factory returns, so
    they are not seen here: Celery's ``data`` extra repeats the task's exception and
    traceback, which is why provider tasks redact an unexpected exception where it is
    raised (:func:`workers.tasks.attempts.run_attempt`).
    """
    # Before the message is formatted (and maybe frozen, redacted, into ``msg``).
    hide_private_result(record)
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


class HidePrivateResults(logging.Filter):
    """Hides the result in Celery's "Task %(name)s[%(id)s] succeeded in %(runtime)ss:
    %(return_value)s" line of a task whose results are hidden (:func:`hide_results_of`).

    A filter on Celery's trace logger, not the record factory: the line repeats its values
    in the ``data`` extra, which is set on the record after the factory made it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        hide_private_result(record)
        return True


def hide_private_result(record: logging.LogRecord) -> None:
    """Replace a hidden task result in ``record``'s arguments and ``data`` extra, in place."""
    for name in ("args", "data"):
        values = getattr(record, name, None)
        if (
            isinstance(values, Mapping)
            and "return_value" in values
            and hides_results_of(values.get("name"))
        ):
            setattr(record, name, {**values, "return_value": HIDDEN_RESULT})


TRACE_LOGGER = "celery.app.trace"
"""The logger of Celery's per-task "received", "succeeded" and "failed" lines."""
