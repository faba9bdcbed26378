"""The kinds of configuration item, each declared once as data.

Agents, rules, scenarios, templates, variables, tool activations and migration plans are
created, read, listed, updated, deleted (and, for rules and scenarios, embedded and searched)
alike. A :class:`Kind` says what differs between them; the generic operations of
:class:`~stores.config.operations.ConfigOperations` and of each backend read it, so that an
operation is written once per backend rather than once per kind. The rules special to one
kind are functions the declaration names (a scenario's next version and its archive, a plan's
DRAFT-only updates and its check against its scenario); the status transitions of migration
plans stay bespoke in each backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Generic, TypeVar
from uuid import UUID

from stores.common.keyset import Converter, as_datetime, as_int, as_str, as_uuid, cursor_key
from stores.common.validation import check_limit
from stores.config import checks
from stores.config.models import (
    MIGRATION_PLAN_TRANSITIONS,
    Agent,
    MigrationPlan,
    MigrationPlanStatus,
    Rule,
    Scenario,
    ScenarioArchive,
    Template,
    ToolActivation,
    Variable,
)
from stores.errors import ConflictError, InvalidInputError, NotFoundError

M = TypeVar("M", Agent, Rule, Scenario, Template, Variable, ToolActivation, MigrationPlan)

Where = dict[str, Any]
"""Field values that pick out items of one tenant: ``tenant_id`` is always among them."""

CURSOR_COLUMNS: dict[str, Converter] = {
    "created_at": as_datetime,
    "id": as_uuid,
    "tenant_id": as_uuid,
    "tool_id": as_str,
    "version": as_int,
}
"""How each column a listing can be ordered by is decoded from a cursor."""


@dataclass(frozen=True, eq=False)
class Kind(Generic[M]):
    """One kind of configuration item: what the generic operations need to know of it."""

    name: str
    """How messages name an item of the kind ("rule 1234… not found")."""
    model: type[M]
    table: str
    """The table holding the kind (its PostgreSQL table, and its in-memory one)."""
    check: Callable[[M, int], M]
    """Validates an item given the store's embedding dimensions; returns the copy to store."""
    parent: Kind[Any] | None = None
    """The kind whose live item each item belongs to (and must exist when one is written)."""
    cascade: bool = True
    """Whether deleting the parent deletes its items of this kind with it."""
    soft_delete: bool = True
    """Whether a delete hides the item (its id stays taken) rather than removing it."""
    unique: tuple[str, ...] = ()
    """Fields that, with the tenant, no two live items share (a name, a tool id)."""
    taken: str = ""
    """The DuplicateError message when ``unique`` is violated; ``{!r}`` is the last field."""
    embedded: str | None = None
    """The field whose text the item's ``embedding`` encodes (rules, scenarios)."""
    order: tuple[str, ...] = ("created_at", "id")
    """How listings are ordered (and keyset-paginated)."""
    archive: Callable[[M, datetime], ScenarioArchive] | None = None
    """For a versioned kind (scenarios), the archive entry of a version an update replaces."""
    revise: Callable[[M, M], dict[str, Any]] | None = None
    """Checks an update against the stored item (old, new); returns values to store too."""
    admit: Callable[[M, Any], None] | None = None
    """Checks an item against its live parent, read under lock, when it is written."""
    deletable: Callable[[M], None] | None = None
    """Raises if the item, read under lock, may not be deleted."""

    @property
    def parent_field(self) -> str:
        """The field naming an item's parent (``agent_id``, ``scenario_id``)."""
        if self.parent is None:
            raise AttributeError(f"a {self.name} has no parent")
        return f"{self.parent.name}_id"

    @cached_property
    def children(self) -> tuple[Kind[Any], ...]:
        """The kinds whose items are deleted along with an item of this one."""
        return tuple(k for k in KINDS if k.parent is self and k.cascade)

    def not_found(self, item_id: UUID) -> NotFoundError:
        """The error for an item of this kind that is missing, deleted or another tenant's."""
        return NotFoundError(f"{self.name} {item_id} not found")


@dataclass(frozen=True)
class Listing:
    """A page to read: the live items whose fields equal ``where``, in ``order`` after ``after``."""

    where: Where
    order: tuple[str, ...]
    limit: int
    after: tuple[Any, ...] | None = None
    live_parent: bool = False
    """Leave out the items whose parent was deleted."""

    def key(self, item: Any) -> tuple[Any, ...]:
        """The sort key of ``item`` (the values its cursor holds)."""
        return tuple(getattr(item, name) for name in self.order)


@dataclass(frozen=True)
class Search:
    """A vector search among the live items whose fields equal ``where``."""

    where: Where
    query: list[float]
    limit: int
    min_score: float | None
    include_embeddings: bool


def listing(
    order: tuple[str, ...],
    limit: int,
    cursor: str | None,
    *,
    live_parent: bool = False,
    **where: Any,
) -> Listing:
    """Parse a page request; filters given as None are left out (None means "any")."""
    check_limit(limit)
    after = cursor_key(cursor, [CURSOR_COLUMNS[name] for name in order])
    filters = {k: v for k, v in where.items() if v is not None}
    return Listing(filters, order, limit, after, live_parent)


