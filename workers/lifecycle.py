"""What each worker process does when it starts and ends: one handler per Celery signal,
which calls the hooks modules register here, in the order they registered.

- :func:`after_fork` hooks run in each new pool process (``worker_process_init``; the solo
  pool sends it too): state inherited from the parent (clients, sockets, once-only notices)
  is dropped there.
- :func:`at_process_exit` hooks run as a pool process ends (``worker_process_shutdown``),
  with its pid.
- :func:`at_worker_exit` hooks run as the worker ends (``worker_shutdown``).

A hook that fails is logged and the others still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import signals

logger = logging.getLogger(__name__)

_AFTER_FORK: list[Callable[[], None]] = []
_AT_PROCESS_EXIT: list[Callable[[int | None], None]] = []
_AT_WORKER_EXIT: list[Callable[[], None]] = []


def after_fork(hook: Callable[[], None]) -> Callable[[], None]:
    """Run ``hook`` in each new worker process (usable as a decorator)."""
    if hook not in _AFTER_FORK:
        _AFTER_FORK.append(hook)
    return hook


def at_process_exit(hook: Callable[[int | None], None]) -> Callable[[int | None], None]:
    """Run ``hook(pid)`` as each worker process ends (usable as a decorator)."""
    if hook not in _AT_PROCESS_EXIT:
        _AT_PROCESS_EXIT.append(hook)
    return hook


def at_worker_exit(hook: Callable[[], None]) -> Callable[[], None]:
    """Run ``hook`` as the worker ends (usable as a decorator)."""
    if hook not in _AT_WORKER_EXIT:
        _AT_WORKER_EXIT.append(hook)
    return hook


def _run(hooks: list[Any], *args: Any) -> None:
    for hook in list(hooks):
        try:
            hook(*args)
        except Exception:
            logger.warning("worker lifecycle hook %s failed", hook.__qualname__, exc_info=True)


@signals.worker_process_init.connect
def _process_init(**_: Any) -> None:
    _run(_AFTER_FORK)


@signals.worker_process_shutdown.connect
def _process_shutdown(pid: int | None = None, **_: Any) -> None:
    _run(_AT_PROCESS_EXIT, pid)


@signals.worker_shutdown.connect
def _worker_shutdown(**_: Any) -> None:
    _run(_AT_WORKER_EXIT)
