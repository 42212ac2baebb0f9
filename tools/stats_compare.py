"""Group comparisons on per-unit values: the statistics behind ``compare_groups``.

Input is one row per (unit, group) with the unit's metric value (and, for rates, its
numerator and denominator); output is plain dicts ready for a summary.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from tools import stats_tests as st

MAX_ALL_PAIRS = 5  # up to this many groups every pair is tested; beyond, each vs the largest


def _round(value: Any, digits: int = 4) -> Any:
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            return None
        return float(f"{v:.{digits}g}")
    return value


def rounded(row: dict[str, Any]) -> dict[str, Any]:
    """A summary row with floats at 4 significant digits and NaN as None."""
    return {k: _round(v) for k, v in row.items()}


def group_table(df: pd.DataFrame, keys: list[str], *, proportion: bool,
                additive: bool) -> pd.DataFrame:
    """Per group: units, mean with 95% CI, median, sd (and the pooled rate for rates)."""
    rows = []
    grouped = df.groupby(keys, sort=False, dropna=True) if keys else [((), df)]
    for key, part in grouped:
        key = key if isinstance(key, tuple) else (key,)
        values = part["value"].to_numpy(dtype=float)
        ci = st.mean_ci(values)
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        row.update(units=int(len(part)), mean=ci.mean, ci_low=ci.lo, ci_high=ci.hi,
                   median=ci.median, sd=ci.sd)
        if additive:
            row["total"] = float(np.nansum(values))
        if proportion:
            rate, se = st.ratio_estimate(part["num"], part["den"])
            row.update(rate=rate, rate_ci_low=rate - 1.96 * se, rate_ci_high=rate + 1.96 * se,
                       trials=float(part["den"].sum()))
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values("units", ascending=False, kind="stable").reset_index(drop=True)


def _pair_continuous(a: str, b: str, va: np.ndarray, vb: np.ndarray) -> dict[str, Any]:
    w = st.welch(va, vb)
    mw = st.mann_whitney(va, vb)
    ma, mb = float(va.mean()), float(vb.mean())
    return {"a": a, "b": b, "n_a": len(va), "n_b": len(vb), "mean_a": ma, "mean_b": mb,
            "difference": ma - mb, "relative_difference_pct": (ma / mb - 1) * 100 if mb else None,
            "test": "Welch t", "statistic": w.stat, "df": w.df, "p": w.p,
            "cohens_d": st.cohens_d(va, vb), "mann_whitney_p": mw.p}


def _pair_rate(a: str, b: str, pa: pd.DataFrame, pb: pd.DataFrame) -> dict[str, Any]:
    z = st.ratio_z(pa["num"], pa["den"], pb["num"], pb["den"])
    ra, _ = st.ratio_estimate(pa["num"], pa["den"])
    rb, _ = st.ratio_estimate(pb["num"], pb["den"])
    ua = (pa["num"] / pa["den"]).to_numpy(dtype=float)
    ub = (pb["num"] / pb["den"]).to_numpy(dtype=float)
    h = 2 * math.asin(math.sqrt(min(max(ra, 0), 1))) - 2 * math.asin(math.sqrt(min(max(rb, 0), 1)))
    return {"a": a, "b": b, "n_a": len(pa), "n_b": len(pb), "rate_a": ra, "rate_b": rb,
            "difference_pp": (ra - rb) * 100,
            "relative_difference_pct": (ra / rb - 1) * 100 if rb else None,
            "test": "two-proportion z (cluster-robust by unit)", "statistic": z.stat, "p": z.p,
            "cohens_h": h, "per_unit_welch_p": st.welch(ua[np.isfinite(ua)],
                                                         ub[np.isfinite(ub)]).p}


def pairs_of(names: list[str], given: bool) -> list[tuple[str, str]]:
    """Pairs to test: all pairs for few groups (or when the groups were named), else each
    group against the largest (``names`` is ordered largest first unless given)."""
    if len(names) <= MAX_ALL_PAIRS or given:
        return list(itertools.combinations(names, 2))
    return [(names[0], other) for other in names[1:]]


def compare(df: pd.DataFrame, names: list[str], *, proportion: bool, given: bool
            ) -> dict[str, Any]:
    """Omnibus test (more than two groups) and pairwise tests with Holm correction."""
    parts = {n: df[df["g0"] == n] for n in names}
    result: dict[str, Any] = {}
    if len(names) > 2:
        if proportion:
            chi = st.rao_scott_chi2([(parts[n]["num"], parts[n]["den"]) for n in names])
            result["omnibus"] = {"test": "chi-square, Rao-Scott corrected for clustering",
                                 "statistic": chi.chi2, "df": chi.df, "p": chi.p,
                                 "design_effect": chi.design_effect, "cramers_v": chi.cramers_v}
        else:
            vals = [parts[n]["value"].to_numpy(dtype=float) for n in names]
            wa, kw = st.welch_anova(vals), st.kruskal(vals)
            result["omnibus"] = {"test": "Welch ANOVA", "statistic": wa.stat, "df2": wa.df,
                                 "p": wa.p, "kruskal_wallis_p": kw.p}
    pairs = []
    for a, b in pairs_of(names, given):
        if proportion:
            pairs.append(_pair_rate(a, b, parts[a], parts[b]))
        else:
            pairs.append(_pair_continuous(a, b, parts[a]["value"].to_numpy(dtype=float),
                                          parts[b]["value"].to_numpy(dtype=float)))
    if len(pairs) > 1:
        adjusted = st.holm([p["p"] if p["p"] is not None else 1.0 for p in pairs])
        for pair, adj in zip(pairs, adjusted, strict=True):
            pair["p_holm"] = float(adj)
    result["pairs"] = pairs
    return result


def pair_reading(pair: dict[str, Any], dim: str, metric: str, unit: str, value_unit: str,
                 proportion: bool) -> str:
    """One plain sentence about a two-group comparison."""
    from tools.stats_common import fmt

    p = pair.get("p_holm", pair["p"])
    sig = p is not None and p < st.ALPHA
    rel = pair.get("relative_difference_pct")
    adj = " after Holm correction" if "p_holm" in pair else ""
    a, b = f"{dim}={pair['a']}", f"{dim}={pair['b']}"
    if proportion:
        size = st.d_label(pair["cohens_h"])
        head = (f"{metric} is {fmt(pair['rate_a'], 'share')} for {a} vs "
                f"{fmt(pair['rate_b'], 'share')} for {b} ({pair['difference_pp']:+.1f} points"
                f"{'' if rel is None else f', {rel:+.1f}%'}; {pair['test']}, {st.format_p(p)}{adj})")
        tail = (f"the difference is significant and {size} (h = {pair['cohens_h']:.2f})" if sig
                else "the difference is not significant")
        return f"{head}; {tail}."
    d = pair["cohens_d"]
    values = f"{fmt(pair['mean_a'], value_unit)} vs {fmt(pair['mean_b'], value_unit)}"
    test = f"Welch t, {st.format_p(p)}{adj}"
    if sig:
        direction = "higher" if (rel or 0) >= 0 else "lower"
        text = (f"{a} has a {abs(rel or 0):.1f}% {direction} mean {metric} per {unit} than {b} "
                f"({values}; {test}); the difference is significant and {st.d_label(d)} "
                f"(d = {d:.2f})")
    else:
        text = (f"{a} and {b} do not differ significantly in mean {metric} per {unit} "
                f"({values}, {round(rel or 0, 1) + 0.0:+.1f}%; {test})")
    mw = pair.get("mann_whitney_p")
    if mw is not None:
        text += ("; Mann-Whitney agrees" if (mw < st.ALPHA) == sig else
                 f"; Mann-Whitney disagrees ({st.format_p(mw)}), so read it with care")
    return text + "."
