"""Evidence for strategy suggestions, computed in SQL per content community.

A content community is a community of creators (`creator_communities`); its audience is
`user_communities`. Every figure here comes with the SQL that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from tools.base import ToolContext
from tools.catalog import Catalog
from tools.errors import ToolArgumentError
from tools.features import InteractionSchema, discover_schema


def q(name: str) -> str:
    """A quoted identifier (names come from the catalog, never from user text)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Evidence:
    """Per-community figures and the SQL behind them."""

    groups: pd.DataFrame  # one row per community
    overall_completion: float | None
    weeks: float
    window: tuple[str, str]
    sql: dict[str, str] = field(default_factory=dict)
    bridges: pd.DataFrame | None = None
    cold_start: dict[str, float] | None = None


def _creator_key(catalog: Catalog, schema: InteractionSchema) -> str:
    items = catalog.table(schema.item_table or "")
    if items is None:
        raise ToolArgumentError("draft_strategy needs an item table (e.g. videos) joined to events")
    keys = [c.name for c in items.columns if c.is_key and c.name != schema.item_key]
    if not keys:
        raise ToolArgumentError(f"{items.name} has no creator key column to map items to creators")
    return "creator_id" if "creator_id" in keys else keys[0]


def collect_evidence(ctx: ToolContext) -> Evidence:
    """Demand, supply, growth, completion, audience and variance per content community."""
    catalog = ctx.catalog()
    for needed in ("creator_communities", "user_communities"):
        if catalog.table(needed) is None:
            raise ToolArgumentError(f"the session has no {needed} table; run detect_communities")
    s = discover_schema(catalog)
    creator = _creator_key(catalog, s)
    weight = f"CAST(e.{q(s.weight_col)} AS DOUBLE)" if s.weight_col else "1.0"
    done = f"CAST(e.{q(s.completion_col)} AS DOUBLE)" if s.completion_col else "NULL"
    ev = (f"SELECT e.{q(s.user_key)} AS u, cc.community_id AS g, e.{q(s.time_col)} AS ts, "
          f"{weight} AS w, {done} AS done FROM {q(s.events)} e "
          f"JOIN {q(s.item_table)} i ON e.{q(s.item_key)} = i.{q(s.item_key)} "
          f"JOIN creator_communities cc ON i.{q(creator)} = cc.creator_id")
    bounds_sql = f"SELECT min({q(s.time_col)}) AS t0, max({q(s.time_col)}) AS t1 FROM {q(s.events)}"
    t0, t1 = ctx.workspace.frame(bounds_sql).iloc[0]
    weeks = max((pd.Timestamp(t1) - pd.Timestamp(t0)).total_seconds() / (7 * 86400), 1.0)
    demand_sql = (
        f"WITH ev AS ({ev}), b AS ({bounds_sql}) "
        "SELECT g, sum(w) AS watch, count(*) AS views, avg(done) AS completion, "
        "sum(w) FILTER (WHERE ts < b.t0 + INTERVAL 7 DAY) AS first_week, "
        "sum(w) FILTER (WHERE ts > b.t1 - INTERVAL 7 DAY) AS last_week, "
        "count(DISTINCT u) FILTER (WHERE ts > b.t1 - INTERVAL 7 DAY) AS weekly_viewers "
        "FROM ev, b GROUP BY g")
    demand = ctx.workspace.frame(demand_sql)
    supply_sql = (f"SELECT cc.community_id AS g, count(*) AS videos FROM {q(s.item_table)} i "
                  f"JOIN creator_communities cc ON i.{q(creator)} = cc.creator_id GROUP BY 1")
    supply = ctx.workspace.frame(supply_sql)
    audience_sql = (
        f"WITH per_user AS (SELECT {q(s.user_key)} AS u, sum({weight.replace('e.', '')}) / ? AS wk, "
        f"max({q(s.time_col)}) AS last_ts FROM {q(s.events)} GROUP BY 1), b AS ({bounds_sql}) "
        "SELECT uc.community_id AS g, count(*) AS users, avg(coalesce(p.wk, 0)) AS mean_week, "
        "stddev_samp(coalesce(p.wk, 0)) AS sd_week, "
        "count(*) FILTER (WHERE p.last_ts > b.t1 - INTERVAL 7 DAY) AS weekly_active "
        f"FROM user_communities uc LEFT JOIN per_user p ON p.u = uc.{q('user_id')}, b GROUP BY 1")
    audience = ctx.workspace.frame(audience_sql, [weeks])
    groups = demand.merge(supply, on="g", how="outer").merge(audience, on="g", how="left")
    groups = groups.fillna({"watch": 0.0, "views": 0, "videos": 0, "users": 0, "weekly_active": 0})
    total_watch, total_videos = groups["watch"].sum(), groups["videos"].sum()
    groups["demand_share"] = groups["watch"] / total_watch if total_watch else 0.0
    groups["supply_share"] = groups["videos"] / total_videos if total_videos else 0.0
    first_total = groups["first_week"].sum()
    last_total = groups["last_week"].sum()
    groups["first_week_share"] = groups["first_week"].fillna(0) / first_total if first_total else 0.0
    groups["last_week_share"] = groups["last_week"].fillna(0) / last_total if last_total else 0.0
    overall_sql = f"SELECT avg({done}) AS c FROM {q(s.events)} e"
    overall = ctx.workspace.frame(overall_sql).iloc[0]["c"] if s.completion_col else None
    evidence = Evidence(
        groups=groups.sort_values("g").reset_index(drop=True),
        overall_completion=None if overall is None or pd.isna(overall) else float(overall),
        weeks=weeks, window=(str(pd.Timestamp(t0).date()), str(pd.Timestamp(t1).date())),
        sql={"demand": demand_sql, "supply": supply_sql, "audience": audience_sql},
    )
    evidence.bridges = _bridges(ctx, catalog, s, creator, evidence)
    evidence.cold_start = _cold_start(ctx, catalog, s, weight, evidence, weeks)
    return evidence


