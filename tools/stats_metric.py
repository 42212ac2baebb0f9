"""Metric arguments of the statistics tools: a named metric of the notes or a column aggregate.

Accepted forms (documented for the model in each tool's docstring):

- a named metric of the semantic notes, e.g. ``watch_time`` (also its synonyms);
- ``agg:table.column`` or ``agg:column`` with ``agg`` one of sum, avg (mean), median, min,
  max, count, count_distinct, rate (share of true values of a boolean/0-1 column);
- ``count:table`` (rows of a table) or a bare table name;
- ``table.column`` or ``column`` without a prefix: ``rate`` for booleans, ``avg`` for numbers.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from tools.base import ToolContext, derived_cache
from tools.cache import cache_key
from tools.catalog import Catalog, TableInfo
from tools.errors import AtlasError, ToolArgumentError
from tools.joins import ident, template

AGGREGATES = ("sum", "avg", "mean", "median", "min", "max", "count", "count_distinct", "rate")


@dataclass(frozen=True)
class MetricSpec:
    """A metric resolved against the catalog.

    Attributes:
        label: how the metric is named in answers.
        table: its table (the base of every query).
        expr: the aggregate over the table's bare columns.
        unit: unit of the values ("s", "EUR", "" when unknown).
        additive: sums over rows (SUM/COUNT), so a group's share of the total means something.
        ratio: (numerator, denominator) aggregates when the metric is a ratio of sums
            (an AVG is SUM/COUNT); None otherwise.
        proportion: a ratio whose numerator counts 0/1 outcomes (a rate such as completion).
    """

    label: str
    table: str
    expr: exp.Expression
    unit: str = ""
    additive: bool = False
    ratio: tuple[exp.Expression, exp.Expression] | None = None
    proportion: bool = False
    description: str = ""

    @property
    def sql(self) -> str:
        """The aggregate as SQL text."""
        return self.expr.sql(dialect="duckdb")


def _example(catalog: Catalog) -> str:
    for t in catalog.tables.values():
        for c in t.columns:
            if c.kind == "number" and not c.is_key:
                return f"'avg:{t.name}.{c.name}' or 'count:{t.name}'"
    first = next(iter(catalog.tables), "table")
    return f"'count:{first}'"


def unknown_metric(catalog: Catalog, text: str) -> ToolArgumentError:
    """The error for a metric that matches nothing, naming the valid choices."""
    names = list(catalog.metrics)
    close = difflib.get_close_matches(text.lower(), [n.lower() for n in names], n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    named = ", ".join(names) if names else "none in these notes"
    return ToolArgumentError(
        f"unknown metric '{text}'.{hint} Named metrics: {named}. Or give an aggregate of a "
        f"column: {_example(catalog)} (aggregates: {', '.join(AGGREGATES)})."
    )


def _strip(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _is_additive(node: exp.Expression) -> bool:
    node = _strip(node)
    if isinstance(node, exp.Sum):
        return True
    if isinstance(node, exp.Count):
        return not isinstance(node.this, exp.Distinct)
    if isinstance(node, exp.Mul | exp.Div):
        left, right = _strip(node.this), _strip(node.expression)
        return _is_additive(left) and isinstance(right, exp.Literal) or (
            isinstance(node, exp.Mul) and isinstance(left, exp.Literal) and _is_additive(right))
    return False


def _ratio(node: exp.Expression) -> tuple[exp.Expression, exp.Expression] | None:
    node = _strip(node)
    if isinstance(node, exp.Avg):
        inner = node.this
        return (exp.Sum(this=exp.cast(inner.copy(), "DOUBLE")), exp.Count(this=inner.copy()))
    if isinstance(node, exp.Div):
        num, den = _strip(node.this), _strip(node.expression)
        if isinstance(num, exp.Sum | exp.Count) and isinstance(den, exp.Sum | exp.Count):
            return num.copy(), den.copy()
    return None


def _zero_one(ctx: ToolContext, table: TableInfo, ratio: tuple[exp.Expression, exp.Expression]
              ) -> bool:
    """Whether the ratio counts 0/1 outcomes per row (checked on the data, cached)."""
    num, den = ratio
    if not isinstance(den, exp.Count) or isinstance(den.this, exp.Distinct):
        return False
    if isinstance(num, exp.Count):
        return True  # COUNT(x)/COUNT(*) is a share of rows
    inner = num.this
    if not isinstance(num, exp.Sum) or inner is None:
        return False
    value = exp.cast(inner.copy(), "DOUBLE")

    def compute() -> bool:
        q = exp.select(
            template("coalesce(bool_and(:v IN (0, 1)), false)", v=value)
        ).from_(exp.table_(ident(table.name)))
        return bool(ctx.workspace.frame(q.sql(dialect="duckdb")).iloc[0, 0])

    if table.origin == "session":
        return compute()
    key = cache_key(ctx.workspace.fingerprint(), "metric.zero_one",
                    {"t": table.name, "v": value.sql(dialect="duckdb")})
    return derived_cache(ctx).get_or_compute(key, compute)[0]


def _check_columns(expr: exp.Expression, table: TableInfo, what: str) -> None:
    for col in expr.find_all(exp.Column):
        if isinstance(col.this, exp.Star):
            continue
        if table.column(col.name) is None:
            raise AtlasError(f"{what} names column '{col.name}', which {table.name} lacks")


def _spec(ctx: ToolContext, label: str, table: TableInfo, expr: exp.Expression, unit: str = "",
          description: str = "") -> MetricSpec:
    ratio = _ratio(expr)
    proportion = ratio is not None and _zero_one(ctx, table, ratio)
    return MetricSpec(label=label, table=table.name, expr=expr, unit=unit,
                      additive=_is_additive(expr), ratio=ratio, proportion=proportion,
                      description=description)


def _column_aggregate(agg: str, column: str, kind: str) -> exp.Expression:
    col = exp.column(ident(column))
    if agg == "rate" or (agg == "avg" and kind == "bool"):
        return exp.Avg(this=exp.cast(col, "DOUBLE"))
    return {
        "sum": lambda: exp.Sum(this=col),
        "avg": lambda: exp.Avg(this=col),
        "median": lambda: exp.Median(this=col),
        "min": lambda: exp.Min(this=col),
        "max": lambda: exp.Max(this=col),
        "count": lambda: exp.Count(this=col),
        "count_distinct": lambda: exp.Count(this=exp.Distinct(expressions=[col])),
    }[agg]()


def resolve_metric(ctx: ToolContext, text: str) -> MetricSpec:
    """Resolve a metric argument (see the module docstring for the accepted forms).

    Raises:
        ToolArgumentError: nothing matches; the message lists named metrics and an example.
    """
    catalog = ctx.catalog()
    raw = (text or "").strip()
    lowered = raw.lower()
    for m in catalog.metrics.values():
        if lowered in {m.name.lower(), *(s.lower() for s in m.synonyms)}:
            table = catalog.tables[m.table.lower()]
            try:
                expr = sqlglot.parse_one(m.sql, read="duckdb")
            except sqlglot.errors.ParseError as error:
                raise AtlasError(f"metric '{m.name}' in the notes is not valid SQL") from error
            if expr.find(exp.AggFunc) is None:
                raise AtlasError(f"metric '{m.name}' in the notes has no aggregate")
            _check_columns(expr, table, f"metric '{m.name}'")
            return _spec(ctx, m.name, table, expr, m.unit, m.description)
    agg, sep, target = lowered.partition(":")
    if not sep:
        agg, target = "", lowered
    agg = {"mean": "avg", "average": "avg", "total": "sum", "distinct": "count_distinct"
           }.get(agg.strip(), agg.strip())
    target = target.strip()
    if agg and agg not in AGGREGATES:
        raise unknown_metric(catalog, raw)
    table_part, _, column_part = target.rpartition(".")
    if not table_part and catalog.table(column_part) is not None and agg in ("", "count"):
        table = catalog.tables[column_part.lower()]
        return _spec(ctx, f"count of {table.name} rows", table, exp.Count(this=exp.Star()),
                     "rows")
    matches = [(t, t.column(column_part)) for t in catalog.tables.values()
               if (not table_part or t.name.lower() == table_part) and t.column(column_part)]
    if not matches:
        raise unknown_metric(catalog, raw)
    if len(matches) > 1 and not table_part:
        options = ", ".join(f"{agg or 'avg'}:{t.name}.{c.name}" for t, c in matches if c)
        raise ToolArgumentError(f"'{raw}' is in several tables; say which: {options}")
    table, info = matches[0]
    assert info is not None
    if not agg:
        agg = "rate" if info.kind == "bool" else "avg"
    if info.kind in ("text", "list", "time") and agg not in ("count", "count_distinct", "min",
                                                              "max"):
        raise ToolArgumentError(
            f"{table.name}.{info.name} is a {info.kind} column: use count: or count_distinct:, "
            f"or use it as a dimension instead"
        )
    expr = _column_aggregate(agg, info.name, info.kind)
    unit = "share" if agg == "rate" or (agg == "avg" and info.kind == "bool") else (
        "" if agg.startswith("count") else info.unit or "")
    return _spec(ctx, f"{agg}({table.name}.{info.name})", table, expr, unit, info.description)
