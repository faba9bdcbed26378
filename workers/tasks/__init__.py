"""Celery tasks: ``maintenance`` (the periodic sweeps) and, when present, ``providers``.

The Celery app imports them when a worker starts (``TASK_MODULES``); importing this package
alone imports none of them, so a process that only runs a sweep body stays light.
"""

from __future__ import annotations

from pathlib import Path


def task_modules() -> list[str]:
    """The modules holding hearth's tasks; provider tasks only where this build has them."""
    modules = ["workers.tasks.maintenance", "workers.tasks.indexes"]
    # A look for the file rather than try/except ImportError: a provider module that exists
    # but fails to import must fail the worker loudly.
    if (Path(__file__).resolve().parent / "providers.py").is_file():
        modules.append("workers.tasks.providers")
    return modules
