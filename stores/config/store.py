"""The ConfigStore interface: agents, rules, scenarios (versioned), templates, variables,
tool activations and scenario migration plans.

Shared rules for every method:

- ``tenant_id`` comes first and scopes everything; an id belonging to another tenant behaves
  exactly like an id that does not exist.
- Bad ids, wrong embedding lengths, NaN/inf components, unknown enum values, oversized text
  and malformed cursors raise :class:`~stores.errors.InvalidInputError` before anything is
  written.
- ``get_*`` returns None for a missing (or deleted) item; ``update_*`` raises
  :class:`~stores.errors.NotFoundError`; ``delete_*`` returns whether something was deleted.
- Agents, rules, scenarios, templates and variables are soft-deleted: once deleted they are
  hidden from every read and free their unique names. Deleting an agent deletes its rules,
  scenarios, templates, variables and tool activations with it, in one transaction.
- Creating an item under an agent that does not exist (or was deleted) raises NotFoundError.
- Listings are keyset-paginated, oldest first by ``(created_at, id)`` unless documented
  otherwise; an empty listing is an empty page.
- ``created_at`` and ``updated_at`` are set from the store's clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from uuid import UUID

from stores.common.arguments import ParsesArguments
from stores.common.pagination import Page
from stores.config.models import (
    Agent,
    MigrationPlan,
    MigrationPlanStatus,
    Rule,
    RuleScope,
    Scenario,
    ScenarioArchive,
    Template,
    TemplateMode,
    ToolActivation,
    Variable,
)

DEFAULT_PAGE_SIZE = 100


class ConfigStore(ParsesArguments, ABC):
    """Configuration of every tenant's agents (see the module docstring for shared rules)."""

    @property
    @abstractmethod
    def dimensions(self) -> int:
        """The embedding length every rule and scenario embedding must have."""

    @abstractmethod
    def create_agent(self, agent: Agent) -> Agent:
        """Store a new agent and return the stored copy.

        Raises DuplicateError if the id exists or a live agent of the tenant has the name.
        """

    @abstractmethod
    def get_agent(self, tenant_id: UUID | str, agent_id: UUID | str) -> Agent | None:
        """Return the agent, or None if it does not exist or was deleted."""

    @abstractmethod
    def get_agent_by_name(self, tenant_id: UUID | str, name: str) -> Agent | None:
        """Return the tenant's live agent called ``name``, or None."""

    @abstractmethod
    def list_agents(
        self,
        tenant_id: UUID | str,
        *,
        enabled: bool | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Agent]:
        """List the tenant's live agents, optionally only the enabled (or disabled) ones."""

    @abstractmethod
    def update_agent(self, agent: Agent) -> Agent:
        """Replace the agent's fields with ``agent``'s and return the stored copy.

        ``created_at`` is kept. Raises NotFoundError if the agent is missing or deleted, and
        DuplicateError if the new name is taken by another live agent of the tenant.
        """

    @abstractmethod
    def delete_agent(self, tenant_id: UUID | str, agent_id: UUID | str) -> bool:
        """Soft-delete the agent and everything configured under it; False if it was absent."""

    @abstractmethod
    def create_rule(self, rule: Rule) -> Rule:
        """Store a new rule under its agent and return the stored copy.

        Raises NotFoundError if the agent is missing and DuplicateError if the id exists.
        """

    @abstractmethod
    def get_rule(self, tenant_id: UUID | str, rule_id: UUID | str) -> Rule | None:
        """Return the rule, or None if it does not exist or was deleted."""

    @abstractmethod
    def list_rules(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        scope: RuleScope | str | None = None,
        scope_id: str | None = None,
        enabled: bool | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Rule]:
        """List an agent's live rules, optionally filtered by scope, scope id and enabled."""

    @abstractmethod
    def update_rule(self, rule: Rule) -> Rule:
        """Replace the rule's fields with ``rule``'s and return the stored copy.

        A rule cannot move to another agent (InvalidInputError on ``agent_id``). When
        ``condition_text`` changes but the embedding passed is the stored one, the stale
        embedding is dropped so that the embedding backfill recomputes it.
        """

    @abstractmethod
    def delete_rule(self, tenant_id: UUID | str, rule_id: UUID | str) -> bool:
        """Soft-delete the rule; False if it was absent or already deleted."""

    @abstractmethod
    def vector_search_rules(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        embedding: Sequence[float],
        *,
        limit: int = 10,
        min_score: float | None = None,
        scope: RuleScope | str | None = None,
        scope_id: str | None = None,
        enabled: bool | None = True,
        include_embeddings: bool = False,
    ) -> list[tuple[Rule, float]]:
        """Return the agent's rules whose condition is closest to ``embedding``, best first.

        The score is the cosine similarity (1 is identical). Returns min(limit, matching
        rules) results, those scoring below ``min_score`` left out. Deleted rules and rules
        without an embedding are never returned. By default only enabled rules are
        searched; ``enabled=None`` searches all. The rules come without their embeddings
        (``embedding`` is None) unless ``include_embeddings`` is true: a search rarely needs
        them, and they are most of a row's bytes.
        """

    @abstractmethod
    def list_rules_needing_embedding(
        self, model: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[Rule]:
        """Across all tenants, live rules with no embedding or one made by another model.

        For the embedding backfill; ordered by ``id``.
        """

    @abstractmethod
    def set_rule_embedding(
        self,
        tenant_id: UUID | str,
        rule_id: UUID | str,
        embedding: Sequence[float],
        model: str,
        *,
        source_text: str | None = None,
    ) -> bool:
        """Store the embedding of the rule's condition, made by ``model``.

        With ``source_text``, the embedding is stored only if the condition is still that
        text (so an embedding of an edited condition is never written). Returns whether it
        was stored; ``updated_at`` is left alone. False for a missing or deleted rule.
        """

    @abstractmethod
    def create_scenario(self, scenario: Scenario) -> Scenario:
        """Store a new scenario at version 1 and return the stored copy.

        Raises NotFoundError if the agent is missing and DuplicateError if the id exists.
        """

    @abstractmethod
    def get_scenario(self, tenant_id: UUID | str, scenario_id: UUID | str) -> Scenario | None:
        """Return the current version of the scenario, or None if missing or deleted."""

    @abstractmethod
    def get_scenario_version(
        self, tenant_id: UUID | str, scenario_id: UUID | str, version: int
    ) -> Scenario | None:
        """Return the scenario as it was at ``version`` (the current one or an archived one).

        Archived versions carry no embedding. None if the scenario is missing or deleted or
        never had that version.
        """

    @abstractmethod
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

    @abstractmethod
    def update_scenario(self, scenario: Scenario) -> Scenario:
        """Store ``scenario`` as the next version, archiving the one it replaces.

        ``scenario.version`` must be the stored version (the one the caller read): the
        stored copy gets ``version + 1`` and the replaced version goes to the archive, in one
        transaction. Raises ConflictError (with ``current_version``) if the stored version
        differs, NotFoundError if the scenario is missing or deleted, InvalidInputError if
        ``agent_id`` differs. When ``entry_condition`` changes but the embedding passed is
        the stored one, the stale embedding is dropped.
        """

    @abstractmethod
    def delete_scenario(self, tenant_id: UUID | str, scenario_id: UUID | str) -> bool:
        """Soft-delete the scenario (its archive is hidden with it); False if absent."""

    @abstractmethod
    def list_scenario_archives(
        self,
        tenant_id: UUID | str,
        scenario_id: UUID | str,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[ScenarioArchive]:
        """List the archived versions of a live scenario, oldest version first."""

    @abstractmethod
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

    @abstractmethod
    def list_scenarios_needing_embedding(
        self, model: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[Scenario]:
        """Across all tenants, live scenarios with an entry condition and no embedding of
        ``model``; ordered by ``id``."""

    @abstractmethod
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

    @abstractmethod
    def create_template(self, template: Template) -> Template:
        """Store a new template under its agent and return the stored copy."""

    @abstractmethod
    def get_template(self, tenant_id: UUID | str, template_id: UUID | str) -> Template | None:
        """Return the template, or None if missing or deleted."""

    @abstractmethod
    def list_templates(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        scope: RuleScope | str | None = None,
        scope_id: str | None = None,
        mode: TemplateMode | str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Template]:
        """List an agent's live templates, optionally filtered by scope, scope id and mode."""

    @abstractmethod
    def update_template(self, template: Template) -> Template:
        """Replace the template's fields; NotFoundError if missing, InvalidInputError if
        ``agent_id`` differs."""

    @abstractmethod
    def delete_template(self, tenant_id: UUID | str, template_id: UUID | str) -> bool:
        """Soft-delete the template; False if absent."""

    @abstractmethod
    def create_variable(self, variable: Variable) -> Variable:
        """Store a new variable; DuplicateError if the agent has a live one of that name."""

    @abstractmethod
    def get_variable(self, tenant_id: UUID | str, variable_id: UUID | str) -> Variable | None:
        """Return the variable, or None if missing or deleted."""

    @abstractmethod
    def get_variable_by_name(
        self, tenant_id: UUID | str, agent_id: UUID | str, name: str
    ) -> Variable | None:
        """Return the agent's live variable called ``name``, or None."""

    @abstractmethod
    def list_variables(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Variable]:
        """List an agent's live variables."""

    @abstractmethod
    def update_variable(self, variable: Variable) -> Variable:
        """Replace the variable's fields; DuplicateError if renamed onto a taken name."""

    @abstractmethod
    def delete_variable(self, tenant_id: UUID | str, variable_id: UUID | str) -> bool:
        """Soft-delete the variable (its name becomes free); False if absent."""

    @abstractmethod
    def create_tool_activation(self, activation: ToolActivation) -> ToolActivation:
        """Store a tool activation; DuplicateError if the agent has one for that tool."""

    @abstractmethod
    def get_tool_activation(
        self, tenant_id: UUID | str, activation_id: UUID | str
    ) -> ToolActivation | None:
        """Return the tool activation, or None."""

    @abstractmethod
    def get_tool_activation_for_tool(
        self, tenant_id: UUID | str, agent_id: UUID | str, tool_id: str
    ) -> ToolActivation | None:
        """Return the agent's activation of ``tool_id``, or None."""

    @abstractmethod
    def list_tool_activations(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        enabled: bool | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[ToolActivation]:
        """List an agent's tool activations, ordered by tool id."""

    @abstractmethod
    def update_tool_activation(self, activation: ToolActivation) -> ToolActivation:
        """Replace the activation's fields; DuplicateError if moved onto a taken tool id."""

    @abstractmethod
    def delete_tool_activation(self, tenant_id: UUID | str, activation_id: UUID | str) -> bool:
        """Delete the activation (for good: activations are not soft-deleted)."""

    @abstractmethod
    def create_migration_plan(self, plan: MigrationPlan) -> MigrationPlan:
        """Store a new plan in DRAFT status.

        Raises NotFoundError if the scenario is missing or deleted, InvalidInputError if the
        plan is not DRAFT or ``to_version`` is beyond the scenario's current version.
        """

    @abstractmethod
    def get_migration_plan(
        self, tenant_id: UUID | str, plan_id: UUID | str
    ) -> MigrationPlan | None:
        """Return the plan, or None."""

    @abstractmethod
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

    @abstractmethod
    def update_migration_plan(self, plan: MigrationPlan) -> MigrationPlan:
        """Replace a DRAFT plan's maps and versions (its status is not changed here).

        Raises ConflictError if the stored plan is no longer DRAFT, NotFoundError if
        missing, InvalidInputError if ``scenario_id`` differs.
        """

    @abstractmethod
    def transition_migration_plan(
        self, tenant_id: UUID | str, plan_id: UUID | str, status: MigrationPlanStatus | str
    ) -> MigrationPlan:
        """Move the plan to ``status`` and return it.

        Allowed: DRAFT -> APPROVED (sets ``approved_at``), APPROVED -> DEPLOYED (sets
        ``deployed_at``), DRAFT or APPROVED -> REJECTED. Any other change, including one
        that lost a race with a concurrent transition, raises ConflictError; an unknown
        status is InvalidInputError; a missing plan is NotFoundError.
        """

    def approve_migration_plan(self, tenant_id: UUID | str, plan_id: UUID | str) -> MigrationPlan:
        """DRAFT -> APPROVED (see :meth:`transition_migration_plan`)."""
        return self.transition_migration_plan(tenant_id, plan_id, MigrationPlanStatus.APPROVED)

    def deploy_migration_plan(self, tenant_id: UUID | str, plan_id: UUID | str) -> MigrationPlan:
        """APPROVED -> DEPLOYED (see :meth:`transition_migration_plan`)."""
        return self.transition_migration_plan(tenant_id, plan_id, MigrationPlanStatus.DEPLOYED)

    def reject_migration_plan(self, tenant_id: UUID | str, plan_id: UUID | str) -> MigrationPlan:
        """DRAFT or APPROVED -> REJECTED (see :meth:`transition_migration_plan`)."""
        return self.transition_migration_plan(tenant_id, plan_id, MigrationPlanStatus.REJECTED)

    @abstractmethod
    def delete_migration_plan(self, tenant_id: UUID | str, plan_id: UUID | str) -> bool:
        """Delete a plan that was never deployed; ConflictError for a deployed one."""

    @abstractmethod
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