def _follow_table(catalog: Catalog, s: InteractionSchema, creator: str) -> tuple[str, str] | None:
    for t in catalog.tables.values():
        if t.origin != "warehouse" or t.name in (s.events, s.item_table):
            continue
        cols = {c.name for c in t.columns}
        others = [c.name for c in t.columns if c.is_key and c.name != creator]
        if creator in cols and others:
            return t.name, others[0]
    return None


def _bridges(ctx: ToolContext, catalog: Catalog, s: InteractionSchema, creator: str,
             evidence: Evidence, share: float = 0.3) -> pd.DataFrame | None:
    found = _follow_table(catalog, s, creator)
    if found is None:
        return None
    table, follower = found
    sql = (
        f"WITH f AS (SELECT f.{q(creator)} AS c, uc.community_id AS g FROM {q(table)} f "
        f"JOIN user_communities uc ON uc.user_id = f.{q(follower)}), "
        "per AS (SELECT c, g, count(*) AS n, sum(count(*)) OVER (PARTITION BY c) AS total "
        "FROM f GROUP BY c, g), strong AS (SELECT c, g FROM per WHERE n >= ? * total AND total >= 10) "
        "SELECT least(a.g, b.g) AS g1, greatest(a.g, b.g) AS g2, count(DISTINCT a.c) AS bridge_creators "
        "FROM strong a JOIN strong b ON a.c = b.c AND a.g < b.g GROUP BY 1, 2 ORDER BY 3 DESC")
    evidence.sql["bridges"] = sql.replace("?", str(share))
    return ctx.workspace.frame(sql, [share])


def _cold_start(ctx: ToolContext, catalog: Catalog, s: InteractionSchema, weight: str,
                evidence: Evidence, weeks: float) -> dict[str, float] | None:
    users = catalog.table(s.user_table or "")
    if users is None:
        return None
    signup = next((c.name for c in users.columns if c.kind == "time"), None)
    if signup is None:
        return None
    start = f"CAST(u.{q(signup)} AS TIMESTAMP)"
    sql = (
        f"WITH b AS (SELECT min({q(s.time_col)}) AS t0, max({q(s.time_col)}) AS t1 "
        f"FROM {q(s.events)}), "
        f"w AS (SELECT e.{q(s.user_key)} AS u, sum({weight}) AS total FROM {q(s.events)} e "
        "GROUP BY 1), "
        f"per_user AS (SELECT {start} > b.t1 - INTERVAL 30 DAY AS is_new, coalesce(w.total, 0) / "
        f"greatest(1, date_diff('day', greatest({start}, b.t0), b.t1) / 7.0) AS wk "
        f"FROM {q(s.user_table)} u CROSS JOIN b LEFT JOIN w ON w.u = u.{q(s.user_key)}) "
        "SELECT is_new, count(*) AS users, avg(wk) AS mean_week, stddev_samp(wk) AS sd_week "
        "FROM per_user GROUP BY 1")
    evidence.sql["cold_start"] = sql
    df = ctx.workspace.frame(sql)
    if set(df["is_new"].tolist()) != {True, False}:
        return None
    new = df[df["is_new"]].iloc[0]
    old = df[~df["is_new"]].iloc[0]
    return {"new_users": int(new["users"]), "new_mean_week": float(new["mean_week"]),
            "new_sd_week": float(new["sd_week"] or 0.0),
            "established_mean_week": float(old["mean_week"])}
