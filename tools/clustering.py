"""cluster_users: segments of users by what they watch, saved as the session table user_clusters.

Pipeline: interest features in SQL (:mod:`tools.features`) → sparse TF-IDF rows → TruncatedSVD
to ``dims`` and row L2-normalisation (cosine geometry) → k by silhouette on a sample of at
most 5,000 users (k from 2 to 24) unless given → KMeans (MiniBatchKMeans above 50,000 users)
or HDBSCAN → ids 1..k by size → profiles (lift of interests, demographics, engagement).
HDBSCAN's noise users are left out of ``user_clusters`` and counted in the summary. The whole
derived result is cached by (database fingerprint, tool, arguments); a repeat only re-saves
the session table and re-files the profile table and chart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.cluster import HDBSCAN, KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.metrics import davies_bouldin_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import normalize

from tools.base import ToolContext, ToolOutput, derived_cache
from tools.cache import cache_key
from tools.errors import ToolArgumentError
from tools.features import (
    FEATURE_TIMEOUT_S,
    FeatureSource,
    InteractionSchema,
    InterestMatrix,
    available_features,
    build_matrix,
    discover_schema,
    interest_lift,
    parse_window,
    q,
    resolve_features,
)

TABLE = "user_clusters"
SEED = 0
SAMPLE = 5_000
K_MIN, K_MAX = 2, 24
LARGE = 50_000  # above this many users, MiniBatchKMeans
HDBSCAN_FIT_MAX = 10_000  # HDBSCAN fits a sample; the rest follow their nearest neighbour
CACHE_VERSION = "1"
SUMMARY_INTERESTS = 5


@dataclass
class Fit:
    """Labels of every row (1..k largest first, 0 = noise) and how they were found."""

    labels: np.ndarray
    k: int
    algorithm: str
    k_scores: dict[int, float] = field(default_factory=dict)
    silhouette: float | None = None
    davies_bouldin: float | None = None
    sample: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    projection: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    seconds: dict[str, float] = field(default_factory=dict)


def reduce_features(x: sp.csr_matrix, dims: int | None, seed: int = SEED) -> np.ndarray | sp.csr_matrix:
    """TruncatedSVD to ``dims`` then row L2-normalisation; ``None`` keeps the sparse rows."""
    if dims is None or dims >= x.shape[1] - 1:
        return normalize(x)
    svd = TruncatedSVD(n_components=dims, algorithm="randomized", n_iter=4, random_state=seed)
    return normalize(svd.fit_transform(x).astype(np.float32, copy=False))


def sample_distances(zs: np.ndarray | sp.csr_matrix) -> np.ndarray:
    """Euclidean distances between the rows of a (small) sample, computed once."""
    gram = (zs @ zs.T).toarray() if sp.issparse(zs) else zs @ zs.T
    gram = np.asarray(gram, dtype=np.float64)
    sq = np.diag(gram)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0))


def silhouette(dist: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette from precomputed distances (as sklearn's, singletons scoring 0).

    One (n × n) @ (n × k) product per labelling instead of recomputing all distances for
    each k tried.
    """
    ids, inv = np.unique(labels, return_inverse=True)
    if len(ids) < 2:
        return float("nan")
    n = len(labels)
    onehot = np.zeros((n, len(ids)))
    onehot[np.arange(n), inv] = 1.0
    sums = dist @ onehot
    counts = onehot.sum(axis=0)
    a = sums[np.arange(n), inv] / np.maximum(counts[inv] - 1, 1)
    means = sums / counts
    means[np.arange(n), inv] = np.inf
    b = means.min(axis=1)
    s = np.where(counts[inv] > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def choose_k(zs: np.ndarray | sp.csr_matrix, dist: np.ndarray,
             seed: int = SEED) -> tuple[int, dict[int, float]]:
    """The k in 2..24 with the best silhouette of KMeans on ``zs`` (a sample of ≤ 5k users)."""
    scores: dict[int, float] = {}
    for k in range(K_MIN, min(K_MAX, zs.shape[0] - 1) + 1):
        labels = KMeans(k, n_init=1, random_state=seed).fit_predict(zs)
        if len(np.unique(labels)) > 1:
            scores[k] = round(silhouette(dist, labels), 4)
    if not scores:
        raise ToolArgumentError("too few distinct users to form clusters; widen the window")
    return max(scores, key=lambda kk: (scores[kk], -kk)), scores


def by_size(raw: np.ndarray) -> np.ndarray:
    """Relabel: largest cluster 1, next 2, …; negative raw labels (noise) become 0."""
    ids, counts = np.unique(raw[raw >= 0], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    mapping = np.zeros(int(raw.max()) + 1 if raw.max() >= 0 else 1, dtype=np.int64)
    mapping[order] = np.arange(1, len(order) + 1)
    return np.where(raw >= 0, mapping[np.maximum(raw, 0)], 0)


def cluster_matrix(x: sp.csr_matrix, k: int | None = None, method: str = "kmeans",
                   dims: int | None = 50, min_cluster_size: int = 20, seed: int = SEED) -> Fit:
    """Cluster the rows of ``x`` (users × items, TF-IDF); see the module docstring."""
    clock = [time.perf_counter()]
    z = reduce_features(x, dims, seed)
    clock.append(time.perf_counter())
    n = z.shape[0]
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, SAMPLE), replace=False))
    zs = z[sample]
    dist = sample_distances(zs)
    scores: dict[int, float] = {}
    if method == "hdbscan":
        clock.append(time.perf_counter())
        raw = _hdbscan(z, min_cluster_size, rng)
        algorithm = "HDBSCAN"
    else:
        if k is None:
            k, scores = choose_k(zs, dist, seed)
        clock.append(time.perf_counter())
        if n > LARGE:
            model = MiniBatchKMeans(k, batch_size=4096, n_init=3, random_state=seed)
            algorithm = "MiniBatchKMeans"
        else:
            model = KMeans(k, n_init=4, random_state=seed)
            algorithm = "KMeans"
        raw = model.fit_predict(z)
    labels = by_size(raw)
    clock.append(time.perf_counter())
    fit = Fit(labels, int(labels.max()), algorithm, scores, sample=sample)
    ls = labels[sample]
    kept = ls > 0
    if len(np.unique(ls[kept])) > 1:
        fit.silhouette = round(silhouette(dist[np.ix_(kept, kept)], ls[kept]), 4)
        dense = zs[kept].toarray() if sp.issparse(zs) else zs[kept]
        fit.davies_bouldin = round(float(davies_bouldin_score(dense, ls[kept])), 4)
    if len(sample) >= 3 and zs.shape[1] > 2:
        proj = TruncatedSVD(2, random_state=seed) if sp.issparse(zs) else PCA(2, random_state=seed)
        fit.projection = proj.fit_transform(zs).astype(np.float32)
    clock.append(time.perf_counter())
    fit.seconds = dict(zip(("svd", "choose_k", "fit", "quality"),
                           np.round(np.diff(clock), 2).tolist(), strict=True))
    return fit


