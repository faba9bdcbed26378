"""Configuration of agents: rules, versioned scenarios, templates, variables, tools, plans."""

from typing import TYPE_CHECKING

from stores.common.lazy import lazy_attributes
from stores.config.inmemory import InMemoryConfigStore
from stores.config.models import (
    MIGRATION_PLAN_TRANSITIONS,
    Agent,
    MigrationPlan,
    MigrationPlanStatus,
    Rule,
    RuleScope,
    Scenario,
    ScenarioArchive,
    ScenarioStep,
    Template,
    TemplateMode,
    ToolActivation,
    Variable,
    VariableUpdatePolicy,
)
from stores.config.store import ConfigStore

if TYPE_CHECKING:
    from stores.config.postgres import PostgresConfigStore

__all__ = [
    "MIGRATION_PLAN_TRANSITIONS",
    "Agent",
    "ConfigStore",
    "InMemoryConfigStore",
    "MigrationPlan",
    "MigrationPlanStatus",
    "PostgresConfigStore",
    "Rule",
    "RuleScope",
    "Scenario",
    "ScenarioArchive",
    "ScenarioStep",
    "Template",
    "TemplateMode",
    "ToolActivation",
    "Variable",
    "VariableUpdatePolicy",
]


__getattr__ = lazy_attributes(__name__, {"PostgresConfigStore": "stores.config.postgres"})
