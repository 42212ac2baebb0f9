"""Plan: turn a frame into a tool call (mostly ``run_sql`` with SQL built by sqlglot).

The fact table is the measure's; dimensions and filters on other tables are joined along
many-to-one key paths (:mod:`agent.offline.joins`), or reached by a semi-join when they sit
on the other side of an activity table. Time windows are resolved against the latest
timestamp of the time column used. The plan also carries what the answer must say: the
result columns and their units, the filters and the dates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from agent.offline import lexicon as lx
from agent.offline.frame import Dim, Filter, Frame, Measure, column_info
from agent.offline.joins import primary_key
from agent.offline.sqlbuild import (
    DIALECT,
    From,
    PlanError,
    additive,
    col,
    filter_condition,
    measure_expr,
    restrict,
    time_literal,
)
from agent.offline.timewords import Window, resolve
from agent.offline.units import unit_of
from tools.catalog import Catalog

Unit = tuple[str, float, str]
LIST_LIMIT = 20


@dataclass(frozen=True)
class OutCol:
    """A column of the result and how the answer reads it."""

    name: str
    role: str  # dim | label | measure | part | total | share | info
    label: str
    unit: Unit = ("", 1.0, "")


@dataclass(frozen=True)
class Plan:
    """One tool call and what the answer needs to say about its result."""

    tool: str
    args: dict[str, Any]
    intent: str = ""
    columns: tuple[OutCol, ...] = ()
    filters: tuple[str, ...] = ()
    dates: str = ""
    condition: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    span: tuple[str, str] = ("", "")  # first day and day after the last of the data used


def words(name: str) -> str:
    """A catalog name as words."""
    return " ".join(lx.split_name(name))


def column_words(name: str) -> str:
    """A column name as words, its unit suffix dropped or spelled out ("watch_s" → "watch
    seconds", "price_eur" → "price")."""
    parts = lx.split_name(name)
    if len(parts) > 1 and parts[-1] in lx.MONEY_SUFFIXES:
        parts = parts[:-1]
    elif len(parts) > 1 and parts[-1] in lx.SECONDS_SUFFIXES | {"ms", "min"}:
        if any(p in ("duration", "length", "time") for p in parts[:-1]):
            parts = parts[:-1]
        else:
            parts[-1] = lx.NAME_ABBREVIATIONS.get(parts[-1], parts[-1])
    return " ".join(parts)


def plural(label: str) -> str:
    """A naive English plural of a label ("category" → "categories")."""
    if label.endswith("s"):
        return label
    if label.endswith("y") and label[-2:-1] not in "aeiou":
        return label[:-1] + "ies"
    return label + "s"


def singular(name: str) -> str:
    """A table name as one thing ("watch_events" → "watch event")."""
    w = words(name)
    return w[:-3] + "y" if w.endswith("ies") else w[:-1] if w.endswith("s") else w


def measure_label(catalog: Catalog, m: Measure) -> str:
    """How the answer names a measure."""
    if m.kind == "metric":
        label = " ".join(lx.NAME_ABBREVIATIONS.get(w, w) if w in ("avg", "num", "cnt", "pct")
                         else w for w in lx.split_name(m.metric or ""))
        if m.func == "avg" and not m.per:
            label = f"average {label} per {singular(m.table)}"
    elif m.kind == "count":
        t = catalog.table(m.table)
        label = words(m.table)
        if t and t.synonyms and t.synonyms[0].lower() != label:
            label = f"{t.synonyms[0]} ({label})"
        label = f"number of {label}"
    elif m.kind == "distinct":
        label = f"distinct {column_words(m.column or '')} ({m.table})"
    else:
        names = {"avg": "average", "sum": "total", "min": "minimum", "max": "maximum",
                 "median": "median"}
        label = f"{names.get(m.func or 'sum', m.func)} {column_words(m.column or '')}"
    return f"{label} per {singular(m.per)}" if m.per else label


def measure_unit(catalog: Catalog, m: Measure) -> Unit:
    """The unit a measure's values are in."""
    if m.kind == "metric":
        metric = catalog.metrics[m.metric or ""]
        unit = unit_of(None, metric.unit)
        if unit[0] == "" and any(w in metric.name.lower() for w in ("rate", "share", "ratio")):
            return "percent", 1.0, "%"
        return unit
    if m.kind == "agg":
        info = column_info(catalog, m.table, m.column)
        if info is not None and info.kind == "bool":
            return "percent", 1.0, "%"
        return unit_of(info)
    return "", 1.0, ""


def filter_text(f: Filter) -> str:
    """A filter as the answer states it."""
    name = f"{f.table}.{f.column}"
    if f.op == "is":
        return f"{name} is {'true' if f.values[0] else 'false'}"
    shown = ", ".join(str(v) for v in f.values)
    if f.op == "in":
        return f"{name} {'not ' if f.negate else ''}in ({shown})"
    if f.op == "contains":
        return f"{name} {'does not contain' if f.negate else 'contains'} {shown}"
    op = "≠" if f.negate and f.op == "=" else f.op
    return f"{'not ' if f.negate and f.op != '=' else ''}{name} {op} {shown}"


def _latest(catalog: Catalog, table: str, column: str) -> dt.datetime | None:
    info = column_info(catalog, table, column)
    if info is None or not info.max:
        return None
    try:
        return dt.datetime.fromisoformat(info.max[:19])
    except ValueError:
        return None


def _grain(d: Dim, catalog: Catalog, window: Window | None) -> str:
    if d.grain and d.grain != "auto":
        return d.grain
    info = column_info(catalog, d.table, d.column)
    lo = window.start if window and window.start else None
    hi = window.end if window and window.end else None
    try:
        lo = lo or dt.date.fromisoformat((info.min or "")[:10]) if info else lo
        hi = hi or dt.date.fromisoformat((info.max or "")[:10]) if info else hi
    except ValueError:
        return "day"
    span = (hi - lo).days if lo and hi else 90
    return "day" if span <= 31 else "week" if span <= 200 else "month"


def label_column(catalog: Catalog, table: str) -> str | None:
    """A column that names a row of ``table`` for a person (name, title, handle...)."""
    t = catalog.table(table)
    if t is None:
        return None
    key = primary_key(t)
    for hint in lx.LABEL_HINTS:
        for c in t.columns:
            if hint in c.name.lower() and c.kind == "text" and c.name != key:
                return c.name
    return None


def _dates(frame: Frame, catalog: Catalog, src: From
           ) -> tuple[Window | None, str, tuple[str, str]]:
    if frame.time_column is None:
        note = "no date filter" if frame.time is None else \
            f"no date filter ({frame.fact} has no date column to filter on)"
        return None, note, ("", "")
    table, column = frame.time_column
    info = column_info(catalog, table, column)
    latest = _latest(catalog, table, column)
    lo, hi = ((info.min or "")[:10], (info.max or "")[:10]) if info else ("", "")
    try:
        after = (dt.date.fromisoformat(hi) + dt.timedelta(days=1)).isoformat() if hi else ""
    except ValueError:
        after = ""
    if frame.time is None or latest is None or info is None:
        return None, f"all dates in the data ({table}.{column}: {lo} to {hi})", (lo, after)
    window = resolve(frame.time, latest)
    span = (window.start.isoformat() if window.start else lo,
            window.end.isoformat() if window.end else after)
    if window.start:
        src.condition(table, exp.GTE(this=col(table, column),
                                     expression=time_literal(window.start, info.type)))
    if window.end:
        src.condition(table, exp.LT(this=col(table, column),
                                    expression=time_literal(window.end, info.type)))
    return window, f"{window.label}, on {table}.{column}", span


def _dim_exprs(frame: Frame, catalog: Catalog, src: From, window: Window | None
               ) -> tuple[list[tuple[exp.Expression, OutCol]], str | None]:
    out: list[tuple[exp.Expression, OutCol]] = []
    unnest = None
    for d in frame.dims:
        if d.grain:
            g = _grain(d, catalog, window)
            expr = exp.func("date_trunc", exp.Literal.string(g), src.column(d.table, d.column or ""))
            out.append((expr, OutCol(g, "dim", g)))
        elif d.column is None:
            t = catalog.table(d.table)
            key = primary_key(t) if t else None
            if key is None:
                raise PlanError(f"{d.table} has no key column to group by")
            out.append((src.column(d.table, key), OutCol(key, "dim", words(d.table))))
            label = label_column(catalog, d.table)
            if label:
                out.append((src.column(d.table, label), OutCol(label, "label", words(label))))
        else:
            info = column_info(catalog, d.table, d.column)
            name = singular(d.column) if info is not None and info.kind == "list" else d.column
            if any(o.name == name for _, o in out):
                name = f"{d.table}_{name}"
            expr = src.column(d.table, d.column)
            if info is not None and info.kind == "list":
                unnest = name
                expr = exp.Unnest(expressions=[expr])
            out.append((expr, OutCol(name, "dim", column_words(d.column))))
    return out, unnest


def _share_condition(frame: Frame) -> tuple[list[Filter], Filter | None]:
    if frame.intent != "share" or frame.dims or not frame.filters:
        return list(frame.filters), None
    flags = [f for f in frame.filters if f.op == "is"]
    cond = flags[-1] if flags else frame.filters[-1]
    return [f for f in frame.filters if f is not cond], cond


def plan_frame(frame: Frame, catalog: Catalog, *, safe: bool = False) -> Plan:
    """The run_sql call (or describe call) that answers ``frame``.

    ``safe`` builds the retry after a failed query (see :func:`filter_condition`).

    Raises:
        PlanError: when the frame's tables cannot be related by their keys.
    """
    if frame.intent == "describe":
        if frame.subject:
            return Plan("describe_table", {"table": frame.subject}, "describe")
        return Plan("list_tables", {}, "describe")
    fact = frame.fact or ""
    src = From(catalog, fact)
    window, dates, span = _dates(frame, catalog, src)
    filters, cond = _share_condition(frame)
    for f in filters:
        src.condition(f.table, filter_condition(catalog, f, safe))
    if frame.intent == "list":
        return _list_plan(frame, catalog, src, dates)
    dims, unnest = _dim_exprs(frame, catalog, src, window)
    measures: list[tuple[exp.Expression, OutCol]] = []
    for n, m in enumerate(frame.measures):
        alias = (m.metric or m.kind if m.kind in ("metric", "count") else
                 f"{m.func or 'distinct'}_{m.column}") + (f"_per_{singular(m.per)}"
                                                          .replace(" ", "_") if m.per else "")
        if any(o.name == alias for _, o in dims + measures):
            alias = f"{alias}_{n + 1}"
        expr = measure_expr(catalog, m, src)
        label, unit = measure_label(catalog, m), measure_unit(catalog, m)
        if cond is not None and n == 0:
            condition = filter_condition(catalog, cond)
            if not src.reach(cond.table):
                raise PlanError(f"I could not relate {cond.table} to {fact} to take a share")
            measures.append((restrict(expr, condition), OutCol("part", "part", label, unit)))
            measures.append((expr, OutCol("total", "total", label, unit)))
            continue
        measures.append((expr, OutCol(alias, "measure", label, unit)))
        if frame.share and frame.dims and n == 0 and additive(catalog, m) and not unnest:
            share = exp.Mul(this=exp.Literal.number(100), expression=exp.Div(
                this=exp.cast(expr.copy(), "DOUBLE"),
                expression=exp.Window(this=exp.Sum(this=expr.copy()))))
            measures.append((share, OutCol("share_pct", "share", f"share of {label}",
                                           ("percent", 1.0, "%"))))
    query = _assemble(frame, src, dims, measures, unnest)
    title = measures[0][1].label.capitalize()
    if dims:
        title += " by " + " and ".join(o.label for _, o in dims if o.role == "dim")
    if window:
        title += f" ({window.label.split(' (')[0]})"
    notes = tuple(frame.notes) + (("shares are not shown for a measure that does not add up",)
                                  if frame.share and frame.dims and measures and not
                                  any(o.role == "share" for _, o in measures) else ())
    return Plan("run_sql", {"sql": query.sql(dialect=DIALECT), "title": title[:120]},
                frame.intent, tuple(o for _, o in dims + measures),
                tuple(filter_text(f) for f in filters), dates,
                filter_text(cond) if cond else "", notes, span)


def _assemble(frame: Frame, src: From, dims: list[tuple[exp.Expression, OutCol]],
              measures: list[tuple[exp.Expression, OutCol]], unnest: str | None) -> exp.Select:
    # Ordinals, not names: an alias may repeat a source column's name ("creator_id").
    keys = [exp.Literal.number(n + 1) for n in range(len(dims))]
    first = exp.Literal.number(len(dims) + 1) if measures else None
    if unnest is None:
        query = src.select(exp.select(*(e.as_(o.name) for e, o in dims + measures)))
    else:
        # Lists are unnested in an inner query; measures then aggregate its columns.
        inner_cols: dict[tuple[str, str], str] = {}
        outer_measures = []
        for e, o in measures:
            e = e.copy()
            for node in list(e.find_all(exp.Column)):
                alias = inner_cols.setdefault((node.table, node.name), f"{node.table}__{node.name}")
                node.replace(exp.column(alias))
            outer_measures.append((e, o))
        inner = exp.select(*(e.as_(o.name) for e, o in dims),
                           *(col(t, c).as_(a) for (t, c), a in inner_cols.items()))
        inner = src.select(inner)
        query = exp.select(*(exp.column(o.name) for _, o in dims),
                           *(e.as_(o.name) for e, o in outer_measures)) \
            .from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("base"))))
    if keys:
        query = query.group_by(*keys)
    desc = frame.order != "asc"
    if frame.intent == "trend":
        query = query.order_by(*keys)
    elif first is not None and keys:
        query = query.order_by(exp.Ordered(this=first, desc=desc, nulls_first=False), *keys)
    if frame.intent == "rank" and frame.limit:
        query = query.limit(frame.limit)
    return query


def _list_plan(frame: Frame, catalog: Catalog, src: From, dates: str) -> Plan:
    fact = frame.fact or ""
    t = catalog.table(fact)
    columns = [c.name for c in t.columns if c.kind != "list"][:6] if t else []
    if not columns:
        raise PlanError(f"{fact} has no columns to list")
    projections = [col(fact, c).as_(c) for c in columns]
    projections.append(exp.Window(this=exp.Count(this=exp.Star())).as_("matching_rows"))
    query = src.select(exp.select(*projections)).limit(LIST_LIMIT)
    outs = tuple(OutCol(c, "info", words(c)) for c in columns) + \
        (OutCol("matching_rows", "total", "matching rows"),)
    return Plan("run_sql", {"sql": query.sql(dialect=DIALECT), "title": f"Rows of {fact}"},
                "list", outs, tuple(filter_text(f) for f in frame.filters), dates)
