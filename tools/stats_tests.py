"""Pure statistical functions behind the statistics tools (numpy/scipy only, no database).

Everything takes plain arrays of per-unit values (one value per user, say), so the tools
can aggregate in SQL first and test here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05


@dataclass(frozen=True)
class MeanCI:
    """Mean of a sample with its confidence interval."""

    n: int
    mean: float
    lo: float
    hi: float
    sd: float
    median: float


@dataclass(frozen=True)
class TestResult:
    """A test statistic, its degrees of freedom (when it has them) and its p-value."""

    stat: float
    p: float
    df: float | None = None


@dataclass(frozen=True)
class BreakResult:
    """A continuous piecewise-linear fit with one change of slope, and its test."""

    index: int  # first period of the second segment
    f_stat: float
    p: float
    slope_before: float
    slope_after: float


def _arr(x: object) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    return a[np.isfinite(a)]


def mean_ci(x: object, level: float = 0.95) -> MeanCI:
    """Mean with a t-based confidence interval (NaN bounds below two values)."""
    a = _arr(x)
    n = len(a)
    if n == 0:
        return MeanCI(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    mean, median = float(a.mean()), float(np.median(a))
    if n < 2:
        return MeanCI(n, mean, math.nan, math.nan, math.nan, median)
    sd = float(a.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return MeanCI(n, mean, mean - half, mean + half, sd, median)


def bootstrap_mean_ci(x: object, level: float = 0.95, n_boot: int = 2000,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (deterministic for a given seed)."""
    a = _arr(x)
    if len(a) < 2:
        return math.nan, math.nan
    rng = np.random.Generator(np.random.PCG64(seed))
    means = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def welch(a: object, b: object) -> TestResult:
    """Welch's two-sample t-test (unequal variances), two-sided."""
    x, y = _arr(a), _arr(b)
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se2 = vx + vy
    if se2 <= 0:
        return TestResult(math.nan, math.nan, math.nan)
    t = (x.mean() - y.mean()) / math.sqrt(se2)
    df = se2**2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return TestResult(float(t), float(2 * stats.t.sf(abs(t), df)), float(df))


def mann_whitney(a: object, b: object) -> TestResult:
    """Mann-Whitney U test, two-sided (robustness check for skewed values)."""
    x, y = _arr(a), _arr(b)
    res = stats.mannwhitneyu(x, y, alternative="two-sided")
    return TestResult(float(res.statistic), float(res.pvalue))


def cohens_d(a: object, b: object) -> float:
    """Standardised mean difference (a - b) / pooled standard deviation."""
    x, y = _arr(a), _arr(b)
    nx, ny = len(x), len(y)
    pooled = ((nx - 1) * x.var(ddof=1) + (ny - 1) * y.var(ddof=1)) / (nx + ny - 2)
    return float((x.mean() - y.mean()) / math.sqrt(pooled)) if pooled > 0 else math.nan


def welch_anova(groups: list[object]) -> TestResult:
    """Welch's one-way ANOVA: equal means across groups without assuming equal variances."""
    arrays = [_arr(g) for g in groups]
    n = np.array([len(g) for g in arrays], dtype=float)
    m = np.array([g.mean() for g in arrays])
    v = np.array([g.var(ddof=1) for g in arrays])
    if np.any(v <= 0):
        return TestResult(math.nan, math.nan, math.nan)
    w = n / v
    k = len(arrays)
    grand = float((w * m).sum() / w.sum())
    num = float((w * (m - grand) ** 2).sum()) / (k - 1)
    lam = float((((1 - w / w.sum()) ** 2) / (n - 1)).sum())
    f = num / (1 + 2 * (k - 2) * lam / (k**2 - 1))
    df2 = (k**2 - 1) / (3 * lam)
    return TestResult(f, float(stats.f.sf(f, k - 1, df2)), float(df2))


