"""The ``trend`` tool: a metric per day or week, its growth, a test for a change of slope,
and per-group series ranked by growth (optionally as shares of the total)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
from sqlglot import exp

from tools import stats_tests as st
from tools.base import ToolContext, ToolOutput
from tools.errors import ToolArgumentError
from tools.joins import template
from tools.stats_common import (
    Plan,
    cached,
    emit,
    fmt,
    group_expr,
    no_rows,
    plan,
    window_text,
)
from tools.stats_compare import rounded

MIN_PRESENT = 0.75  # a group is ranked only when it has data in this share of periods
CANDIDATES = 100  # at most this many of the largest groups (or 3 x top) are ranked
FIGURE_GROUPS = 10


def trend(ctx: ToolContext, metric: str, grain: str = "day", by: str | None = None,
          share: bool = False, filters: dict[str, list[str]] | None = None,
          start: str | None = None, end: str | None = None, top: int = 10) -> ToolOutput:
    """Show how a metric moves over time (per day or week), how fast it grows, and whether
    its trend changed; with ``by``, which groups grow fastest.

    Use for "is X growing", "which hashtag/category is rising", "share of watch time per
    category over time". Weeks are 7-day blocks ending on the last day of the window; a
    partial block at the start is left out. Growth is last vs first period and a log-linear
    slope per period; the change test is a segmented regression with the best bend (sup-F,
    simulated p-value). List columns such as hashtags are unnested (a row counts for each
    of its values).

    Args:
        metric: a named metric (e.g. "watch_time"), or "agg:table.column" (agg: sum, avg,
            median, min, max, count, count_distinct, rate), "count:table", "table.column".
        grain: "day" or "week".
        by: a dimension whose groups get their own series, ranked by growth (e.g.
            "category", "hashtags", "country").
        share: with ``by``, use each group's share of the period's total (additive metrics
            only, e.g. share of watch time per hashtag).
        filters: {column: [values]} to keep.
        start: first day (ISO date) of the window.
        end: last day (ISO date) of the window.
        top: how many groups to list in the ranking.
    """
    grain = (grain or "day").lower().strip()
    if grain not in ("day", "week"):
        raise ToolArgumentError("grain must be 'day' or 'week'")
    if share and not by:
        raise ToolArgumentError("share=True needs a 'by' dimension (shares of what?)")
    p = plan(ctx, metric, dims=[by] if by else [], filters=filters, start=start, end=end,
             need_unit=bool(by))
    if p.time is None or p.start is None or p.end is None:
        raise ToolArgumentError(f"{p.metric.table} has no time column (nor a joined table), "
                                "so it has no trend")
    if share and not p.metric.additive:
        raise ToolArgumentError(
            f"{p.metric.label} is not a sum or count, so shares of it mean nothing; use a "
            "sum/count metric (e.g. 'sum:table.column') or share=False")
    top = max(1, min(int(top), 50))
    args = {"metric": metric, "grain": grain, "by": by, "share": share, "filters": filters,
            "start": start, "end": end, "top": top}
    return emit(ctx, cached(ctx, [p], "trend", args,
                            lambda: _trend(ctx, p, grain, share, top)))


def _periods(p: Plan, grain: str) -> tuple[list[dt.date], str]:
    assert p.start is not None and p.end is not None
    days = (p.end - p.start).days + 1
    if grain == "day":
        return [p.start + dt.timedelta(days=i) for i in range(days)], "daily"
    weeks = days // 7
    if weeks == 0:
        raise ToolArgumentError(f"the window has only {days} days; use grain='day'")
    first = p.end - dt.timedelta(days=7 * weeks - 1)
    note = f"weekly (7-day blocks ending {p.end}, each labelled by its first day)"
    if first > p.start:
        note += (f"; the partial block {p.start} to {first - dt.timedelta(days=1)} is left out")
    return [first + dt.timedelta(days=7 * i) for i in range(weeks)], note


def _period_expr(time_col: exp.Expression, grain: str, end: dt.date) -> exp.Expression:
    if grain == "day":
        return exp.cast(time_col, "DATE")
    last = exp.cast(exp.Literal.string(end.isoformat()), "DATE")
    return template("CAST(:last AS DATE) - CAST(7 * FLOOR(DATE_DIFF('day', CAST(:t AS DATE), "
                    ":last) / 7) + 6 AS INTEGER)", last=last, t=time_col)


def _series_query(p: Plan, grain: str, with_group: bool) -> str:
    unnest = p.dims[0] if with_group and p.dims[0].info.kind == "list" else None
    b = p.builder(unnest)
    assert p.time is not None and p.end is not None
    time_col = b.col(p.time)
    cols: list[exp.Expression] = [exp.alias_(_period_expr(time_col, grain, p.end), "period")]
    where = p.conditions(b)
    keys: list[exp.Expression] = [exp.column("period")]
    if with_group:
        g = group_expr(b, p.dims[0])
        cols.append(exp.alias_(g, "g0"))
        where.append(exp.Not(this=exp.Is(this=g.copy(), expression=exp.Null())))
        keys.append(exp.column("g0"))
    cols.append(exp.alias_(b.base_expr(p.metric.expr), "value"))
    return b.select(cols, where, keys).sql(dialect="duckdb")


def _sizes_query(p: Plan) -> str:
    unnest = p.dims[0] if p.dims[0].info.kind == "list" else None
    b = p.builder(unnest)
    g = group_expr(b, p.dims[0])
    cols: list[exp.Expression] = [exp.alias_(g, "g0"),
                                  exp.alias_(b.base_expr(p.metric.expr), "total")]
    if p.unit is not None:
        cols.append(exp.alias_(exp.Count(this=exp.Distinct(expressions=[b.col(p.unit)])),
                               "units"))
    where = [*p.conditions(b), exp.Not(this=exp.Is(this=g.copy(), expression=exp.Null()))]
    return b.select(cols, where, [exp.column("g0")]).sql(dialect="duckdb")


def _frame_by_period(df: pd.DataFrame, periods: list[dt.date], fill: float) -> pd.DataFrame:
    df = df.assign(period=pd.to_datetime(df["period"]).dt.date)
    return df.set_index("period").reindex(periods).fillna(fill)


def _growth(values: np.ndarray) -> dict[str, Any]:
    first, last = float(values[0]), float(values[-1])
    slope, per_period = st.log_linear_growth(values)
    change = st.slope_change_test(values)
    out: dict[str, Any] = {
        "first": first, "last": last,
        "growth_first_to_last_pct": (last / first - 1) * 100 if first > 0 else None,
        "growth_per_period_pct": per_period * 100 if math.isfinite(per_period) else None,
    }
    if change is not None:
        out.update(change_index=change.index, change_p=change.p,
                   slope_before=change.slope_before, slope_after=change.slope_after)
    return out


def _trend(ctx: ToolContext, p: Plan, grain: str, share: bool, top: int) -> dict[str, Any]:
    periods, period_note = _periods(p, grain)
    p = dataclasses.replace(p, start=periods[0], end=periods[-1] + dt.timedelta(
        days=6 if grain == "week" else 0), bounded=True)
    fill = 0.0 if p.metric.additive else math.nan
    total_sql = _series_query(p, grain, with_group=False)
    raw = ctx.workspace.frame(total_sql)
    if raw.empty:
        raise no_rows(p)
    total = _frame_by_period(raw, periods, fill)["value"]
    overall = _growth(total.to_numpy(dtype=float))
    if p.metric.additive:  # a count or a sum also has a total over the window
        overall["total"] = float(np.nansum(total.to_numpy(dtype=float)))
    label, vu = p.metric.label, p.metric.unit
    summary: dict[str, Any] = {
        "metric": label, "measure": p.metric.sql, "grain": grain, "periods": len(periods),
        "window": window_text(p.start, p.end, True), "period_note": period_note,
        "time_column": p.time.label if p.time else None,
        "filters": p.filters_text(), "overall": rounded(overall),
    }
    if "change_index" in overall:
        summary["overall"]["change_at"] = periods[overall["change_index"]].isoformat()
    series = pd.DataFrame({"period": periods, "value": total.to_numpy()})
    figure_frame = series.assign(series=label)
    main_sql, rows = total_sql, len(periods)
    tables: list[tuple[str, str, pd.DataFrame]] = []
    reading = _overall_reading(label, vu, overall, periods, grain)
    if p.dims:
        dim = p.dims[0]
        main_sql = _series_query(p, grain, with_group=True)
        long = ctx.workspace.frame(main_sql)
        long["period"] = pd.to_datetime(long["period"]).dt.date
        wide = long.pivot_table(index="period", columns="g0", values="value", aggfunc="sum")
        wide = wide.reindex(periods).fillna(fill)
        wide.index.name = "period"
        sizes = ctx.workspace.frame(_sizes_query(p)).set_index("g0")
        floor = ctx.settings.privacy_floor
        eligible = sizes[sizes["units"] >= floor] if "units" in sizes else sizes
        candidates = eligible.sort_values("total", ascending=False).index[
            : max(CANDIDATES, 3 * top)]
        values = wide.div(total.replace(0, np.nan), axis=0) if share else wide
        ranking = []
        for g in candidates:
            v = values[g].to_numpy(dtype=float) if g in values else np.zeros(len(periods))
            present = float(np.mean(np.nan_to_num(v) > 0))
            row = {dim.name: g, "units": int(eligible.loc[g, "units"]) if "units" in eligible
                   else None, "total": float(eligible.loc[g, "total"]), "present": present}
            if present >= MIN_PRESENT:
                row.update(_growth(np.nan_to_num(v) if p.metric.additive else v))
            ranking.append(row)
        rank = pd.DataFrame(ranking, columns=None if ranking else [dim.name])
        if "growth_per_period_pct" not in rank:
            rank["growth_per_period_pct"] = np.nan
        rank = rank.sort_values("growth_per_period_pct", ascending=False, na_position="last",
                                kind="stable").reset_index(drop=True)
        ranked = rank[rank["growth_per_period_pct"].notna()]
        what = f"share of {label}" if share else label
        cols = [dim.name, "growth_per_period_pct", "growth_first_to_last_pct", "first", "last",
                "change_p"]
        summary.update(
            by=dim.label, measure_by_group=what, groups_considered=len(rank),
            groups_withheld=int(len(sizes) - len(eligible)),
            fastest_growing=[rounded({c: r.get(c) for c in cols})
                             for r in ranked.head(top).to_dict("records")],
            fastest_declining=[rounded({c: r.get(c) for c in cols})
                               for r in ranked.tail(3).iloc[::-1].to_dict("records")
                               if (r.get("growth_per_period_pct") or 0) < 0],
        )
        notes = [f"groups ranked: the {len(rank)} largest with at least {floor} units and data "
                 f"in {MIN_PRESENT:.0%} of periods (growth = log-linear slope of the "
                 f"{'share' if share else 'value'} per {grain})"]
        if dim.info.kind == "list" and share:
            notes.append(f"a row can carry several {dim.name}, so shares add up to more "
                         "than 100%")
        summary["notes"] = notes
        if eligible.empty:
            head = (f"Every {dim.name} group has fewer than {floor} units, so none is described "
                    "(privacy floor).")
        else:
            head = _group_reading(ranked, dim.name, what, grain, "share" if share else vu)
        reading = head + " " + reading
        show = list(ranked[dim.name].head(FIGURE_GROUPS))
        fig_vals = values[[g for g in show if g in values]]
        figure_frame = fig_vals.reset_index().melt(id_vars="period", var_name="series",
                                                   value_name="value")
        series = wide.reset_index().melt(id_vars="period", var_name=dim.name,
                                         value_name="value")
        series["share"] = series["value"] / series["period"].map(dict(zip(
            periods, total.to_numpy(), strict=True))).replace(0, np.nan)
        rows = len(series)
        tables.append(("ranking_ref", f"{what} by {dim.name}: growth ranking", rank))
    summary["reading"] = reading
    tables.insert(0, ("table_ref", f"{label} per {grain}", series))
    title = f"{'Share of ' + label if share else label} per {grain}"
    return {"summary": summary, "sql": main_sql, "rows": rows, "tables": tables,
            "figures": [("chart_ref", title, _figure(figure_frame, title, share))]}


def _overall_reading(label: str, vu: str, g: dict[str, Any], periods: list[dt.date],
                     grain: str) -> str:
    if g.get("growth_first_to_last_pct") is None:
        return f"{label} has no value in the first {grain}, so growth is undefined."
    text = (f"Overall {label} went from {fmt(g['first'], vu)} in the first {grain} "
            f"({periods[0]}) to {fmt(g['last'], vu)} in the last ({periods[-1]}), "
            f"{g['growth_first_to_last_pct']:+.1f}%")
    if g.get("growth_per_period_pct") is not None:
        text += f" ({g['growth_per_period_pct']:+.2f}% per {grain}, log-linear)"
    if g.get("total") is not None:
        text += f"; {fmt(g['total'], vu)} in total over the {len(periods)} {grain}s"
    if "change_p" in g:
        at = periods[g["change_index"]]
        verdict = "significant" if g["change_p"] < st.ALPHA else "not significant"
        text += (f"; the best change of slope, around {at}, is {verdict} (segmented regression "
                 f"sup-F, {st.format_p(g['change_p'])})")
    return text + "."


def _group_reading(ranked: pd.DataFrame, dim: str, what: str, grain: str, unit: str) -> str:
    if ranked.empty:
        return f"No {dim} group has enough data in every period to rank by growth."
    r = ranked.iloc[0]
    text = (f"By {what}, {dim}={r[dim]} grows fastest ({r['growth_per_period_pct']:+.1f}% per "
            f"{grain}; {fmt(r['first'], unit)} → {fmt(r['last'], unit)})")
    if len(ranked) > 1:
        s = ranked.iloc[1]
        text += f", ahead of {s[dim]} ({s['growth_per_period_pct']:+.1f}% per {grain})"
    return text + "."


def _figure(frame: pd.DataFrame, title: str, share: bool) -> str:
    import plotly.express as px

    fig = px.line(frame, x="period", y="value", color="series", title=title, markers=True)
    fig.update_layout(legend_title_text="", yaxis_title="share" if share else "value")
    if share:
        fig.update_yaxes(tickformat=".0%")
    return fig.to_json()
