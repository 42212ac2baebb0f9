"""cluster_users: recovery of planted groups, the table contract, privacy floor and cache."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import normalized_mutual_info_score

from tests.helpers import make_ctx, write_tables
from tools.base import ToolContext, ToolOutput
from tools.clustering import cluster_users
from tools.errors import ToolArgumentError
from tools.semantic import SemanticNotes, load_notes

REPO = Path(__file__).resolve().parent.parent
GROUP_SIZES = (90, 60, 40)
TAGS = (("cook", "recipe", "food"), ("goal", "soccer", "match"), ("cat", "dog", "pets"))


def build_tiny(path: Path) -> Path:
    """3 obvious groups: each user watches videos of one group (plus generic tags)."""
    rng = np.random.default_rng(7)
    users, videos, events = [], [], []
    uid = 0
    for g, size in enumerate(GROUP_SIZES):
        for _ in range(size):
            uid += 1
            users.append((uid, ["BR", "US", "IN"][g], ["ios", "android"][uid % 2], g))
    for v in range(1, 61):
        g = (v - 1) % 3
        videos.append((v, 100 + g, [*TAGS[g][: 1 + (v // 3) % 3], "fyp"], ["Food", "Sports", "Pets"][g]))
    ts0 = pd.Timestamp("2026-01-01")
    for user_id, _, _, g in users:
        own = [v for v, *_ in videos if (v - 1) % 3 == g]
        for j in range(12):
            v = int(rng.choice(own)) if j < 11 else int(rng.integers(1, 61))  # 1 in 12 anywhere
            events.append((user_id, v, ts0 + pd.Timedelta(hours=int(rng.integers(0, 2000))),
                           float(rng.integers(5, 60)), bool(rng.random() < 0.5)))
    frames = {
        "users": pd.DataFrame([u[:3] for u in users], columns=["user_id", "country", "device_os"]),
        "videos": pd.DataFrame(videos, columns=["video_id", "creator_id", "hashtags", "category"]),
        "watch_events": pd.DataFrame(events, columns=["user_id", "video_id", "ts", "watch_s",
                                                      "completed"]),
    }
    write_tables(path, frames)
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE TABLE notes(ts TIMESTAMP, body VARCHAR)")
    finally:
        con.close()
    pd.DataFrame(users, columns=["user_id", "country", "device_os", "group"]).to_parquet(
        path.with_suffix(".truth.parquet"))
    return path


def points(x: object) -> int:
    """Points in a trace coordinate read back from JSON (plotly stores arrays as base64)."""
    if isinstance(x, dict):
        return len(np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"]))
    return len(x)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny") / "tiny.duckdb")


@pytest.fixture
def tiny_ctx(tiny_db: Path, tmp_path: Path) -> Iterator[ToolContext]:
    ctx = make_ctx(tiny_db, tmp_path / "home", SemanticNotes())
    yield ctx
    ctx.workspace.close()


def tiny_truth(tiny_db: Path) -> pd.DataFrame:
    return pd.read_parquet(tiny_db.with_suffix(".truth.parquet"))


def exact(ctx: ToolContext, truth: pd.DataFrame) -> bool:
    got = ctx.workspace.frame("SELECT user_id, cluster_id FROM user_clusters")
    both = truth.merge(got, on="user_id")
    return len(both) == len(truth) and normalized_mutual_info_score(both["group"],
                                                                    both["cluster_id"]) == 1.0


@pytest.mark.parametrize("k", [3, None])
def test_tiny_groups_recovered_exactly(tiny_ctx: ToolContext, tiny_db: Path, k: int | None) -> None:
    out = cluster_users(tiny_ctx, k=k)
    assert out.summary["clusters"] == 3
    assert exact(tiny_ctx, tiny_truth(tiny_db))
    sizes = [c["users"] for c in out.summary["cluster_profiles"]]
    assert sizes == list(GROUP_SIZES)
    first = out.summary["cluster_profiles"][0]
    assert set(first["top_interests"][:3]) == {"#cook", "#recipe", "#food"}
    assert first["demographics"]["country"] == ["BR", 1.0]
    assert "#fyp" not in sum((c["top_interests"] for c in out.summary["cluster_profiles"]), [])


def test_privacy_floor_groups_small_clusters(tiny_db: Path, tmp_path: Path) -> None:
    ctx = make_ctx(tiny_db, tmp_path / "home", SemanticNotes(), floor=50)
    try:
        out = cluster_users(ctx, k=3)
    finally:
        ctx.workspace.close()
    assert [c["cluster_id"] for c in out.summary["cluster_profiles"]] == [1, 2]
    assert out.summary["other"]["users"] == 40 and out.summary["other"]["clusters"] == 1
    profile = ctx.results.get(out.refs[0])
    assert profile["group"].tolist() == ["1", "2", "other"]
    assert profile.loc[2, "top_interests"] == ""


def test_second_call_is_a_cache_hit(tiny_ctx: ToolContext) -> None:
    first = cluster_users(tiny_ctx, k=3, features="hashtag+category")
    labels = tiny_ctx.workspace.frame("SELECT * FROM user_clusters ORDER BY user_id")
    started = time.perf_counter()
    second = cluster_users(tiny_ctx, k=3, features="category+hashtag")
    assert time.perf_counter() - started < 2.0
    assert (first.summary["cache_hit"], second.summary["cache_hit"]) == (False, True)
    assert second.summary["replaced"] is True
    again = tiny_ctx.workspace.frame("SELECT * FROM user_clusters ORDER BY user_id")
    pd.testing.assert_frame_equal(labels, again)
    assert second.summary["cluster_profiles"] == first.summary["cluster_profiles"]


def test_personal_features_are_described_by_hashtags(tiny_ctx: ToolContext, tiny_db: Path) -> None:
    out = cluster_users(tiny_ctx, features="creator", k=3)
    assert exact(tiny_ctx, tiny_truth(tiny_db))
    assert "creator" in out.summary["note"]
    assert out.summary["cluster_profiles"][0]["top_interests"][0] in {"#cook", "#recipe", "#food"}
    assert all(t.startswith("#") for c in out.summary["cluster_profiles"] for t in c["top_interests"])


def test_hdbscan_and_bad_arguments(tiny_ctx: ToolContext, tiny_db: Path) -> None:
    out = cluster_users(tiny_ctx, method="hdbscan")
    got = tiny_ctx.workspace.frame("SELECT user_id, cluster_id FROM user_clusters")
    both = tiny_truth(tiny_db).merge(got, on="user_id")
    assert normalized_mutual_info_score(both["group"], both["cluster_id"]) > 0.9
    assert "hdbscan_noise" in out.summary["users_left_out"]
    with pytest.raises(ToolArgumentError, match="hashtag"):
        cluster_users(tiny_ctx, features="moods")
    with pytest.raises(ToolArgumentError, match="kmeans"):
        cluster_users(tiny_ctx, method="spectral")
    with pytest.raises(ToolArgumentError, match="ISO date"):
        cluster_users(tiny_ctx, start="last week")
    with pytest.raises(ToolArgumentError, match="shape"):
        cluster_users(tiny_ctx, events_table="notes")


def test_no_interaction_table(tmp_path: Path) -> None:
    db = tmp_path / "flat.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE plays(user_id INTEGER, country VARCHAR, minutes DOUBLE)")
    con.execute("INSERT INTO plays VALUES (1, 'BR', 10)")
    con.close()
    ctx = make_ctx(db, tmp_path / "home", SemanticNotes())
    try:
        with pytest.raises(ToolArgumentError, match="user key"):
            cluster_users(ctx)
    finally:
        ctx.workspace.close()


@pytest.fixture(scope="module")
def sample_run(sample_db_path: Path, sample_truth_dir: Path,
               tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[ToolContext, ToolOutput, ToolOutput]]:
    """The default cluster_users on the sample, run twice (the second from the cache)."""
    home = tmp_path_factory.mktemp("sample-home")
    ctx = make_ctx(sample_db_path, home, load_notes(REPO / "sample_db" / "semantic.yaml"))
    first = cluster_users(ctx)
    second = cluster_users(ctx)
    yield ctx, first, second
    ctx.workspace.close()


def test_sample_clusters_match_dominant_topics(sample_run: tuple, sample_truth_dir: Path) -> None:
    ctx, first, _ = sample_run
    got = ctx.workspace.frame("SELECT user_id, cluster_id FROM user_clusters")
    truth = pd.read_parquet(sample_truth_dir / "users.parquet")
    both = truth.merge(got, on="user_id")
    assert len(both) == len(got) == first.summary["users_clustered"] > 0.9 * len(truth)
    assert normalized_mutual_info_score(both["topic"], both["cluster_id"]) >= 0.8
    assert first.summary["k_choice"].startswith("chosen by silhouette")
    assert 4 <= first.summary["clusters"] <= 24


def test_sample_table_contract(sample_run: tuple) -> None:
    ctx, first, second = sample_run
    sizes = ctx.workspace.frame(
        "SELECT cluster_id, count(*) AS n FROM user_clusters GROUP BY 1 ORDER BY 1")
    assert sizes["cluster_id"].tolist() == list(range(1, first.summary["clusters"] + 1))
    assert sizes["n"].is_monotonic_decreasing
    assert (first.summary["replaced"], second.summary["replaced"]) == (False, True)
    assert (first.summary["cache_hit"], second.summary["cache_hit"]) == (False, True)
    joined = ctx.workspace.query("SELECT count(*) AS n FROM user_clusters JOIN users "
                                 "USING (user_id) WHERE cluster_id = 1 AND country = 'BR'")
    expected = ctx.workspace.frame(
        "SELECT count(*) AS n FROM user_clusters c, users u "
        "WHERE c.user_id = u.user_id AND c.cluster_id = 1 AND u.country = 'BR'")
    assert joined.df["n"].tolist() == expected["n"].tolist() and expected["n"][0] > 0


def test_sample_summary_is_small_and_profiles_are_kept(sample_run: tuple) -> None:
    ctx, first, _ = sample_run
    summary = first.summary
    assert len(json.dumps(summary)) < 12_000
    assert summary["quality"]["silhouette"] > 0 and summary["quality"]["davies_bouldin"] > 0
    one = summary["cluster_profiles"][0]
    assert len(one["top_interests"]) == 5 and all(t.startswith("#") for t in one["top_interests"])
    assert {"country", "age_band", "device_os"} <= set(one["demographics"])
    assert one["mean_watch_per_user"] > 0
    profile = ctx.results.get(summary["profile_ref"])
    assert len(profile) == summary["clusters"] + (1 if "other" in summary else 0)
    assert profile["completion_rate"].between(0, 1).all()
    figure = ctx.results.get(summary["chart_ref"])
    assert sum(points(t.x) for t in figure.data) == summary["quality"]["sample_users"] <= 5000
    assert summary["reading"]
