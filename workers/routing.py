"""Which queue each task goes to: the one place that says so, for the Celery app's routes,
the beat's entries and ``hearth up``.

Provider calls (``hearth.providers.*``) have a queue of their own, so that slow or
rate-limited vendor calls never hold up the periodic jobs; everything else goes to
``maintenance``.
"""

from __future__ import annotations

from typing import Any

MAINTENANCE_QUEUE = "maintenance"
PROVIDERS_QUEUE = "providers"
QUEUES = (MAINTENANCE_QUEUE, PROVIDERS_QUEUE)
"""Every queue a worker consumes by default."""


def queue_of(task_name: str) -> str:
    """The queue a task is routed to: ``providers`` for provider tasks, else ``maintenance``."""
    return PROVIDERS_QUEUE if task_name.startswith("hearth.providers.") else MAINTENANCE_QUEUE


def route(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any
) -> dict[str, str]:
    """Celery's router (``task_routes``): the queue of :func:`queue_of`."""
    del args, kwargs, options, task, kw
    return {"queue": queue_of(name)}
