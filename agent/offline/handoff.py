"""Hand a question to an analysis tool, when that tool is bound: which tools, in which order,
with which arguments, filled from the frame.

The statistics tools take a metric spec ("watch_time", "count:videos", "avg:t.column"),
``filters`` as ``{"table.column": [values]}`` and ``start``/``end`` days; the segment tools
mostly run with their defaults. A frame the tool cannot express (a negated filter, a numeric
condition, a window on another table) stays with run_sql.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from typing import Any

from agent.offline import lexicon as lx
from agent.offline.frame import Frame, Measure, column_info, time_column
from agent.offline.joins import paths_from, primary_key
from agent.offline.planner import _latest
from agent.offline.timewords import resolve
from tools.catalog import Catalog

PREVIOUS_REF = "$previous_ref"  # an argument filled with the ref of the step before


@dataclass(frozen=True)
class Step:
    """One tool call of a plan."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)


def metric_spec(catalog: Catalog, m: Measure) -> str | None:
    """The statistics tools' name for a measure."""
    if m.kind == "metric":
        metric = catalog.metrics.get(m.metric or "")
        sql = (metric.sql if metric else "").strip()
        if m.func == "avg" and sql.upper().startswith("SUM(") and sql.endswith(")"):
            return f"avg:{m.table}.{sql[4:-1].strip()}"
        return m.metric
    if m.kind == "count":
        return f"count:{m.table}"
    if m.kind == "distinct":
        return f"count_distinct:{m.table}.{m.column}"
    info = column_info(catalog, m.table, m.column)
    func = "rate" if info is not None and info.kind == "bool" else (m.func or "sum")
    return f"{func}:{m.table}.{m.column}"


def _filters(frame: Frame, skip: tuple[str, str] | None = None) -> dict[str, list[str]] | None:
    out: dict[str, list[str]] = {}
    for f in frame.filters:
        if (f.table, f.column) == skip:
            continue
        if f.negate and f.op != "is" or f.op not in ("=", "in", "contains", "is"):
            return None
        values = ["true" if v is True else "false" if v is False else str(v) for v in f.values]
        out[f"{f.table}.{f.column}"] = values
    return out


def _window(frame: Frame, catalog: Catalog) -> dict[str, str] | None:
    """start/end days, or None when the window is not on the measure's own time axis."""
    if frame.time is None:
        return {}
    if frame.time_column is None or frame.fact is None:
        return None
    own = time_column(catalog, frame.fact)
    reach = paths_from(catalog, frame.fact)
    if frame.time_column[0] not in reach or (own and frame.time_column != (frame.fact, own)):
        return None
    latest = _latest(catalog, *frame.time_column)
    if latest is None:
        return None
    window = resolve(frame.time, latest)
    out = {}
    if window.start:
        out["start"] = window.start.isoformat()
    if window.end:
        out["end"] = (window.end - dt.timedelta(days=1)).isoformat()
    return out


def _numbers(text: str) -> list[int]:
    found = [int(n) for n in re.findall(r"\b(\d{1,3})\b", text)]
    found += [lx.NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", text.lower())
              if w in lx.NUMBER_WORDS]
    return found


def _unit_key(catalog: Catalog, fact: str, entity: str) -> str | None:
    if entity == fact:
        return primary_key(catalog.tables[fact])
    path = paths_from(catalog, fact).get(entity)
    return path[0].src_col if path and len(path) == 1 else None


def stats_step(frame: Frame, catalog: Catalog, bound: set[str]) -> Step | None:
    """compare_groups / trend / summarize_metric for a frame they can express, else None."""
    if not frame.measures or frame.fact is None:
        return None
    m = frame.measures[0]
    spec = metric_spec(catalog, replace(m, per=None))
    window = _window(frame, catalog)
    if spec is None or window is None:
        return None
    if frame.intent == "compare" and "compare_groups" in bound:
        dims = [d for d in frame.dims if d.column and not d.grain]
        if not dims:
            return None
        d = dims[0]
        groups = next((list(map(str, f.values)) for f in frame.filters
                       if (f.table, f.column) == (d.table, d.column) and f.op == "in"), None)
        filters = _filters(frame, skip=(d.table, d.column))
        if filters is None:
            return None
        args: dict[str, Any] = {"metric": spec, "dimension": f"{d.table}.{d.column}"}
        if groups:
            args["groups"] = groups
        key = primary_key(catalog.tables[frame.fact])
        if frame.fact in frame.named and key:  # "are <orders> worth more": per order
            args["per"] = key
        return Step("compare_groups", _clean({**args, "filters": filters, **window}))
    if frame.intent == "trend" and "trend" in bound:
        grain_dim = next(d for d in frame.dims if d.grain)
        if grain_dim.grain not in ("day", "week", "auto"):
            return None
        filters = _filters(frame)
        others = [d for d in frame.dims if not d.grain and d.column]
        if filters is None:
            return None
        grain = grain_dim.grain if grain_dim.grain != "auto" else \
            ("day" if _span(frame, catalog, window) <= 31 else "week")
        args = {"metric": spec, "grain": grain, "filters": filters, **window}
        if others:
            args["by"] = f"{others[0].table}.{others[0].column}"
        return Step("trend", _clean(args))
    if m.per and "summarize_metric" in bound:
        key = _unit_key(catalog, m.table, m.per)
        filters = _filters(frame)
        if key is None or filters is None:
            return None
        by = [f"{d.table}.{d.column}" for d in frame.dims if d.column and not d.grain]
        return Step("summarize_metric", _clean({"metric": spec, "by": by, "per": key,
                                                "filters": filters, **window}))
    return None


