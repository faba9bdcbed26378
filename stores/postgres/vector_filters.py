"""Search filters written as SQL text, for the statements compiled once per table.

:class:`~stores.postgres.vectors.VectorSearcher` compiles each kind of search statement once,
with a placeholder where the filters go; :func:`render_filters` writes a call's filters into
that place. It knows the few shapes the stores search with and refuses the rest
(:class:`UnrenderableFilter`), which are then run through SQLAlchemy whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    False_,
    Grouping,
    Null,
    True_,
)


class UnrenderableFilter(Exception):
    """A filter that :func:`render_filters` does not know how to write."""


_COMPARISONS: dict[Any, str] = {
    operators.eq: "=",
    operators.ne: "<>",
    operators.lt: "<",
    operators.le: "<=",
    operators.gt: ">",
    operators.ge: ">=",
}
_IS: dict[Any, str] = {operators.is_: "IS", operators.is_not: "IS NOT"}
_CONSTANTS: dict[type[Any], str] = {Null: "NULL", True_: "true", False_: "false"}


def render_filters(
    filters: Sequence[sa.ColumnElement[bool]], dialect: sa.Dialect
) -> tuple[str, dict[str, Any]]:
    """Write ``filters`` (ANDed) as SQL text with named parameters, and those parameters.

    Knows what the stores filter searches with: a column compared with a value (``=``, ``<>``,
    ``<``, ``<=``, ``>``, ``>=``), ``IN`` a list of values (as ``= ANY``), ``IS [NOT]`` NULL,
    true or false, and AND/OR of those. Values go through the column type's bind processor,
    as SQLAlchemy would send them. Anything else raises :class:`UnrenderableFilter`.
    """
    params: dict[str, Any] = {}
    quote = dialect.identifier_preparer.quote

    def value(column: sa.Column[Any], raw: Any) -> str:
        processor = column.type._cached_bind_processor(dialect)
        name = f"hearth_f{len(params)}"
        params[name] = processor(raw) if processor is not None else raw
        return f"%({name})s"

    def render(clause: Any) -> str:
        if isinstance(clause, Grouping):
            return render(clause.element)
        if type(clause) in _CONSTANTS and not isinstance(clause, Null):
            return _CONSTANTS[type(clause)]
        if isinstance(clause, BooleanClauseList):
            joiner = {operators.and_: " AND ", operators.or_: " OR "}.get(clause.operator)
            if joiner is None or not clause.clauses:
                raise UnrenderableFilter(repr(clause))
            return "(" + joiner.join(render(c) for c in clause.clauses) + ")"
        if not isinstance(clause, BinaryExpression) or not isinstance(clause.left, sa.Column):
            raise UnrenderableFilter(repr(clause))
        column: sa.Column[Any] = clause.left
        if column.table is None:
            raise UnrenderableFilter(repr(clause))
        name = f"{quote(column.table.name)}.{quote(column.name)}"
        op, right = clause.operator, clause.right
        if op in _IS and type(right) in _CONSTANTS:
            return f"{name} {_IS[op]} {_CONSTANTS[type(right)]}"
        if isinstance(right, BindParameter) and right.effective_value is not None:
            raw = right.effective_value
            if op is operators.in_op and right.expanding:
                return f"{name} = ANY({value(column, list(raw))})"
            if op in _COMPARISONS and not right.expanding:
                return f"{name} {_COMPARISONS[op]} {value(column, raw)}"
        raise UnrenderableFilter(repr(clause))

    if not filters:
        return "true", params
    return "(" + " AND ".join(render(f) for f in filters) + ")", params
