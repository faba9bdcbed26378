"""Configuration of agents: rules, versioned scenarios, templates, variables, tools, plans."""

from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    # The PostgreSQL backend pulls in SQLAlchemy and pgvector; import it only when asked for.
    if name == "PostgresConfigStore":
        import importlib

        return importlib.import_module("stores.config.postgres").PostgresConfigStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