def kruskal(groups: list[object]) -> TestResult:
    """Kruskal-Wallis rank test across groups (robustness check)."""
    res = stats.kruskal(*[_arr(g) for g in groups])
    return TestResult(float(res.statistic), float(res.pvalue), float(len(groups) - 1))


def holm(p: object) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    pv = np.asarray(p, dtype=float)
    m = len(pv)
    order = np.argsort(pv, kind="stable")
    adj = np.maximum.accumulate(pv[order] * (m - np.arange(m)))
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def benjamini_hochberg(p: object) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), same order as given."""
    pv = np.asarray(p, dtype=float)
    m = len(pv)
    order = np.argsort(pv, kind="stable")
    scaled = pv[order] * m / (np.arange(m) + 1)
    adj = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def ratio_estimate(num: object, den: object) -> tuple[float, float]:
    """Ratio sum(num)/sum(den) over clusters with its cluster-robust (delta-method) SE.

    Each element is one unit (a user): e.g. completed views and views. The SE treats units,
    not events, as independent.
    """
    y, x = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    n = len(x)
    if n == 0 or x.sum() <= 0:
        return math.nan, math.nan
    r = float(y.sum() / x.sum())
    if n < 2:
        return r, math.nan
    resid = y - r * x
    var = float((resid**2).sum()) * n / (n - 1) / x.sum() ** 2
    return r, math.sqrt(var)


def ratio_z(num_a: object, den_a: object, num_b: object, den_b: object) -> TestResult:
    """Two-sample z-test of two ratios (rates) with cluster-robust standard errors."""
    ra, sa = ratio_estimate(num_a, den_a)
    rb, sb = ratio_estimate(num_b, den_b)
    se = math.sqrt(sa**2 + sb**2) if np.isfinite(sa) and np.isfinite(sb) else math.nan
    if not se or not np.isfinite(se):
        return TestResult(math.nan, math.nan)
    z = (ra - rb) / se
    return TestResult(z, float(2 * stats.norm.sf(abs(z))))


@dataclass(frozen=True)
class ChiSquare:
    """A chi-square test of a rate across groups, corrected for clustering."""

    chi2: float
    df: int
    p: float
    design_effect: float
    cramers_v: float


def rao_scott_chi2(groups: list[tuple[object, object]]) -> ChiSquare:
    """Chi-square test of equal rates across groups, first-order Rao-Scott corrected.

    Each group is (successes per unit, trials per unit). Pearson's chi-square on the pooled
    2 x k table assumes independent trials; dividing it by the mean design effect (the
    cluster-robust variance of each group's rate over its binomial variance) keeps the test
    honest when one unit contributes many correlated trials.
    """
    succ = np.array([np.sum(np.asarray(s, dtype=float)) for s, _ in groups])
    trials = np.array([np.sum(np.asarray(t, dtype=float)) for _, t in groups])
    table = np.vstack([succ, trials - succ])
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    deffs, weights = [], []
    for (s, t), m in zip(groups, trials, strict=True):
        r, se = ratio_estimate(s, t)
        binom = r * (1 - r) / m if m > 0 else 0.0
        if binom > 0 and np.isfinite(se):
            deffs.append(se**2 / binom)
            weights.append(m)
    deff = float(np.average(deffs, weights=weights)) if deffs else 1.0
    deff = max(deff, 1e-9)
    adj = float(chi2) / deff
    total = float(trials.sum())
    v = math.sqrt(float(chi2) / total) if total > 0 else math.nan  # min(rows, cols) - 1 == 1
    return ChiSquare(adj, int(dof), float(stats.chi2.sf(adj, dof)), deff, v)


def d_label(d: float) -> str:
    """Cohen's conventional size of a standardised difference."""
    a = abs(d)
    if not np.isfinite(a):
        return "unknown"
    return ("negligible" if a < 0.1 else "very small" if a < 0.2 else "small" if a < 0.5
            else "medium" if a < 0.8 else "large")


def v_label(v: float) -> str:
    """Conventional size of Cramér's V (for a 2 x k table)."""
    if not np.isfinite(v):
        return "unknown"
    return "negligible" if v < 0.1 else "small" if v < 0.3 else "medium" if v < 0.5 else "large"


def format_p(p: float) -> str:
    """A p-value as people write it: 'p < 0.001' or 'p = 0.042'."""
    if not np.isfinite(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


# -- trends ------------------------------------------------------------------------------


def log_linear_growth(y: object) -> tuple[float, float]:
    """Slope of log(y) on the period index and the implied growth per period (fraction).

    Periods with y <= 0 are left out of the fit; NaN when fewer than 3 positive values.
    """
    v = np.asarray(y, dtype=float)
    t = np.arange(len(v), dtype=float)
    ok = np.isfinite(v) & (v > 0)
    if ok.sum() < 3:
        return math.nan, math.nan
    slope = float(np.polyfit(t[ok], np.log(v[ok]), 1)[0])
    return slope, math.expm1(slope)


def _candidates(n: int, trim: float) -> np.ndarray:
    lo = max(2, math.ceil(trim * n))
    hi = min(n - 3, math.floor((1 - trim) * n))
    return np.arange(lo, hi + 1)


def _rss_matrix(y: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RSS of the straight line and of each hinge fit, for every column of ``y``."""
    n = y.shape[0]
    t = np.arange(n, dtype=float)
    line = np.column_stack([np.ones(n), t])
    q0, _ = np.linalg.qr(line)
    total = (y**2).sum(axis=0)
    rss0 = total - ((q0.T @ y) ** 2).sum(axis=0)
    rss = np.empty((len(ks), y.shape[1]))
    for i, k in enumerate(ks):
        q, _ = np.linalg.qr(np.column_stack([line, np.maximum(t - k, 0.0)]))
        rss[i] = total - ((q.T @ y) ** 2).sum(axis=0)
    return rss0, rss


def _sup_f(y: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = y.shape[0]
    rss0, rss = _rss_matrix(y, ks)
    rss = np.maximum(rss, 1e-12 * np.maximum(rss0, 1e-300))
    f = (rss0[None, :] - rss) / (rss / (n - 3))
    return f.max(axis=0), f.argmax(axis=0)


@functools.lru_cache(maxsize=64)
def _null_sup_f(n: int, trim: float, n_sim: int, seed: int) -> np.ndarray:
    """Sorted sup-F statistics of straight lines plus Gaussian noise (the null is pivotal)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    sims, _ = _sup_f(rng.standard_normal((n, n_sim)), _candidates(n, trim))
    return np.sort(sims)


def slope_change_test(y: object, trim: float = 0.15, n_sim: int = 999,
                      seed: int = 7) -> BreakResult | None:
    """Test for a change of slope: a straight line against a line with one bend.

    Searches the bend over the middle ``1 - 2*trim`` of the periods and keeps the best (the
    sup-F statistic, as in Andrews' test). Because the best bend is searched for, the p-value
    comes from the simulated sup-F distribution of straight lines with independent Gaussian
    noise (exact under that null; autocorrelated noise makes it optimistic). None below 8
    periods.
    """
    v = np.asarray(y, dtype=float)
    n = len(v)
    ks = _candidates(n, trim)
    if n < 8 or len(ks) == 0 or not np.all(np.isfinite(v)):
        return None
    stat, where = _sup_f(v[:, None], ks)
    k = int(ks[int(where[0])])
    f_obs = float(stat[0])
    null = _null_sup_f(n, float(trim), n_sim, seed)
    exceed = n_sim - int(np.searchsorted(null, f_obs, side="left"))
    p = (1 + exceed) / (n_sim + 1)
    t = np.arange(n, dtype=float)
    design = np.column_stack([np.ones(n), t, np.maximum(t - k, 0.0)])
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    return BreakResult(k, f_obs, float(p), float(coef[1]), float(coef[1] + coef[2]))
