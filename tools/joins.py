"""Column resolution and join paths for the statistics tools (ARCHITECTURE decisions 2, 10).

A dimension, filter or unit column may live in another table than the metric: the paths
follow key columns of the live catalog (same-named ``*_id`` columns; the target side must
be unique in its table so that a join never multiplies the metric's rows), found by BFS
over at most two hops. SQL is built as sqlglot expressions: identifiers are checked
against the catalog and user-supplied values only ever become literals.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from tools.base import ToolContext, derived_cache
from tools.cache import cache_key
from tools.catalog import ColumnInfo, TableInfo
from tools.errors import ToolArgumentError

MAX_HOPS = 2
BASE_ALIAS = "m"
_REFERENCE = re.compile(r"\b([A-Za-z_]\w*)\.([A-Za-z_]\w*)\b")
TRUE_WORDS = {"true", "yes", "1", "t", "y"}
FALSE_WORDS = {"false", "no", "0", "f", "n"}


@dataclass(frozen=True)
class Edge:
    """One join step: ``src.column = dst.dst_column`` with ``dst_column`` unique in ``dst``."""

    src: str
    dst: str
    column: str
    dst_column: str


@dataclass(frozen=True)
class ColumnRef:
    """A catalog column and the join path from the base table to its table."""

    table: str
    info: ColumnInfo
    path: tuple[Edge, ...] = ()

    @property
    def name(self) -> str:
        """The column's name."""
        return self.info.name

    @property
    def label(self) -> str:
        """``table.column``."""
        return f"{self.table}.{self.info.name}"


def ident(name: str) -> exp.Identifier:
    """A quoted identifier (names come from the catalog, never from user text)."""
    return exp.to_identifier(name, quoted=True)


def template(sql: str, **nodes: exp.Expression | str | int | float) -> exp.Expression:
    """Parse a constant SQL template and put sqlglot nodes into its ``:name`` placeholders."""
    return exp.replace_placeholders(sqlglot.parse_one(sql, read="duckdb"), **nodes)


def is_unique(ctx: ToolContext, table: TableInfo, column: str) -> bool:
    """Whether ``column`` has no duplicate (non-null) value in ``table`` (exact, cached)."""
    info = table.column(column)
    if info is None:
        return False
    if info.distinct is not None and table.rows and info.distinct < 0.9 * table.rows:
        return False  # approx_count_distinct is within a few percent

    def compute() -> bool:
        q = exp.select(
            template("count(:c) = count(DISTINCT :c)", c=exp.column(ident(info.name)))
        ).from_(exp.table_(ident(table.name)))
        return bool(ctx.workspace.frame(q.sql(dialect="duckdb")).iloc[0, 0])

    if table.origin == "session":
        return compute()
    key = cache_key(ctx.workspace.fingerprint(), "joins.unique", {"t": table.name, "c": column})
    return derived_cache(ctx).get_or_compute(key, compute)[0]


def _join_keys(table: TableInfo) -> list[str]:
    return [c.name for c in table.columns if c.is_key and c.name.lower() != "id"]