def _span(frame: Frame, catalog: Catalog, window: dict[str, str]) -> int:
    """Days between the window's (or the data's) first and last day."""
    info = column_info(catalog, *frame.time_column) if frame.time_column else None
    lo = window.get("start") or (info.min or "")[:10] if info else window.get("start")
    hi = window.get("end") or (info.max or "")[:10] if info else window.get("end")
    try:
        return (dt.date.fromisoformat(hi or "") - dt.date.fromisoformat(lo or "")).days
    except ValueError:
        return 90


def _shared_unit(catalog: Catalog, a: str, b: str) -> str | None:
    """A key column both tables hold (the unit to correlate per), None when the same."""
    if a == b:
        return None
    ta, tb = catalog.tables[a], catalog.tables[b]
    shared = [c.name for c in ta.columns if c.is_key and tb.column(c.name) is not None]
    keys = {primary_key(ta), primary_key(tb)}
    shared.sort(key=lambda name: (name not in keys, name))
    return shared[0] if shared else None


def _clean(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if v not in (None, {}, [], "")}


def tool_steps(frame: Frame, catalog: Catalog, bound: set[str],
               params: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> list[Step]:
    """The steps for a question that asks for an analysis tool (frame.tool)."""
    tool = frame.tool or ""
    text = frame.question.lower()
    numbers = [n for n in _numbers(text) if 2 <= n <= 100]
    steps: list[Step] = []
    if tool == "cluster_users":
        args = {"k": numbers[0]} if numbers and "k" in params.get(tool, (("k",),))[0] else {}
        steps = [Step("cluster_users", args), Step("label_segments", {"segment_kind": "cluster"})]
    elif tool == "detect_communities":
        steps = [Step("detect_communities", {}),
                 Step("label_segments", {"segment_kind": "community"})]
    elif tool == "label_segments":
        community = "communit" in text
        table = "user_communities" if community else "user_clusters"
        first = "detect_communities" if community else "cluster_users"
        steps = [] if catalog.table(table) else [Step(first, {})]
        steps.append(Step("label_segments", {"segment_kind": "community" if community
                                             else "cluster"}))
    elif tool == "correlate" and len(frame.measures) >= 2:
        mx, my = frame.measures[:2]
        args = {"x": metric_spec(catalog, mx), "y": metric_spec(catalog, my)}
        per = _shared_unit(catalog, mx.table, my.table)
        if per:
            args["per"] = per
        steps = [Step("correlate", args)]
    elif tool == "draft_strategy":
        # Communities named first, so that the suggestions can say what each one is about.
        steps = [Step("detect_communities", {}),
                 Step("label_segments", {"segment_kind": "community"}),
                 Step("draft_strategy", generic_arguments(frame, params.get(tool, ((), ()))[0],
                                                          []))]
    elif tool == "label_items" or tool not in ("make_chart", "correlate"):
        steps = [Step(tool, generic_arguments(frame, params.get(tool, ((), ()))[0], numbers))]
    return [s for s in steps if s.tool in bound]


def generic_arguments(frame: Frame, params: tuple[str, ...], numbers: list[int]
                      ) -> dict[str, Any]:
    """Fill a tool's parameters by name from the frame (table, metric, group-by, a number)."""
    args: dict[str, Any] = {}
    measure = frame.measures[0] if frame.measures else None
    for p in params:
        low = p.lower()
        if low in ("table", "source") and (frame.fact or frame.subject):
            args[p] = frame.fact or frame.subject
        elif low in ("metric", "measure") and measure is not None:
            args[p] = measure.metric or measure.column or measure.table
        elif low in ("by", "group_by", "dimension") and frame.dims and frame.dims[0].column:
            args[p] = frame.dims[0].column
        elif low in ("k", "n", "top", "limit", "n_items", "count") and numbers:
            args[p] = numbers[0]
        elif low in ("question", "goal", "topic", "focus") and frame.question:
            args[p] = frame.question
    return args
