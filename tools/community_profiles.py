"""Profiles of creator communities: size, density, top creators, distinctive hashtags,
audience demographics, bridges, and the community map (ARCHITECTURE decisions 3 and 8).

Communities with fewer than the privacy floor's creators are pooled as one "other" group
everywhere (profiles, bridge pairs, the map). The profile and bridge tables, which the
person sees by ref, may hold creator ids; the summaries meant for the model hold counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from tools.base import ToolContext
from tools.community_detection import EdgeList
from tools.graphs import (
    GRAPH_TIMEOUT_S,
    GraphSchema,
    audience_sql,
    demographics_sql,
    hashtags_sql,
    popularity_sql,
)

BRIDGE_SHARE = 0.30
TOP_CREATORS = 5
TOP_HASHTAGS = 5
TOP_VALUES = 3
MAX_DEMOGRAPHICS = 4
MAP_LINKS = 300
OTHER = 0  # the group id of the pooled small communities


@dataclass
class Profiles:
    """Everything the tool reports about its communities."""

    table: pd.DataFrame
    summaries: list[dict[str, Any]]
    other: dict[str, Any] | None
    described: list[int]
    bridges: pd.DataFrame
    bridge_summary: dict[str, Any]
    nodes: pd.DataFrame
    links: pd.DataFrame


def _label(group: int) -> str:
    return "other" if group == OTHER else str(group)


def _by_group(df: pd.DataFrame, group_of: np.ndarray, keys: list[str]) -> pd.DataFrame:
    """Sum ``n`` of a ``community_id``-keyed frame by privacy group (and ``keys``)."""
    df = df.assign(group=group_of[df["community_id"].to_numpy(dtype=np.int64)])
    return df.groupby(["group", *keys], as_index=False)["n"].sum()


def _hashtags(ctx: ToolContext, schema: GraphSchema, group_of: np.ndarray) -> dict[int, list[str]]:
    """Per group, the most distinctive tags: share × log-lift against all communities, so
    reach tags used everywhere (fyp, viral) sink and topic tags rise."""
    sql = hashtags_sql(schema)
    if sql is None:
        return {}
    df = ctx.workspace.frame(sql, timeout_s=GRAPH_TIMEOUT_S)
    if df.empty:
        return {}
    df = _by_group(df, group_of, ["tag"])
    share = df["n"] / df.groupby("group")["n"].transform("sum")
    overall = df.groupby("tag")["n"].transform("sum") / df["n"].sum()
    df["score"] = share * np.log(share / overall)
    df = df.sort_values(["group", "score", "n", "tag"], ascending=[True, False, False, True])
    return {int(g): part["tag"].head(TOP_HASHTAGS).astype(str).tolist()
            for g, part in df[df["score"] > 0].groupby("group")}


def _demographics(ctx: ToolContext, schema: GraphSchema,
                  group_of: np.ndarray) -> dict[int, dict[str, list[tuple[str, float]]]]:
    """Per group and demographic column: (value, share of the group's users), largest first."""
    sql = demographics_sql(schema)
    if sql is None or schema.events is None:
        return {}
    columns = list(schema.events.demographics)
    df = ctx.workspace.frame(sql, timeout_s=GRAPH_TIMEOUT_S)
    df["value"] = df["value"].fillna("(missing)")
    df = _by_group(df, group_of, ["col", "value"])
    df["share"] = df["n"] / df.groupby(["group", "col"])["n"].transform("sum")
    df = df.sort_values(["group", "col", "n", "value"], ascending=[True, True, False, True])
    out: dict[int, dict[str, list[tuple[str, float]]]] = {}
    for (g, col), part in df.groupby(["group", "col"], sort=False):
        if int(col) < MAX_DEMOGRAPHICS:
            out.setdefault(int(g), {})[columns[int(col)]] = [
                (str(v), round(float(s), 3)) for v, s in zip(part["value"].head(TOP_VALUES),
                                                             part["share"].head(TOP_VALUES),
                                                             strict=True)]
    return out


def _bridges(ctx: ToolContext, schema: GraphSchema, creators: pd.DataFrame,
             users: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Bridge creators (by their audience's communities) and bridge users (by watch time)."""
    sql, audience = audience_sql(schema)
    df = ctx.workspace.frame(sql, timeout_s=GRAPH_TIMEOUT_S)
    df = df.sort_values(["creator_id", "n", "community_id"], ascending=[True, False, True])
    df["total"] = df.groupby("creator_id")["n"].transform("sum")
    df["share"] = df["n"] / df["total"]
    df["rank"] = df.groupby("creator_id").cumcount()
    top = df[df["rank"] == 0].set_index("creator_id")
    second = df[df["rank"] == 1].set_index("creator_id")
    second = second[second["share"] >= BRIDGE_SHARE]
    own = creators.set_index("creator_id")["community_id"]
    creator_rows = pd.DataFrame({
        "kind": "creator", "id": second.index.to_numpy(),
        "community_id": own.reindex(second.index).to_numpy(),
        "community_a": top.loc[second.index, "community_id"].to_numpy(),
        "share_a": top.loc[second.index, "share"].to_numpy(),
        "community_b": second["community_id"].to_numpy(), "share_b": second["share"].to_numpy(),
        "audience": top.loc[second.index, "total"].to_numpy()})
    u = users[(users["second_share"] >= BRIDGE_SHARE) & users["second_id"].notna()]
    user_rows = pd.DataFrame({
        "kind": "user", "id": u["user_id"].to_numpy(), "community_id": u["community_id"].to_numpy(),
        "community_a": u["community_id"].to_numpy(), "share_a": u["share"].to_numpy(),
        "community_b": u["second_id"].to_numpy(), "share_b": u["second_share"].to_numpy(),
        "audience": np.nan})
    out = pd.concat([creator_rows, user_rows], ignore_index=True)
    for col in ("community_id", "community_a", "community_b"):
        out[col] = out[col].astype("int64")
    out["share_a"], out["share_b"] = out["share_a"].round(4), out["share_b"].round(4)
    return out, audience


def _bridge_summary(bridges: pd.DataFrame, group_of: np.ndarray, audience: str) -> dict[str, Any]:
    pairs = bridges.assign(
        a=group_of[bridges["community_a"].to_numpy()], b=group_of[bridges["community_b"].to_numpy()])
    lo, hi = np.minimum(pairs["a"], pairs["b"]), np.maximum(pairs["a"], pairs["b"])
    counts = (pairs.assign(lo=lo, hi=hi).groupby(["lo", "hi", "kind"]).size()
              .unstack(fill_value=0).reindex(columns=["creator", "user"], fill_value=0))
    counts = counts.sort_values(["creator", "user"], ascending=False).head(5)
    return {
        "creators": int((bridges["kind"] == "creator").sum()),
        "users": int((bridges["kind"] == "user").sum()),
        "rule": (f"creators with at least {BRIDGE_SHARE:.0%} of their {audience} in each of two "
                 f"communities (by user_communities); users with at least {BRIDGE_SHARE:.0%} of "
                 "their watch time in each of two"),
        "top_pairs": [{"between": [_label(int(a)), _label(int(b))], "creators": int(r["creator"]),
                       "users": int(r["user"])} for (a, b), r in counts.iterrows()],
    }


def build_profiles(ctx: ToolContext, schema: GraphSchema, edges: EdgeList, membership: np.ndarray,
                   creators: pd.DataFrame, users: pd.DataFrame, floor: int) -> Profiles:
    """Profiles of the communities ``membership`` (0-based; community ids are +1)."""
    comm = membership.astype(np.int64) + 1
    k = int(comm.max())
    sizes = np.bincount(comm, minlength=k + 1)
    described = [c for c in range(1, k + 1) if sizes[c] >= floor]
    group_of = np.full(k + 1, OTHER, dtype=np.int64)
    group_of[described] = described
    group = group_of[comm]
    groups = [*described, *([OTHER] if len(described) < k else [])]

    inside = comm[edges.source] == comm[edges.target]
    pairs_in = np.bincount(group[edges.source[inside]], minlength=k + 1)
    weight_in = np.bincount(group[edges.source[inside]], edges.weight[inside], minlength=k + 1)
    volume = np.bincount(group, edges.strength(), minlength=k + 1)
    possible = np.bincount(group_of[1:], sizes[1:] * (sizes[1:] - 1) / 2, minlength=k + 1)
    creators_n = np.bincount(group, minlength=k + 1)
    users_n = np.bincount(group_of[users["community_id"].to_numpy(dtype=np.int64)], minlength=k + 1)

    popularity = ctx.workspace.frame(popularity_sql(schema), timeout_s=GRAPH_TIMEOUT_S)
    ranked = creators.merge(popularity, on="creator_id", how="left").fillna({"audience": 0})
    ranked["group"] = group_of[ranked["community_id"].to_numpy(dtype=np.int64)]
    ranked = ranked.sort_values(["group", "audience", "creator_id"], ascending=[True, False, True])
    top_creators = {int(g): p["creator_id"].head(TOP_CREATORS).tolist()
                    for g, p in ranked.groupby("group")}
    tags = _hashtags(ctx, schema, group_of)
    demo = _demographics(ctx, schema, group_of)
    bridges, audience = _bridges(ctx, schema, creators, users)
    bridge_creators = np.bincount(
        group_of[bridges.loc[bridges["kind"] == "creator", "community_id"].to_numpy()],
        minlength=k + 1)

    rows, summaries = [], []
    for g in groups:
        density = round(float(pairs_in[g] / possible[g]), 4) if possible[g] else None
        internal = round(float(2 * weight_in[g] / volume[g]), 4) if volume[g] else None
        facts = {"creators": int(creators_n[g]), "users": int(users_n[g]), "density": density,
                 "internal_weight_share": internal, "bridge_creators": int(bridge_creators[g])}
        rows.append({"community_id": None if g == OTHER else g, "group": _label(g),
                     "communities": int((group_of[1:] == g).sum()), **facts,
                     "top_creators": ", ".join(str(c) for c in top_creators.get(g, [])),
                     "top_hashtags": ", ".join(f"#{t}" for t in tags.get(g, [])),
                     **{col: ", ".join(f"{v} {s:.0%}" for v, s in vals)
                        for col, vals in demo.get(g, {}).items()}})
        if g != OTHER:
            summaries.append({"community_id": g, **facts, "top_hashtags": tags.get(g, []),
                              "audience": {col: list(vals[0]) for col, vals in demo.get(g, {}).items()}})
    table = pd.DataFrame(rows)
    table["community_id"] = table["community_id"].astype("Int64")
    other = None
    if len(described) < k:
        other = {"communities": k - len(described), "creators": int(creators_n[OTHER]),
                 "users": int(users_n[OTHER]),
                 "note": f"communities under {floor} creators are pooled and not described"}
    between = ~inside
    a, b = group[edges.source[between]], group[edges.target[between]]
    links = (pd.DataFrame({"a": np.minimum(a, b), "b": np.maximum(a, b), "weight": edges.weight[between]})
             .query("a != b").groupby(["a", "b"], as_index=False)["weight"].sum())
    nodes = pd.DataFrame({"group": groups, "label": [_label(g) for g in groups],
                          "creators": [int(creators_n[g]) for g in groups],
                          "users": [int(users_n[g]) for g in groups],
                          "tags": [" ".join(f"#{t}" for t in tags.get(g, [])[:3]) for g in groups]})
    return Profiles(table, summaries, other, described, bridges,
                    _bridge_summary(bridges, group_of, audience), nodes, links)


def community_map(nodes: pd.DataFrame, links: pd.DataFrame) -> go.Figure:
    """A spring layout of the community graph: circles sized by creators, lines by ties."""
    graph = nx.Graph()
    graph.add_nodes_from(nodes["group"].tolist())
    strongest = links.nlargest(MAP_LINKS, "weight")
    top = float(strongest["weight"].max()) if len(strongest) else 1.0
    for r in strongest.itertuples():
        graph.add_edge(int(r.a), int(r.b), weight=float(r.weight) / top)
    pos = nx.spring_layout(graph, weight="weight", seed=0) if len(graph) else {}
    fig = go.Figure()
    for r in strongest.itertuples():
        (x0, y0), (x1, y1) = pos[int(r.a)], pos[int(r.b)]
        fig.add_trace(go.Scatter(x=[x0, x1], y=[y0, y1], mode="lines", hoverinfo="skip",
                                 line={"width": 0.5 + 7 * float(r.weight) / top, "color": "#bbb"},
                                 showlegend=False))
    biggest = max(int(nodes["creators"].max()), 1) if len(nodes) else 1
    fig.add_trace(go.Scatter(
        x=[pos[g][0] for g in nodes["group"]], y=[pos[g][1] for g in nodes["group"]],
        mode="markers+text", text=nodes["label"].tolist(), textposition="middle center",
        marker={"size": [12 + 48 * math.sqrt(c / biggest) for c in nodes["creators"]],
                "color": nodes["creators"].tolist(), "colorscale": "Viridis", "opacity": 0.85},
        hovertext=[f"community {lbl}: {c} creators, {u:,} users {t}" for lbl, c, u, t in
                   zip(nodes["label"], nodes["creators"], nodes["users"], nodes["tags"], strict=True)],
        hoverinfo="text", showlegend=False))
    fig.update_layout(title="Creator communities (size: creators; lines: shared audience)",
                      template="plotly_white", xaxis={"visible": False},
                      yaxis={"visible": False}, margin={"l": 20, "r": 20, "t": 60, "b": 20})
    return fig
