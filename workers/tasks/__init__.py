"""Celery tasks: maintenance (this package) and, when present, provider tasks.

Importing this package registers every task with the Celery app.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from workers.tasks import maintenance

__all__ = ["maintenance"]

# Provider tasks live in their own module, which may not exist in every build; a module that
# exists but fails to import must still fail loudly, hence a look for the file rather than
# try/except ImportError.
if (Path(__file__).resolve().parent / "providers.py").is_file():
    importlib.import_module("workers.tasks.providers")
