"""detect_communities: planted topics and bridges on the sample, standard graphs, the table
contract, the privacy floor, the cache, and a database of another shape."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import igraph as ig
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import normalized_mutual_info_score as nmi

from tests.helpers import make_ctx, write_tables
from tools.base import ToolContext, ToolOutput
from tools.communities import detect_communities, find_communities
from tools.community_detection import EdgeList, detect, split_disconnected
from tools.errors import ToolArgumentError
from tools.semantic import SemanticNotes, load_notes

REPO = Path(__file__).resolve().parent.parent


# -- the algorithms on standard graphs -----------------------------------------------------


def lfr_graph(n: int = 5000) -> nx.Graph:
    for seed in range(1, 30):
        try:
            return nx.LFR_benchmark_graph(n=n, tau1=3, tau2=1.5, mu=0.3, average_degree=10,
                                          max_degree=50, min_community=20, max_community=100,
                                          seed=seed)
        except nx.ExceededMaxIterations:
            continue
    raise AssertionError("no LFR seed converged")


@pytest.fixture(scope="module")
def lfr() -> tuple[nx.Graph, list[int]]:
    graph = lfr_graph()
    ids: dict[frozenset[int], int] = {}
    truth = [ids.setdefault(frozenset(graph.nodes[v]["community"]), len(ids)) for v in graph]
    return graph, truth


def test_leiden_auto_resolution_recovers_lfr(lfr: tuple[nx.Graph, list[int]]) -> None:
    graph, truth = lfr
    labels = find_communities(graph)
    assert nmi(truth, labels) >= 0.95
    at_one = find_communities(graph, resolution=1.0)  # the resolution limit merges groups
    assert len(set(at_one)) < len(set(labels))


def test_igraph_input_and_determinism(lfr: tuple[nx.Graph, list[int]]) -> None:
    graph, _ = lfr
    as_igraph = ig.Graph(n=graph.number_of_nodes(), edges=list(graph.edges()))
    assert find_communities(as_igraph) == find_communities(graph) == find_communities(graph)


def test_asking_for_k_communities(lfr: tuple[nx.Graph, list[int]]) -> None:
    assert len(set(find_communities(lfr[0], n_communities=40))) == 40


@pytest.mark.parametrize("algorithm", ["leiden", "louvain"])
def test_karate_club_splits_into_its_factions(algorithm: str) -> None:
    graph = nx.karate_club_graph()
    labels = find_communities(graph, n_communities=2, algorithm=algorithm)
    assert len(set(labels)) == 2
    assert nmi([graph.nodes[v]["club"] for v in graph], labels) >= 0.7


def test_louvain_auto_on_planted_partition() -> None:
    graph = nx.planted_partition_graph(12, 40, 0.3, 0.004, seed=3)
    truth = [b for b, members in enumerate(graph.graph["partition"]) for _ in members]
    labels = find_communities(graph, algorithm="louvain")
    assert nmi(truth, labels) >= 0.95
    assert labels[0] == 0 and np.bincount(labels).tolist() == sorted(np.bincount(labels), reverse=True)


def test_disconnected_communities_are_split() -> None:
    edges = EdgeList.build(6, np.array([0, 1, 3, 4]), np.array([1, 2, 4, 5]))
    labels, split = split_disconnected(edges, np.zeros(6, dtype=np.int64))
    assert split == 1 and labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_k_below_the_components_merges_and_reports() -> None:
    triangles = nx.disjoint_union_all([nx.complete_graph(3)] * 3)
    part = detect(EdgeList.from_graph(triangles), n_communities=2)
    assert part.count == 2 and part.disconnected == 1 and not part.split
    assert "merges" in part.rule


# -- the tool on the sample database -------------------------------------------------------


@pytest.fixture(scope="module")
def sample_ctx(sample_db_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToolContext]:
    ctx = make_ctx(sample_db_path, tmp_path_factory.mktemp("communities"),
                   load_notes(REPO / "sample_db" / "semantic.yaml"), session="communities")
    yield ctx
    ctx.workspace.close()


@pytest.fixture(scope="module")
def follow_run(sample_ctx: ToolContext) -> ToolOutput:
    return detect_communities(sample_ctx)


def test_follow_communities_match_planted_topics(sample_ctx: ToolContext, follow_run: ToolOutput,
                                                 sample_truth_dir: Path) -> None:
    got = sample_ctx.workspace.frame("SELECT creator_id, community_id FROM creator_communities")
    both = pd.read_parquet(sample_truth_dir / "creators.parquet").merge(got, on="creator_id")
    assert len(both) >= 0.95 * len(got)
    assert nmi(both["topic"], both["community_id"]) >= 0.9
    assert follow_run.summary["resolution_rule"].startswith("automatic")
    assert follow_run.summary["connectivity"] == {"all_connected": True}
    assert 0.3 < follow_run.summary["modularity"] < 1


def test_planted_bridge_creators_are_reported(sample_ctx: ToolContext, follow_run: ToolOutput,
                                              sample_truth_dir: Path) -> None:
    planted = json.loads((sample_truth_dir / "effects.json").read_text())["bridge_creator_ids"]
    bridges = sample_ctx.results.get(follow_run.summary["bridges_ref"])
    creators = bridges[bridges["kind"] == "creator"]
    assert len(set(creators["id"]) & set(planted)) >= 8
    assert (creators[["share_a", "share_b"]] >= 0.3).all().all()
    assert follow_run.summary["bridges"]["creators"] == len(creators)


def test_tables_contract_and_sql_join(sample_ctx: ToolContext, follow_run: ToolOutput) -> None:
    ws = sample_ctx.workspace
    creators = ws.frame("SELECT * FROM creator_communities")
    users = ws.frame("SELECT * FROM user_communities")
    assert list(creators.columns) == ["creator_id", "community_id"]
    assert list(users.columns) == ["user_id", "community_id"]
    sizes = creators["community_id"].value_counts().sort_index()
    assert sizes.index[0] == 1 and sizes.is_monotonic_decreasing
    assert set(users["community_id"]) <= set(sizes.index) and users["user_id"].is_unique
    joined = ws.query("SELECT count(*) AS n FROM user_communities JOIN users USING (user_id) "
                      "WHERE community_id = 1 AND country = 'BR'")
    assert 0 < joined.df["n"].iloc[0] <= follow_run.summary["community_profiles"][0]["users"]
    profile = sample_ctx.results.get(follow_run.summary["profile_ref"])
    assert profile["creators"].sum() == len(creators)
    assert sample_ctx.results.meta(follow_run.summary["chart_ref"]).kind == "chart"


def test_summary_is_small_and_holds_no_ids(sample_ctx: ToolContext, follow_run: ToolOutput) -> None:
    text = json.dumps(follow_run.summary)
    assert len(text) < 12_000
    ids = set(sample_ctx.workspace.frame("SELECT creator_id FROM creator_communities")["creator_id"])
    numbers = {int(n) for n in re.findall(r"\d+", text)}
    assert not numbers & ids
    first = follow_run.summary["community_profiles"][0]
    assert first["top_hashtags"] and {"country", "device_os", "age_band"} <= set(first["audience"])


def test_rerun_hits_the_cache_and_replaces(sample_ctx: ToolContext, follow_run: ToolOutput) -> None:
    assert follow_run.summary["cache_hit"] is False
    again = detect_communities(sample_ctx)
    assert again.summary["cache_hit"] is True and again.summary["replaced"] is True
    assert again.summary["communities"] == follow_run.summary["communities"]


def test_privacy_floor_pools_small_communities(sample_ctx: ToolContext, follow_run: ToolOutput) -> None:
    sizes = sorted(c["creators"] for c in follow_run.summary["community_profiles"])
    floor = sizes[len(sizes) // 2]
    strict = make_ctx(sample_ctx.settings.db, Path(sample_ctx.settings.home), sample_ctx.notes,
                      floor=floor, session="strict")
    try:
        out = detect_communities(strict)
        assert all(c["creators"] >= floor for c in out.summary["community_profiles"])
        assert out.summary["other"]["communities"] >= 1
        profile = strict.results.get(out.summary["profile_ref"])
        assert profile["group"].iloc[-1] == "other" and profile["community_id"].isna().sum() == 1
        assert out.summary["described"] + out.summary["other"]["communities"] == out.summary["communities"]
    finally:
        strict.workspace.close()


def test_co_engagement_graph(sample_ctx: ToolContext, sample_truth_dir: Path) -> None:
    out = detect_communities(sample_ctx, graph="co_engagement")
    got = sample_ctx.workspace.frame("SELECT creator_id, community_id FROM creator_communities")
    both = pd.read_parquet(sample_truth_dir / "creators.parquet").merge(got, on="creator_id")
    assert nmi(both["topic"], both["community_id"]) >= 0.9
    assert out.summary["replaced"] is True and out.summary["graph"] == "co_engagement"


@pytest.mark.parametrize("kwargs, words", [
    ({"graph": "likes"}, "'follow' or 'co_engagement'"),
    ({"algorithm": "spectral"}, "'leiden' or 'louvain'"),
    ({"resolution": 0}, "above 0"),
    ({"n_communities": 1}, "2 or more"),
    ({"min_shared": 0}, "min_shared"),
])
def test_bad_arguments_say_how_to_fix(sample_ctx: ToolContext, kwargs: dict, words: str) -> None:
    with pytest.raises(ToolArgumentError, match=re.escape(words)):
        detect_communities(sample_ctx, **kwargs)


# -- a database of another shape -----------------------------------------------------------


def build_channels(path: Path) -> Path:
    """3 groups of 20 channels; members subscribe within their group (plus one stray); two
    channels are followed as much by group 0 as by group 1 (bridges)."""
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(3), 20)
    bridges = [0, 1]
    subs, plays = [], []
    for member in range(300):
        g = member % 3
        own = np.flatnonzero(groups == g)
        picks = set(rng.choice(own, 6, replace=False).tolist()) | {int(rng.integers(0, 60))}
        if g in (0, 1) and rng.random() < 0.5:
            picks.add(bridges[member % 2])
        subs += [(member, 1000 + int(c)) for c in picks]
        plays += [(member, 10 * (1000 + int(c)) + int(rng.integers(0, 3)),
                   float(rng.integers(5, 90))) for c in picks for _ in range(3)]
    tables = {
        "members": pd.DataFrame({"member_id": np.arange(300),
                                 "region": [["DE", "FR", "ES"][m % 3] for m in range(300)]}),
        "channels": pd.DataFrame({"channel_id": 1000 + np.arange(60),
                                  "name": [f"c{c}" for c in range(60)]}),
        "subscriptions": pd.DataFrame(subs, columns=["subscriber_id", "channel_id"]),
        "clips": pd.DataFrame([(10 * (1000 + c) + j, 1000 + c, [f"topic{groups[c]}", "fyp"])
                               for c in range(60) for j in range(3)],
                              columns=["clip_id", "channel_id", "tags"]),
        "plays": pd.DataFrame(plays, columns=["member_id", "clip_id", "seconds"]).assign(
            ts=pd.Timestamp("2026-01-01")),
    }
    return write_tables(path, tables)


def test_other_schema_follow_graph(tmp_path: Path) -> None:
    ctx = make_ctx(build_channels(tmp_path / "channels.duckdb"), tmp_path / "home",
                   SemanticNotes(), floor=5)
    try:
        out = detect_communities(ctx, min_shared=1)
        got = ctx.workspace.frame("SELECT creator_id, community_id FROM creator_communities")
        truth = (got["creator_id"] - 1000) // 20
        others = got["creator_id"] >= 1002  # the two bridges may sit in either group
        assert nmi(truth[others], got["community_id"][others]) >= 0.9
        bridges = ctx.results.get(out.summary["bridges_ref"])
        assert {1000, 1001} <= set(bridges.loc[bridges["kind"] == "creator", "id"])
        tags = [c["top_hashtags"][0] for c in out.summary["community_profiles"]]
        assert sorted(tags) == ["topic0", "topic1", "topic2"]
        assert "region" in out.summary["community_profiles"][0]["audience"]
    finally:
        ctx.workspace.close()


def test_database_without_creator_graph_says_so(tmp_path: Path) -> None:
    path = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE customers(customer_id INTEGER, region VARCHAR)")
    con.execute("CREATE TABLE orders(order_id INTEGER, customer_id INTEGER, ts TIMESTAMP)")
    con.close()
    ctx = make_ctx(path, tmp_path / "home", SemanticNotes())
    try:
        with pytest.raises(ToolArgumentError, match="no follow-like table"):
            detect_communities(ctx)
        with pytest.raises(ToolArgumentError, match="co_engagement needs"):
            detect_communities(ctx, graph="co_engagement")
    finally:
        ctx.workspace.close()
