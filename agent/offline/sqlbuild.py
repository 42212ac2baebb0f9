"""Building blocks of the offline model's SQL: joins, semi-joins, conditions and measures.

Everything is a sqlglot expression; words from the question only ever enter the SQL as
literals made by sqlglot (never pasted into SQL text).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlglot
from sqlglot import exp

from agent.offline.frame import Filter, Measure, column_info
from agent.offline.joins import bridge, paths_from, primary_key
from tools.catalog import Catalog

DIALECT = "duckdb"


class PlanError(Exception):
    """The frame cannot be turned into a query (the message says why, for a person)."""


def col(table: str, column: str) -> exp.Column:
    """A qualified column."""
    return exp.column(column, table=table)


def literal(value: Any, kind: str = "text") -> exp.Expression:
    """A literal of the column's kind (user words only ever enter SQL this way)."""
    if isinstance(value, bool) or kind == "bool":
        return exp.Boolean(this=bool(value))
    if kind == "number" and isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def time_literal(day: dt.date, column_type: str) -> exp.Expression:
    """A date bound cast to the time column's type."""
    target = "DATE" if column_type.upper() == "DATE" else "TIMESTAMP"
    return exp.cast(exp.Literal.string(day.isoformat()), target)


class From:
    """The FROM clause of one query: a root table, the joins it needs, and its conditions."""

    def __init__(self, catalog: Catalog, root: str) -> None:
        self.catalog = catalog
        self.root = root
        self.paths = paths_from(catalog, root)
        self.joined: list[str] = [root]
        self.joins: list[tuple[str, exp.Expression]] = []
        self.where: list[exp.Expression] = []
        self.outside: dict[str, list[exp.Expression]] = {}

    def reach(self, table: str) -> bool:
        """Join ``table`` in (along its many-to-one path); False when it is not reachable."""
        if table not in self.paths:
            return False
        for e in self.paths[table]:
            if e.dst not in self.joined:
                self.joined.append(e.dst)
                self.joins.append((e.dst, exp.EQ(this=col(e.src, e.src_col),
                                                 expression=col(e.dst, e.dst_col))))
        return True

    def column(self, table: str, column: str) -> exp.Column:
        """A column of a reachable table (joined on demand)."""
        if not self.reach(table):
            raise PlanError(f"I could not find a way to relate {table} to {self.root} "
                            "through their keys, so I cannot group by it")
        return col(table, column)

    def condition(self, table: str, cond: exp.Expression) -> None:
        """A WHERE condition; on a table out of reach it goes into a semi-join."""
        if self.reach(table):
            self.where.append(cond)
        else:
            self.outside.setdefault(table, []).append(cond)

    def finish(self) -> None:
        """Turn conditions on unreachable tables into ``key IN (SELECT ...)`` semi-joins."""
        if not self.outside:
            return
        needed = set(self.outside)
        link = bridge(self.catalog, self.root, needed)
        if link is None:
            names = ", ".join(sorted(needed))
            raise PlanError(f"I could not find a way to relate {names} to {self.root} "
                            "through their keys")
        via, key, near = link
        inner = From(self.catalog, via)
        for table, conds in self.outside.items():
            for cond in conds:
                inner.condition(table, cond)
        sub = inner.select(exp.select(col(via, key)).distinct())
        self.reach(near)
        self.where.append(exp.In(this=col(near, key), query=exp.Subquery(this=sub)))
        self.outside = {}

    def select(self, query: exp.Select) -> exp.Select:
        """Attach FROM, JOINs and WHERE to ``query``."""
        self.finish()
        query = query.from_(self.root)
        for table, on in self.joins:
            query = query.join(exp.to_table(table), on=on)
        for cond in self.where:
            query = query.where(cond)
        return query


