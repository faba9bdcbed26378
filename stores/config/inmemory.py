"""The in-memory ConfigStore: the reference behaviour every other backend must match.

Each kind of item lives in a dict of its own, keyed by id, as each has a table with an id
primary key; :class:`~stores.config.kinds.Kind` says how the generic operations treat it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar, cast
from uuid import UUID

from pydantic import BaseModel

from stores.common.clock import Clock, utc_now
from stores.common.keyset import page_of
from stores.common.pagination import Page
from stores.common.validation import DEFAULT_EMBEDDING_DIMENSIONS
from stores.common.vectors import cosine_similarity, float32_list, found
from stores.config import kinds
from stores.config.kinds import KINDS, Kind, Listing, M, Search, Where
from stores.config.models import MigrationPlan, MigrationPlanStatus, Scenario, ScenarioArchive
from stores.config.operations import Revise
from stores.config.store import ConfigStore
from stores.errors import DuplicateError

T = TypeVar("T", bound=BaseModel)


class InMemoryConfigStore(ConfigStore):
    """A thread-safe ConfigStore held in process memory (one lock around every call)."""

    def __init__(
        self, *, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS, clock: Clock = utc_now
    ) -> None:
        self._dimensions = dimensions
        self._clock = clock
        self._lock = threading.RLock()
        self._tables: dict[str, dict[UUID, Any]] = {kind.table: {} for kind in KINDS}
        self._archives: dict[tuple[UUID, int], ScenarioArchive] = {}
        # Soft-deleted items stay in their table (their ids stay taken, as rows with
        # deleted_at set do) and are marked here by table and id.
        self._deleted: set[tuple[str, UUID]] = set()

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def _table(self, kind: Kind[M]) -> dict[UUID, M]:
        return cast("dict[UUID, M]", self._tables[kind.table])

    def _live(self, kind: Kind[M], where: Where) -> Iterator[M]:
        table = self._table(kind)
        if "id" in where:
            item = table.get(where["id"])
            candidates: Iterable[M] = () if item is None else (item,)
        else:
            candidates = list(table.values())
        for item in candidates:
            if (kind.table, item.id) not in self._deleted and all(
                getattr(item, name) == value for name, value in where.items()
            ):
                yield item

    def _one(self, kind: Kind[M], where: Where) -> M | None:
        return next(self._live(kind, where), None)

    def _parent_of(self, kind: Kind[M], item: M) -> Any | None:
        assert kind.parent is not None
        key = {"tenant_id": item.tenant_id, "id": getattr(item, kind.parent_field)}
        return self._one(kind.parent, key)

    def _admit(self, kind: Kind[M], item: M) -> None:
        parent = self._parent_of(kind, item)
        if parent is None:
            assert kind.parent is not None
            raise kind.parent.not_found(getattr(item, kind.parent_field))
        if kind.admit is not None:
            kind.admit(item, parent)

    def _check_unique(self, kind: Kind[M], item: M) -> None:
        if not kind.unique:
            return
        key = {name: getattr(item, name) for name in ("tenant_id", *kind.unique)}
        holder = self._one(kind, key)
        if holder is not None and holder.id != item.id:
            raise DuplicateError(kind.taken.format(key[kind.unique[-1]]))

    def _insert(self, kind: Kind[M], item: M) -> M:
        with self._lock:
            if kind.parent is not None:
                self._admit(kind, item)
            self._check_unique(kind, item)
            table = self._table(kind)
            # Ids are unique per kind, deleted items' included, as each table's primary key.
            if item.id in table:
                raise DuplicateError(f"an item with id {item.id} already exists")
            table[item.id] = stored = _rounded(item)
            return stored.model_copy(deep=True)

    def _find(self, kind: Kind[M], where: Where) -> M | None:
        with self._lock:
            item = self._one(kind, where)
            return None if item is None else item.model_copy(deep=True)

    def _page(self, kind: Kind[M], q: Listing) -> Page[M]:
        with self._lock:
            rows = [
                item
                for item in self._live(kind, q.where)
                if not q.live_parent or self._parent_of(kind, item) is not None
            ]
            return _window(rows, q)

    def _rewrite(self, kind: Kind[M], new: M, revise: Revise) -> M:
        with self._lock:
            old = self._one(kind, {"tenant_id": new.tenant_id, "id": new.id})
            if old is None:
                raise kind.not_found(new.id)
            stored = _rounded(new.model_copy(update={"created_at": old.created_at, **revise(old)}))
            if kind.admit is not None:
                self._admit(kind, stored)
            self._check_unique(kind, stored)
            if kind.archive is not None:
                archive = kind.archive(old, stored.updated_at)
                self._archives[(archive.scenario_id, archive.version)] = archive
            self._table(kind)[stored.id] = stored
            return stored.model_copy(deep=True)

    def _remove(self, kind: Kind[M], where: Where) -> bool:
        with self._lock:
            item = self._one(kind, where)
            if item is None:
                return False
            if kind.deletable is not None:
                kind.deletable(item)
            self._drop(kind, [item])
            for child in kind.children:
                key = {"tenant_id": item.tenant_id, child.parent_field: item.id}
                self._drop(child, list(self._live(child, key)))
            return True

    def _drop(self, kind: Kind[Any], items: list[Any]) -> None:
        for item in items:
            if kind.soft_delete:
                self._deleted.add((kind.table, item.id))
            else:
                del self._tables[kind.table][item.id]

    def _nearest(self, kind: Kind[M], search: Search) -> list[tuple[M, float]]:
        with self._lock:
            scored = [
                (item, cosine_similarity(search.query, embedding))
                for item in self._live(kind, search.where)
                if (embedding := getattr(item, "embedding", None)) is not None
            ]
            scored = [
                (item, score)
                for item, score in scored
                if search.min_score is None or score >= search.min_score
            ]
            scored.sort(key=lambda pair: (-pair[1], pair[0].id))
            return [(found(r, search.include_embeddings), s) for r, s in scored[: search.limit]]

    def _unembedded(self, kind: Kind[M], model: str, q: Listing) -> Page[M]:
        assert kind.embedded is not None
        with self._lock:
            rows = [
                item
                for item in self._live(kind, q.where)
                if getattr(item, kind.embedded)
                and (
                    getattr(item, "embedding", None) is None
                    or getattr(item, "embedding_model", None) != model
                )
            ]
            return _window(rows, q)

    def _embed(self, kind: Kind[M], where: Where, vector: list[float], model: str) -> bool:
        with self._lock:
            item = self._one(kind, where)
            if item is None:
                return False
            update = {"embedding": vector, "embedding_model": model}
            self._table(kind)[item.id] = item.model_copy(update=update)
            return True

    def _scenario_at(self, where: Where, version: int) -> Scenario | None:
        with self._lock:
            current = self._one(kinds.SCENARIOS, where)
            if current is None:
                return None
            if current.version == version:
                return current.model_copy(deep=True)
            archive = self._archives.get((current.id, version))
            return None if archive is None else archive.scenario.model_copy(deep=True)

    def _archived(self, q: Listing) -> Page[ScenarioArchive]:
        key = {"tenant_id": q.where["tenant_id"], "id": q.where["scenario_id"]}
        with self._lock:
            scenario = self._one(kinds.SCENARIOS, key)
            archives = [] if scenario is None else self._archives.values()
            return _window([a for a in archives if a.scenario_id == key["id"]], q)

    def _transition(
        self, where: Where, target: MigrationPlanStatus, stamps: dict[str, Any]
    ) -> MigrationPlan:
        with self._lock:
            old = self._one(kinds.PLANS, where)
            if old is None:
                raise kinds.PLANS.not_found(where["id"])
            if old.status not in kinds.sources(target):
                raise kinds.cannot_go(old.id, old.status, target)
            self._table(kinds.PLANS)[old.id] = stored = old.model_copy(update=stamps)
            return stored.model_copy(deep=True)


def _rounded(item: M) -> M:
    """``item`` with its embedding at the float32 precision a ``vector`` column keeps."""
    embedding = getattr(item, "embedding", None)
    if embedding is None:
        return item
    return item.model_copy(update={"embedding": float32_list(embedding)})


def _window(rows: Iterable[T], q: Listing) -> Page[T]:
    """The page ``q`` asks for among ``rows``, as copies (the order a database would give)."""
    ordered = sorted(rows, key=q.key)
    if q.after is not None:
        ordered = [row for row in ordered if q.key(row) > q.after]
    return page_of([row.model_copy(deep=True) for row in ordered[: q.limit + 1]], q.limit, q.key)
