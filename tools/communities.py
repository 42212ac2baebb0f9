"""detect_communities: creator communities, their audiences, profiles and bridges.

Pipeline: a creator graph built in SQL (:mod:`tools.graphs`) → Leiden or Louvain with an
automatic or given resolution (:mod:`tools.community_detection`) → the session tables
``creator_communities(creator_id, community_id)`` and ``user_communities(user_id,
community_id)`` (ids from 1, largest first; a user joins the community whose creators get
most of their watch time, or most of their follows when they watched none) → profiles,
bridges and a community map. The derived result is cached by (database fingerprint, tool,
arguments); a repeat only re-saves the session tables and re-files the tables and chart.

Bridge rule: a creator is a bridge when at least ``BRIDGE_SHARE`` (30%) of their followers
(viewers without a follow table), by the followers' ``user_communities``, belong to each of
two communities; a user is a bridge when at least 30% of their watch time goes to each of
two communities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tools.base import ToolContext, ToolOutput, derived_cache
from tools.cache import cache_key
from tools.community_detection import (
    ALGORITHMS,
    MAX_RESOLUTION,
    SEED,
    EdgeList,
    Partition,
    detect,
    find_communities,
)
from tools.community_profiles import build_profiles, community_map
from tools.errors import ToolArgumentError
from tools.graphs import (
    CREATOR_TABLE,
    GRAPH_TIMEOUT_S,
    GRAPHS,
    USER_TABLE,
    GraphSchema,
    assignment_sql,
    discover_graph_schema,
    edges_sql,
    require,
    source_stats_sql,
)

__all__ = ["detect_communities", "find_communities"]

CACHE_VERSION = "1"
SUMMARY_COMMUNITIES = 10


@dataclass
class CreatorGraph:
    """The creator graph as loaded: node ids, edges, and what the SQL reported."""

    ids: np.ndarray
    edges: EdgeList
    creators_seen: int
    capped_users: int
    sql: str


@dataclass
class CommunityResult:
    """Everything detect_communities derives (cached)."""

    creators: pd.DataFrame
    users: pd.DataFrame
    profile: pd.DataFrame
    bridges: pd.DataFrame
    nodes: pd.DataFrame
    links: pd.DataFrame
    summary: dict[str, Any]
    sql: str


def load_graph(ctx: ToolContext, schema: GraphSchema, graph: str, min_shared: int,
               min_weight: float) -> CreatorGraph:
    """Run the graph SQL and pack the creator pairs into an :class:`EdgeList`."""
    sql = edges_sql(schema, graph)
    pairs = ctx.workspace.frame(sql, [int(min_shared), float(min_weight)], timeout_s=GRAPH_TIMEOUT_S)
    stats = ctx.workspace.frame(source_stats_sql(schema, graph), timeout_s=GRAPH_TIMEOUT_S).iloc[0]
    ids = np.unique(np.concatenate([pairs["source"].to_numpy(), pairs["target"].to_numpy()]))
    index = pd.Index(ids)
    edges = EdgeList.build(len(ids), index.get_indexer(pairs["source"]),
                           index.get_indexer(pairs["target"]), pairs["weight"].to_numpy(float))
    return CreatorGraph(ids, edges, int(stats["creators"]), int(stats["capped_users"]), sql)


def _check_args(graph: str, algorithm: str, resolution: float | None, n_communities: int | None,
                min_shared: int, min_weight: float) -> None:
    if graph not in GRAPHS:
        raise ToolArgumentError(f"unknown graph '{graph}'; choose 'follow' or 'co_engagement'")
    if algorithm not in ALGORITHMS:
        raise ToolArgumentError(f"unknown algorithm '{algorithm}'; choose 'leiden' or 'louvain'")
    if resolution is not None and not 0 < float(resolution) <= MAX_RESOLUTION:
        raise ToolArgumentError("resolution must be above 0 (1 is plain modularity; higher "
                                "finds more, smaller communities), or empty to choose it")
    if n_communities is not None and int(n_communities) < 2:
        raise ToolArgumentError("n_communities must be 2 or more, or empty to choose it")
    if int(min_shared) < 1 or float(min_weight) < 0:
        raise ToolArgumentError("min_shared must be 1 or more and min_weight 0 or more")


def detect_communities(ctx: ToolContext, graph: str = "follow", algorithm: str = "leiden",
                       resolution: float | None = None, n_communities: int | None = None,
                       min_shared: int = 2, min_weight: float = 0.0) -> ToolOutput:
    """Find communities of creators (and their audiences) in the follow or co-watching graph.

    Use for "which creator communities / niches / scenes exist", "who bridges two
    communities", "what audience does each community have". Saves the session tables
    creator_communities(creator_id, community_id) and user_communities(user_id, community_id)
    (ids from 1, largest first; a user belongs to the community they watch most) for later
    SQL, e.g. "how many users of community 1 are in Brazil?". Returns per community its
    size, density, top hashtags and audience demographics, the bridge creators and users,
    the modularity, and profile, bridge and map results by ref. Cached: asking again is instant.

    Args:
        graph: "follow" (creators linked by shared followers, the default) or
            "co_engagement" (creators linked by viewers who watched both).
        algorithm: "leiden" (default) or "louvain" (the slower reference).
        resolution: modularity resolution (above 0; higher gives smaller communities);
            leave empty to choose it automatically.
        n_communities: ask for exactly this many communities instead.
        min_shared: only link creators with at least this many shared followers/viewers.
        min_weight: only keep links at least this strong (after weighting).
    """
    graph, algorithm = graph.strip().lower(), algorithm.strip().lower()
    _check_args(graph, algorithm, resolution, n_communities, min_shared, min_weight)
    schema = discover_graph_schema(ctx.catalog())
    require(schema, graph)
    floor = int(ctx.settings.privacy_floor)
    args = {"graph": graph, "algorithm": algorithm,
            "resolution": None if resolution is None else float(resolution),
            "n_communities": None if n_communities is None else int(n_communities),
            "min_shared": int(min_shared), "min_weight": float(min_weight),
            "privacy_floor": floor, "schema": schema, "seed": SEED}
    saved: dict[str, bool] = {}

    def compute() -> CommunityResult:
        loaded = load_graph(ctx, schema, graph, int(min_shared), float(min_weight))
        if loaded.edges.n < 2:
            raise ToolArgumentError(
                f"no two creators share {min_shared}+ {'followers' if graph == 'follow' else 'viewers'}"
                " with these thresholds; lower min_shared or min_weight")
        if n_communities is not None and int(n_communities) > loaded.edges.n:
            raise ToolArgumentError(
                f"n_communities={n_communities} is more than the {loaded.edges.n} linked creators")
        part = detect(loaded.edges, args["resolution"], args["n_communities"], algorithm, SEED)
        creators = pd.DataFrame({"creator_id": loaded.ids, "community_id": part.membership + 1})
        creators = creators.sort_values(["community_id", "creator_id"], ignore_index=True)
        saved["replaced"] = ctx.save_table(CREATOR_TABLE, creators)
        users = ctx.workspace.frame(assignment_sql(schema), timeout_s=GRAPH_TIMEOUT_S)
        saved["replaced"] |= ctx.save_table(USER_TABLE, users[["user_id", "community_id"]])
        return _derive(ctx, schema, graph, algorithm, loaded, part, creators, users, floor)

    key = cache_key(ctx.workspace.fingerprint(), "detect_communities", args, CACHE_VERSION)
    result, hit = derived_cache(ctx).get_or_compute(key, compute)
    if hit:
        replaced = ctx.save_table(CREATOR_TABLE, result.creators)
        replaced |= ctx.save_table(USER_TABLE, result.users[["user_id", "community_id"]])
    else:
        replaced = saved["replaced"]
    profile_ref = ctx.results.put_table(result.profile, "Creator communities: profiles")
    bridges_ref = ctx.results.put_table(result.bridges, "Creator communities: bridges")
    chart_ref = ctx.results.put_figure(community_map(result.nodes, result.links),
                                       "Creator communities: map")
    summary = {**result.summary, "replaced": replaced, "cache_hit": hit,
               "profile_ref": profile_ref, "bridges_ref": bridges_ref, "chart_ref": chart_ref}
    return ToolOutput(summary=summary, sql=result.sql, rows=len(result.creators),
                      refs=[profile_ref, bridges_ref, chart_ref])


def _derive(ctx: ToolContext, schema: GraphSchema, graph: str, algorithm: str, loaded: CreatorGraph,
            part: Partition, creators: pd.DataFrame, users: pd.DataFrame,
            floor: int) -> CommunityResult:
    """Profiles, bridges, the community map's data and the summary."""
    profiles = build_profiles(ctx, schema, loaded.edges, part.membership, creators, users, floor)
    k = part.count
    described = profiles.described
    summary: dict[str, Any] = {
        "tables": [CREATOR_TABLE, USER_TABLE], "graph": graph,
        "graph_weighting": ("shared followers, each follower adding 1/(their follows - 1)"
                            if graph == "follow" else
                            "co-watching viewers, each adding the smaller of the two creators' "
                            "shares of their watch time"),
        "creators_linked": int(loaded.edges.n), "links": int(len(loaded.edges.weight)),
        "creators_without_links": max(loaded.creators_seen - int(loaded.edges.n), 0),
        "algorithm": algorithm, "resolution": round(part.resolution, 4),
        "resolution_rule": part.rule, "modularity": round(part.modularity, 4),
        "communities": k, "described": len(described),
        "users_assigned": int(len(users)),
        "users_by": {str(b): int(n) for b, n in users["basis"].value_counts().items()},
        "connectivity": ({"all_connected": True} if part.disconnected == 0 else
                         {"all_connected": part.split, "disconnected_found": part.disconnected,
                          "action": ("split into their connected parts" if part.split else
                                     "kept, to give the number of communities asked for")}),
        "bridges": profiles.bridge_summary,
        "community_profiles": profiles.summaries[:SUMMARY_COMMUNITIES],
    }
    if loaded.capped_users:
        summary["capped_users"] = {
            "users": loaded.capped_users,
            "note": "users linked to more creators than the cap contribute a fixed sample"}
    if profiles.other:
        summary["other"] = profiles.other
    if described:
        first = profiles.summaries[0]
        tags = ", ".join(f"#{t}" for t in first.get("top_hashtags", [])[:3]) or "mixed topics"
        summary["reading"] = (
            f"{k} creator communities in the {graph.replace('_', '-')} graph (modularity "
            f"{part.modularity:.2f}); the largest, community 1, has {first['creators']} creators "
            f"and {first['users']:,} users around {tags}; "
            f"{profiles.bridge_summary['creators']} creators bridge two communities. Join "
            f"{USER_TABLE} on user_id or {CREATOR_TABLE} on creator_id to break them down.")
    else:
        summary["reading"] = (f"{k} communities found, but every one has fewer than {floor} "
                              "creators, so none is described individually.")
    sql = f"{loaded.sql};\n\n-- users by watch time / follows\n{assignment_sql(schema)}"
    return CommunityResult(creators, users[["user_id", "community_id", "basis"]], profiles.table,
                           profiles.bridges, profiles.nodes, profiles.links, summary, sql)