def _hdbscan(z: np.ndarray | sp.csr_matrix, min_cluster_size: int,
             rng: np.random.Generator) -> np.ndarray:
    n = z.shape[0]
    fit_rows = np.sort(rng.choice(n, size=min(n, HDBSCAN_FIT_MAX), replace=False))
    zf = z[fit_rows].toarray() if sp.issparse(z) else z[fit_rows]
    # at least the privacy floor, and 0.5% of the users so that big data is not shattered
    size = max(2, min(max(min_cluster_size, len(fit_rows) // 200), len(fit_rows) // 2))
    raw = HDBSCAN(min_cluster_size=size, copy=True).fit_predict(zf)
    if len(fit_rows) == n:
        return raw
    knn = KNeighborsClassifier(n_neighbors=1).fit(zf, raw)
    return knn.predict(z)


@dataclass
class ClusterResult:
    """Everything cluster_users derives (cached): labels, profiles, quality, chart data."""

    table: pd.DataFrame  # user_clusters
    profile: pd.DataFrame
    summary: dict[str, Any]
    projection: pd.DataFrame
    sql: str


def cluster_users(ctx: ToolContext, features: str = "hashtag", k: int | None = None,
                  method: str = "kmeans", dims: int | None = 50, min_events: int = 5,
                  start: str | None = None, end: str | None = None,
                  events_table: str | None = None) -> ToolOutput:
    """Segment users into interest clusters by what they watch, and profile each cluster.

    Use for "what kinds of users / audience segments / interest groups do we have". Saves the
    session table user_clusters(user_id, cluster_id) (ids from 1, largest first) that later
    SQL can join, e.g. "how many users of cluster 2 are in Brazil?". Returns per cluster its
    size and share, most distinctive interests (lift), top demographics, quality figures, a
    profile table and a 2-D chart by ref. Results are cached, so asking again is instant.

    Args:
        features: interest items to compare users by: "hashtag" (default), "category",
            "creator", another item column, or a combination such as "hashtag+category".
        k: number of clusters (2-100); leave empty to choose it by silhouette.
        method: "kmeans" (default) or "hdbscan" (finds k itself; leaves noise users out).
        dims: SVD dimensions before clustering (2-500); null to cluster the sparse rows.
        min_events: only users with at least this many interactions in the window.
        start: first day of the window (ISO date), default the first event.
        end: last day of the window (ISO date, inclusive), default the last event.
        events_table: the interaction table, when the automatic choice is wrong.
    """
    method = method.strip().lower()
    if method not in ("kmeans", "hdbscan"):
        raise ToolArgumentError(f"unknown method '{method}'; choose 'kmeans' or 'hdbscan'")
    if k is not None and not 2 <= int(k) <= 100:
        raise ToolArgumentError("k must be between 2 and 100, or empty to choose it automatically")
    if dims is not None and not 2 <= int(dims) <= 500:
        raise ToolArgumentError("dims must be between 2 and 500, or null for no SVD")
    if int(min_events) < 1:
        raise ToolArgumentError("min_events must be 1 or more")
    catalog = ctx.catalog()
    schema = discover_schema(catalog, events_table)
    sources = resolve_features(features, available_features(catalog, schema))
    lo, hi = parse_window(start, end)
    floor = int(ctx.settings.privacy_floor)
    args = {"features": [s.kind for s in sources], "k": k, "method": method, "dims": dims,
            "min_events": int(min_events), "start": lo, "end": hi, "schema": schema,
            "privacy_floor": floor, "seed": SEED}
    saved: dict[str, bool] = {}

    def compute() -> ClusterResult:
        clock = [time.perf_counter()]
        matrix = build_matrix(ctx.workspace, schema, sources, lo, hi, int(min_events))
        clock.append(time.perf_counter())
        n_users = matrix.weights.shape[0]
        if n_users < 3 * K_MIN or (k is not None and n_users < 2 * int(k)):
            raise ToolArgumentError(f"only {n_users} users qualify, too few for {k or 'any'} "
                                    "clusters; lower min_events or k, or widen the window")
        fit = cluster_matrix(matrix.weights, None if k is None else int(k), method,
                             None if dims is None else int(dims), max(floor, 5))
        clock.append(time.perf_counter())
        if fit.k == 0:
            raise ToolArgumentError("HDBSCAN found no dense group (every user is noise); use "
                                    "method='kmeans', or more data (lower min_events)")
        kept = fit.labels > 0
        table = pd.DataFrame({"user_id": matrix.user_ids[kept], "cluster_id": fit.labels[kept]})
        table = table.sort_values(["cluster_id", "user_id"], kind="stable", ignore_index=True)
        saved["replaced"] = ctx.save_table(TABLE, table)
        result = _derive(ctx, schema, matrix, fit, sources, table, floor, args)
        clock.append(time.perf_counter())
        spent = np.round(np.diff(clock), 2).tolist()
        result.summary["computed_in_s"] = {"features_sql": spent[0], **fit.seconds,
                                           "profiles": spent[2]}
        return result

    key = cache_key(ctx.workspace.fingerprint(), "cluster_users", args, CACHE_VERSION)
    result, hit = derived_cache(ctx).get_or_compute(key, compute)
    replaced = ctx.save_table(TABLE, result.table) if hit else saved["replaced"]
    profile_ref = ctx.results.put_table(result.profile, "User clusters: profiles")
    chart_ref = ctx.results.put_figure(_chart(result.projection), "User clusters (2-D projection)")
    summary = {**result.summary, "replaced": replaced, "cache_hit": hit,
               "profile_ref": profile_ref, "chart_ref": chart_ref}
    return ToolOutput(summary=summary, sql=result.sql, rows=len(result.table),
                      refs=[profile_ref, chart_ref])


def _derive(ctx: ToolContext, schema: InteractionSchema, matrix: InterestMatrix, fit: Fit,
            sources: list[FeatureSource], table: pd.DataFrame, floor: int,
            args: dict[str, Any]) -> ClusterResult:
    """Profiles (interests, demographics, engagement), the summary and the chart data."""
    k = fit.k
    sizes = np.bincount(fit.labels, minlength=k + 1)[1:]
    total = int(sizes.sum())
    described = [c for c in range(1, k + 1) if sizes[c - 1] >= floor]
    personal = {s.kind for s in sources if s.personal}
    interests, described_by = _interests(ctx, schema, matrix, fit.labels, k, sources, args)
    demo = _demographics(ctx, schema)
    engage = _engagement(ctx, schema, args["start"], args["end"])
    rows, clusters = [], []
    for c in described:
        size = int(sizes[c - 1])
        share = round(size / total, 4)
        tops = {col: vals[:3] for col, vals in demo.get(c, {}).items()}
        watch, completion = engage.get(c, (None, None))
        rows.append({"cluster_id": c, "group": str(c), "users": size, "share": share,
                     "top_interests": ", ".join(f"{lbl} ({lift}x)" for _, lbl, lift in interests[c - 1]),
                     **{col: ", ".join(f"{v} {s:.0%}" for v, s in vals) for col, vals in tops.items()},
                     "mean_watch_per_user": watch, "completion_rate": completion})
        entry: dict[str, Any] = {
            "cluster_id": c, "users": size, "share": share,
            "top_interests": [lbl for kind, lbl, _ in interests[c - 1]
                              if kind not in personal][:SUMMARY_INTERESTS],
            "demographics": {col: [vals[0][0], round(vals[0][1], 3)] for col, vals in tops.items()},
        }
        if watch is not None:
            entry["mean_watch_per_user"] = watch
        clusters.append(entry)
    small = [c for c in range(1, k + 1) if sizes[c - 1] < floor]
    other = None
    if small:
        n_small = int(sizes[[c - 1 for c in small]].sum())
        other = {"clusters": len(small), "users": n_small, "share": round(n_small / total, 4),
                 "note": f"clusters under {floor} users are grouped and not described"}
        rows.append({"cluster_id": None, "group": "other", "users": n_small,
                     "share": other["share"], "top_interests": ""})
    profile = pd.DataFrame(rows)
    profile["cluster_id"] = profile["cluster_id"].astype("Int64")
    noise = int((fit.labels == 0).sum())
    summary: dict[str, Any] = {
        "table": TABLE, "users_clustered": total, "clusters": k,
        "k_choice": (f"chosen by silhouette over {K_MIN}..{max(fit.k_scores)} on "
                     f"{len(fit.sample):,} users" if fit.k_scores else
                     (f"found by HDBSCAN{' (k ignored)' if args['k'] else ''}"
                      if args["method"] == "hdbscan" else "given")),
        "algorithm": fit.algorithm, "features": "+".join(s.kind for s in sources),
        "items": len(matrix.items), "dims": args["dims"], "events_table": schema.events,
        "window": {"first_event": matrix.first_event, "last_event": matrix.last_event},
        "users_left_out": {"too_few_events_or_items": matrix.users_in_window - matrix.weights.shape[0],
                           **({"hdbscan_noise": noise} if args["method"] == "hdbscan" else {})},
        "engagement": (f"mean_watch_per_user = sum of {schema.weight_col}"
                       f"{f' ({schema.weight_unit})' if schema.weight_unit else ''} per user"
                       if schema.weight_col else "mean_watch_per_user = events per user"),
        "quality": {"silhouette": fit.silhouette, "davies_bouldin": fit.davies_bouldin,
                    "sample_users": len(fit.sample)},
        "cluster_profiles": clusters,
    }
    if other:
        summary["other"] = other
    if described_by:
        summary["note"] = (f"{', '.join(sorted(personal))} values are personal and not shown; "
                           f"interests are described by {described_by}")
    elif personal:
        summary["note"] = f"{', '.join(sorted(personal))} values are personal: see the profile table"
    if clusters:
        first = clusters[0]
        likes = ", ".join(first["top_interests"][:3]) or "no single interest"
        dates = (f" from {str(matrix.first_event)[:10]} to {str(matrix.last_event)[:10]}"
                 if matrix.first_event else "")
        summary["reading"] = (
            f"{total:,} users fall into {k} interest clusters by {summary['features']}{dates}; "
            f"the largest, cluster 1 ({first['share']:.0%}), leans to {likes}. Join "
            "user_clusters on user_id to break them down further.")
    else:
        summary["reading"] = f"{total:,} users clustered, but every cluster is under {floor} users."
    ls = fit.labels[fit.sample]
    group = np.where(np.isin(ls, described), ls.astype(str), np.where(ls > 0, "other", "noise"))
    projection = pd.DataFrame({"x": fit.projection[:, 0], "y": fit.projection[:, 1],
                               "cluster": group}) if len(fit.projection) else pd.DataFrame()
    return ClusterResult(table, profile, summary, projection, matrix.sql)


def _interests(ctx: ToolContext, schema: InteractionSchema, matrix: InterestMatrix,
               labels: np.ndarray, k: int, sources: list[FeatureSource],
               args: dict[str, Any]) -> tuple[list[list[tuple[str, str, float]]], str | None]:
    """Distinctive interests per cluster; when every clustering feature is personal (creator
    ids), the clusters are described by the first non-personal alias (hashtag, category)."""
    if not all(s.personal for s in sources):
        return interest_lift(matrix, labels, k), None
    available = available_features(ctx.catalog(), schema)
    describe = next((available[a] for a in ("hashtag", "category")
                     if a in available and not available[a].personal), None)
    if describe is None:
        return interest_lift(matrix, labels, k), None
    other = build_matrix(ctx.workspace, schema, [describe], args["start"], args["end"],
                         args["min_events"])
    rows = pd.Index(matrix.user_ids).get_indexer(other.user_ids)
    return (interest_lift(other, np.where(rows >= 0, labels[np.maximum(rows, 0)], 0), k),
            describe.kind)


def _demographics(ctx: ToolContext, schema: InteractionSchema) -> dict[int, dict[str, list]]:
    """Per cluster and demographic column: (value, share of members) largest first."""
    if not schema.user_table or not schema.demographics:
        return {}
    parts = [f"SELECT {i} AS col, c.cluster_id, CAST(u.{q(col)} AS VARCHAR) AS value, count(*) AS n "
             f"FROM {TABLE} c JOIN {q(schema.user_table)} u ON u.{q(schema.user_key)} = c.user_id "
             f"GROUP BY ALL" for i, col in enumerate(schema.demographics)]
    df = ctx.workspace.frame(" UNION ALL ".join(parts), timeout_s=FEATURE_TIMEOUT_S)
    df["value"] = df["value"].fillna("(missing)")
    df["share"] = df["n"] / df.groupby(["col", "cluster_id"])["n"].transform("sum")
    df = df.sort_values(["cluster_id", "col", "n", "value"], ascending=[True, True, False, True])
    out: dict[int, dict[str, list]] = {}
    for (cid, col), part in df.groupby(["cluster_id", "col"], sort=False):
        out.setdefault(int(cid), {})[schema.demographics[int(col)]] = list(
            zip(part["value"], part["share"].astype(float), strict=True))
    return out


def _engagement(ctx: ToolContext, schema: InteractionSchema, lo: datetime | None,
                hi: datetime | None) -> dict[int, tuple[float | None, float | None]]:
    """Per cluster: mean watch time (or events) per user, and completion rate if known."""
    watch = f"sum(CAST(e.{q(schema.weight_col)} AS DOUBLE))" if schema.weight_col else "count(*)"
    done = (f"avg(CAST(e.{q(schema.completion_col)} AS DOUBLE))" if schema.completion_col
            else "NULL")
    where, params = ["TRUE"], []
    for bound, op in ((lo, ">="), (hi, "<")):
        if bound is not None:
            where.append(f"e.{q(schema.time_col)} {op} ?")
            params.append(bound)
    df = ctx.workspace.frame(
        f"SELECT c.cluster_id, {watch} / count(DISTINCT c.user_id) AS watch, {done} AS done "
        f"FROM {q(schema.events)} e JOIN {TABLE} c ON c.user_id = e.{q(schema.user_key)} "
        f"WHERE {' AND '.join(where)} GROUP BY 1", params or None, timeout_s=FEATURE_TIMEOUT_S)
    return {int(r.cluster_id): (round(float(r.watch), 1),
                                None if pd.isna(r.done) else round(float(r.done), 4))
            for r in df.itertuples()}


def _chart(projection: pd.DataFrame) -> Any:
    import plotly.express as px

    if projection.empty:
        return px.scatter(title="User clusters (too few users to project)")
    order = sorted(projection["cluster"].unique(), key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    return px.scatter(projection, x="x", y="y", color="cluster", opacity=0.6,
                      category_orders={"cluster": order},
                      labels={"x": "component 1", "y": "component 2"},
                      title=f"User clusters: 2-D projection of {len(projection):,} sampled users")
