"""What the statistics tools share: resolved arguments, per-unit SQL, caching and output."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlglot import exp

from tools.base import ToolContext, ToolOutput, derived_cache
from tools.cache import cache_key
from tools.catalog import ColumnInfo
from tools.errors import ToolArgumentError
from tools.joins import (
    ColumnRef,
    Resolver,
    SelectBuilder,
    default_unit,
    filter_condition,
    is_unique,
    parse_date,
    time_column,
    unit_word,
    window_condition,
)
from tools.semantic import SemanticNotes
from tools.stats_metric import MetricSpec, resolve_metric

CACHE_VERSION = "stats-1"
MIN_CONCLUSIVE = 30  # units per group below which a difference is not interpreted
MAX_GROUP_DISTINCT = 200  # a dimension with more values must be filtered or bucketed first


def is_unit(table: str, c: ColumnInfo) -> bool:
    """Identifier columns can be units of analysis."""
    return c.is_key and c.kind != "list"


def dimension_check(notes: SemanticNotes) -> Callable[[str, ColumnInfo], bool]:
    """Which columns can form groups: descriptive, low-cardinality columns and lists (such as
    hashtags). Columns the notes mark personal never qualify; an id-like name without a note
    (``cluster_id`` of a session table) qualifies when it has few values."""
    def accept(table: str, c: ColumnInfo) -> bool:
        note = notes.table(table).columns.get(c.name.lower())
        if (note is not None and note.personal) or (c.personal and not c.is_key):
            return False
        if c.kind in ("bool", "list"):
            return not c.personal
        return c.distinct is not None and c.distinct <= MAX_GROUP_DISTINCT and c.kind != "list"

    return accept


@dataclass
class Plan:
    """A metric with its resolved unit, dimensions, filters and time window."""

    metric: MetricSpec
    resolver: Resolver
    unit: ColumnRef | None
    dims: list[ColumnRef] = field(default_factory=list)
    filters: list[tuple[ColumnRef, list[str]]] = field(default_factory=list)
    time: ColumnRef | None = None  # the time axis (the metric table's, or a joined one's)
    start: dt.date | None = None
    end: dt.date | None = None
    window: str = ""
    bounded: bool = False  # start/end were given (or set by a tool): filter on them

    @property
    def unit_name(self) -> str:
        """``user`` for ``user_id``."""
        return unit_word(self.unit.name) if self.unit else "row"

    @property
    def tables(self) -> set[str]:
        """Every table the plan's SQL touches."""
        refs = [r for r in [self.unit, self.time, *self.dims, *(f for f, _ in self.filters)]
                if r]
        names = {self.metric.table}
        for ref in refs:
            names.update(e.dst for e in ref.path)
        return names

    def filters_text(self) -> dict[str, list[str]]:
        """Filters as ``{table.column: values}`` for the summary."""
        return {ref.label: [str(v) for v in values] for ref, values in self.filters}

    def builder(self, unnest: ColumnRef | None = None) -> SelectBuilder:
        """A SELECT builder over the metric's table."""
        return SelectBuilder(self.resolver, unnest=unnest)

    def conditions(self, builder: SelectBuilder) -> list[exp.Expression]:
        """WHERE conditions: the time window and the filters."""
        where: list[exp.Expression] = []
        if self.time is not None and self.bounded and (self.start or self.end):
            col = builder.col(self.time)
            where.append(window_condition(col, self.start, self.end))
        for ref, values in self.filters:
            where.append(filter_condition(builder, ref, values))
        return where


def find_time(resolver: Resolver) -> ColumnRef | None:
    """The time axis: the metric table's first time column, else the nearest joined
    table's (e.g. order_items → orders.ordered_at; each row joins to one such time)."""
    for table, path in sorted(resolver.paths.items(), key=lambda kv: len(kv[1])):
        info = time_column(resolver.catalog.tables[table.lower()])
        if info is not None:
            return ColumnRef(table, info, path)
    return None


def _dates_of(info: ColumnInfo) -> tuple[dt.date | None, dt.date | None]:
    lo = dt.date.fromisoformat(info.min[:10]) if info.min else None
    hi = dt.date.fromisoformat(info.max[:10]) if info.max else None
    return lo, hi