class Resolver:
    """Tables reachable from a base table, and columns resolved to ``ColumnRef``s."""

    def __init__(self, ctx: ToolContext, base: str) -> None:
        self.ctx = ctx
        self.catalog = ctx.catalog()
        info = self.catalog.table(base)
        if info is None:
            raise ToolArgumentError(
                f"unknown table '{base}' — tables are: {', '.join(self.catalog.tables)}"
            )
        self.base = info
        self.paths = self._bfs()

    def _edges_from(self, src: TableInfo) -> list[Edge]:
        """Joins from ``src`` to tables where the other side is unique: same-named keys, and
        keys whose description in the notes names ``table.column`` (e.g. follower_id →
        users.user_id)."""
        keys = {k.lower(): k for k in _join_keys(src)}
        edges: list[Edge] = []
        for other in self.catalog.tables.values():
            if other.name == src.name:
                continue
            for column in _join_keys(other):
                if column.lower() in keys and is_unique(self.ctx, other, column):
                    edges.append(Edge(src.name, other.name, keys[column.lower()], column))
                    break
        for key in keys.values():
            info = src.column(key)
            for table, column in _REFERENCE.findall(info.description if info else ""):
                other = self.catalog.table(table)
                target = other.column(column) if other is not None else None
                if (other is None or target is None or other.name == src.name
                        or not target.is_key or any(e.dst == other.name for e in edges)):
                    continue
                if is_unique(self.ctx, other, target.name):
                    edges.append(Edge(src.name, other.name, key, target.name))
        return edges

    def _bfs(self) -> dict[str, tuple[Edge, ...]]:
        """Shortest paths (at most MAX_HOPS); among equally short ones, the fewest joins
        taken from descriptions rather than from same-named keys."""
        def cost(path: tuple[Edge, ...]) -> tuple[int, int]:
            return len(path), sum(e.column.lower() != e.dst_column.lower() for e in path)

        paths: dict[str, tuple[Edge, ...]] = {self.base.name: ()}
        frontier = [self.base.name]
        for _ in range(MAX_HOPS):
            found: dict[str, tuple[Edge, ...]] = {}
            for name in frontier:
                for edge in self._edges_from(self.catalog.tables[name.lower()]):
                    if edge.dst in paths:
                        continue
                    path = (*paths[name], edge)
                    if edge.dst not in found or cost(path) < cost(found[edge.dst]):
                        found[edge.dst] = path
            paths.update(found)
            frontier = list(found)
        return paths

    def reachable_columns(self, accept: Callable[[str, ColumnInfo], bool] | None = None
                          ) -> list[str]:
        """``table.column`` names reachable from the base table (nearest tables first)."""
        return [f"{table}.{c.name}" for table in self.paths
                for c in self.catalog.tables[table.lower()].columns
                if accept is None or accept(table, c)]

    def resolve(self, name: str, role: str,
                accept: Callable[[str, ColumnInfo], bool] | None = None) -> ColumnRef:
        """The column called ``name`` (``column`` or ``table.column``) reachable by a join.

        A bare name is looked up in the base table first, then in the nearest joined table.

        Args:
            name: the column as the caller wrote it.
            role: what it is for ("dimension", "filter column", "unit"), for messages.
            accept: which (table, column) suit the role (the error lists those).

        Raises:
            ToolArgumentError: unknown, unreachable or unsuitable column, naming the choices.
        """
        wanted = name.strip()
        table_part, _, column_part = wanted.rpartition(".")
        candidates = []
        for table, path in sorted(self.paths.items(), key=lambda kv: len(kv[1])):
            if table_part and table.lower() != table_part.lower():
                continue
            info = self.catalog.tables[table.lower()].column(column_part)
            if info is not None:
                candidates.append(ColumnRef(table, info, path))
        choices = ", ".join(self.reachable_columns(accept)[:60])
        if not candidates:
            hint = ""
            if table_part and self.catalog.table(table_part) is not None:
                hint = (f" Table {table_part} cannot be joined to {self.base.name} through "
                        "key columns within two steps.")
            raise ToolArgumentError(
                f"unknown {role} '{name}' for a metric on {self.base.name}.{hint} "
                f"Choose one of: {choices}"
            )
        ref = candidates[0]
        tied = [c.label for c in candidates if len(c.path) == len(ref.path)]
        if len(tied) > 1:
            raise ToolArgumentError(
                f"'{name}' is ambiguous for a metric on {self.base.name}: say which of "
                f"{' or '.join(tied)}")
        if accept is not None and not accept(ref.table, ref.info):
            raise ToolArgumentError(
                f"{ref.label} cannot be used as a {role}; choose one of: {choices}"
            )
        return ref


