"""The schemas ``generate_structured`` takes: dotted paths to pydantic models.

A schema crosses the broker as text, ``"package.module:Model"`` or
``"package.module.Model"`` (:func:`schema_path` makes one from a class); the worker imports
that module and accepts only a pydantic ``BaseModel`` subclass (:func:`resolve_schema`).
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

from pydantic import BaseModel

from providers.errors import InvalidRequestError

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED_PATH = re.compile(rf"^{_NAME}(\.{_NAME})*(:{_NAME}(\.{_NAME})*)?$")


def schema_path(schema: type[BaseModel]) -> str:
    """The dotted path ``generate_structured`` takes for a pydantic model class.

    Raises:
        InvalidRequestError: ``schema`` is not a module-level pydantic model class.
    """
    if not (inspect.isclass(schema) and issubclass(schema, BaseModel)):
        raise InvalidRequestError(f"schema must be a pydantic BaseModel subclass; got {schema!r}")
    if "<" in schema.__qualname__:
        raise InvalidRequestError(
            f"{schema.__qualname__} is defined inside a function; a worker cannot import it"
        )
    return f"{schema.__module__}:{schema.__qualname__}"


def resolve_schema(path: str) -> type[BaseModel]:
    """The pydantic model class at ``path`` (``"pkg.module:Model"`` or ``"pkg.module.Model"``).

    Raises:
        InvalidRequestError: ``path`` is malformed, cannot be imported, or does not name a
            pydantic ``BaseModel`` subclass.
    """
    if (
        not isinstance(path, str)
        or not _DOTTED_PATH.match(path.strip())
        or not any(sep in path for sep in ".:")
    ):
        raise InvalidRequestError(
            "schema must be the dotted path of a pydantic model, like 'package.module:Model'; "
            f"got {path!r}"
        )
    path = path.strip()
    if ":" in path:
        module_name, _, qualname = path.partition(":")
        names = qualname.split(".")
    else:
        module_name, _, last = path.rpartition(".")
        names = [last]
    if any(name.startswith("_") for name in names):
        raise InvalidRequestError(f"schema {path!r} names a private attribute")
    try:
        target: Any = importlib.import_module(module_name)
        for name in names:
            target = getattr(target, name)
    except ImportError as exc:
        raise InvalidRequestError(f"schema {path!r} cannot be imported: {exc}") from None
    except AttributeError:
        raise InvalidRequestError(
            f"schema {path!r}: {module_name} has no {'.'.join(names)}"
        ) from None
    if not (inspect.isclass(target) and issubclass(target, BaseModel)):
        raise InvalidRequestError(
            f"schema {path!r} is not a pydantic BaseModel subclass (got {target!r})"
        )
    return target
