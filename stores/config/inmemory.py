"""The in-memory ConfigStore: the reference behaviour every other backend must match."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from stores.common.clock import Clock, utc_now
from stores.common.keyset import as_datetime, as_str, as_uuid, paginate
from stores.common.pagination import Page
from stores.common.validation import (
    DEFAULT_EMBEDDING_DIMENSIONS,
    check_limit,
    check_text,
    parse_enum,
    parse_id,
    validate_embedding,
)
from stores.common.vectors import (
    check_min_score,
    checked_query,
    cosine_similarity,
    float32_list,
    found,
)
from stores.config import checks
from stores.config.models import (
    MIGRATION_PLAN_TRANSITIONS,
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
from stores.config.store import DEFAULT_PAGE_SIZE, ConfigStore
from stores.errors import ConflictError, DuplicateError, InvalidInputError, NotFoundError

T = TypeVar("T", Agent, Rule, Scenario, Template, Variable, ToolActivation, MigrationPlan)

_CREATED = (as_datetime, as_uuid)
_TENANT_ID = (as_uuid, as_uuid)


def _created_key(item: Any) -> tuple[Any, ...]:
    return (item.created_at, item.id)


def _id_key(item: Any) -> tuple[Any, ...]:
    return (item.id,)


def _tenant_key(item: Any) -> tuple[Any, ...]:
    return (item.tenant_id, item.id)


class InMemoryConfigStore(ConfigStore):
    """A thread-safe ConfigStore held in process memory (one lock around every call)."""

    def __init__(
        self, *, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS, clock: Clock = utc_now
    ) -> None:
        self._dimensions = dimensions
        self._clock = clock
        self._lock = threading.RLock()
        self._agents: dict[UUID, Agent] = {}
        self._rules: dict[UUID, Rule] = {}
        self._scenarios: dict[UUID, Scenario] = {}
        self._archives: dict[tuple[UUID, int], ScenarioArchive] = {}
        self._templates: dict[UUID, Template] = {}
        self._variables: dict[UUID, Variable] = {}
        self._tools: dict[UUID, ToolActivation] = {}
        self._plans: dict[UUID, MigrationPlan] = {}
        # Soft-deleted items stay in their table (their ids stay taken, as rows with
        # deleted_at set do) and are marked here by kind and id.
        self._deleted: set[tuple[type[Any], UUID]] = set()

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def _live(self, table: dict[UUID, T], tenant_id: UUID, item_id: UUID) -> T | None:
        item = table.get(item_id)
        if item is None or item.tenant_id != tenant_id or self._is_deleted(item):
            return None
        return item

    def _is_deleted(self, item: Any) -> bool:
        return (type(item), item.id) in self._deleted

    def _require_agent(self, tenant_id: UUID, agent_id: UUID) -> None:
        if self._live(self._agents, tenant_id, agent_id) is None:
            raise NotFoundError(f"agent {agent_id} not found")

    def _stamp_new(self, item: T) -> T:
        now = self._clock()
        return item.model_copy(update={"created_at": now, "updated_at": now})

    def _insert(self, table: dict[UUID, T], item: T) -> T:
        # Soft-deleted items stay in their table, so their ids stay taken, as rows do;
        # ids are unique per kind of item, like the primary key of each table.
        if item.id in table:
            raise DuplicateError(f"an item with id {item.id} already exists")
        table[item.id] = item
        return item.model_copy(deep=True)

    def _replace(self, table: dict[UUID, T], new: T, old: T, **extra: Any) -> T:
        if getattr(new, "agent_id", None) != getattr(old, "agent_id", None):
            raise InvalidInputError("agent_id cannot change", field="agent_id")
        stored = new.model_copy(
            update={"created_at": old.created_at, "updated_at": self._clock(), **extra}
        )
        table[new.id] = stored
        return stored.model_copy(deep=True)

    def _delete(self, table: dict[UUID, T], tenant_id: UUID | str, item_id: UUID | str) -> bool:
        tid, iid = parse_id(tenant_id, "tenant_id"), parse_id(item_id, "id")
        with self._lock:
            item = self._live(table, tid, iid)
            if item is None:
                return False
            self._deleted.add((type(item), iid))
            return True

    def _get(self, table: dict[UUID, T], tenant_id: UUID | str, item_id: UUID | str) -> T | None:
        tid, iid = parse_id(tenant_id, "tenant_id"), parse_id(item_id, "id")
        with self._lock:
            item = self._live(table, tid, iid)
            return None if item is None else item.model_copy(deep=True)

    def _list(
        self,
        table: dict[UUID, T],
        tenant_id: UUID | str,
        agent_id: UUID | str,
        where: Callable[[T], bool],
        limit: int,
        cursor: str | None,
    ) -> Page[T]:
        tid, aid = parse_id(tenant_id, "tenant_id"), parse_id(agent_id, "agent_id")
        check_limit(limit)
        with self._lock:
            rows = [
                r.model_copy(deep=True)
                for r in table.values()
                if r.tenant_id == tid
                and getattr(r, "agent_id", None) == aid
                and not self._is_deleted(r)
                and where(r)
            ]
        return paginate(rows, _created_key, limit=limit, cursor=cursor, kinds=_CREATED)

    def _search(
        self,
        rows: Iterable[T],
        embedding: Sequence[float],
        limit: int,
        min_score: float | None,
        include_embeddings: bool,
    ) -> list[tuple[T, float]]:
        query = checked_query(embedding, self.dimensions)
        check_min_score(min_score)
        check_limit(limit)
        scored = [
            (row, cosine_similarity(query, getattr(row, "embedding")))  # noqa: B009
            for row in rows
        ]
        scored = [(r, s) for r, s in scored if min_score is None or s >= min_score]
        scored.sort(key=lambda pair: (-pair[1], pair[0].id))
        return [(found(r, include_embeddings), s) for r, s in scored[:limit]]

    def _needing_embedding(
        self,
        table: dict[UUID, T],
        model: str,
        text_of: Callable[[T], str | None],
        limit: int,
        cursor: str | None,
    ) -> Page[T]:
        checks.check_name(model, "model")
        with self._lock:
            rows = [
                r.model_copy(deep=True)
                for r in table.values()
                if not self._is_deleted(r)
                and text_of(r)
                and (getattr(r, "embedding") is None or getattr(r, "embedding_model") != model)  # noqa: B009
            ]
        return paginate(rows, _id_key, limit=limit, cursor=cursor, kinds=(as_uuid,))

    def _set_embedding(
        self,
        table: dict[UUID, T],
        tenant_id: UUID | str,
        item_id: UUID | str,
        embedding: Sequence[float],
        model: str,
        source_text: str | None,
        text_of: Callable[[T], str | None],
    ) -> bool:
        tid, iid = parse_id(tenant_id, "tenant_id"), parse_id(item_id, "id")
        vector = validate_embedding(embedding, self.dimensions)
        checks.check_name(model, "model")
        check_text(source_text, "source_text")
        with self._lock:
            item = self._live(table, tid, iid)
            if item is None or (source_text is not None and text_of(item) != source_text):
                return False
            table[iid] = item.model_copy(
                update={"embedding": float32_list(vector), "embedding_model": model}
            )
            return True

    def create_agent(self, agent: Agent) -> Agent:
        item = self._stamp_new(checks.checked_agent(agent))
        with self._lock:
            if self._agent_named(item.tenant_id, item.name) is not None:
                raise DuplicateError(f"agent name {item.name!r} is taken")
            return self._insert(self._agents, item)

    def _agent_named(self, tenant_id: UUID, name: str) -> Agent | None:
        return next(
            (
                a
                for a in self._agents.values()
                if a.tenant_id == tenant_id and a.name == name and not self._is_deleted(a)
            ),
            None,
        )

    def get_agent(self, tenant_id: UUID | str, agent_id: UUID | str) -> Agent | None:
        return self._get(self._agents, tenant_id, agent_id)

    def get_agent_by_name(self, tenant_id: UUID | str, name: str) -> Agent | None:
        tid = parse_id(tenant_id, "tenant_id")
        checks.check_name(name)
        with self._lock:
            agent = self._agent_named(tid, name)
            return None if agent is None else agent.model_copy(deep=True)

    def list_agents(
        self,
        tenant_id: UUID | str,
        *,
        enabled: bool | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Agent]:
        tid = parse_id(tenant_id, "tenant_id")
        checks.check_enabled(enabled)
        check_limit(limit)
        with self._lock:
            rows = [
                a.model_copy(deep=True)
                for a in self._agents.values()
                if a.tenant_id == tid
                and not self._is_deleted(a)
                and (enabled is None or a.enabled == enabled)
            ]
        return paginate(rows, _created_key, limit=limit, cursor=cursor, kinds=_CREATED)

    def update_agent(self, agent: Agent) -> Agent:
        item = checks.checked_agent(agent)
        with self._lock:
            old = self._live(self._agents, item.tenant_id, item.id)
            if old is None:
                raise NotFoundError(f"agent {item.id} not found")
            other = self._agent_named(item.tenant_id, item.name)
            if other is not None and other.id != item.id:
                raise DuplicateError(f"agent name {item.name!r} is taken")
            return self._replace(self._agents, item, old)

    def delete_agent(self, tenant_id: UUID | str, agent_id: UUID | str) -> bool:
        tid, aid = parse_id(tenant_id, "tenant_id"), parse_id(agent_id, "agent_id")
        with self._lock:
            if self._live(self._agents, tid, aid) is None:
                return False
            self._deleted.add((Agent, aid))
            for table in (self._rules, self._scenarios, self._templates, self._variables):
                for item in table.values():
                    if item.tenant_id == tid and item.agent_id == aid:
                        self._deleted.add((type(item), item.id))
            for tool_id in [
                t.id for t in self._tools.values() if t.tenant_id == tid and t.agent_id == aid
            ]:
                del self._tools[tool_id]
            return True

    def create_rule(self, rule: Rule) -> Rule:
        item = self._stamp_new(checks.checked_rule(rule, self.dimensions))
        item.embedding = float32_list(item.embedding)
        with self._lock:
            self._require_agent(item.tenant_id, item.agent_id)
            return self._insert(self._rules, item)

    def get_rule(self, tenant_id: UUID | str, rule_id: UUID | str) -> Rule | None:
        return self._get(self._rules, tenant_id, rule_id)

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
        where = _rule_filter(scope, scope_id, enabled)
        return self._list(self._rules, tenant_id, agent_id, where, limit, cursor)

    def update_rule(self, rule: Rule) -> Rule:
        item = checks.checked_rule(rule, self.dimensions)
        item.embedding = float32_list(item.embedding)
        with self._lock:
            old = self._live(self._rules, item.tenant_id, item.id)
            if old is None:
                raise NotFoundError(f"rule {item.id} not found")
            extra: dict[str, Any] = {}
            if checks.text_changed_keeping_embedding(
                old.condition_text, item.condition_text, old.embedding, item.embedding
            ):
                extra = {"embedding": None, "embedding_model": None}
            return self._replace(self._rules, item, old, **extra)

    def delete_rule(self, tenant_id: UUID | str, rule_id: UUID | str) -> bool:
        return self._delete(self._rules, tenant_id, rule_id)

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
        tid, aid = parse_id(tenant_id, "tenant_id"), parse_id(agent_id, "agent_id")
        where = _rule_filter(scope, scope_id, enabled)
        with self._lock:
            rows = [
                r
                for r in self._rules.values()
                if r.tenant_id == tid
                and r.agent_id == aid
                and not self._is_deleted(r)
                and r.embedding is not None
                and where(r)
            ]
            return self._search(rows, embedding, limit, min_score, include_embeddings)

    def list_rules_needing_embedding(
        self, model: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[Rule]:
        return self._needing_embedding(
            self._rules, model, lambda r: r.condition_text, limit, cursor
        )

    def set_rule_embedding(
        self,
        tenant_id: UUID | str,
        rule_id: UUID | str,
        embedding: Sequence[float],
        model: str,
        *,
        source_text: str | None = None,
    ) -> bool:
        return self._set_embedding(
            self._rules,
            tenant_id,
            rule_id,
            embedding,
            model,
            source_text,
            lambda r: r.condition_text,
        )

    def create_scenario(self, scenario: Scenario) -> Scenario:
        item = self._stamp_new(checks.checked_scenario(scenario, self.dimensions))
        item = item.model_copy(update={"version": 1, "embedding": float32_list(item.embedding)})
        with self._lock:
            self._require_agent(item.tenant_id, item.agent_id)
            return self._insert(self._scenarios, item)

    def get_scenario(self, tenant_id: UUID | str, scenario_id: UUID | str) -> Scenario | None:
        return self._get(self._scenarios, tenant_id, scenario_id)

    def get_scenario_version(
        self, tenant_id: UUID | str, scenario_id: UUID | str, version: int
    ) -> Scenario | None:
        tid, sid = parse_id(tenant_id, "tenant_id"), parse_id(scenario_id, "scenario_id")
        checks.check_int32(version, "version", 1)
        with self._lock:
            current = self._live(self._scenarios, tid, sid)
            if current is None:
                return None
            if current.version == version:
                return current.model_copy(deep=True)
            archive = self._archives.get((sid, version))
            return None if archive is None else archive.scenario.model_copy(deep=True)

    def list_scenarios(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        enabled: bool | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Scenario]:
        checks.check_enabled(enabled)
        return self._list(
            self._scenarios,
            tenant_id,
            agent_id,
            lambda s: enabled is None or s.enabled == enabled,
            limit,
            cursor,
        )

    def update_scenario(self, scenario: Scenario) -> Scenario:
        item = checks.checked_scenario(scenario, self.dimensions)
        item.embedding = float32_list(item.embedding)
        with self._lock:
            old = self._live(self._scenarios, item.tenant_id, item.id)
            if old is None:
                raise NotFoundError(f"scenario {item.id} not found")
            if old.version != item.version:
                raise ConflictError(
                    f"scenario {item.id} is at version {old.version}, not {item.version}",
                    current_version=old.version,
                )
            checks.check_int32(old.version + 1, "version", 1)
            extra: dict[str, Any] = {"version": old.version + 1}
            if checks.text_changed_keeping_embedding(
                old.entry_condition, item.entry_condition, old.embedding, item.embedding
            ):
                extra.update(embedding=None, embedding_model=None)
            stored = self._replace(self._scenarios, item, old, **extra)
            snapshot = old.model_copy(update={"embedding": None}, deep=True)
            self._archives[(old.id, old.version)] = ScenarioArchive(
                tenant_id=old.tenant_id,
                scenario_id=old.id,
                version=old.version,
                scenario=snapshot,
                archived_at=stored.updated_at,
            )
            return stored

    def delete_scenario(self, tenant_id: UUID | str, scenario_id: UUID | str) -> bool:
        return self._delete(self._scenarios, tenant_id, scenario_id)

    def list_scenario_archives(
        self,
        tenant_id: UUID | str,
        scenario_id: UUID | str,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[ScenarioArchive]:
        tid, sid = parse_id(tenant_id, "tenant_id"), parse_id(scenario_id, "scenario_id")
        check_limit(limit)
        with self._lock:
            if self._live(self._scenarios, tid, sid) is None:
                rows: list[ScenarioArchive] = []
            else:
                rows = [a.model_copy(deep=True) for (s, _), a in self._archives.items() if s == sid]
        return paginate(
            rows, lambda a: (a.version,), limit=limit, cursor=cursor, kinds=(_as_version,)
        )

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
        tid, aid = parse_id(tenant_id, "tenant_id"), parse_id(agent_id, "agent_id")
        checks.check_enabled(enabled)
        with self._lock:
            rows = [
                s
                for s in self._scenarios.values()
                if s.tenant_id == tid
                and s.agent_id == aid
                and not self._is_deleted(s)
                and s.embedding is not None
                and (enabled is None or s.enabled == enabled)
            ]
            return self._search(rows, embedding, limit, min_score, include_embeddings)

    def list_scenarios_needing_embedding(
        self, model: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[Scenario]:
        return self._needing_embedding(
            self._scenarios, model, lambda s: s.entry_condition, limit, cursor
        )

    def set_scenario_embedding(
        self,
        tenant_id: UUID | str,
        scenario_id: UUID | str,
        embedding: Sequence[float],
        model: str,
        *,
        source_text: str | None = None,
    ) -> bool:
        return self._set_embedding(
            self._scenarios,
            tenant_id,
            scenario_id,
            embedding,
            model,
            source_text,
            lambda s: s.entry_condition,
        )

    def create_template(self, template: Template) -> Template:
        item = self._stamp_new(checks.checked_template(template))
        with self._lock:
            self._require_agent(item.tenant_id, item.agent_id)
            return self._insert(self._templates, item)

    def get_template(self, tenant_id: UUID | str, template_id: UUID | str) -> Template | None:
        return self._get(self._templates, tenant_id, template_id)

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
        sc = None if scope is None else parse_enum(RuleScope, scope, "scope")
        md = None if mode is None else parse_enum(TemplateMode, mode, "mode")
        checks.check_scope_id(scope_id)

        def where(t: Template) -> bool:
            return (
                (sc is None or t.scope == sc)
                and (scope_id is None or t.scope_id == scope_id)
                and (md is None or t.mode == md)
            )

        return self._list(self._templates, tenant_id, agent_id, where, limit, cursor)

    def update_template(self, template: Template) -> Template:
        item = checks.checked_template(template)
        with self._lock:
            old = self._live(self._templates, item.tenant_id, item.id)
            if old is None:
                raise NotFoundError(f"template {item.id} not found")
            return self._replace(self._templates, item, old)

    def delete_template(self, tenant_id: UUID | str, template_id: UUID | str) -> bool:
        return self._delete(self._templates, tenant_id, template_id)

    def _variable_named(self, tenant_id: UUID, agent_id: UUID, name: str) -> Variable | None:
        return next(
            (
                v
                for v in self._variables.values()
                if v.tenant_id == tenant_id
                and v.agent_id == agent_id
                and v.name == name
                and not self._is_deleted(v)
            ),
            None,
        )

    def create_variable(self, variable: Variable) -> Variable:
        item = self._stamp_new(checks.checked_variable(variable))
        with self._lock:
            self._require_agent(item.tenant_id, item.agent_id)
            if self._variable_named(item.tenant_id, item.agent_id, item.name) is not None:
                raise DuplicateError(f"variable {item.name!r} exists for this agent")
            return self._insert(self._variables, item)

    def get_variable(self, tenant_id: UUID | str, variable_id: UUID | str) -> Variable | None:
        return self._get(self._variables, tenant_id, variable_id)

    def get_variable_by_name(
        self, tenant_id: UUID | str, agent_id: UUID | str, name: str
    ) -> Variable | None:
        tid, aid = parse_id(tenant_id, "tenant_id"), parse_id(agent_id, "agent_id")
        checks.check_name(name)
        with self._lock:
            found = self._variable_named(tid, aid, name)
            return None if found is None else found.model_copy(deep=True)

    def list_variables(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Variable]:
        return self._list(self._variables, tenant_id, agent_id, lambda v: True, limit, cursor)

    def update_variable(self, variable: Variable) -> Variable:
        item = checks.checked_variable(variable)
        with self._lock:
            old = self._live(self._variables, item.tenant_id, item.id)
            if old is None:
                raise NotFoundError(f"variable {item.id} not found")
            other = self._variable_named(item.tenant_id, old.agent_id, item.name)
            if other is not None and other.id != item.id:
                raise DuplicateError(f"variable {item.name!r} exists for this agent")
            return self._replace(self._variables, item, old)

    def delete_variable(self, tenant_id: UUID | str, variable_id: UUID | str) -> bool:
        return self._delete(self._variables, tenant_id, variable_id)

    def _tool_for(self, tenant_id: UUID, agent_id: UUID, tool_id: str) -> ToolActivation | None:
        return next(
            (
                t
                for t in self._tools.values()
                if t.tenant_id == tenant_id and t.agent_id == agent_id and t.tool_id == tool_id
            ),
            None,
        )

    def create_tool_activation(self, activation: ToolActivation) -> ToolActivation:
        item = self._stamp_new(checks.checked_tool_activation(activation))
        with self._lock:
            self._require_agent(item.tenant_id, item.agent_id)
            if self._tool_for(item.tenant_id, item.agent_id, item.tool_id) is not None:
                raise DuplicateError(f"tool {item.tool_id!r} is already set for this agent")
            return self._insert(self._tools, item)

    def get_tool_activation(
        self, tenant_id: UUID | str, activation_id: UUID | str
    ) -> ToolActivation | None:
        return self._get(self._tools, tenant_id, activation_id)

    def get_tool_activation_for_tool(
        self, tenant_id: UUID | str, agent_id: UUID | str, tool_id: str
    ) -> ToolActivation | None:
        tid, aid = parse_id(tenant_id, "tenant_id"), parse_id(agent_id, "agent_id")
        checks.check_name(tool_id, "tool_id")
        with self._lock:
            found = self._tool_for(tid, aid, tool_id)
            return None if found is None else found.model_copy(deep=True)

    def list_tool_activations(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        enabled: bool | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[ToolActivation]:
        tid, aid = parse_id(tenant_id, "tenant_id"), parse_id(agent_id, "agent_id")
        checks.check_enabled(enabled)
        check_limit(limit)
        with self._lock:
            rows = [
                t.model_copy(deep=True)
                for t in self._tools.values()
                if t.tenant_id == tid
                and t.agent_id == aid
                and (enabled is None or t.enabled == enabled)
            ]
        return paginate(
            rows,
            lambda t: (t.tool_id, t.id),
            limit=limit,
            cursor=cursor,
            kinds=(as_str, as_uuid),
        )

    def update_tool_activation(self, activation: ToolActivation) -> ToolActivation:
        item = checks.checked_tool_activation(activation)
        with self._lock:
            old = self._live(self._tools, item.tenant_id, item.id)
            if old is None:
                raise NotFoundError(f"tool activation {item.id} not found")
            other = self._tool_for(item.tenant_id, old.agent_id, item.tool_id)
            if other is not None and other.id != item.id:
                raise DuplicateError(f"tool {item.tool_id!r} is already set for this agent")
            return self._replace(self._tools, item, old)

    def delete_tool_activation(self, tenant_id: UUID | str, activation_id: UUID | str) -> bool:
        tid, iid = parse_id(tenant_id, "tenant_id"), parse_id(activation_id, "activation_id")
        with self._lock:
            if self._live(self._tools, tid, iid) is None:
                return False
            del self._tools[iid]
            return True

    def create_migration_plan(self, plan: MigrationPlan) -> MigrationPlan:
        item = self._stamp_new(checks.checked_migration_plan(plan))
        if item.status != MigrationPlanStatus.DRAFT:
            raise InvalidInputError("a new migration plan must be DRAFT", field="status")
        item = item.model_copy(update={"approved_at": None, "deployed_at": None})
        with self._lock:
            scenario = self._live(self._scenarios, item.tenant_id, item.scenario_id)
            if scenario is None:
                raise NotFoundError(f"scenario {item.scenario_id} not found")
            _check_plan_versions(item, scenario.version)
            return self._insert(self._plans, item)

    def get_migration_plan(
        self, tenant_id: UUID | str, plan_id: UUID | str
    ) -> MigrationPlan | None:
        return self._get(self._plans, tenant_id, plan_id)

    def list_migration_plans(
        self,
        tenant_id: UUID | str,
        *,
        scenario_id: UUID | str | None = None,
        status: MigrationPlanStatus | str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[MigrationPlan]:
        tid = parse_id(tenant_id, "tenant_id")
        sid = None if scenario_id is None else parse_id(scenario_id, "scenario_id")
        st = None if status is None else parse_enum(MigrationPlanStatus, status, "status")
        check_limit(limit)
        with self._lock:
            rows = [
                p.model_copy(deep=True)
                for p in self._plans.values()
                if p.tenant_id == tid
                and (sid is None or p.scenario_id == sid)
                and (st is None or p.status == st)
            ]
        return paginate(rows, _created_key, limit=limit, cursor=cursor, kinds=_CREATED)

    def update_migration_plan(self, plan: MigrationPlan) -> MigrationPlan:
        item = checks.checked_migration_plan(plan)
        with self._lock:
            old = self._live(self._plans, item.tenant_id, item.id)
            if old is None:
                raise NotFoundError(f"migration plan {item.id} not found")
            if item.scenario_id != old.scenario_id:
                raise InvalidInputError("scenario_id cannot change", field="scenario_id")
            if old.status != MigrationPlanStatus.DRAFT:
                raise ConflictError(f"migration plan {item.id} is {old.status}, not DRAFT")
            scenario = self._live(self._scenarios, item.tenant_id, item.scenario_id)
            if scenario is None:
                raise NotFoundError(f"scenario {item.scenario_id} not found")
            _check_plan_versions(item, scenario.version)
            return self._replace(
                self._plans,
                item,
                old,
                status=old.status,
                approved_at=old.approved_at,
                deployed_at=old.deployed_at,
            )

    def transition_migration_plan(
        self, tenant_id: UUID | str, plan_id: UUID | str, status: MigrationPlanStatus | str
    ) -> MigrationPlan:
        tid, pid = parse_id(tenant_id, "tenant_id"), parse_id(plan_id, "plan_id")
        target = parse_enum(MigrationPlanStatus, status, "status")
        with self._lock:
            old = self._live(self._plans, tid, pid)
            if old is None:
                raise NotFoundError(f"migration plan {pid} not found")
            if target not in MIGRATION_PLAN_TRANSITIONS[old.status]:
                raise ConflictError(f"migration plan {pid} is {old.status}; cannot go to {target}")
            now = self._clock()
            update: dict[str, Any] = {"status": target, "updated_at": now}
            if target == MigrationPlanStatus.APPROVED:
                update["approved_at"] = now
            elif target == MigrationPlanStatus.DEPLOYED:
                update["deployed_at"] = now
            stored = old.model_copy(update=update)
            self._plans[pid] = stored
            return stored.model_copy(deep=True)

    def delete_migration_plan(self, tenant_id: UUID | str, plan_id: UUID | str) -> bool:
        tid, pid = parse_id(tenant_id, "tenant_id"), parse_id(plan_id, "plan_id")
        with self._lock:
            plan = self._live(self._plans, tid, pid)
            if plan is None:
                return False
            if plan.status == MigrationPlanStatus.DEPLOYED:
                raise ConflictError(f"migration plan {pid} is deployed and cannot be deleted")
            del self._plans[pid]
            return True

    def list_deployed_migration_plans(
        self,
        *,
        tenant_id: UUID | str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[MigrationPlan]:
        tid = None if tenant_id is None else parse_id(tenant_id, "tenant_id")
        check_limit(limit)
        with self._lock:
            rows = [
                p.model_copy(deep=True)
                for p in self._plans.values()
                if p.status == MigrationPlanStatus.DEPLOYED
                and (tid is None or p.tenant_id == tid)
                and self._live(self._scenarios, p.tenant_id, p.scenario_id) is not None
            ]
        return paginate(rows, _tenant_key, limit=limit, cursor=cursor, kinds=_TENANT_ID)


def _as_version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("not a version")
    return value


def _rule_filter(
    scope: RuleScope | str | None, scope_id: str | None, enabled: bool | None
) -> Callable[[Rule], bool]:
    sc = None if scope is None else parse_enum(RuleScope, scope, "scope")
    checks.check_scope_id(scope_id)
    checks.check_enabled(enabled)

    def where(rule: Rule) -> bool:
        return (
            (sc is None or rule.scope == sc)
            and (scope_id is None or rule.scope_id == scope_id)
            and (enabled is None or rule.enabled == enabled)
        )

    return where


def _check_plan_versions(plan: MigrationPlan, current_version: int) -> None:
    if plan.to_version > current_version:
        raise InvalidInputError(
            f"to_version {plan.to_version} is beyond the scenario's version {current_version}",
            field="to_version",
        )