def window_text(start: dt.date | None, end: dt.date | None, explicit: bool) -> str:
    """'all 90 days from X to Y' or 'from X to Y (N days)'."""
    if start is None or end is None:
        return "all rows (the table has no time column)"
    days = (end - start).days + 1
    if explicit:
        return f"from {start} to {end} ({days} days)"
    return f"all {days} days from {start} to {end}"


def plan(ctx: ToolContext, metric: str, *, dims: list[str] | None = None,
         filters: dict[str, list[str]] | None = None, start: str | None = None,
         end: str | None = None, per: str | None = None, need_unit: bool = True,
         metric_spec: MetricSpec | None = None) -> Plan:
    """Resolve every argument of a statistics tool against the live catalog.

    Raises:
        ToolArgumentError: an unknown metric, column or value, or a bad date.
    """
    spec = metric_spec or resolve_metric(ctx, metric)
    resolver = Resolver(ctx, spec.table)
    unit: ColumnRef | None = None
    if per:
        unit = resolver.resolve(per, "unit (per)", is_unit)
    elif need_unit:
        info = default_unit(ctx, resolver.base)
        if info is not None:
            unit = ColumnRef(resolver.base.name, info)
    accept = dimension_check(ctx.notes)
    dim_refs = [resolver.resolve(name, "dimension", accept) for name in dims or []]
    if sum(r.info.kind == "list" for r in dim_refs) > 1:
        raise ToolArgumentError("group by at most one list column (such as hashtags) at a time")
    filter_refs = [(resolver.resolve(col, "filter column"), _values(values))
                   for col, values in (filters or {}).items()]
    time = find_time(resolver)
    s = parse_date(start, "start") if start else None
    e = parse_date(end, "end") if end else None
    if time is None and (s or e):
        raise ToolArgumentError(f"{spec.table} has no time column (nor a joined table), so "
                                "start/end cannot apply")
    lo, hi = _dates_of(time.info) if time is not None else (None, None)
    if s and e and s > e:
        raise ToolArgumentError(f"start {s} is after end {e}")
    if lo and hi and ((s and s > hi) or (e and e < lo)):
        raise ToolArgumentError(
            f"{spec.table} has data from {lo} to {hi} only; choose a window inside it")
    s = max(s, lo) if s and lo else s
    e = min(e, hi) if e and hi else e
    text = window_text(s or lo, e or hi, bool(s or e))
    return Plan(spec, resolver, unit, dim_refs, filter_refs, time, s or lo, e or hi, text,
                bounded=bool(s or e))


def _values(values: Any) -> list[str]:
    if isinstance(values, list | tuple | set):
        return [str(v) for v in values]
    return [str(values)]


def group_expr(builder: SelectBuilder, ref: ColumnRef) -> exp.Expression:
    """A grouping column as text (so groups compare as strings)."""
    return exp.cast(builder.col(ref), "VARCHAR")


def per_unit_query(p: Plan, groups: dict[int, list[str]] | None = None) -> str:
    """SQL of one row per (unit, group…): ``unit, g0…, value[, num, den]``.

    Args:
        p: the plan.
        groups: optional allowed values per dimension index (case-insensitive).
    """
    if p.unit is None:
        raise ToolArgumentError(f"{p.metric.table} has no identifier column to aggregate per")
    unnest = next((r for r in p.dims if r.info.kind == "list"), None)
    b = p.builder(unnest)
    unit_col = b.col(p.unit)
    cols: list[exp.Expression] = [exp.alias_(unit_col, "unit")]
    where = p.conditions(b)
    where.append(exp.Not(this=exp.Is(this=unit_col.copy(), expression=exp.Null())))
    for i, ref in enumerate(p.dims):
        g = group_expr(b, ref)
        cols.append(exp.alias_(g, f"g{i}"))
        where.append(exp.Not(this=exp.Is(this=g.copy(), expression=exp.Null())))
        if groups and groups.get(i):
            where.append(exp.In(this=exp.Lower(this=g.copy()),
                                expressions=[exp.Literal.string(v.lower()) for v in groups[i]]))
    cols.append(exp.alias_(b.base_expr(p.metric.expr), "value"))
    if p.metric.ratio is not None:
        num, den = p.metric.ratio
        cols.append(exp.alias_(b.base_expr(num), "num"))
        cols.append(exp.alias_(b.base_expr(den), "den"))
    keys = [exp.column("unit")] + [exp.column(f"g{i}") for i in range(len(p.dims))]
    return b.select(cols, where, keys).sql(dialect="duckdb")


