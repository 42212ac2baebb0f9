"""The statistics tools: summarize_metric, compare_groups, trend and correlate.

Metrics are aggregated per unit (per user by default) in SQL; only the per-unit vectors
reach pandas, where the tests run (:mod:`tools.stats_tests`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from sqlglot import exp

from tools import stats_tests as st
from tools.base import ToolContext, ToolOutput
from tools.errors import ToolArgumentError
from tools.joins import ColumnRef, Resolver, unit_word
from tools.stats_common import (
    MIN_CONCLUSIVE,
    Plan,
    cached,
    emit,
    fmt,
    no_rows,
    overlap_note,
    per_unit_query,
    plan,
    population_text,
)
from tools.stats_compare import compare, group_table, pair_reading, rounded
from tools.stats_trend import trend

__all__ = ["compare_groups", "correlate", "summarize_metric", "trend"]

MAX_GROUPS = 12
SUMMARY_ROWS = 15


def summarize_metric(ctx: ToolContext, metric: str, by: list[str] | None = None,
                     filters: dict[str, list[str]] | None = None, start: str | None = None,
                     end: str | None = None, per: str | None = None) -> ToolOutput:
    """Summarize a metric per unit (per user by default): count, mean with 95% CI, median.

    Use for "how much X does a typical user have", optionally broken down by one or more
    dimensions. The metric is aggregated per unit first (e.g. each user's total watch
    time), then described across units.

    Args:
        metric: a named metric (e.g. "watch_time"), or a column aggregate
            "agg:table.column" (agg: sum, avg, median, min, max, count, count_distinct,
            rate), "count:table", or "table.column".
        by: dimension columns to group by ("column" or "table.column"), possibly in a
            table joined to the metric's table (e.g. "device_os", "category").
        filters: {column: [values]} to keep; lists match when any element matches.
        start: first day (ISO date) of the window on the metric's time column.
        end: last day (ISO date) of the window.
        per: the unit column (e.g. "user_id", "video_id"); default: the metric table's
            person key, else its own id.
    """
    p = plan(ctx, metric, dims=by or [], filters=filters, start=start, end=end, per=per)
    args = {"metric": metric, "by": by, "filters": filters, "start": start, "end": end,
            "per": per}
    return emit(ctx, cached(ctx, [p], "summarize_metric", args, lambda: _summarize(ctx, p)))


def _summarize(ctx: ToolContext, p: Plan) -> dict[str, Any]:
    sql = per_unit_query(p)
    df = ctx.workspace.frame(sql)
    df = df[np.isfinite(df["value"].astype(float))]
    if df.empty:
        raise no_rows(p)
    keys = [f"g{i}" for i in range(len(p.dims))]
    table = group_table(df, keys, proportion=p.metric.proportion, additive=p.metric.additive)
    floor = ctx.settings.privacy_floor
    withheld = table[table["units"] < floor]
    names = [r.name for r in p.dims]
    names = [r.label if names.count(r.name) > 1 else r.name for r in p.dims]
    shown = table[table["units"] >= floor].rename(
        columns={f"g{i}": n for i, n in enumerate(names)})
    unit, vu = p.unit_name, p.metric.unit
    overlap = overlap_note(p, df)
    overall = None
    if len(df) and not overlap:
        overall = st.mean_ci(df["value"])
    elif len(df) and p.metric.additive and not any(r.info.kind == "list" for r in p.dims):
        overall = st.mean_ci(df.groupby("unit")["value"].sum())  # a unit's total over groups
    summary: dict[str, Any] = {
        "metric": p.metric.label, "measure": p.metric.sql, "unit_of_analysis": f"per {unit}",
        "population": population_text(p), "window": p.window, "filters": p.filters_text(),
        "units": int(df["unit"].nunique()), "groups": len(shown),
        "rows": [rounded(r) for r in shown.head(SUMMARY_ROWS).to_dict("records")],
    }
    if overlap:
        summary["note"] = overlap
    if len(withheld):
        summary["withheld_groups"] = (f"{len(withheld)} groups with fewer than {floor} "
                                      f"{unit}s are not described (privacy floor)")
    if len(shown) == 0:
        reading = f"No group has at least {floor} {unit}s, so nothing is described."
    elif not keys:
        r = shown.iloc[0]
        reading = (f"Per {unit}, {p.metric.label} averages {fmt(r['mean'], vu)} (95% CI "
                   f"{fmt(r['ci_low'])}–{fmt(r['ci_high'], vu)}; median "
                   f"{fmt(r['median'], vu)}) over {int(r['units']):,} {unit}s, {p.window}.")
    else:
        top = shown.sort_values("mean", ascending=False)
        hi, lo = (", ".join(str(row[n]) for n in names) for row in (top.iloc[0], top.iloc[-1]))
        reading = (f"Per {unit}, {p.metric.label} is highest for {hi} "
                   f"({fmt(top.iloc[0]['mean'], vu)}) and lowest for {lo} "
                   f"({fmt(top.iloc[-1]['mean'], vu)}) across {len(shown)} groups, {p.window}")
        reading += (f"; overall mean {fmt(overall.mean, vu)} per {unit}." if overall is not None
                    else ".")
    summary["reading"] = reading
    return {"summary": summary, "sql": sql, "rows": len(shown),
            "tables": [("table_ref", f"{p.metric.label} per {unit}", shown)]}


def compare_groups(ctx: ToolContext, metric: str, dimension: str,
                   groups: list[str] | None = None,
                   filters: dict[str, list[str]] | None = None, start: str | None = None,
                   end: str | None = None, per: str | None = None) -> ToolOutput:
    """Test whether a metric's difference between groups is real (e.g. do iOS users watch
    more than Android users?); plain totals per group are run_sql.

    Aggregates the metric per unit first (never per event), then: Welch's t-test for means
    (Mann-Whitney as a robustness check) or, for rates such as a completion rate, a
    two-proportion z-test with cluster-robust errors; with more than two groups an omnibus
    test plus Holm-corrected pairwise tests. Reports effect sizes and a plain reading.

    Args:
        metric: a named metric (e.g. "watch_time"), or "agg:table.column" (agg: sum, avg,
            median, min, max, count, count_distinct, rate), "count:table", "table.column".
        dimension: the column whose values form the groups (e.g. "device_os").
        groups: the values to compare (e.g. ["ios", "android"]); default: the largest groups.
        filters: {column: [values]} to keep.
        start: first day (ISO date) of the window.
        end: last day (ISO date) of the window.
        per: the unit column (default: the metric table's person key, e.g. user_id).
    """
    if groups is not None and len(groups) == 1:
        raise ToolArgumentError("give at least two groups to compare, or none for all groups")
    p = plan(ctx, metric, dims=[dimension], filters=filters, start=start, end=end, per=per)
    args = {"metric": metric, "dimension": dimension, "groups": groups, "filters": filters,
            "start": start, "end": end, "per": per}
    return emit(ctx, cached(ctx, [p], "compare_groups", args,
                            lambda: _compare(ctx, p, groups)))


def _compare(ctx: ToolContext, p: Plan, groups: list[str] | None) -> dict[str, Any]:
    dim = p.dims[0]
    sql = per_unit_query(p, {0: [str(g) for g in groups]} if groups else None)
    df = ctx.workspace.frame(sql)
    df = df[np.isfinite(df["value"].astype(float))]
    if df.empty:
        raise no_rows(p)
    sizes = df.groupby("g0").size().sort_values(ascending=False, kind="stable")
    notes: list[str] = []
    if groups:
        lookup = {str(v).lower(): str(v) for v in sizes.index}
        missing = [g for g in groups if str(g).lower() not in lookup]
        if missing:
            known = list(dim.info.values[:30]) or [str(v) for v in sizes.index[:30]]
            raise ToolArgumentError(
                f"no {p.unit_name}s in group(s) {missing} of {dim.label} in this window; "
                f"values are: {', '.join(known)}")
        names = [lookup[str(g).lower()] for g in groups]
    else:
        names = [str(v) for v in sizes.index[:MAX_GROUPS]]
        if len(sizes) > MAX_GROUPS:
            notes.append(f"only the {MAX_GROUPS} largest of {len(sizes)} groups are compared")
    floor = ctx.settings.privacy_floor
    withheld = [n for n in names if sizes[n] < floor]
    names = [n for n in names if sizes[n] >= floor]
    table = group_table(df[df["g0"].isin(names)], ["g0"], proportion=p.metric.proportion,
                        additive=p.metric.additive).rename(columns={"g0": dim.name})
    unit, label = p.unit_name, p.metric.label
    summary: dict[str, Any] = {
        "metric": label, "measure": p.metric.sql, "dimension": dim.label,
        "unit_of_analysis": f"per {unit}", "population": population_text(p),
        "window": p.window, "filters": p.filters_text(),
        "groups": [rounded(r) for r in table.to_dict("records")],
    }
    overlap = overlap_note(p, df)
    if overlap:
        notes.append(overlap)
    if withheld:
        notes.append(f"{len(withheld)} group(s) have fewer than {floor} {unit}s and are not "
                     "described (privacy floor)")
    small = [n for n in names if sizes[n] < MIN_CONCLUSIVE]
    if small:
        notes.append(f"group(s) {small} have fewer than {MIN_CONCLUSIVE} {unit}s: too small "
                     "to conclude anything")
    if len(names) < 2:
        summary["notes"] = notes
        summary["reading"] = (f"Fewer than two groups of {dim.name} have at least {floor} "
                              f"{unit}s, so no comparison is possible.")
        return {"summary": summary, "sql": sql, "rows": len(table),
                "tables": [("table_ref", f"{label} by {dim.name}", table)]}
    result = compare(df[df["g0"].isin(names)], names, proportion=p.metric.proportion,
                     given=bool(groups))
    pairs = [rounded(pair) for pair in result["pairs"]]
    summary["pairwise"] = pairs[:SUMMARY_ROWS]
    if "omnibus" in result:
        summary["omnibus"] = rounded(result["omnibus"])
    summary["notes"] = notes
    summary["reading"] = _compare_reading(result, dim.name, label, unit, p, small)
    return {"summary": summary, "sql": sql, "rows": len(table),
            "tables": [("table_ref", f"{label} by {dim.name}", table),
                       ("pairs_ref", f"{label} by {dim.name}: pairwise tests",
                        pd.DataFrame(result["pairs"]))]}


def _compare_reading(result: dict[str, Any], dim: str, label: str, unit: str, p: Plan,
                     small: list[str]) -> str:
    pairs = result["pairs"]
    caveat = (f" Groups {small} are too small (< {MIN_CONCLUSIVE} {unit}s) to conclude "
              "anything.") if small else ""
    if "omnibus" not in result:
        return pair_reading(pairs[0], dim, label, unit, p.metric.unit, p.metric.proportion) + caveat
    om = result["omnibus"]
    sig = [q for q in pairs if q.get("p_holm", q["p"]) < st.ALPHA]
    verdict = "differs" if om["p"] < st.ALPHA else "does not differ significantly"
    text = (f"{label} per {unit} {verdict} across {dim} ({om['test']}, {st.format_p(om['p'])}); "
            f"{len(sig)} of {len(pairs)} pairwise differences are significant after Holm "
            "correction.")
    if sig:
        best = max(sig, key=lambda q: abs(q.get("relative_difference_pct") or 0))
        text += " Largest: " + pair_reading(best, dim, label, unit, p.metric.unit,
                                            p.metric.proportion)
    return text + caveat


def correlate(ctx: ToolContext, x: str, y: str, per: str | None = None,
              method: str = "spearman", filters: dict[str, list[str]] | None = None,
              start: str | None = None, end: str | None = None) -> ToolOutput:
    """Correlate two metrics across units (e.g. per user: watch time vs number of searches).

    Each metric is aggregated per unit first; reports Pearson and Spearman coefficients
    with 95% CIs and p-values, and n. Correlation is not causation.

    Args:
        x: first metric: a named metric (e.g. "watch_time"), "agg:table.column" (agg: sum,
            avg, median, min, max, count, count_distinct, rate), "count:table", "table.column".
        y: second metric, same forms (may be on another table sharing the unit column).
        per: the unit column shared by both (default: x's table's person key, e.g. user_id).
        method: "spearman" (rank, robust to skew; default) or "pearson" for the headline.
        filters: {column: [values]} applied to each metric where the column is reachable.
        start: first day (ISO date) of the window on each metric's time column.
        end: last day (ISO date) of the window.
    """
    method = method.lower().strip()
    if method not in ("spearman", "pearson"):
        raise ToolArgumentError("method must be 'spearman' or 'pearson'")
    px = plan(ctx, x, start=start, end=end, per=per)
    if px.unit is None:
        raise ToolArgumentError(f"{px.metric.table} has no identifier column to aggregate per")
    unit_name = per or px.unit.name
    py = plan(ctx, y, start=start, end=end, per=unit_name)
    for q in (px, py):
        q.filters = _reachable_filters(q.resolver, filters)
    missing = [c for c in (filters or {}) if not any(
        c.lower() in (f.label.lower(), f.name.lower()) for q in (px, py) for f, _ in q.filters)]
    if missing:
        raise ToolArgumentError(f"filter column(s) {missing} cannot be joined to either metric")
    args = {"x": x, "y": y, "per": unit_name, "method": method, "filters": filters,
            "start": start, "end": end}
    return emit(ctx, cached(ctx, [px, py], "correlate", args,
                            lambda: _correlate(ctx, px, py, method)))


def _reachable_filters(resolver: Resolver, filters: dict[str, list[str]] | None
                       ) -> list[tuple[ColumnRef, list[str]]]:
    out = []
    for column, values in (filters or {}).items():
        try:
            ref = resolver.resolve(column, "filter column")
        except ToolArgumentError:
            continue
        out.append((ref, [str(v) for v in (values if isinstance(values, list) else [values])]))
    return out


def _side(p: Plan, name: str) -> exp.Expression:
    b = p.builder()
    unit_col = b.col(p.unit)
    where = [*p.conditions(b), exp.Not(this=exp.Is(this=unit_col.copy(), expression=exp.Null()))]
    cols = [exp.alias_(unit_col, "unit"),
            exp.alias_(b.base_expr(p.metric.expr), name)]
    return b.select(cols, where, [exp.column("unit")]).subquery(name + "_per_unit")


def _correlate(ctx: ToolContext, px: Plan, py: Plan, method: str) -> dict[str, Any]:
    vx = exp.column("x", table="x_per_unit")
    vy = exp.column("y", table="y_per_unit")
    pick = [exp.alias_(exp.Coalesce(this=exp.column("unit", table="x_per_unit"),
                                    expressions=[exp.column("unit", table="y_per_unit")]), "unit"),
            exp.alias_(exp.Coalesce(this=vx, expressions=[exp.Literal.number(0)])
                       if px.metric.additive else vx, "x"),
            exp.alias_(exp.Coalesce(this=vy, expressions=[exp.Literal.number(0)])
                       if py.metric.additive else vy, "y")]
    on = exp.EQ(this=exp.column("unit", table="x_per_unit"),
                expression=exp.column("unit", table="y_per_unit"))
    join = "FULL" if px.metric.additive and py.metric.additive else "INNER"
    if px.metric.additive != py.metric.additive:
        join = "LEFT" if not px.metric.additive else "RIGHT"
    query = exp.select(*pick).from_(_side(px, "x")).join(_side(py, "y"), on=on, join_type=join)
    sql = query.sql(dialect="duckdb")
    df = ctx.workspace.frame(sql).dropna(subset=["x", "y"])
    xs, ys = df["x"].to_numpy(dtype=float), df["y"].to_numpy(dtype=float)
    n = len(df)
    unit = unit_word(px.unit.name)
    if n == 0:
        raise no_rows(px)
    if n < ctx.settings.privacy_floor or n < 4:
        summary = {"n": n, "reading": f"Only {n} {unit}s have both values; too few to correlate."}
        return {"summary": summary, "sql": sql, "rows": n}
    pr, sr = sps.pearsonr(xs, ys), sps.spearmanr(xs, ys)
    pearson = _coef(float(pr.statistic), float(pr.pvalue), n, spearman=False)
    spearman = _coef(float(sr.statistic), float(sr.pvalue), n, spearman=True)
    head = spearman if method == "spearman" else pearson
    symbol = "Spearman ρ" if method == "spearman" else "Pearson r"
    r = head["r"]
    strength = _strength(r)
    direction = "positively" if r > 0 else "negatively"
    zero_fill = [q.metric.label for q in (px, py) if q.metric.additive]
    population = (f"{unit}s with at least one row for either metric" if join == "FULL" else
                  f"{unit}s with a value of both metrics" if join == "INNER" else
                  f"{unit}s with a value of the non-additive metric")
    if zero_fill and join != "INNER":
        population += f"; missing {', '.join(zero_fill)} counted as 0"
    reading = (f"Across {n:,} {unit}s, {px.metric.label} and {py.metric.label} are "
               + ("not meaningfully correlated" if strength == "negligible" else
                  f"{strength} {direction} correlated")
               + f" ({symbol} = {r:.2f}, 95% CI {head['ci_low']:.2f} to {head['ci_high']:.2f}, "
               f"{st.format_p(head['p'])}); correlation is not causation.")
    deciles = _deciles(df)
    summary = {"x": px.metric.label, "y": py.metric.label, "unit_of_analysis": f"per {unit}",
               "population": population, "window": px.window, "n": n,
               "pearson": rounded(pearson), "spearman": rounded(spearman),
               "filters": {**px.filters_text(), **py.filters_text()}, "reading": reading}
    return {"summary": summary, "sql": sql, "rows": n,
            "tables": [("table_ref", f"{py.metric.label} by decile of {px.metric.label}",
                        deciles)]}


def _coef(r: float, p: float, n: int, *, spearman: bool) -> dict[str, Any]:
    """A coefficient with a Fisher-z 95% CI (Bonett-Wright variance for Spearman)."""
    r = max(min(r, 0.999999), -0.999999)
    se = math.sqrt((1 + r * r / 2) / (n - 3)) if spearman else 1 / math.sqrt(n - 3)
    z = math.atanh(r)
    return {"r": r, "ci_low": math.tanh(z - 1.96 * se), "ci_high": math.tanh(z + 1.96 * se),
            "p": p}


def _strength(r: float) -> str:
    a = abs(r)
    return ("negligible" if a < 0.1 else "weakly" if a < 0.3 else "moderately" if a < 0.5
            else "strongly" if a < 0.7 else "very strongly")


def _deciles(df: pd.DataFrame) -> pd.DataFrame:
    bins = pd.qcut(df["x"].rank(method="first"), q=min(10, len(df)), labels=False)
    out = df.groupby(bins).agg(units=("x", "size"), x_mean=("x", "mean"),
                               y_mean=("y", "mean"), y_median=("y", "median"))
    out.index.name = "x_decile"
    return out.reset_index().assign(x_decile=lambda d: d["x_decile"] + 1)