def filter_condition(catalog: Catalog, f: Filter, safe: bool = False) -> exp.Expression:
    """The SQL condition of one filter.

    ``safe`` (the retry after a failed query) compares text to text and numbers through
    TRY_CAST, so that a value of an unexpected type cannot make the query fail again.
    """
    info = column_info(catalog, f.table, f.column)
    kind = info.kind if info else "text"
    target: exp.Expression = col(f.table, f.column)
    if safe and f.op in ("=", "in") and kind != "bool":
        target, kind = exp.cast(target, "VARCHAR"), "text"
    elif safe and f.op in (">", ">=", "<", "<="):
        target, kind = exp.TryCast(this=target, to=exp.DataType.build("DOUBLE")), "number"
    values = [literal(v, kind) for v in f.values]
    cond: exp.Expression
    if f.op == "is":
        cond = exp.EQ(this=target, expression=exp.Boolean(this=bool(f.values[0])))
        return cond
    if f.op == "contains":
        parts = [exp.func("list_contains", target.copy(), v) for v in values]
        cond = parts[0] if len(parts) == 1 else exp.Paren(this=exp.or_(*parts))
    elif f.op == "in":
        cond = exp.In(this=target, expressions=values)
    elif f.op == "=":
        cond = exp.EQ(this=target, expression=values[0])
    else:
        ops = {">": exp.GT, ">=": exp.GTE, "<": exp.LT, "<=": exp.LTE}
        cond = ops[f.op](this=target, expression=values[0])
    return exp.Not(this=cond) if f.negate else cond


def qualify(sql: str, table: str, catalog: Catalog) -> exp.Expression:
    """Parse a metric's aggregate SQL and qualify its bare columns with its table."""
    tree = sqlglot.parse_one(sql, dialect=DIALECT)
    info = catalog.table(table)
    names = {c.name.lower() for c in info.columns} if info else set()
    for node in tree.find_all(exp.Column):
        if not node.table and node.name.lower() in names:
            node.set("table", exp.to_identifier(table))
    return tree


def measure_expr(catalog: Catalog, m: Measure, source: From) -> exp.Expression:
    """The aggregate expression of a measure (divided per entity when asked)."""
    expr: exp.Expression
    if m.kind == "metric":
        expr = qualify(catalog.metrics[m.metric or ""].sql, m.table, catalog)
        if m.func == "avg" and not m.per and isinstance(expr, exp.Sum):
            expr = exp.Avg(this=expr.this)
    elif m.kind == "count":
        expr = exp.Count(this=exp.Star())
    elif m.kind == "distinct":
        expr = exp.Count(this=exp.Distinct(expressions=[col(m.table, m.column or "")]))
    else:
        info = column_info(catalog, m.table, m.column)
        target: exp.Expression = col(m.table, m.column or "")
        if info is not None and info.kind == "bool":
            target = exp.cast(target, "DOUBLE")
        funcs = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max,
                 "median": exp.Median}
        expr = funcs.get(m.func or "sum", exp.Sum)(this=target)
    if m.per:
        entity = catalog.table(m.per)
        key = primary_key(entity) if entity else None
        if key is None or not source.reach(m.per):
            raise PlanError(f"I could not relate {m.table} to {m.per} to divide per {m.per}")
        per = exp.Count(this=exp.Distinct(expressions=[col(m.per, key)]))
        expr = exp.Div(this=exp.cast(expr, "DOUBLE"),
                       expression=exp.func("nullif", per, exp.Literal.number(0)))
    return expr


def restrict(expr: exp.Expression, cond: exp.Expression) -> exp.Expression:
    """The same aggregate over the rows that meet ``cond`` (aggregate FILTER clauses)."""
    def wrap(node: exp.Expression) -> exp.Expression:
        return exp.Filter(this=node.copy(), expression=exp.Where(this=cond.copy()))

    if isinstance(expr, exp.AggFunc):
        return wrap(expr)
    tree = expr.copy()
    for node in [n for n in tree.find_all(exp.AggFunc) if n is not tree]:
        node.replace(wrap(node))
    return tree


def additive(catalog: Catalog, m: Measure) -> bool:
    """Whether parts of the measure add up to its total (so a share of it makes sense)."""
    if m.per:
        return False
    if m.kind == "count":
        return True
    if m.kind == "agg":
        return m.func == "sum"
    if m.kind == "metric":
        sql = catalog.metrics[m.metric or ""].sql.strip().upper()
        flat = sql.replace(" ", "")
        return flat.startswith(("SUM(", "COUNT(")) and not flat.startswith("COUNT(DISTINCT") \
            and ")/" not in flat
    return False
