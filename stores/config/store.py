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

Each method parses and checks its arguments here, once, and hands them to the operations of
:class:`~stores.config.operations.ConfigOperations`, which backends implement once for every
kind of item (:mod:`stores.config.kinds`). The scenario and migration plan methods are
declared in :mod:`stores.config.scenarios`.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from uuid import UUID

from stores.common.arguments import ParsesArguments
from stores.common.pagination import Page
from stores.config import checks
from stores.config.kinds import AGENTS, RULES, TEMPLATES, TOOLS, VARIABLES
from stores.config.models import (
    Agent,
    Rule,
    RuleScope,
    Template,
    TemplateMode,
    ToolActivation,
    Variable,
)
from stores.config.operations import DEFAULT_PAGE_SIZE
from stores.config.scenarios import ScenarioConfig


class ConfigStore(ScenarioConfig, ParsesArguments, ABC):
    """Configuration of every tenant's agents (see the module docstring for shared rules)."""

    def create_agent(self, agent: Agent) -> Agent:
        """Store a new agent and return the stored copy.

        Raises DuplicateError if the id exists or a live agent of the tenant has the name.
        """
        return self._create(AGENTS, agent)

    def get_agent(self, tenant_id: UUID | str, agent_id: UUID | str) -> Agent | None:
        """Return the agent, or None if it does not exist or was deleted."""
        return self._find(AGENTS, {"tenant_id": tenant_id, "id": agent_id})

    def get_agent_by_name(self, tenant_id: UUID | str, name: str) -> Agent | None:
        """Return the tenant's live agent called ``name``, or None."""
        checks.check_name(name)
        return self._find(AGENTS, {"tenant_id": tenant_id, "name": name})

    def list_agents(
        self,
        tenant_id: UUID | str,
        *,
        enabled: bool | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Agent]:
        """List the tenant's live agents, optionally only the enabled (or disabled) ones."""
        return self._list(AGENTS, limit, cursor, tenant_id=tenant_id, enabled=enabled)

    def update_agent(self, agent: Agent) -> Agent:
        """Replace the agent's fields with ``agent``'s and return the stored copy.

        ``created_at`` is kept. Raises NotFoundError if the agent is missing or deleted, and
        DuplicateError if the new name is taken by another live agent of the tenant.
        """
        return self._update(AGENTS, agent)

    def delete_agent(self, tenant_id: UUID | str, agent_id: UUID | str) -> bool:
        """Soft-delete the agent and everything configured under it; False if it was absent."""
        return self._remove(AGENTS, {"tenant_id": tenant_id, "id": agent_id})

    def create_rule(self, rule: Rule) -> Rule:
        """Store a new rule under its agent and return the stored copy.

        Raises NotFoundError if the agent is missing and DuplicateError if the id exists.
        """
        return self._create(RULES, rule)

    def get_rule(self, tenant_id: UUID | str, rule_id: UUID | str) -> Rule | None:
        """Return the rule, or None if it does not exist or was deleted."""
        return self._find(RULES, {"tenant_id": tenant_id, "id": rule_id})

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
        checks.check_scope_id(scope_id)
        return self._list(
            RULES,
            limit,
            cursor,
            tenant_id=tenant_id,
            agent_id=agent_id,
            scope=scope,
            scope_id=scope_id,
            enabled=enabled,
        )

    def update_rule(self, rule: Rule) -> Rule:
        """Replace the rule's fields with ``rule``'s and return the stored copy.

        A rule cannot move to another agent (InvalidInputError on ``agent_id``). When
        ``condition_text`` changes but the embedding passed is the stored one, the stale
        embedding is dropped so that the embedding backfill recomputes it.
        """
        return self._update(RULES, rule)

    def delete_rule(self, tenant_id: UUID | str, rule_id: UUID | str) -> bool:
        """Soft-delete the rule; False if it was absent or already deleted."""
        return self._remove(RULES, {"tenant_id": tenant_id, "id": rule_id})

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
        checks.check_scope_id(scope_id)
        return self._search(
            RULES,
            embedding,
            limit,
            min_score,
            include_embeddings,
            tenant_id=tenant_id,
            agent_id=agent_id,
            scope=scope,
            scope_id=scope_id,
            enabled=enabled,
        )

    def list_rules_needing_embedding(
        self, model: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[Rule]:
        """Across all tenants, live rules with no embedding or one made by another model.

        For the embedding backfill; ordered by ``id``.
        """
        return self._needing(RULES, model, limit, cursor)

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
        return self._set_embedding(
            RULES, {"tenant_id": tenant_id, "id": rule_id}, embedding, model, source_text
        )

    def create_template(self, template: Template) -> Template:
        """Store a new template under its agent and return the stored copy."""
        return self._create(TEMPLATES, template)

    def get_template(self, tenant_id: UUID | str, template_id: UUID | str) -> Template | None:
        """Return the template, or None if missing or deleted."""
        return self._find(TEMPLATES, {"tenant_id": tenant_id, "id": template_id})

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
        checks.check_scope_id(scope_id)
        return self._list(
            TEMPLATES,
            limit,
            cursor,
            tenant_id=tenant_id,
            agent_id=agent_id,
            scope=scope,
            scope_id=scope_id,
            mode=mode,
        )

    def update_template(self, template: Template) -> Template:
        """Replace the template's fields; NotFoundError if missing, InvalidInputError if
        ``agent_id`` differs."""
        return self._update(TEMPLATES, template)

    def delete_template(self, tenant_id: UUID | str, template_id: UUID | str) -> bool:
        """Soft-delete the template; False if absent."""
        return self._remove(TEMPLATES, {"tenant_id": tenant_id, "id": template_id})

    def create_variable(self, variable: Variable) -> Variable:
        """Store a new variable; DuplicateError if the agent has a live one of that name."""
        return self._create(VARIABLES, variable)

    def get_variable(self, tenant_id: UUID | str, variable_id: UUID | str) -> Variable | None:
        """Return the variable, or None if missing or deleted."""
        return self._find(VARIABLES, {"tenant_id": tenant_id, "id": variable_id})

    def get_variable_by_name(
        self, tenant_id: UUID | str, agent_id: UUID | str, name: str
    ) -> Variable | None:
        """Return the agent's live variable called ``name``, or None."""
        checks.check_name(name)
        return self._find(VARIABLES, {"tenant_id": tenant_id, "agent_id": agent_id, "name": name})

    def list_variables(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Variable]:
        """List an agent's live variables."""
        return self._list(VARIABLES, limit, cursor, tenant_id=tenant_id, agent_id=agent_id)

    def update_variable(self, variable: Variable) -> Variable:
        """Replace the variable's fields; DuplicateError if renamed onto a taken name."""
        return self._update(VARIABLES, variable)

    def delete_variable(self, tenant_id: UUID | str, variable_id: UUID | str) -> bool:
        """Soft-delete the variable (its name becomes free); False if absent."""
        return self._remove(VARIABLES, {"tenant_id": tenant_id, "id": variable_id})

    def create_tool_activation(self, activation: ToolActivation) -> ToolActivation:
        """Store a tool activation; DuplicateError if the agent has one for that tool."""
        return self._create(TOOLS, activation)

    def get_tool_activation(
        self, tenant_id: UUID | str, activation_id: UUID | str
    ) -> ToolActivation | None:
        """Return the tool activation, or None."""
        return self._find(TOOLS, {"tenant_id": tenant_id, "id": activation_id})

    def get_tool_activation_for_tool(
        self, tenant_id: UUID | str, agent_id: UUID | str, tool_id: str
    ) -> ToolActivation | None:
        """Return the agent's activation of ``tool_id``, or None."""
        checks.check_name(tool_id, "tool_id")
        return self._find(TOOLS, {"tenant_id": tenant_id, "agent_id": agent_id, "tool_id": tool_id})

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
        return self._list(
            TOOLS, limit, cursor, tenant_id=tenant_id, agent_id=agent_id, enabled=enabled
        )

    def update_tool_activation(self, activation: ToolActivation) -> ToolActivation:
        """Replace the activation's fields; DuplicateError if moved onto a taken tool id."""
        return self._update(TOOLS, activation)

    def delete_tool_activation(self, tenant_id: UUID | str, activation_id: UUID | str) -> bool:
        """Delete the activation (for good: activations are not soft-deleted)."""
        return self._remove(TOOLS, {"tenant_id": tenant_id, "id": activation_id})
