"""Statistics tools: the pure tests on synthetic data, then the tools on a small synthetic
database (another domain, no notes) and on the sample database's planted truth."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tests.helpers import make_ctx
from tools import stats_tests as st
from tools.base import ToolContext
from tools.errors import ToolArgumentError
from tools.semantic import SemanticNotes, load_notes
from tools.stats import compare_groups, correlate, summarize_metric, trend

REPO = Path(__file__).resolve().parent.parent


# -- pure statistics ---------------------------------------------------------------------


def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 2, 80), rng.normal(11, 5, 35)
    mine, ref = st.welch(a, b), sps.ttest_ind(a, b, equal_var=False)
    assert mine.stat == pytest.approx(ref.statistic, rel=1e-10)
    assert mine.p == pytest.approx(ref.pvalue, rel=1e-8)
    assert mine.df == pytest.approx(ref.df, rel=1e-10)


def test_welch_anova_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    groups = [rng.normal(0, 1, 40), rng.normal(0.4, 3, 25), rng.normal(0.1, 0.5, 60)]
    mine, ref = st.welch_anova(groups), sps.f_oneway(*groups, equal_var=False)
    assert mine.stat == pytest.approx(ref.statistic, rel=1e-8)
    assert mine.p == pytest.approx(ref.pvalue, rel=1e-6)


def test_holm_and_bh_known_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted .005 .01 .03 .04 times 4 3 2 1 = .02 .03 .06 .04, then running max
    assert st.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted times 4/1 4/2 4/3 4/4 = .02 .02 .04 .04, then running min from the top
    assert st.benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert st.holm([0.9, 0.8]).max() <= 1.0


def test_mean_ci_coverage_on_skewed_data() -> None:
    rng = np.random.default_rng(3)
    samples = rng.exponential(2.0, (400, 60))
    covered = [(c.lo <= 2.0 <= c.hi) for c in map(st.mean_ci, samples)]
    assert 0.90 <= np.mean(covered) <= 0.98
    lo, hi = st.bootstrap_mean_ci(samples[0])
    t = st.mean_ci(samples[0])
    assert abs(lo - t.lo) < 0.2 and abs(hi - t.hi) < 0.2


def test_ratio_tests_reduce_to_classic_ones_without_clustering() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.random(500) < 0.30, rng.random(400) < 0.36
    ones_a, ones_b = np.ones(500), np.ones(400)
    z = st.ratio_z(a, ones_a, b, ones_b)
    pa, pb = a.mean(), b.mean()
    classic = (pa - pb) / np.sqrt(pa * (1 - pa) / 499 + pb * (1 - pb) / 399)
    assert z.stat == pytest.approx(classic, rel=1e-9)
    chi = st.rao_scott_chi2([(a, ones_a), (b, ones_b)])
    pearson = sps.chi2_contingency([[a.sum(), b.sum()], [500 - a.sum(), 400 - b.sum()]],
                                   correction=False)
    assert chi.design_effect == pytest.approx(1.0, abs=0.01)
    assert chi.chi2 == pytest.approx(pearson.statistic, rel=0.01)


def test_rao_scott_deflates_clustered_chi_square() -> None:
    rng = np.random.default_rng(5)
    groups = []
    for _ in range(3):  # same rate everywhere, but each unit has its own propensity
        prop = rng.beta(2, 4, 300)
        trials = rng.integers(5, 40, 300)
        groups.append((rng.binomial(trials, prop), trials))
    chi = st.rao_scott_chi2(groups)
    assert chi.design_effect > 2


def test_slope_change_detects_a_planted_bend() -> None:
    rng = np.random.default_rng(6)
    t = np.arange(90)
    y = 100 + 0.5 * t + 2.0 * np.maximum(t - 40, 0) + rng.normal(0, 3, 90)
    res = st.slope_change_test(y)
    assert res is not None and res.p < 0.01
    assert abs(res.index - 40) <= 5
    assert res.slope_after > res.slope_before + 1


def test_slope_change_is_calibrated_on_straight_lines() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(60)
    rejections = [st.slope_change_test(5 + 0.3 * t + rng.normal(0, 2, 60)).p < 0.05
                  for _ in range(200)]
    assert 0.01 <= np.mean(rejections) <= 0.10
    assert st.slope_change_test([1.0, 2.0, 3.0]) is None


def test_log_linear_growth() -> None:
    slope, per = st.log_linear_growth(100 * 1.05 ** np.arange(12))
    assert per == pytest.approx(0.05)
    assert np.isnan(st.log_linear_growth([0, 0, 1])[0])


# -- a synthetic database of another domain ---------------------------------------------


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToolContext]:
    """A gym: members (tier, region), visits (minutes, coached), classes (kind, region,
    tags). Gold members visit 30% longer; region 'Isle' has only 6 members; coach time and
    minutes are correlated per member."""
    root = tmp_path_factory.mktemp("club")
    rng = np.random.default_rng(11)
    n = 400
    tier = np.where(np.arange(n) % 2 == 0, "gold", "basic")
    region = np.where(np.arange(n) < 6, "Isle", np.where(np.arange(n) % 3 == 0, "North", "South"))
    members = pd.DataFrame({"member_id": np.arange(1, n + 1), "tier": tier, "region": region})
    classes = pd.DataFrame({"class_id": [1, 2, 3], "kind": ["yoga", "spin", "O'Reilly boxing"],
                            "region": ["North", "South", "North"],
                            "tags": [["calm", "stretch"], ["cardio"], ["cardio", "power"]]})
    rows = []
    start = dt.datetime(2025, 1, 1)
    for m in range(n):
        skill = rng.normal(0, 1)
        for _ in range(rng.integers(3, 12)):
            base = 40 * (1.3 if tier[m] == "gold" else 1.0) * np.exp(0.3 * skill)
            rows.append((m + 1, int(rng.integers(1, 4)),
                         start + dt.timedelta(days=int(rng.integers(0, 70)),
                                              hours=int(rng.integers(6, 22))),
                         float(base * rng.lognormal(0, 0.3)), bool(rng.random() < 0.3)))
    visits = pd.DataFrame(rows, columns=["member_id", "class_id", "visited_at", "minutes",
                                         "coached"])
    db = root / "club.duckdb"
    con = duckdb.connect(str(db))
    for name, frame in (("members", members), ("classes", classes), ("visits", visits)):
        con.register("src", frame)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM src")
        con.unregister("src")
    con.close()
    ctx = make_ctx(db, root / "home", SemanticNotes(), floor=10)
    yield ctx
    ctx.workspace.close()


def test_compare_on_another_domain_with_a_join(club: ToolContext) -> None:
    out = compare_groups(club, "sum:visits.minutes", "tier", ["gold", "basic"])
    pair = out.summary["pairwise"][0]
    assert out.summary["unit_of_analysis"] == "per member"
    assert pair["p"] < 0.05 and pair["relative_difference_pct"] > 10
    assert 'LEFT JOIN "members"' in out.sql and "GROUP BY" in out.sql
    assert "significant" in out.summary["reading"]
    assert set(out.refs) == {out.summary["table_ref"], out.summary["pairs_ref"]}
    assert len(club.results.get(out.summary["table_ref"])) == 2


def test_group_below_the_privacy_floor_is_not_described(club: ToolContext) -> None:
    out = compare_groups(club, "sum:visits.minutes", "members.region")
    described = {g["region"] for g in out.summary["groups"]}
    assert described == {"North", "South"}
    assert "Isle" not in json.dumps(out.summary)
    assert any("privacy floor" in n for n in out.summary["notes"])
    table = club.results.get(out.summary["table_ref"])
    assert "Isle" not in set(table["region"])
    out = summarize_metric(club, "sum:visits.minutes", by=["members.region"])
    assert "Isle" not in json.dumps(out.summary) and "withheld_groups" in out.summary


def test_filters_are_literals_and_lists_match_any(club: ToolContext) -> None:
    out = summarize_metric(club, "count:visits", filters={"kind": ["O'Reilly boxing"]})
    assert "'o''reilly boxing'" in out.sql
    ref = club.workspace.frame("SELECT count(*) FROM visits WHERE class_id = 3").iloc[0, 0]
    assert out.summary["rows"][0]["total"] == ref
    out = summarize_metric(club, "count:visits", filters={"tags": ["cardio"]})
    ref = club.workspace.frame("SELECT count(*) FROM visits WHERE class_id IN (2, 3)").iloc[0, 0]
    assert out.summary["rows"][0]["total"] == ref


def test_rate_metric_uses_the_cluster_robust_test(club: ToolContext) -> None:
    out = compare_groups(club, "rate:visits.coached", "kind")
    assert out.summary["omnibus"]["test"].startswith("chi-square")
    assert all(p["test"].startswith("two-proportion z") and "p_holm" in p
               for p in out.summary["pairwise"])
    assert out.summary["notes"]  # members visit several kinds of class: groups overlap


def test_correlate_per_member(club: ToolContext) -> None:
    out = correlate(club, "sum:visits.minutes", "count:visits", method="pearson")
    s = out.summary
    assert s["n"] == 400 and s["pearson"]["p"] < 0.05
    assert s["pearson"]["ci_low"] < s["pearson"]["r"] < s["pearson"]["ci_high"]
    assert "not causation" in s["reading"]


def test_trend_weeks_drop_the_partial_block(club: ToolContext) -> None:
    out = trend(club, "count:visits", grain="week", start="2025-01-01", end="2025-03-11")
    assert out.summary["periods"] == 10
    assert "left out" not in out.summary["period_note"]
    out = trend(club, "count:visits", grain="week", start="2025-01-01", end="2025-03-10")
    assert out.summary["periods"] == 9 and "left out" in out.summary["period_note"]
    assert {"table_ref", "chart_ref"} <= set(out.summary)


def test_unknown_names_raise_with_choices(club: ToolContext) -> None:
    with pytest.raises(ToolArgumentError, match="count:visits|avg:visits.minutes"):
        compare_groups(club, "minuets", "tier")
    with pytest.raises(ToolArgumentError, match="members.tier"):
        compare_groups(club, "sum:visits.minutes", "teir")
    with pytest.raises(ToolArgumentError, match="values are"):
        compare_groups(club, "sum:visits.minutes", "tier", ["gold", "platinum"])
    with pytest.raises(ToolArgumentError, match="classes.region or members.region"):
        summarize_metric(club, "count:visits", by=["region"])
    with pytest.raises(ToolArgumentError, match="visits.member_id"):
        summarize_metric(club, "count:visits", per="nonexistent_id")
    with pytest.raises(ToolArgumentError, match="share"):
        trend(club, "avg:visits.minutes", by="tier", share=True)


def test_session_tables_are_dimensions_and_never_cached(club: ToolContext) -> None:
    ids = np.arange(1, 401)
    club.save_table("member_groups", pd.DataFrame({"member_id": ids, "group_id": ids % 2 + 1}))
    first = compare_groups(club, "sum:visits.minutes", "group_id")
    assert {g["group_id"] for g in first.summary["groups"]} == {"1", "2"}
    assert '"member_groups"' in first.sql
    club.save_table("member_groups", pd.DataFrame({"member_id": ids, "group_id": (ids > 200) + 1}))
    again = compare_groups(club, "sum:visits.minutes", "group_id")
    assert again.summary["groups"] != first.summary["groups"]


def test_results_are_cached(club: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    first = summarize_metric(club, "avg:visits.minutes", by=["tier"])
    seen: list[str] = []
    run = club.workspace.frame

    def record(sql: str, *args: object, **kwargs: object) -> pd.DataFrame:
        seen.append(sql)
        return run(sql, *args, **kwargs)

    monkeypatch.setattr(club.workspace, "frame", record)
    again = summarize_metric(club, "avg:visits.minutes", by=["tier"])
    assert not [q for q in seen if '"visits"' in q]  # nothing recomputed over the metric table
    assert again.summary["rows"] == first.summary["rows"]
    assert again.summary["table_ref"] != first.summary["table_ref"]  # a fresh ref per call


# -- the sample database's planted truth -------------------------------------------------


@pytest.fixture(scope="module")
def sample(sample_db_path: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ToolContext]:
    home = tmp_path_factory.mktemp("stats-sample")
    ctx = make_ctx(sample_db_path, home, load_notes(REPO / "sample_db" / "semantic.yaml"))
    yield ctx
    ctx.workspace.close()


@pytest.fixture(scope="module")
def effects(sample_truth_dir: Path) -> dict:
    return json.loads((sample_truth_dir / "effects.json").read_text())


def _reference_means(db: Path, dimension: str, groups: list[str]) -> dict[str, float]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            f"SELECT u.{dimension}, avg(t.total) FROM (SELECT user_id, sum(watch_s) AS total "
            "FROM watch_events GROUP BY user_id) t JOIN users u USING (user_id) "
            f"WHERE u.{dimension} IN (?, ?) GROUP BY 1", groups).fetchall()
    finally:
        con.close()
    return dict(rows)


def test_planted_difference_is_found(sample: ToolContext, effects: dict,
                                     sample_db_path: Path) -> None:
    sig = effects["significant_difference"]
    out = compare_groups(sample, sig["metric"], sig["dimension"], [sig["a"], sig["b"]])
    pair = out.summary["pairwise"][0]
    ref = _reference_means(sample_db_path, sig["dimension"], [sig["a"], sig["b"]])
    expected = (ref[sig["a"]] / ref[sig["b"]] - 1) * 100
    assert pair["p"] < 0.05 and pair["relative_difference_pct"] >= 8
    assert pair["relative_difference_pct"] == pytest.approx(expected, abs=0.01)
    assert "significant" in out.summary["reading"] and "per user" in out.summary["reading"]


def test_null_difference_is_not_significant(sample: ToolContext, effects: dict) -> None:
    null = effects["null_difference"]
    out = compare_groups(sample, null["metric"], null["dimension"], [null["a"], null["b"]])
    assert out.summary["pairwise"][0]["p"] >= 0.05
    assert "do not differ significantly" in out.summary["reading"]


def test_growing_topic_leads_the_category_shares(sample: ToolContext, effects: dict,
                                                 sample_truth_dir: Path) -> None:
    topics = json.loads((sample_truth_dir / "topics.json").read_text())
    category = next(t["category"] for t in topics if t["topic"] == effects["growing_topic"])
    assert [t["topic"] for t in topics if t["category"] == category] == [effects["growing_topic"]]
    out = trend(sample, "watch_time", grain="week", by="category", share=True, top=5)
    assert out.summary["fastest_growing"][0]["category"] == category
    assert out.summary["periods"] == 12 and "left out" in out.summary["period_note"]
    assert sample.results.get(out.summary["chart_ref"]) is not None


def test_growing_topic_leads_the_hashtag_shares(sample: ToolContext, effects: dict,
                                                sample_truth_dir: Path,
                                                sample_db_path: Path) -> None:
    out = trend(sample, "watch_time", grain="week", by="hashtags", share=True, top=5)
    tag = out.summary["fastest_growing"][0]["hashtags"]
    truth = pd.read_parquet(sample_truth_dir / "videos.parquet")
    con = duckdb.connect(str(sample_db_path), read_only=True)
    try:
        tagged = con.execute("SELECT video_id FROM videos WHERE list_contains(hashtags, ?)",
                             [tag]).df()
    finally:
        con.close()
    topics = truth[truth["video_id"].isin(tagged["video_id"])]["topic"]
    assert (topics == effects["growing_topic"]).mean() > 0.5


def test_summarize_states_the_unit_and_window(sample: ToolContext) -> None:
    out = summarize_metric(sample, "watch_time")
    s = out.summary
    row = s["rows"][0]
    assert s["unit_of_analysis"] == "per user" and s["window"].startswith("all 90 days")
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    assert "Per user" in s["reading"]
