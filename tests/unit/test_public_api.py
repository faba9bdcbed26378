"""The public API of every store, held to a snapshot: names, parameters, kinds and defaults.

A refactoring that renames, drops or reorders a public method or parameter fails here. A change
meant to alter the API rewrites the snapshot on purpose:

    HEARTH_UPDATE_API_SNAPSHOT=1 pytest tests/unit/test_public_api.py

Annotations are left out: moving a type to another module, or quoting it, is not an API change.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import os
import re
from pathlib import Path
from typing import Any

import pydantic

SNAPSHOT = Path(__file__).with_name("public_api.json")

# The packages whose `__all__` is hearth's store API.
PACKAGES = (
    "stores.errors",
    "stores.sessions",
    "stores.config",
    "stores.memory",
    "stores.profiles",
    "stores.audit",
)


def _signature(func: Any) -> str:
    """The signature as text, without annotations: `(self, tenant_id, *, limit=100)`."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return "<no signature>"
    bare = signature.replace(
        parameters=[
            parameter.replace(annotation=inspect.Parameter.empty)
            for parameter in signature.parameters.values()
        ],
        return_annotation=inspect.Signature.empty,
    )
    # A sentinel default prints its address; keep its type only, which is stable.
    return re.sub(r"<([\w. ]+) at 0x[0-9a-f]+>", r"<\1>", str(bare))


def _member(owner: type, name: str) -> Any:
    for klass in owner.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return getattr(owner, name)


def _describe_class(klass: type) -> dict[str, Any]:
    described: dict[str, Any] = {"kind": "class"}
    if issubclass(klass, enum.Enum):
        described["members"] = {member.name: repr(member.value) for member in klass}
        return described
    if issubclass(klass, pydantic.BaseModel):
        # A model's API is its fields; pydantic's own methods are pydantic's.
        described["fields"] = {
            name: "required"
            if field.is_required()
            else "factory"
            if field.default_factory is not None
            else repr(field.default)
            for name, field in klass.model_fields.items()
        }
        inherited = set(dir(pydantic.BaseModel))
    else:
        inherited = set(dir(BaseException)) if issubclass(klass, BaseException) else set()
    methods: dict[str, Any] = {}
    for name in sorted(dir(klass)):
        if name.startswith("_") and name != "__init__":
            continue
        if name in inherited and name != "__init__":
            continue
        if name == "__init__" and klass.__init__ is object.__init__:
            continue
        raw = _member(klass, name)
        if isinstance(raw, property):
            methods[name] = "property"
        elif isinstance(raw, (staticmethod, classmethod)):
            methods[name] = f"{type(raw).__name__} {_signature(raw.__func__)}"
        elif inspect.isfunction(raw):
            methods[name] = _signature(raw)
        else:
            methods[name] = f"attribute {type(raw).__name__}"
    described["methods"] = methods
    return described


def current_api() -> dict[str, Any]:
    """The public API as it stands: per package, per exported name, its description."""
    api: dict[str, Any] = {}
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names = getattr(package, "__all__", None) or sorted(
            name
            for name, value in vars(package).items()
            if not name.startswith("_")
            and inspect.isclass(value)
            and value.__module__ == package_name
        )
        exported: dict[str, Any] = {}
        for name in sorted(names):
            value = getattr(package, name)
            if inspect.isclass(value):
                exported[name] = _describe_class(value)
            elif callable(value):
                exported[name] = {"kind": "function", "signature": _signature(value)}
            else:
                exported[name] = {"kind": type(value).__name__}
        api[package_name] = exported
    return api


def test_public_api_matches_the_snapshot() -> None:
    api = json.loads(json.dumps(current_api()))
    if os.environ.get("HEARTH_UPDATE_API_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(api, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    differences = [
        f"{package}.{name}"
        for package in sorted(set(api) | set(expected))
        for name in sorted(set(api.get(package, {})) | set(expected.get(package, {})))
        if api.get(package, {}).get(name) != expected.get(package, {}).get(name)
    ]
    assert not differences, (
        f"public API changed in {differences}; if on purpose, rewrite {SNAPSHOT.name} with "
        "HEARTH_UPDATE_API_SNAPSHOT=1"
    )


def test_the_snapshot_sees_a_changed_default() -> None:
    # The comparison must notice a default changed: describe a function, change it, compare.
    def before(tenant_id: str, limit: int = 100) -> None: ...

    def after(tenant_id: str, limit: int = 1000) -> None: ...

    assert _signature(before) == "(tenant_id, limit=100)"
    assert _signature(before) != _signature(after)