class SelectBuilder:
    """One SELECT over the base table and the joins its columns need."""

    def __init__(self, resolver: Resolver, *, unnest: ColumnRef | None = None) -> None:
        self.resolver = resolver
        self.unnest = unnest
        self._aliases: dict[str, str] = {resolver.base.name: BASE_ALIAS}
        self._joins: list[tuple[Edge, str]] = []

    def alias(self, ref: ColumnRef) -> str:
        """The alias of ``ref``'s table, adding the joins of its path."""
        for edge in ref.path:
            if edge.dst not in self._aliases:
                alias = f"j{len(self._joins) + 1}"
                self._aliases[edge.dst] = alias
                self._joins.append((edge, alias))
        return self._aliases[ref.table]

    def col(self, ref: ColumnRef) -> exp.Column:
        """``alias.column`` for ``ref``."""
        return exp.column(ident(ref.name), table=ident(self.alias(ref)))

    def base_expr(self, expression: exp.Expression) -> exp.Expression:
        """``expression`` (over the base table's bare columns) qualified with the base alias."""
        def qualify(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
                return exp.column(ident(node.name), table=ident(BASE_ALIAS))
            return node

        return expression.copy().transform(qualify)

    def _source(self, table: str) -> exp.Expression:
        info = self.resolver.catalog.tables[table.lower()]
        if self.unnest is None or self.unnest.table != info.name:
            return exp.table_(ident(info.name))
        cols: list[exp.Expression] = []
        for c in info.columns:
            column = exp.column(ident(c.name))
            if c.name == self.unnest.name:
                cols.append(exp.alias_(exp.Unnest(expressions=[column]), ident(c.name)))
            else:
                cols.append(column)
        return exp.select(*cols).from_(exp.table_(ident(info.name))).subquery()

    def select(self, columns: list[exp.Expression], where: list[exp.Expression],
               group_by: list[exp.Expression] | None = None) -> exp.Select:
        """The SELECT with its FROM, LEFT JOINs, WHERE and GROUP BY."""
        base = self._source(self.resolver.base.name)
        query = exp.select(*columns).from_(exp.alias_(base, ident(BASE_ALIAS), table=True))
        for edge, alias in self._joins:
            src_alias = self._aliases[edge.src]
            on = exp.EQ(this=exp.column(ident(edge.column), table=ident(src_alias)),
                        expression=exp.column(ident(edge.dst_column), table=ident(alias)))
            target = exp.alias_(self._source(edge.dst), ident(alias), table=True)
            query = query.join(target, on=on, join_type="LEFT")
        if where:
            query = query.where(exp.and_(*where))
        if group_by:
            query = query.group_by(*group_by)
        return query


def filter_condition(builder: SelectBuilder, ref: ColumnRef, values: list[str]) -> exp.Expression:
    """``ref`` restricted to ``values`` (typed literals; lists match when any element does).

    Raises:
        ToolArgumentError: a value that does not fit the column's type or known values.
    """
    if isinstance(values, str | int | float | bool):
        values = [values]
    if not values:
        raise ToolArgumentError(f"the filter on {ref.label} needs at least one value")
    col = builder.col(ref)
    kind = ref.info.kind
    if kind == "list":
        return exp.Anonymous(this="list_has_any", expressions=[
            col, exp.Array(expressions=[exp.Literal.string(str(v)) for v in values])])
    if kind == "bool":
        flags = []
        for v in values:
            word = str(v).strip().lower()
            if word not in TRUE_WORDS | FALSE_WORDS:
                raise ToolArgumentError(f"{ref.label} is true/false; '{v}' is neither")
            flags.append(exp.Boolean(this=word in TRUE_WORDS))
        return exp.In(this=col, expressions=flags)
    if kind == "number":
        try:
            nums = [exp.Literal.number(float(v)) for v in values]
        except ValueError as error:
            raise ToolArgumentError(f"{ref.label} is numeric; {values} are not all numbers"
                                    ) from error
        return exp.In(this=col, expressions=nums)
    if kind == "time":
        days = [parse_date(str(v), f"the filter on {ref.label}") for v in values]
        if len(days) > 2:
            raise ToolArgumentError(f"a time filter on {ref.label} takes one day or [from, to]")
        return window_condition(col, days[0], days[-1])
    lowered = [str(v).strip().lower() for v in values]
    known = {v.lower() for v in ref.info.values}
    if (ref.info.values and ref.info.distinct is not None
            and ref.info.distinct <= len(ref.info.values) and not known & set(lowered)):
        raise ToolArgumentError(
            f"no value of {ref.label} matches {values}; values are: "
            f"{', '.join(ref.info.values[:40])}"
        )
    return exp.In(this=exp.Lower(this=exp.cast(col, "VARCHAR")),
                  expressions=[exp.Literal.string(v) for v in lowered])


def parse_date(text: str, what: str) -> dt.date:
    """An ISO date (a datetime's date part is accepted)."""
    try:
        return dt.date.fromisoformat(str(text).strip()[:10])
    except ValueError as error:
        raise ToolArgumentError(f"{what}: '{text}' is not an ISO date like 2026-09-01") from error


def window_condition(col: exp.Expression, start: dt.date | None, end: dt.date | None
                     ) -> exp.Expression:
    """``start <= col < end + 1 day`` (either side optional; both inclusive days)."""
    parts: list[exp.Expression] = []
    if start is not None:
        parts.append(exp.GTE(this=col, expression=date_literal(start)))
    if end is not None:
        parts.append(exp.LT(this=col, expression=date_literal(end + dt.timedelta(days=1))))
    return exp.and_(*parts) if parts else exp.true()


def date_literal(day: dt.date) -> exp.Expression:
    """``CAST('YYYY-MM-DD' AS DATE)``."""
    return exp.cast(exp.Literal.string(day.isoformat()), "DATE")


def time_column(table: TableInfo) -> ColumnInfo | None:
    """The table's time axis: its first TIMESTAMP/DATE column."""
    return next((c for c in table.columns if c.kind == "time"), None)


UNIT_WORDS = ("user", "customer", "member", "account", "client", "person", "player",
              "subscriber", "viewer", "buyer", "visitor")


def default_unit(ctx: ToolContext, table: TableInfo) -> ColumnInfo | None:
    """The sensible unit of analysis for a metric on ``table``.

    A person-like key (``user_id``, ``customer_id``…) when the table has one; else the
    table's own unique key (one row per entity); else its first key column.
    """
    keys = [c for c in table.columns if c.is_key and c.name.lower() != "id"]
    for c in keys:
        if any(c.name.lower().startswith(w) for w in UNIT_WORDS):
            return c
    for c in keys:
        if is_unique(ctx, table, c.name):
            return c
    return keys[0] if keys else None


def unit_word(column: str) -> str:
    """``user_id`` → ``user``."""
    word = column.lower()
    for suffix in ("_id", "id"):
        if word.endswith(suffix) and len(word) > len(suffix):
            word = word[: -len(suffix)]
            break
    return word.rstrip("_") or column