def archive_of(old: Scenario, archived_at: datetime) -> ScenarioArchive:
    """The archive entry of a scenario version an update replaces (without its embedding)."""
    return ScenarioArchive(
        tenant_id=old.tenant_id,
        scenario_id=old.id,
        version=old.version,
        scenario=old.model_copy(update={"embedding": None}, deep=True),
        archived_at=archived_at,
    )


def next_version(old: Scenario, new: Scenario) -> dict[str, Any]:
    """A scenario update stores the next version, and only over the version it was read at."""
    if old.version != new.version:
        raise ConflictError(
            f"scenario {new.id} is at version {old.version}, not {new.version}",
            current_version=old.version,
        )
    checks.check_int32(old.version + 1, "version", 1)
    return {"version": old.version + 1}


def draft_only(old: MigrationPlan, new: MigrationPlan) -> dict[str, Any]:
    """Only a DRAFT plan is updated, and an update never changes its status."""
    if old.status != MigrationPlanStatus.DRAFT:
        raise ConflictError(f"migration plan {new.id} is {old.status}, not DRAFT")
    return {"status": old.status, "approved_at": old.approved_at, "deployed_at": old.deployed_at}


def within_scenario(plan: MigrationPlan, scenario: Scenario) -> None:
    """A plan cannot lead to a version its scenario does not have yet."""
    if plan.to_version > scenario.version:
        raise InvalidInputError(
            f"to_version {plan.to_version} is beyond the scenario's version {scenario.version}",
            field="to_version",
        )


def stamps(target: MigrationPlanStatus, now: datetime) -> dict[str, Any]:
    """What a plan's move to ``target`` at ``now`` writes besides the status."""
    values: dict[str, Any] = {"status": target, "updated_at": now}
    if target == MigrationPlanStatus.APPROVED:
        values["approved_at"] = now
    elif target == MigrationPlanStatus.DEPLOYED:
        values["deployed_at"] = now
    return values


def cannot_go(plan_id: UUID, status: str, target: MigrationPlanStatus) -> ConflictError:
    """The error for a status change MIGRATION_PLAN_TRANSITIONS does not allow."""
    return ConflictError(f"migration plan {plan_id} is {status}; cannot go to {target}")


def undeployed(plan: MigrationPlan) -> None:
    """A deployed plan is kept: sessions may be on their way through it."""
    if plan.status == MigrationPlanStatus.DEPLOYED:
        raise ConflictError(f"migration plan {plan.id} is deployed and cannot be deleted")


def sources(target: MigrationPlanStatus) -> list[MigrationPlanStatus]:
    """The statuses from which MIGRATION_PLAN_TRANSITIONS allows a move to ``target``."""
    return [status for status, nexts in MIGRATION_PLAN_TRANSITIONS.items() if target in nexts]


def _plain(check: Callable[[M], M]) -> Callable[[M, int], M]:
    """The check of a kind without embeddings, ignoring the dimensions."""
    return lambda item, _dimensions: check(item)


AGENTS: Kind[Agent] = Kind(
    "agent",
    Agent,
    "agents",
    _plain(checks.checked_agent),
    unique=("name",),
    taken="agent name {!r} is taken",
)
RULES: Kind[Rule] = Kind(
    "rule", Rule, "rules", checks.checked_rule, parent=AGENTS, embedded="condition_text"
)
SCENARIOS: Kind[Scenario] = Kind(
    "scenario",
    Scenario,
    "scenarios",
    checks.checked_scenario,
    parent=AGENTS,
    embedded="entry_condition",
    revise=next_version,
    archive=archive_of,
)
TEMPLATES: Kind[Template] = Kind(
    "template", Template, "templates", _plain(checks.checked_template), parent=AGENTS
)
VARIABLES: Kind[Variable] = Kind(
    "variable",
    Variable,
    "variables",
    _plain(checks.checked_variable),
    parent=AGENTS,
    unique=("agent_id", "name"),
    taken="variable {!r} exists for this agent",
)
TOOLS: Kind[ToolActivation] = Kind(
    "tool activation",
    ToolActivation,
    "tool_activations",
    _plain(checks.checked_tool_activation),
    parent=AGENTS,
    soft_delete=False,
    unique=("agent_id", "tool_id"),
    taken="tool {!r} is already set for this agent",
    order=("tool_id", "id"),
)
PLANS: Kind[MigrationPlan] = Kind(
    "migration plan",
    MigrationPlan,
    "migration_plans",
    _plain(checks.checked_migration_plan),
    # A plan outlives its scenario's delete: the sweep skips it (see live_parent).
    parent=SCENARIOS,
    cascade=False,
    soft_delete=False,
    revise=draft_only,
    admit=within_scenario,
    deletable=undeployed,
)

KINDS: tuple[Kind[Any], ...] = (AGENTS, RULES, SCENARIOS, TEMPLATES, VARIABLES, TOOLS, PLANS)
"""Every kind, parents before their children."""
