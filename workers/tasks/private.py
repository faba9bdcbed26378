"""Customer text in provider tasks: kept out of task events, Flower and the worker log.

Every message of these tasks (first sends and retries alike) carries an
``argsrepr``/``kwargsrepr`` in which the :data:`PRIVATE_PARAMETERS` are replaced by their
size (:func:`workers.redaction.private_reprs`); any of those texts an error quotes is
redacted from the stored exception, its message and its traceback
(:func:`workers.tasks.attempts.run_attempt` asks :func:`private_values` for them).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from celery import Task

from workers import redaction

PRIVATE_PARAMETERS = frozenset({"prompt", "system_prompt", "stop_sequences", "text", "texts"})
"""Arguments of provider tasks that hold customer text: never shown, only their size."""


class ProviderTask(Task[Any, Any]):
    """A task whose customer-text arguments stay out of events, Flower and logs.

    Every message it sends carries ``argsrepr``/``kwargsrepr`` with the
    :data:`PRIVATE_PARAMETERS` hidden. Celery's :meth:`Task.retry` builds the retry's
    message from the request's execution options, which hold no reprs, so it would fall
    back to the full arguments: :meth:`retry` passes the hidden ones along.
    """

    private_parameters: ClassVar[frozenset[str]] = PRIVATE_PARAMETERS

    def private_reprs(
        self, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
    ) -> tuple[str, str]:
        """``(argsrepr, kwargsrepr)`` for a call with ``args`` and ``kwargs``."""
        return redaction.private_reprs(self.run, args, kwargs, self.private_parameters)

    def private_values(self) -> list[str]:
        """The customer texts of the request being run (to redact from its errors)."""
        request = self.request
        names = list(inspect.signature(self.run).parameters)
        given = dict(zip(names, request.args or (), strict=False))
        given.update(request.kwargs or {})
        return list(_strings(v for k, v in given.items() if k in self.private_parameters))

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: Any = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: Any = None,
        **options: Any,
    ) -> Any:
        """Send the task as :meth:`Task.apply_async` does, its customer text hidden."""
        if options.get("argsrepr") is None or options.get("kwargsrepr") is None:
            argsrepr, kwargsrepr = self.private_reprs(args, kwargs)
            options["argsrepr"] = options.get("argsrepr") or argsrepr
            options["kwargsrepr"] = options.get("kwargsrepr") or kwargsrepr
        return super().apply_async(
            args, kwargs, task_id, producer, link, link_error, shadow, **options
        )

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: Any = None,
        throw: bool = True,
        eta: Any = None,
        countdown: Any = None,
        max_retries: Any = None,
        **options: Any,
    ) -> Any:
        """Retry as :meth:`Task.retry` does; the new message's reprs hide customer text."""
        argsrepr, kwargsrepr = self.private_reprs(
            self.request.args if args is None else args,
            self.request.kwargs if kwargs is None else kwargs,
        )
        options.setdefault("argsrepr", argsrepr)
        options.setdefault("kwargsrepr", kwargsrepr)
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)


def _strings(values: Any) -> Iterator[str]:
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, list | tuple):
            yield from _strings(value)


def private_values(task: Task[Any, Any]) -> list[str]:
    """The customer texts the running request of ``task`` was given (empty if none)."""
    if isinstance(task, ProviderTask):
        return task.private_values()
    return []
