"""Input checks for configuration items, shared by every backend so that they agree.

Each ``checked_*`` function returns a copy of the item ready to store (JSON fields made plain,
embedding as floats) or raises InvalidInputError before anything is written.
"""

from __future__ import annotations

from array import array

from stores.common.checks import NAME_MAX_LENGTH, check_int32, check_name, plain_json

__all__ = [
    "check_int32",
    "check_name",
    "check_scope_id",
    "checked_agent",
    "checked_migration_plan",
    "checked_rule",
    "checked_scenario",
    "checked_template",
    "checked_tool_activation",
    "checked_variable",
    "plain_json",
    "text_changed_keeping_embedding",
]
from stores.common.validation import check_text, validate_embedding
from stores.config.models import (
    Agent,
    MigrationPlan,
    Rule,
    Scenario,
    Template,
    ToolActivation,
    Variable,
)
from stores.errors import InvalidInputError


def checked_agent(agent: Agent) -> Agent:
    """Validate an agent."""
    check_name(agent.name)
    check_text(agent.description, "description")
    check_text(agent.system_prompt, "system_prompt")
    check_text(agent.default_model, "default_model", NAME_MAX_LENGTH)
    return agent.model_copy(deep=True)


def check_scope_id(scope_id: str | None) -> None:
    """Check a ``scope_id`` filter as a stored one is checked (length, no NUL)."""
    check_text(scope_id, "scope_id", NAME_MAX_LENGTH)


def checked_rule(rule: Rule, dimensions: int) -> Rule:
    """Validate a rule (embedding length and values included)."""
    check_name(rule.name)
    check_text(rule.description, "description")
    check_text(rule.condition_text, "condition_text")
    check_name(rule.action_type, "action_type")
    check_scope_id(rule.scope_id)
    check_text(rule.embedding_model, "embedding_model", NAME_MAX_LENGTH)
    check_int32(rule.priority, "priority")
    embedding = validate_embedding(rule.embedding, dimensions)
    action_config = plain_json(rule.action_config, "action_config")
    return rule.model_copy(
        update={"embedding": embedding, "action_config": action_config}, deep=True
    )


def checked_scenario(scenario: Scenario, dimensions: int) -> Scenario:
    """Validate a scenario (steps, embedding)."""
    check_name(scenario.name)
    check_text(scenario.description, "description")
    check_text(scenario.entry_condition, "entry_condition")
    check_text(scenario.embedding_model, "embedding_model", NAME_MAX_LENGTH)
    check_int32(scenario.version, "version", 1)
    embedding = validate_embedding(scenario.embedding, dimensions)
    plain_json([s.model_dump(mode="json") for s in scenario.steps], "steps")
    for step in scenario.steps:
        check_text(step.id, "steps.id", NAME_MAX_LENGTH)
    return scenario.model_copy(update={"embedding": embedding}, deep=True)


def checked_template(template: Template) -> Template:
    """Validate a template."""
    check_name(template.name)
    check_text(template.content, "content")
    check_scope_id(template.scope_id)
    return template.model_copy(deep=True)


def checked_variable(variable: Variable) -> Variable:
    """Validate a variable (its default value must be JSON)."""
    check_name(variable.name)
    check_text(variable.description, "description")
    check_text(variable.resolver_tool_id, "resolver_tool_id", NAME_MAX_LENGTH)
    default = plain_json(variable.default_value, "default_value")
    return variable.model_copy(update={"default_value": default}, deep=True)


def checked_tool_activation(activation: ToolActivation) -> ToolActivation:
    """Validate a tool activation."""
    check_name(activation.tool_id, "tool_id")
    overrides = plain_json(activation.policy_overrides, "policy_overrides")
    return activation.model_copy(update={"policy_overrides": overrides}, deep=True)


def checked_migration_plan(plan: MigrationPlan) -> MigrationPlan:
    """Validate a migration plan's versions and JSON maps."""
    check_int32(plan.from_version, "from_version", 1)
    check_int32(plan.to_version, "to_version", 1)
    if plan.to_version <= plan.from_version:
        raise InvalidInputError("to_version must be greater than from_version", field="to_version")
    update = {
        name: plain_json(getattr(plan, name), name)
        for name in ("transformation_map", "anchor_policies", "scope_filter")
    }
    return plan.model_copy(update=update, deep=True)


def text_changed_keeping_embedding(
    old_text: str | None,
    new_text: str | None,
    old_embedding: list[float] | None,
    new_embedding: list[float] | None,
) -> bool:
    """True when the embedded text changed but the caller passed the old embedding back.

    Embeddings are compared at the float32 precision they are stored with.
    """
    if old_text == new_text or new_embedding is None or old_embedding is None:
        return False
    return array("f", new_embedding) == array("f", old_embedding)