def population_text(p: Plan) -> str:
    """Who the units are, stated in every answer."""
    unit = p.unit_name
    if p.unit is not None and p.unit.table == p.metric.table and is_unique(
            p.resolver.ctx, p.resolver.base, p.unit.name):
        return f"per {unit}: each {p.metric.table} row is one {unit}" + (
            " (after filters)" if p.filters or p.bounded else "")
    return (f"per {unit}: the metric is aggregated per {unit} first; the population is "
            f"{unit}s with at least one {p.metric.table} row in the window"
            + (" and filters" if p.filters else ""))


def no_rows(p: Plan) -> ToolArgumentError:
    """The error for a query that matched nothing."""
    filters = f" with filters {p.filters_text()}" if p.filters else ""
    return ToolArgumentError(
        f"no {p.metric.table} rows match {p.window}{filters}; widen the window or the filters")


def overlap_note(p: Plan, df: pd.DataFrame) -> str | None:
    """A note when one unit falls in several groups (lists, or a dimension of the rows)."""
    if not p.dims:
        return None
    if any(r.info.kind == "list" for r in p.dims):
        return (f"grouped by a list column: a {p.unit_name} is in every group whose value "
                "appears in its rows, so groups overlap (tests treat them as independent)")
    keys = [f"g{i}" for i in range(len(p.dims))]
    if len(df) and df.groupby("unit")[keys].nunique().max().max() > 1:
        return (f"a {p.unit_name} can fall in several groups (each ({p.unit_name}, group) pair "
                "is one observation), so groups overlap (tests treat them as independent)")
    return None


def cached(ctx: ToolContext, plans: list[Plan], tool: str, args: dict[str, Any],
           compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()`` through the derived cache, keyed by the database fingerprint, the tool,
    its arguments and what they resolved to (so edited notes never serve a stale result).
    Skipped when a session table is involved: those change without a new fingerprint."""
    catalog = ctx.catalog()
    tables = set().union(*(p.tables for p in plans))
    if any(catalog.tables[t.lower()].origin == "session" for t in tables):
        return compute()
    resolved = [[p.metric.table, p.metric.sql, p.unit.label if p.unit else None,
                 p.time.label if p.time else None, [d.label for d in p.dims]] for p in plans]
    key = cache_key(ctx.workspace.fingerprint(), tool,
                    {**args, "floor": ctx.settings.privacy_floor, "resolved": resolved},
                    CACHE_VERSION)
    return derived_cache(ctx).get_or_compute(key, compute)[0]


def emit(ctx: ToolContext, result: dict[str, Any]) -> ToolOutput:
    """Store a computed result's tables and figures by ref and build the ToolOutput.

    ``result`` holds ``summary``, ``sql``, ``rows``, ``tables`` [(key, title, df)] and
    ``figures`` [(key, title, plotly JSON)]; each ref lands in ``summary[key]``.
    """
    summary = dict(result["summary"])
    refs: list[str] = []
    for key, title, df in result.get("tables", []):
        ref = ctx.results.put_table(df, title, result.get("sql"))
        summary[key] = ref
        refs.append(ref)
    if result.get("figures"):
        import plotly.io as pio

        for key, title, fig_json in result["figures"]:
            ref = ctx.results.put_figure(pio.from_json(fig_json), title)
            summary[key] = ref
            refs.append(ref)
    return ToolOutput(summary=summary, sql=result.get("sql"), rows=result.get("rows"), refs=refs)


def fmt(value: float, unit: str = "") -> str:
    """A number for a sentence: 1,234 / 12.3 / 0.042, with its unit."""
    if value is None or pd.isna(value):
        return "n/a"
    a = abs(value)
    text = f"{value:,.0f}" if a >= 100 else f"{value:,.1f}" if a >= 10 else f"{value:.3g}"
    if unit == "share":
        return f"{value * 100:.1f}%"
    return f"{text} {unit}".strip()
