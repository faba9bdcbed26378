"""What a ConfigStore backend implements, and the generic operations built on it.

The public methods of :class:`~stores.config.store.ConfigStore` parse their arguments once,
then call the operations here with the :class:`~stores.config.kinds.Kind` they are about. A
backend implements the abstract primitives below once for every kind, plus the few bespoke
ones (scenario archives, plan transitions and deletes); every argument they receive has been
checked, so no backend validates anything itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from stores.common.clock import Clock
from stores.common.pagination import Page
from stores.common.validation import check_limit, check_text
from stores.common.vectors import check_min_score, checked_query
from stores.config import checks
from stores.config.kinds import Kind, Listing, M, Search, Where, listing
from stores.config.models import MigrationPlan, MigrationPlanStatus, Scenario, ScenarioArchive
from stores.errors import InvalidInputError

DEFAULT_PAGE_SIZE = 100
"""How many items a listing returns when no ``limit`` is given."""

Revise = Callable[[Any], dict[str, Any]]
"""Given the stored item, checks an update against it and returns more values to store."""


class ConfigOperations(ABC):
    """The operations every ConfigStore backend implements, over any kind of item."""

    _clock: Clock

    @property
    @abstractmethod
    def dimensions(self) -> int:
        """The embedding length every rule and scenario embedding must have."""

    @abstractmethod
    def _insert(self, kind: Kind[M], item: M) -> M:
        """Store a new item (checked, stamped) and return the stored copy.

        NotFoundError if its parent is not live, then ``kind.admit`` against the parent;
        DuplicateError if its id, or its ``kind.unique`` fields among live items, are taken.
        """

    @abstractmethod
    def _find(self, kind: Kind[M], where: Where) -> M | None:
        """The first live item matching ``where`` (a unique key), or None."""

    @abstractmethod
    def _page(self, kind: Kind[M], q: Listing) -> Page[M]:
        """One page of the live items matching ``q``."""

    @abstractmethod
    def _rewrite(self, kind: Kind[M], new: M, revise: Revise) -> M:
        """Replace the live item with ``new``'s id by ``new`` and return the stored copy.

        Under one lock or transaction: ``kind.not_found`` if the item is not live; the stored
        copy keeps the old ``created_at`` and takes the values ``revise(old)`` returns; then
        ``kind.admit`` against the live parent, the ``kind.unique`` check, and for a
        versioned kind the archive of the replaced version (at ``new.updated_at``).
        """

    @abstractmethod
    def _remove(self, kind: Kind[M], where: Where) -> bool:
        """Delete the live item matching ``where`` (softly if ``kind.soft_delete``) unless
        ``kind.deletable`` refuses it and, in the same transaction, its items of
        ``kind.children``; False if there was none."""

    @abstractmethod
    def _nearest(self, kind: Kind[M], search: Search) -> list[tuple[M, float]]:
        """The live items with an embedding closest to the query, best first (score = cosine
        similarity, ties by id), without embeddings unless asked for."""

    @abstractmethod
    def _unembedded(self, kind: Kind[M], model: str, q: Listing) -> Page[M]:
        """Live items of every tenant with embedded text and no embedding made by ``model``,
        ordered by id."""

    @abstractmethod
    def _embed(self, kind: Kind[M], where: Where, vector: list[float], model: str) -> bool:
        """Store the embedding of the live item matching ``where`` (which may name its
        embedded text), ``updated_at`` untouched; whether there was one."""

    @abstractmethod
    def _scenario_at(self, where: Where, version: int) -> Scenario | None:
        """The live scenario as it was at ``version`` (current or archived), or None."""

    @abstractmethod
    def _archived(self, q: Listing) -> Page[ScenarioArchive]:
        """One page of a live scenario's archive (``q.where`` names it by ``scenario_id``)."""

    @abstractmethod
    def _transition(
        self, where: Where, target: MigrationPlanStatus, stamps: dict[str, Any]
    ) -> MigrationPlan:
        """Move a plan to ``target`` with ``stamps`` if MIGRATION_PLAN_TRANSITIONS allows it
        (``sources(target)``) from its status, atomically; NotFoundError or ``cannot_go``
        otherwise."""

    def _create(self, kind: Kind[M], item: M, **fixed: Any) -> M:
        """Check and stamp a new item (``fixed`` overrides some of its values), then insert it."""
        now = self._clock()
        stamped = {**fixed, "created_at": now, "updated_at": now}
        return self._insert(kind, kind.check(item, self.dimensions).model_copy(update=stamped))

    def _update(self, kind: Kind[M], item: M) -> M:
        """Check an item and rewrite the stored one with it, by the rules of its kind."""
        new = kind.check(item, self.dimensions).model_copy(update={"updated_at": self._clock()})

        def revise(old: Any) -> dict[str, Any]:
            if kind.parent is not None:
                name = kind.parent_field
                if getattr(new, name) != getattr(old, name):
                    raise InvalidInputError(f"{name} cannot change", field=name)
            extra = {} if kind.revise is None else kind.revise(old, new)
            if kind.embedded is not None and _stale_embedding(kind.embedded, old, new):
                # A stale embedding is dropped, so that the embedding backfill recomputes it.
                extra.update(embedding=None, embedding_model=None)
            return extra

        return self._rewrite(kind, new, revise)

    def _list(self, kind: Kind[M], limit: int, cursor: str | None, **where: Any) -> Page[M]:
        """One page of the live items whose fields equal ``where`` (None filters left out)."""
        return self._page(kind, listing(kind.order, limit, cursor, **where))

    def _search(
        self,
        kind: Kind[M],
        embedding: Sequence[float],
        limit: int,
        min_score: float | None,
        include_embeddings: bool,
        **where: Any,
    ) -> list[tuple[M, float]]:
        """Check a vector search's arguments and run it among the items matching ``where``."""
        query = checked_query(embedding, self.dimensions)
        score = check_min_score(min_score)
        check_limit(limit)
        filters = {k: v for k, v in where.items() if v is not None}
        return self._nearest(kind, Search(filters, query, limit, score, include_embeddings))

    def _needing(self, kind: Kind[M], model: str, limit: int, cursor: str | None) -> Page[M]:
        """One page of the items the embedding backfill must (re)compute with ``model``."""
        checks.check_name(model, "model")
        return self._unembedded(kind, model, listing(("id",), limit, cursor))

    def _set_embedding(
        self,
        kind: Kind[M],
        where: Where,
        embedding: Sequence[float],
        model: str,
        source_text: str | None,
    ) -> bool:
        """Check an embedding and store it on the item ``where`` names."""
        vector = checked_query(embedding, self.dimensions)
        checks.check_name(model, "model")
        check_text(source_text, "source_text")
        if source_text is not None and kind.embedded is not None:
            # An embedding of a text edited meanwhile is never written.
            where = {**where, kind.embedded: source_text}
        return self._embed(kind, where, vector, model)


def _stale_embedding(text: str, old: Any, new: Any) -> bool:
    """True when the embedded text changed but the caller passed the stored embedding back."""
    return checks.text_changed_keeping_embedding(
        getattr(old, text), getattr(new, text), old.embedding, new.embedding
    )
