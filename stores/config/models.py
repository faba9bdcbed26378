"""The configuration domain: agents and what shapes their behaviour.

Every model is a pydantic v2 model with a UUID id and timezone-aware UTC timestamps. Stores
set ``created_at``/``updated_at`` from their own clock, whatever the caller passes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from stores.common.clock import utc_now


class RuleScope(StrEnum):
    """Where a rule or template applies."""

    GLOBAL = "GLOBAL"
    SCENARIO = "SCENARIO"
    STEP = "STEP"


class TemplateMode(StrEnum):
    """How a template's content is used when it matches."""

    SUGGEST = "SUGGEST"
    EXCLUSIVE = "EXCLUSIVE"
    FALLBACK = "FALLBACK"


class VariableUpdatePolicy(StrEnum):
    """How a new value of a session variable combines with the old one."""

    REPLACE = "REPLACE"
    APPEND = "APPEND"
    MERGE = "MERGE"


class MigrationPlanStatus(StrEnum):
    """The life of a migration plan: DRAFT -> APPROVED -> DEPLOYED, or REJECTED."""

    DRAFT = "DRAFT"
    APPROVED = "APPROVED"
    DEPLOYED = "DEPLOYED"
    REJECTED = "REJECTED"


MIGRATION_PLAN_TRANSITIONS: dict[MigrationPlanStatus, frozenset[MigrationPlanStatus]] = {
    MigrationPlanStatus.DRAFT: frozenset(
        {MigrationPlanStatus.APPROVED, MigrationPlanStatus.REJECTED}
    ),
    MigrationPlanStatus.APPROVED: frozenset(
        {MigrationPlanStatus.DEPLOYED, MigrationPlanStatus.REJECTED}
    ),
    MigrationPlanStatus.DEPLOYED: frozenset(),
    MigrationPlanStatus.REJECTED: frozenset(),
}
"""The allowed status changes of a migration plan; every other change is a ConflictError."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Agent(_Model):
    """A conversational agent of a tenant; its name is unique among the tenant's live agents."""

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID
    name: str = Field(min_length=1)
    description: str | None = None
    system_prompt: str | None = None
    default_model: str | None = None
    enabled: bool = True
    created_at: AwareDatetime = Field(default_factory=utc_now)
    updated_at: AwareDatetime = Field(default_factory=utc_now)


class Rule(_Model):
    """A behaviour rule: when ``condition_text`` matches the conversation, do the action.

    ``embedding`` is the vector of ``condition_text`` made by ``embedding_model``; a rule
    without one is never returned by vector search until the embedding backfill gives it one.
    """

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID
    agent_id: UUID
    name: str = Field(min_length=1)
    description: str | None = None
    condition_text: str
    embedding: list[float] | None = None
    embedding_model: str | None = None
    action_type: str = Field(min_length=1)
    action_config: dict[str, Any] = Field(default_factory=dict)
    scope: RuleScope = RuleScope.GLOBAL
    scope_id: str | None = None
    priority: int = 0
    enabled: bool = True
    created_at: AwareDatetime = Field(default_factory=utc_now)
    updated_at: AwareDatetime = Field(default_factory=utc_now)


class ScenarioStep(_Model):
    """One step of a scenario; ``id`` is unique within the scenario."""

    id: str = Field(min_length=1)
    name: str = ""
    description: str | None = None
    transitions: list[str] = Field(default_factory=list)
    """Ids of the steps this one may lead to."""
    config: dict[str, Any] = Field(default_factory=dict)


class Scenario(_Model):
    """A multi-step conversation flow, versioned.

    Each update stores the replaced version in the scenario's archive and increments
    ``version``; sessions pinned to an old version can still read it.
    """

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID
    agent_id: UUID
    name: str = Field(min_length=1)
    description: str | None = None
    version: int = Field(default=1, ge=1)
    entry_condition: str | None = None
    embedding: list[float] | None = None
    embedding_model: str | None = None
    steps: list[ScenarioStep] = Field(default_factory=list)
    enabled: bool = True
    created_at: AwareDatetime = Field(default_factory=utc_now)
    updated_at: AwareDatetime = Field(default_factory=utc_now)

    @field_validator("steps")
    @classmethod
    def _consistent_steps(cls, steps: list[ScenarioStep]) -> list[ScenarioStep]:
        ids = [step.id for step in steps]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"step ids must be unique; repeated: {twice}")
        for step in steps:
            unknown = [t for t in step.transitions if t not in ids]
            if unknown:
                raise ValueError(f"step {step.id!r} leads to unknown steps {unknown}")
        return steps

    def step(self, step_id: str) -> ScenarioStep | None:
        """Return the step with id ``step_id``, or None."""
        return next((s for s in self.steps if s.id == step_id), None)


class ScenarioArchive(_Model):
    """A snapshot of a scenario version that a later update replaced."""

    tenant_id: UUID
    scenario_id: UUID
    version: int
    scenario: Scenario
    archived_at: AwareDatetime


class Template(_Model):
    """A response template of an agent."""

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID
    agent_id: UUID
    name: str = Field(min_length=1)
    content: str
    mode: TemplateMode = TemplateMode.SUGGEST
    scope: RuleScope = RuleScope.GLOBAL
    scope_id: str | None = None
    created_at: AwareDatetime = Field(default_factory=utc_now)
    updated_at: AwareDatetime = Field(default_factory=utc_now)


class Variable(_Model):
    """A session variable an agent tracks; its name is unique among the agent's variables."""

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID
    agent_id: UUID
    name: str = Field(min_length=1)
    description: str | None = None
    default_value: Any = None
    """Any JSON value."""
    update_policy: VariableUpdatePolicy = VariableUpdatePolicy.REPLACE
    resolver_tool_id: str | None = None
    created_at: AwareDatetime = Field(default_factory=utc_now)
    updated_at: AwareDatetime = Field(default_factory=utc_now)


class ToolActivation(_Model):
    """Whether (and with which policy overrides) an agent may use a tool; one per tool."""

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID
    agent_id: UUID
    tool_id: str = Field(min_length=1)
    enabled: bool = True
    policy_overrides: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime = Field(default_factory=utc_now)
    updated_at: AwareDatetime = Field(default_factory=utc_now)


class MigrationPlan(_Model):
    """How sessions on ``from_version`` of a scenario move to ``to_version``.

    Status changes go through the store (approve, deploy, reject), never through an update.
    """

    id: UUID = Field(default_factory=uuid4)
    tenant_id: UUID
    scenario_id: UUID
    from_version: int = Field(ge=1)
    to_version: int = Field(ge=2)
    status: MigrationPlanStatus = MigrationPlanStatus.DRAFT
    transformation_map: dict[str, Any] = Field(default_factory=dict)
    """Old step id -> new step id (or a richer JSON description)."""
    anchor_policies: dict[str, Any] = Field(default_factory=dict)
    scope_filter: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime = Field(default_factory=utc_now)
    updated_at: AwareDatetime = Field(default_factory=utc_now)
    approved_at: AwareDatetime | None = None
    deployed_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _forward(self) -> MigrationPlan:
        if self.to_version <= self.from_version:
            raise ValueError("to_version must be greater than from_version")
        return self
