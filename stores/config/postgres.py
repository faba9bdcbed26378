"""The PostgreSQL ConfigStore (SQLAlchemy Core on psycopg 3, pgvector for embeddings).

Every change that spans rows runs in one transaction: a scenario update and the archive of
the version it replaces, an agent's delete and the delete of everything under it, a
migration plan's status change. Children are written while holding ``FOR SHARE`` on their
agent's row, so an agent deleted concurrently never keeps a live child. Scenario updates lock
the scenario row (``FOR UPDATE``) and compare versions under the lock; status changes of
migration plans are single conditional UPDATEs, so of two racing transitions one wins and
the other raises ConflictError.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

import sqlalchemy as sa

from stores.common.keyset import as_datetime, as_int, as_str, as_uuid, cursor_key, page_of
from stores.common.pagination import Page
from stores.common.validation import (
    check_limit,
    check_text,
    parse_enum,
    parse_id,
    validate_embedding,
)
from stores.common.vectors import check_min_score, checked_query
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
from stores.driver_errors import translated
from stores.errors import ConflictError, InvalidInputError, NotFoundError
from stores.postgres import schema
from stores.postgres.rows import after, plain_row, row_values, selectable, to_model
from stores.postgres.store import PostgresVectorStore

AG = schema.agents
RU = schema.rules
SC = schema.scenarios
AR = schema.scenario_archives
TE = schema.templates
VA = schema.variables
TA = schema.tool_activations
MP = schema.migration_plans

M = TypeVar("M", Agent, Rule, Scenario, Template, Variable, ToolActivation, MigrationPlan)
_CREATED = (as_datetime, as_uuid)


def _created_key(item: Any) -> tuple[Any, ...]:
    return (item.created_at, item.id)


class PostgresConfigStore(PostgresVectorStore, ConfigStore):
    """A :class:`ConfigStore` on the configuration tables of the hearth schema."""

    dimensions_table = "rules"

    def _find(self, table: sa.Table, cls: type[M], *where: sa.ColumnElement[bool]) -> M | None:
        """The live row of ``table`` matching ``where`` (a unique key), or None."""
        if "deleted_at" in table.c:
            where = (*where, table.c.deleted_at.is_(None))
        rows = self._read(sa.select(*selectable(table)).where(*where))
        return to_model(cls, rows[0]) if rows else None

    def _get(
        self, table: sa.Table, cls: type[M], tenant_id: UUID | str, item_id: UUID | str
    ) -> M | None:
        tid, iid = parse_id(tenant_id, "tenant_id"), parse_id(item_id, "id")
        return self._find(table, cls, table.c.tenant_id == tid, table.c.id == iid)

    def _list(
        self,
        table: sa.Table,
        cls: type[M],
        where: list[sa.ColumnElement[bool]],
        limit: int,
        cursor: str | None,
    ) -> Page[M]:
        check_limit(limit)
        key = cursor_key(cursor, _CREATED)
        order = [table.c.created_at, table.c.id]
        if "deleted_at" in table.c:
            where = [*where, table.c.deleted_at.is_(None)]
        stmt = (
            sa.select(*selectable(table))
            .where(*where, *after(order, key))
            .order_by(*order)
            .limit(limit + 1)
        )
        items = [to_model(cls, r) for r in self._read(stmt)]
        return page_of(items, limit, _created_key)

    def _insert(
        self, table: sa.Table, item: M, *, agent: bool = True, exclude: set[str] | None = None
    ) -> M:
        with translated(), self._engine.begin() as conn:
            if agent:
                _lock_agent(conn, item.tenant_id, getattr(item, "agent_id"))  # noqa: B009
            row = (
                conn.execute(
                    table.insert()
                    .values(**row_values(item, exclude=exclude))
                    .returning(*selectable(table))
                )
                .mappings()
                .one()
            )
        return to_model(type(item), row)

    def _locked(
        self, conn: sa.Connection, table: sa.Table, tenant_id: UUID, item_id: UUID
    ) -> dict[str, Any] | None:
        where = [table.c.tenant_id == tenant_id, table.c.id == item_id]
        if "deleted_at" in table.c:
            where.append(table.c.deleted_at.is_(None))
        row = (
            conn.execute(sa.select(*selectable(table)).where(*where).with_for_update())
            .mappings()
            .first()
        )
        return None if row is None else plain_row(row)

    def _update(
        self,
        table: sa.Table,
        item: M,
        what: str,
        adjust: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
    ) -> M:
        with translated(), self._engine.begin() as conn:
            old = self._locked(conn, table, item.tenant_id, item.id)
            if old is None:
                raise NotFoundError(f"{what} {item.id} not found")
            if "agent_id" in table.c and getattr(item, "agent_id") != old["agent_id"]:  # noqa: B009
                raise InvalidInputError("agent_id cannot change", field="agent_id")
            values = row_values(item, exclude={"id", "tenant_id", "created_at"})
            values["updated_at"] = self._clock()
            if adjust is not None:
                adjust(old, values)
            row = (
                conn.execute(
                    table.update()
                    .where(table.c.tenant_id == item.tenant_id, table.c.id == item.id)
                    .values(**values)
                    .returning(*selectable(table))
                )
                .mappings()
                .one()
            )
        return to_model(type(item), row)

    def _soft_delete(self, table: sa.Table, tenant_id: UUID | str, item_id: UUID | str) -> bool:
        tid, iid = parse_id(tenant_id, "tenant_id"), parse_id(item_id, "id")
        with translated(), self._engine.begin() as conn:
            result = conn.execute(
                table.update()
                .where(table.c.tenant_id == tid, table.c.id == iid, table.c.deleted_at.is_(None))
                .values(deleted_at=self._clock())
            )
        return bool(result.rowcount)

    def _stamp(self, item: M) -> M:
        now = self._clock()
        return item.model_copy(update={"created_at": now, "updated_at": now})

    def _search(
        self,
        table: sa.Table,
        cls: type[M],
        filters: list[sa.ColumnElement[bool]],
        embedding: Sequence[float],
        limit: int,
        min_score: float | None,
        include_embeddings: bool,
    ) -> list[tuple[M, float]]:
        query = checked_query(embedding, self.dimensions)
        check_min_score(min_score)
        check_limit(limit)
        # Deleted rows are hidden here as in every read (and the partial HNSW index needs it).
        filters = [*filters, table.c.deleted_at.is_(None)]
        with translated(), self._engine.begin() as conn:
            outcome = self._searcher.search(
                conn, table, filters, query, limit, embeddings=include_embeddings
            )
        return [
            (to_model(cls, row), score)
            for row, score in outcome.rows
            if min_score is None or score >= min_score
        ]

    def _needing_embedding(
        self,
        table: sa.Table,
        cls: type[M],
        text: sa.ColumnElement[Any],
        model: str,
        limit: int,
        cursor: str | None,
    ) -> Page[M]:
        checks.check_name(model, "model")
        check_limit(limit)
        key = cursor_key(cursor, (as_uuid,))
        stmt = (
            sa.select(*selectable(table))
            .where(
                table.c.deleted_at.is_(None),
                text.is_not(None),
                text != "",
                sa.or_(
                    table.c.embedding.is_(None), table.c.embedding_model.is_distinct_from(model)
                ),
                *after([table.c.id], key),
            )
            .order_by(table.c.id)
            .limit(limit + 1)
        )
        items = [to_model(cls, r) for r in self._read(stmt)]
        return page_of(items, limit, lambda i: (i.id,))

    def _set_embedding(
        self,
        table: sa.Table,
        text: sa.ColumnElement[Any],
        tenant_id: UUID | str,
        item_id: UUID | str,
        embedding: Sequence[float],
        model: str,
        source_text: str | None,
    ) -> bool:
        tid, iid = parse_id(tenant_id, "tenant_id"), parse_id(item_id, "id")
        vector = validate_embedding(embedding, self.dimensions)
        checks.check_name(model, "model")
        check_text(source_text, "source_text")
        where = [table.c.tenant_id == tid, table.c.id == iid, table.c.deleted_at.is_(None)]
        if source_text is not None:
            where.append(text == source_text)
        with translated(), self._engine.begin() as conn:
            result = conn.execute(
                table.update().where(*where).values(embedding=vector, embedding_model=model)
            )
        return bool(result.rowcount)

    def create_agent(self, agent: Agent) -> Agent:
        item = self._stamp(checks.checked_agent(agent))
        return self._insert(AG, item, agent=False)

    def get_agent(self, tenant_id: UUID | str, agent_id: UUID | str) -> Agent | None:
        return self._get(AG, Agent, tenant_id, agent_id)

    def get_agent_by_name(self, tenant_id: UUID | str, name: str) -> Agent | None:
        tid = parse_id(tenant_id, "tenant_id")
        checks.check_name(name)
        return self._find(AG, Agent, AG.c.tenant_id == tid, AG.c.name == name)

    def list_agents(
        self,
        tenant_id: UUID | str,
        *,
        enabled: bool | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Agent]:
        where = [AG.c.tenant_id == parse_id(tenant_id, "tenant_id")]
        checks.check_enabled(enabled)
        if enabled is not None:
            where.append(AG.c.enabled.is_(enabled))
        return self._list(AG, Agent, where, limit, cursor)

    def update_agent(self, agent: Agent) -> Agent:
        return self._update(AG, checks.checked_agent(agent), "agent")

    def delete_agent(self, tenant_id: UUID | str, agent_id: UUID | str) -> bool:
        tid, aid = parse_id(tenant_id, "tenant_id"), parse_id(agent_id, "agent_id")
        now = self._clock()
        with translated(), self._engine.begin() as conn:
            gone = conn.execute(
                AG.update()
                .where(AG.c.tenant_id == tid, AG.c.id == aid, AG.c.deleted_at.is_(None))
                .values(deleted_at=now)
            ).rowcount
            if not gone:
                return False
            for table in (RU, SC, TE, VA):
                conn.execute(
                    table.update()
                    .where(
                        table.c.tenant_id == tid,
                        table.c.agent_id == aid,
                        table.c.deleted_at.is_(None),
                    )
                    .values(deleted_at=now)
                )
            conn.execute(TA.delete().where(TA.c.tenant_id == tid, TA.c.agent_id == aid))
        return True

    def create_rule(self, rule: Rule) -> Rule:
        return self._insert(RU, self._stamp(checks.checked_rule(rule, self.dimensions)))

    def get_rule(self, tenant_id: UUID | str, rule_id: UUID | str) -> Rule | None:
        return self._get(RU, Rule, tenant_id, rule_id)

    def _rule_filters(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        scope: RuleScope | str | None,
        scope_id: str | None,
        enabled: bool | None,
    ) -> list[sa.ColumnElement[bool]]:
        where = [
            RU.c.tenant_id == parse_id(tenant_id, "tenant_id"),
            RU.c.agent_id == parse_id(agent_id, "agent_id"),
        ]
        if scope is not None:
            where.append(RU.c.scope == parse_enum(RuleScope, scope, "scope").value)
        checks.check_scope_id(scope_id)
        if scope_id is not None:
            where.append(RU.c.scope_id == scope_id)
        checks.check_enabled(enabled)
        if enabled is not None:
            where.append(RU.c.enabled.is_(enabled))
        return where

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
        where = self._rule_filters(tenant_id, agent_id, scope, scope_id, enabled)
        return self._list(RU, Rule, where, limit, cursor)

    def update_rule(self, rule: Rule) -> Rule:
        item = checks.checked_rule(rule, self.dimensions)

        def adjust(old: dict[str, Any], values: dict[str, Any]) -> None:
            if checks.text_changed_keeping_embedding(
                old["condition_text"], item.condition_text, old["embedding"], item.embedding
            ):
                values.update(embedding=None, embedding_model=None)

        return self._update(RU, item, "rule", adjust)

    def delete_rule(self, tenant_id: UUID | str, rule_id: UUID | str) -> bool:
        return self._soft_delete(RU, tenant_id, rule_id)

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
        where = self._rule_filters(tenant_id, agent_id, scope, scope_id, enabled)
        return self._search(RU, Rule, where, embedding, limit, min_score, include_embeddings)

    def list_rules_needing_embedding(
        self, model: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[Rule]:
        return self._needing_embedding(RU, Rule, RU.c.condition_text, model, limit, cursor)

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
            RU, RU.c.condition_text, tenant_id, rule_id, embedding, model, source_text
        )

    def create_scenario(self, scenario: Scenario) -> Scenario:
        item = self._stamp(checks.checked_scenario(scenario, self.dimensions))
        return self._insert(SC, item.model_copy(update={"version": 1}))

    def get_scenario(self, tenant_id: UUID | str, scenario_id: UUID | str) -> Scenario | None:
        return self._get(SC, Scenario, tenant_id, scenario_id)

    def get_scenario_version(
        self, tenant_id: UUID | str, scenario_id: UUID | str, version: int
    ) -> Scenario | None:
        tid, sid = parse_id(tenant_id, "tenant_id"), parse_id(scenario_id, "scenario_id")
        checks.check_int32(version, "version", 1)
        with translated(), self._engine.connect() as conn:
            current = (
                conn.execute(
                    sa.select(*selectable(SC)).where(
                        SC.c.tenant_id == tid, SC.c.id == sid, SC.c.deleted_at.is_(None)
                    )
                )
                .mappings()
                .first()
            )
            if current is None:
                return None
            if current["version"] == version:
                return to_model(Scenario, current)
            data = conn.execute(
                sa.select(AR.c.scenario_data).where(
                    AR.c.tenant_id == tid, AR.c.scenario_id == sid, AR.c.version == version
                )
            ).scalar()
        return None if data is None else Scenario.model_validate(data)

    def list_scenarios(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        enabled: bool | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Scenario]:
        where = self._scenario_filters(tenant_id, agent_id, enabled)
        return self._list(SC, Scenario, where, limit, cursor)

    def _scenario_filters(
        self, tenant_id: UUID | str, agent_id: UUID | str, enabled: bool | None
    ) -> list[sa.ColumnElement[bool]]:
        where = [
            SC.c.tenant_id == parse_id(tenant_id, "tenant_id"),
            SC.c.agent_id == parse_id(agent_id, "agent_id"),
        ]
        checks.check_enabled(enabled)
        if enabled is not None:
            where.append(SC.c.enabled.is_(enabled))
        return where

    def update_scenario(self, scenario: Scenario) -> Scenario:
        item = checks.checked_scenario(scenario, self.dimensions)
        now = self._clock()
        with translated(), self._engine.begin() as conn:
            old = self._locked(conn, SC, item.tenant_id, item.id)
            if old is None:
                raise NotFoundError(f"scenario {item.id} not found")
            if item.agent_id != old["agent_id"]:
                raise InvalidInputError("agent_id cannot change", field="agent_id")
            if old["version"] != item.version:
                raise ConflictError(
                    f"scenario {item.id} is at version {old['version']}, not {item.version}",
                    current_version=old["version"],
                )
            checks.check_int32(old["version"] + 1, "version", 1)
            previous = to_model(Scenario, old)
            conn.execute(
                AR.insert().values(
                    tenant_id=item.tenant_id,
                    scenario_id=item.id,
                    version=previous.version,
                    scenario_data=previous.model_dump(mode="json", exclude={"embedding"}),
                    archived_at=now,
                )
            )
            values = row_values(item, exclude={"id", "tenant_id", "created_at"})
            values.update(version=previous.version + 1, updated_at=now)
            if checks.text_changed_keeping_embedding(
                previous.entry_condition, item.entry_condition, previous.embedding, item.embedding
            ):
                values.update(embedding=None, embedding_model=None)
            row = (
                conn.execute(
                    SC.update()
                    .where(SC.c.tenant_id == item.tenant_id, SC.c.id == item.id)
                    .values(**values)
                    .returning(*selectable(SC))
                )
                .mappings()
                .one()
            )
        return to_model(Scenario, row)

    def delete_scenario(self, tenant_id: UUID | str, scenario_id: UUID | str) -> bool:
        return self._soft_delete(SC, tenant_id, scenario_id)

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
        key = cursor_key(cursor, (as_int,))
        live = sa.exists().where(SC.c.tenant_id == tid, SC.c.id == sid, SC.c.deleted_at.is_(None))
        stmt = (
            sa.select(AR)
            .where(
                AR.c.tenant_id == tid, AR.c.scenario_id == sid, live, *after([AR.c.version], key)
            )
            .order_by(AR.c.version)
            .limit(limit + 1)
        )
        items = [
            ScenarioArchive(
                tenant_id=r["tenant_id"],
                scenario_id=r["scenario_id"],
                version=r["version"],
                scenario=Scenario.model_validate(r["scenario_data"]),
                archived_at=r["archived_at"],
            )
            for r in self._read(stmt)
        ]
        return page_of(items, limit, lambda a: (a.version,))

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
        where = self._scenario_filters(tenant_id, agent_id, enabled)
        return self._search(SC, Scenario, where, embedding, limit, min_score, include_embeddings)

    def list_scenarios_needing_embedding(
        self, model: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[Scenario]:
        return self._needing_embedding(SC, Scenario, SC.c.entry_condition, model, limit, cursor)

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
            SC, SC.c.entry_condition, tenant_id, scenario_id, embedding, model, source_text
        )

    def create_template(self, template: Template) -> Template:
        return self._insert(TE, self._stamp(checks.checked_template(template)))

    def get_template(self, tenant_id: UUID | str, template_id: UUID | str) -> Template | None:
        return self._get(TE, Template, tenant_id, template_id)

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
        where = [
            TE.c.tenant_id == parse_id(tenant_id, "tenant_id"),
            TE.c.agent_id == parse_id(agent_id, "agent_id"),
        ]
        if scope is not None:
            where.append(TE.c.scope == parse_enum(RuleScope, scope, "scope").value)
        checks.check_scope_id(scope_id)
        if scope_id is not None:
            where.append(TE.c.scope_id == scope_id)
        if mode is not None:
            where.append(TE.c.mode == parse_enum(TemplateMode, mode, "mode").value)
        return self._list(TE, Template, where, limit, cursor)

    def update_template(self, template: Template) -> Template:
        return self._update(TE, checks.checked_template(template), "template")

    def delete_template(self, tenant_id: UUID | str, template_id: UUID | str) -> bool:
        return self._soft_delete(TE, tenant_id, template_id)

    def create_variable(self, variable: Variable) -> Variable:
        return self._insert(VA, self._stamp(checks.checked_variable(variable)))

    def get_variable(self, tenant_id: UUID | str, variable_id: UUID | str) -> Variable | None:
        return self._get(VA, Variable, tenant_id, variable_id)

    def get_variable_by_name(
        self, tenant_id: UUID | str, agent_id: UUID | str, name: str
    ) -> Variable | None:
        tid, aid = parse_id(tenant_id, "tenant_id"), parse_id(agent_id, "agent_id")
        checks.check_name(name)
        return self._find(
            VA, Variable, VA.c.tenant_id == tid, VA.c.agent_id == aid, VA.c.name == name
        )

    def list_variables(
        self,
        tenant_id: UUID | str,
        agent_id: UUID | str,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Variable]:
        where = [
            VA.c.tenant_id == parse_id(tenant_id, "tenant_id"),
            VA.c.agent_id == parse_id(agent_id, "agent_id"),
        ]
        return self._list(VA, Variable, where, limit, cursor)

    def update_variable(self, variable: Variable) -> Variable:
        return self._update(VA, checks.checked_variable(variable), "variable")

    def delete_variable(self, tenant_id: UUID | str, variable_id: UUID | str) -> bool:
        return self._soft_delete(VA, tenant_id, variable_id)

    def create_tool_activation(self, activation: ToolActivation) -> ToolActivation:
        return self._insert(TA, self._stamp(checks.checked_tool_activation(activation)))

    def get_tool_activation(
        self, tenant_id: UUID | str, activation_id: UUID | str
    ) -> ToolActivation | None:
        return self._get(TA, ToolActivation, tenant_id, activation_id)

    def get_tool_activation_for_tool(
        self, tenant_id: UUID | str, agent_id: UUID | str, tool_id: str
    ) -> ToolActivation | None:
        tid, aid = parse_id(tenant_id, "tenant_id"), parse_id(agent_id, "agent_id")
        checks.check_name(tool_id, "tool_id")
        return self._find(
            TA, ToolActivation, TA.c.tenant_id == tid, TA.c.agent_id == aid, TA.c.tool_id == tool_id
        )

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
        check_limit(limit)
        checks.check_enabled(enabled)
        key = cursor_key(cursor, (as_str, as_uuid))
        # Tool ids compare byte-wise, as Python compares them, whatever the database collation.
        order = [TA.c.tool_id.collate("C"), TA.c.id]
        where = [TA.c.tenant_id == tid, TA.c.agent_id == aid]
        checks.check_enabled(enabled)
        if enabled is not None:
            where.append(TA.c.enabled.is_(enabled))
        if key is not None:
            where.append(
                sa.tuple_(*order)
                > sa.tuple_(sa.literal(key[0]).collate("C"), sa.literal(key[1], TA.c.id.type))
            )
        stmt = sa.select(TA).where(*where).order_by(*order).limit(limit + 1)
        items = [to_model(ToolActivation, r) for r in self._read(stmt)]
        return page_of(items, limit, lambda a: (a.tool_id, a.id))

    def update_tool_activation(self, activation: ToolActivation) -> ToolActivation:
        return self._update(TA, checks.checked_tool_activation(activation), "tool activation")

    def delete_tool_activation(self, tenant_id: UUID | str, activation_id: UUID | str) -> bool:
        tid = parse_id(tenant_id, "tenant_id")
        iid = parse_id(activation_id, "activation_id")
        with translated(), self._engine.begin() as conn:
            result = conn.execute(TA.delete().where(TA.c.tenant_id == tid, TA.c.id == iid))
        return bool(result.rowcount)

    def _scenario_version(self, conn: sa.Connection, tenant_id: UUID, scenario_id: UUID) -> int:
        version = conn.execute(
            sa.select(SC.c.version)
            .where(SC.c.tenant_id == tenant_id, SC.c.id == scenario_id, SC.c.deleted_at.is_(None))
            .with_for_update(read=True)
        ).scalar()
        if version is None:
            raise NotFoundError(f"scenario {scenario_id} not found")
        return int(version)

    def create_migration_plan(self, plan: MigrationPlan) -> MigrationPlan:
        item = self._stamp(checks.checked_migration_plan(plan))
        if item.status != MigrationPlanStatus.DRAFT:
            raise InvalidInputError("a new migration plan must be DRAFT", field="status")
        item = item.model_copy(update={"approved_at": None, "deployed_at": None})
        with translated(), self._engine.begin() as conn:
            current = self._scenario_version(conn, item.tenant_id, item.scenario_id)
            _check_plan_versions(item, current)
            row = (
                conn.execute(MP.insert().values(**row_values(item)).returning(MP)).mappings().one()
            )
        return to_model(MigrationPlan, row)

    def get_migration_plan(
        self, tenant_id: UUID | str, plan_id: UUID | str
    ) -> MigrationPlan | None:
        return self._get(MP, MigrationPlan, tenant_id, plan_id)

    def list_migration_plans(
        self,
        tenant_id: UUID | str,
        *,
        scenario_id: UUID | str | None = None,
        status: MigrationPlanStatus | str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[MigrationPlan]:
        where = [MP.c.tenant_id == parse_id(tenant_id, "tenant_id")]
        if scenario_id is not None:
            where.append(MP.c.scenario_id == parse_id(scenario_id, "scenario_id"))
        if status is not None:
            where.append(MP.c.status == parse_enum(MigrationPlanStatus, status, "status").value)
        return self._list(MP, MigrationPlan, where, limit, cursor)

    def update_migration_plan(self, plan: MigrationPlan) -> MigrationPlan:
        item = checks.checked_migration_plan(plan)
        with translated(), self._engine.begin() as conn:
            old = self._locked(conn, MP, item.tenant_id, item.id)
            if old is None:
                raise NotFoundError(f"migration plan {item.id} not found")
            if item.scenario_id != old["scenario_id"]:
                raise InvalidInputError("scenario_id cannot change", field="scenario_id")
            if old["status"] != MigrationPlanStatus.DRAFT.value:
                raise ConflictError(f"migration plan {item.id} is {old['status']}, not DRAFT")
            current = self._scenario_version(conn, item.tenant_id, item.scenario_id)
            _check_plan_versions(item, current)
            values = row_values(
                item,
                exclude={"id", "tenant_id", "created_at", "status", "approved_at", "deployed_at"},
            )
            values["updated_at"] = self._clock()
            row = (
                conn.execute(
                    MP.update()
                    .where(MP.c.tenant_id == item.tenant_id, MP.c.id == item.id)
                    .values(**values)
                    .returning(MP)
                )
                .mappings()
                .one()
            )
        return to_model(MigrationPlan, row)

    def transition_migration_plan(
        self, tenant_id: UUID | str, plan_id: UUID | str, status: MigrationPlanStatus | str
    ) -> MigrationPlan:
        tid, pid = parse_id(tenant_id, "tenant_id"), parse_id(plan_id, "plan_id")
        target = parse_enum(MigrationPlanStatus, status, "status")
        sources = [s.value for s, nexts in MIGRATION_PLAN_TRANSITIONS.items() if target in nexts]
        now = self._clock()
        values: dict[str, Any] = {"status": target.value, "updated_at": now}
        if target == MigrationPlanStatus.APPROVED:
            values["approved_at"] = now
        elif target == MigrationPlanStatus.DEPLOYED:
            values["deployed_at"] = now
        with translated(), self._engine.begin() as conn:
            row = (
                conn.execute(
                    MP.update()
                    .where(MP.c.tenant_id == tid, MP.c.id == pid, MP.c.status.in_(sources))
                    .values(**values)
                    .returning(MP)
                )
                .mappings()
                .first()
            )
            if row is None:
                current = conn.execute(
                    sa.select(MP.c.status).where(MP.c.tenant_id == tid, MP.c.id == pid)
                ).scalar()
                if current is None:
                    raise NotFoundError(f"migration plan {pid} not found")
                raise ConflictError(f"migration plan {pid} is {current}; cannot go to {target}")
        return to_model(MigrationPlan, row)

    def delete_migration_plan(self, tenant_id: UUID | str, plan_id: UUID | str) -> bool:
        tid, pid = parse_id(tenant_id, "tenant_id"), parse_id(plan_id, "plan_id")
        with translated(), self._engine.begin() as conn:
            status = conn.execute(
                sa.select(MP.c.status)
                .where(MP.c.tenant_id == tid, MP.c.id == pid)
                .with_for_update()
            ).scalar()
            if status is None:
                return False
            if status == MigrationPlanStatus.DEPLOYED.value:
                raise ConflictError(f"migration plan {pid} is deployed and cannot be deleted")
            conn.execute(MP.delete().where(MP.c.tenant_id == tid, MP.c.id == pid))
        return True

    def list_deployed_migration_plans(
        self,
        *,
        tenant_id: UUID | str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[MigrationPlan]:
        check_limit(limit)
        key = cursor_key(cursor, (as_uuid, as_uuid))
        order = [MP.c.tenant_id, MP.c.id]
        live = sa.exists().where(
            SC.c.tenant_id == MP.c.tenant_id,
            SC.c.id == MP.c.scenario_id,
            SC.c.deleted_at.is_(None),
        )
        where = [MP.c.status == MigrationPlanStatus.DEPLOYED.value, live, *after(order, key)]
        if tenant_id is not None:
            where.append(MP.c.tenant_id == parse_id(tenant_id, "tenant_id"))
        stmt = sa.select(MP).where(*where).order_by(*order).limit(limit + 1)
        items = [to_model(MigrationPlan, r) for r in self._read(stmt)]
        return page_of(items, limit, lambda p: (p.tenant_id, p.id))


def _lock_agent(conn: sa.Connection, tenant_id: UUID, agent_id: UUID) -> None:
    found = conn.execute(
        sa.select(AG.c.id)
        .where(AG.c.tenant_id == tenant_id, AG.c.id == agent_id, AG.c.deleted_at.is_(None))
        .with_for_update(read=True)
    ).first()
    if found is None:
        raise NotFoundError(f"agent {agent_id} not found")


def _check_plan_versions(plan: MigrationPlan, current_version: int) -> None:
    if plan.to_version > current_version:
        raise InvalidInputError(
            f"to_version {plan.to_version} is beyond the scenario's version {current_version}",
            field="to_version",
        )
