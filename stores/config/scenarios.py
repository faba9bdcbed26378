"""The scenario half of the ConfigStore interface: versioned scenarios, their archive, and
the migration plans that move sessions from one version to another.

:class:`~stores.config.store.ConfigStore` is assembled from this class and its own methods;
the module docstring of :mod:`stores.config.store` states the rules every method follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from stores.common.pagination import Page
from stores.common.validation import parse_enum
from stores.config import checks
from stores.config.kinds import PLANS, SCENARIOS, listing, stamps
from stores.config.models import MigrationPlan, MigrationPlanStatus, Scenario, ScenarioArchive
from stores.config.operations import DEFAULT_PAGE_SIZE, ConfigOperations
from stores.errors import InvalidInputError


class ScenarioConfig(ConfigOperations):
    """Scenarios and migration plans (part of :class:`~stores.config.store.ConfigStore`)."""

    def create_scenario(self, scenario: Scenario) -> Scenario:
        """Store a new scenario at version 1 and return the stored copy.

        Raises NotFoundError if the agent is missing and DuplicateError if the id exists.
        """
        return self._create(SCENARIOS, scenario, version=1)

    def get_scenario(self, tenant_id: UUID | str, scenario_id: UUID | str) -> Scenario | None:
        """Return the current version of the scenario, or None if missing or deleted."""
        return self._find(SCENARIOS, {"tenant_id": tenant_id, "id": scenario_id})

    def get_scenario_version(
        self, tenant_id: UUID | str, scenario_id: UUID | str, version: int
    ) -> Scenario | None:
        """Return the scenario as it was at ``version`` (the current one or an archived one).

        Archived versions carry no embedding. None if the scenario is missing or deleted or
        never had that version.
        """
        checks.check_int32(version, "version", 1)
        return self._scenario_at({"tenant_id": tenant_id, "id": scenario_id}, version)

    def list_scenarios(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        enabled: bool | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Scenario]:
        """List an agent's live scenarios (current versions)."""
        return self._list(
            SCENARIOS, limit, cursor, tenant_id=tenant_id, agent_id=agent_id, enabled=enabled
        )

    def update_scenario(self, scenario: Scenario) -> Scenario:
        """Store ``scenario`` as the next version, archiving the one it replaces.

        ``scenario.version`` must be the stored version (the one the caller read): the
        stored copy gets ``version + 1`` and the replaced version goes to the archive, in one
        transaction. Raises ConflictError (with ``current_version``) if the stored version
        differs, NotFoundError if the scenario is missing or deleted, InvalidInputError if
        ``agent_id`` differs. When ``entry_condition`` changes but the embedding passed is
        the stored one, the stale embedding is dropped.
        """
        return self._update(SCENARIOS, scenario)

    def delete_scenario(self, tenant_id: UUID | str, scenario_id: UUID | str) -> bool:
        """Soft-delete the scenario (its archive is hidden with it); False if absent."""
        return self._remove(SCENARIOS, {"tenant_id": tenant_id, "id": scenario_id})

    def list_scenario_archives(
        self,
        tenant_id: UUID | str,
        scenario_id: UUID | str,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[ScenarioArchive]:
        """List the archived versions of a live scenario, oldest version first."""
        q = listing(("version",), limit, cursor, tenant_id=tenant_id, scenario_id=scenario_id)
        return self._archived(q)

    def vector_search_scenarios(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        embedding: Sequence[float],
        *,
        limit: int = 10,
        min_score: float | None = None,
        enabled: bool | None = True,
        include_embeddings: bool = False,
    ) -> list[tuple[Scenario, float]]:
        """Return the agent's scenarios whose entry condition is closest to ``embedding``.

        Same contract as :meth:`vector_search_rules`.
        """
        return self._search(
            SCENARIOS,
            embedding,
            limit,
            min_score,
            include_embeddings,
            tenant_id=tenant_id,
            agent_id=agent_id,
            enabled=enabled,
        )

    def list_scenarios_needing_embedding(
        self, model: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[Scenario]:
        """Across all tenants, live scenarios with an entry condition and no embedding of
        ``model``; ordered by ``id``."""
        return self._needing(SCENARIOS, model, limit, cursor)

    def set_scenario_embedding(
        self,
        tenant_id: UUID | str,
        scenario_id: UUID | str,
        embedding: Sequence[float],
        model: str,
        *,
        source_text: str | None = None,
    ) -> bool:
        """Store the embedding of the scenario's entry condition without a new version.

        Same contract as :meth:`set_rule_embedding` (``source_text`` guards against an
        entry condition edited meanwhile).
        """
        return self._set_embedding(
            SCENARIOS, {"tenant_id": tenant_id, "id": scenario_id}, embedding, model, source_text
        )

    def create_migration_plan(self, plan: MigrationPlan) -> MigrationPlan:
        """Store a new plan in DRAFT status.

        Raises NotFoundError if the scenario is missing or deleted, InvalidInputError if the
        plan is not DRAFT or ``to_version`` is beyond the scenario's current version.
        """
        if plan.status != MigrationPlanStatus.DRAFT:
            raise InvalidInputError("a new migration plan must be DRAFT", field="status")
        return self._create(PLANS, plan, approved_at=None, deployed_at=None)

    def get_migration_plan(
        self, tenant_id: UUID | str, plan_id: UUID | str
    ) -> MigrationPlan | None:
        """Return the plan, or None."""
        return self._find(PLANS, {"tenant_id": tenant_id, "id": plan_id})

    def list_migration_plans(
        self,
        tenant_id: UUID | str,
        *,
        scenario_id: UUID | str | None = None,
        status: MigrationPlanStatus | str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[MigrationPlan]:
        """List a tenant's plans, optionally for one scenario and/or in one status."""
        return self._list(
            PLANS, limit, cursor, tenant_id=tenant_id, scenario_id=scenario_id, status=status
        )

    def update_migration_plan(self, plan: MigrationPlan) -> MigrationPlan:
        """Replace a DRAFT plan's maps and versions (its status is not changed here).

        Raises ConflictError if the stored plan is no longer DRAFT, NotFoundError if
        missing, InvalidInputError if ``scenario_id`` differs.
        """
        return self._update(PLANS, plan)

    def transition_migration_plan(
        self, tenant_id: UUID | str, plan_id: UUID | str, status: MigrationPlanStatus | str
    ) -> MigrationPlan:
        """Move the plan to ``status`` and return it.

        Allowed: DRAFT -> APPROVED (sets ``approved_at``), APPROVED -> DEPLOYED (sets
        ``deployed_at``), DRAFT or APPROVED -> REJECTED. Any other change, including one
        that lost a race with a concurrent transition, raises ConflictError; an unknown
        status is InvalidInputError; a missing plan is NotFoundError.
        """
        target = parse_enum(MigrationPlanStatus, status, "status")
        return self._transition(
            {"tenant_id": tenant_id, "id": plan_id}, target, stamps(target, self._clock())
        )

    def approve_migration_plan(self, tenant_id: UUID | str, plan_id: UUID | str) -> MigrationPlan:
        """DRAFT -> APPROVED (see :meth:`transition_migration_plan`)."""
        return self.transition_migration_plan(tenant_id, plan_id, MigrationPlanStatus.APPROVED)

    def deploy_migration_plan(self, tenant_id: UUID | str, plan_id: UUID | str) -> MigrationPlan:
        """APPROVED -> DEPLOYED (see :meth:`transition_migration_plan`)."""
        return self.transition_migration_plan(tenant_id, plan_id, MigrationPlanStatus.DEPLOYED)

    def reject_migration_plan(self, tenant_id: UUID | str, plan_id: UUID | str) -> MigrationPlan:
        """DRAFT or APPROVED -> REJECTED (see :meth:`transition_migration_plan`)."""
        return self.transition_migration_plan(tenant_id, plan_id, MigrationPlanStatus.REJECTED)

    def delete_migration_plan(self, tenant_id: UUID | str, plan_id: UUID | str) -> bool:
        """Delete a plan that was never deployed; ConflictError for a deployed one."""
        return self._remove(PLANS, {"tenant_id": tenant_id, "id": plan_id})

    def list_deployed_migration_plans(
        self,
        *,
        tenant_id: UUID | str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[MigrationPlan]:
        """List DEPLOYED plans of one tenant or, with no tenant, of all tenants.

        For the scenario migration sweep; ordered by ``(tenant_id, id)`` so that a sweep can
        page through every tenant without repeats. Plans of deleted scenarios are left out.
        """
        deployed = MigrationPlanStatus.DEPLOYED
        q = listing(
            ("tenant_id", "id"),
            limit,
            cursor,
            live_parent=True,
            tenant_id=tenant_id,
            status=deployed,
        )
        return self._page(PLANS, q)
