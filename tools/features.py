"""Interest features of users, built in SQL: who spends their watch time on which items.

The interaction table and its item table are discovered from the catalog (a user key, a time
column and an item key that is the key of another table), so any database of that shape works.
One SQL query (DuckDB; ARCHITECTURE decision 10) turns events into a long table
``(user, item, watch, weight)``: watch time per user × interest item (category, hashtag,
creator, or any other item column), TF-IDF-style weights (sublinear tf × smoothed idf over
users, each feature block L2-normalised), which Python only packs into sparse matrices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tools.catalog import Catalog, ColumnInfo, TableInfo
from tools.errors import ToolArgumentError

# Feature aliases → name fragments that find the column in the item (or event) table.
ALIASES: dict[str, tuple[str, ...]] = {
    "category": ("category", "genre", "topic", "vertical", "section"),
    "hashtag": ("hashtag", "tags", "tag", "keyword"),
    "creator": ("creator", "author", "owner", "channel", "artist", "uploader"),
}
USER_HINTS = ("user", "viewer", "member", "customer", "account", "player")
WEIGHT_HINTS = ("watch", "duration", "seconds", "dwell", "minutes", "time", "_s")
COMPLETION_HINTS = ("complet", "finished")
MAX_DEMOGRAPHIC_VALUES = 30
FEATURE_TIMEOUT_S = 600.0
MIN_LIFT = 1.1  # an interest is distinctive only when over-represented


@dataclass(frozen=True)
class InteractionSchema:
    """Where the interactions live, as found in the catalog (all names are catalog names)."""

    events: str
    user_key: str
    time_col: str
    item_key: str | None
    item_table: str | None
    weight_col: str | None  # None: every event weighs 1
    weight_unit: str | None
    completion_col: str | None
    user_table: str | None
    demographics: tuple[str, ...]


@dataclass(frozen=True)
class FeatureSource:
    """One block of interest items: a column of the item table or of the event table."""

    kind: str
    table: str
    column: str
    is_list: bool
    personal: bool


@dataclass
class InterestMatrix:
    """Users × items, as the SQL long table packed into CSR matrices."""

    user_ids: np.ndarray
    items: list[str]
    item_kinds: np.ndarray  # index into ``kinds`` per item
    kinds: list[str]
    weights: sp.csr_matrix  # TF-IDF rows, L2-normalised
    watch: sp.csr_matrix  # raw watch time (or event counts) per user × item
    users_in_window: int
    first_event: str | None
    last_event: str | None
    sql: str


def q(name: str) -> str:
    """A quoted identifier (names come from the catalog, never from user text)."""
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _unique(table: TableInfo, col: ColumnInfo) -> bool:
    return col.distinct is not None and table.rows > 0 and col.distinct >= 0.9 * table.rows


def _user_key(table: TableInfo) -> ColumnInfo | None:
    keys = [c for c in table.columns if c.is_key and any(h in c.name.lower() for h in USER_HINTS)]
    return keys[0] if keys else None


def _key_owner(catalog: Catalog, key: str, skip: set[str]) -> TableInfo | None:
    """The warehouse table in which ``key`` is (nearly) unique: the table it identifies."""
    owners = [t for t in catalog.tables.values() if t.origin == "warehouse" and t.name not in skip
              and (c := t.column(key)) is not None and _unique(t, c)]
    return max(owners, key=lambda t: t.rows) if owners else None


def _pick(columns: list[ColumnInfo], hints: tuple[str, ...]) -> ColumnInfo | None:
    for hint in hints:
        for c in columns:
            if hint in c.name.lower():
                return c
    return None


def _weight_column(catalog: Catalog, events: TableInfo) -> ColumnInfo | None:
    """The watch-time column: a SUM metric of the notes on the event table, else by name."""
    numeric = [c for c in events.columns if c.kind == "number" and not c.is_key]
    for metric in catalog.metrics.values():
        if metric.table == events.name.lower() and metric.sql.strip().lower().startswith("sum("):
            inner = metric.sql.strip()[4:-1].strip().strip('"')
            col = events.column(inner)
            if col is not None and col.kind == "number":
                return col
    return _pick(numeric, WEIGHT_HINTS)


def discover_schema(catalog: Catalog, events_table: str | None = None) -> InteractionSchema:
    """Find the interaction table (user key + time column + item key) and its neighbours.

    Raises:
        ToolArgumentError: when no table has that shape, or ``events_table`` does not.
    """
    warehouse = [t for t in catalog.tables.values() if t.origin == "warehouse"]
    if events_table is not None:
        chosen = catalog.table(events_table)
        if chosen is None or chosen.origin != "warehouse":
            names = ", ".join(t.name for t in warehouse)
            raise ToolArgumentError(f"unknown events_table '{events_table}'; tables are: {names}")
        warehouse = [chosen]
    candidates: list[tuple[int, InteractionSchema]] = []
    for t in warehouse:
        user = _user_key(t)
        times = [c for c in t.columns if c.kind == "time"]
        if user is None or not times:
            continue
        user_table = _key_owner(catalog, user.name, {t.name})
        item_key = item_table = None
        for c in t.columns:
            if c.is_key and c.name != user.name:
                owner = _key_owner(catalog, c.name, {t.name} | ({user_table.name} if user_table else set()))
                if owner is not None:
                    item_key, item_table = c.name, owner.name
                    break
        weight = _weight_column(catalog, t)
        completion = _pick([c for c in t.columns if c.kind == "bool"], COMPLETION_HINTS)
        demographics: tuple[str, ...] = ()
        if user_table is not None:
            ut = catalog.tables[user_table.name.lower()]
            demographics = tuple(
                c.name for c in ut.columns
                if not c.personal and not c.is_key and c.kind in ("text", "bool")
                and c.distinct is not None and 2 <= c.distinct <= MAX_DEMOGRAPHIC_VALUES)
        schema = InteractionSchema(
            events=t.name, user_key=user.name, time_col=_pick(times, ("ts", "time", "date")).name
            if _pick(times, ("ts", "time", "date")) else times[0].name,
            item_key=item_key, item_table=item_table,
            weight_col=weight.name if weight else None, weight_unit=weight.unit if weight else None,
            completion_col=completion.name if completion else None,
            user_table=user_table.name if user_table else None, demographics=demographics)
        score = t.rows + (10**15 if item_table else 0) + (10**14 if weight else 0)
        candidates.append((score, schema))
    if not candidates:
        where = f"'{events_table}'" if events_table else "no table in this database"
        raise ToolArgumentError(
            f"{where} has the shape cluster_users needs: one row per user interaction with a "
            "user key (e.g. user_id), a time column and an item key (e.g. video_id); name such a "
            "table with events_table, or use run_sql for other questions")
    return max(candidates, key=lambda pair: pair[0])[1]


def available_features(catalog: Catalog, schema: InteractionSchema) -> dict[str, FeatureSource]:
    """Feature names usable on this database: the aliases found, plus item-table columns."""
    found: dict[str, FeatureSource] = {}
    tables = [catalog.tables[n.lower()] for n in (schema.item_table, schema.events) if n]
    for table in tables:
        skip = {schema.user_key, schema.time_col, schema.weight_col, schema.completion_col}
        usable = [c for c in table.columns if c.name not in skip and (
            c.kind == "list" or (c.kind == "text" and (c.distinct or 0) > 1)
            or (c.is_key and c.name != schema.item_key))]
        for alias, hints in ALIASES.items():
            pool = [c for c in usable if (c.kind == "list") == (alias == "hashtag")]
            if alias == "creator":
                pool = [c for c in usable if c.is_key]
            col = _pick(pool, hints)
            if alias not in found and col is not None:
                found[alias] = FeatureSource(alias, table.name, col.name, col.kind == "list",
                                             col.personal)
        for c in usable:
            if c.name.lower() not in found and (c.kind == "list" or (c.distinct or 0) <= 10_000):
                found[c.name.lower()] = FeatureSource(c.name.lower(), table.name, c.name,
                                                      c.kind == "list", c.personal)
    return found


def resolve_features(features: str, available: dict[str, FeatureSource]) -> list[FeatureSource]:
    """``"hashtag"`` or a combination like ``"hashtag+category"`` → feature sources."""
    names = [p.strip().lower() for p in features.replace(",", "+").split("+") if p.strip()]
    unknown = [n for n in names if n not in available]
    if not names or unknown:
        raise ToolArgumentError(
            f"unknown features '{features}'; choose one or a '+' combination of: "
            f"{', '.join(available)}")
    chosen: dict[tuple[str, str], FeatureSource] = {}
    for name in sorted(set(names)):  # order-free, so that one cache entry serves both orders
        chosen.setdefault((available[name].table, available[name].column), available[name])
    return list(chosen.values())


def parse_window(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """ISO dates/times → [start, end) bounds; a date-only ``end`` includes that whole day."""
    def parse(text: str, label: str) -> datetime:
        try:
            return datetime.fromisoformat(text.strip())
        except ValueError as exc:
            raise ToolArgumentError(
                f"{label} '{text}' is not an ISO date; write it like 2026-09-01") from exc

    lo = parse(start, "start") if start else None
    hi = parse(end, "end") if end else None
    if hi is not None and end is not None and len(end.strip()) <= 10:
        hi = datetime.combine(date.fromisoformat(end.strip()[:10]), datetime.min.time()) + timedelta(days=1)
    if lo is not None and hi is not None and lo >= hi:
        raise ToolArgumentError(f"start {start} is not before end {end}")
    return lo, hi


def feature_sql(schema: InteractionSchema, sources: list[FeatureSource], *, has_start: bool,
                has_end: bool) -> tuple[str, str]:
    """(vocabulary SQL, long-table SQL) sharing one CTE chain.

    Parameters, in order: [start], [end], min_events. Items get integer ids first, so that
    the heavy GROUP BYs and joins run on integers. The vocabulary query returns
    ``idx, kind, item, users_in_window, users_active, first_event, last_event``; the long
    query ``user_id, idx, watch, weight``.
    """
    e = schema
    weight = f"CAST(e.{q(e.weight_col)} AS DOUBLE)" if e.weight_col else "1.0"
    where = [f"e.{q(e.user_key)} IS NOT NULL"]
    if has_start:
        where.append(f"e.{q(e.time_col)} >= ?")
    if has_end:
        where.append(f"e.{q(e.time_col)} < ?")
    ev_cols = [f"e.{q(e.user_key)} AS u", f"greatest(coalesce({weight}, 0), 0) AS w",
               f"e.{q(e.time_col)} AS t"]
    if e.item_key:
        ev_cols.append(f"e.{q(e.item_key)} AS v")
    values, raw = [], []
    for j, s in enumerate(sources):
        x = f"unnest({q(s.column)})" if s.is_list else q(s.column)
        if s.table == e.events:
            ev_cols.append(f"e.{q(s.column)} AS c{j}")
            xe = f"unnest(c{j})" if s.is_list else f"c{j}"
            values.append(f"SELECT DISTINCT {j} AS k, CAST(x AS VARCHAR) AS item "
                          f"FROM (SELECT {x} AS x FROM {q(e.events)})")
            raw.append(f"SELECT a.u, a.w, vocab.k, vocab.idx FROM (SELECT u, w, {xe} AS x "
                       f"FROM act) a JOIN vocab ON vocab.k = {j} AND vocab.item = CAST(a.x AS VARCHAR)")
        else:
            values.append(f"SELECT DISTINCT {j} AS k, CAST(x AS VARCHAR) AS item "
                          f"FROM (SELECT {x} AS x FROM {q(s.table)})")
            raw.append(
                f"SELECT act.u, act.w, m.k, m.idx FROM act JOIN (SELECT it.v, vocab.k, vocab.idx "
                f"FROM (SELECT {q(e.item_key or '')} AS v, {x} AS x FROM {q(s.table)}) it "
                f"JOIN vocab ON vocab.k = {j} AND vocab.item = CAST(it.x AS VARCHAR)) m "
                "ON m.v = act.v")
    values_sql = "\n    UNION ALL ".join(values)
    raw_sql = "\n    UNION ALL ".join(raw)
    ctes = f"""WITH ev AS (
  SELECT {', '.join(ev_cols)} FROM {q(e.events)} e WHERE {' AND '.join(where)}
), users_n AS (SELECT u, count(*) AS n FROM ev GROUP BY u
), act AS (SELECT * FROM ev WHERE u IN (SELECT u FROM users_n WHERE n >= ?)
), vocab AS (
  SELECT k, item, row_number() OVER (ORDER BY k, item) - 1 AS idx FROM (
    {values_sql}
  ) WHERE item IS NOT NULL
), pairs AS (
  SELECT u, k, idx, sum(w) AS w FROM (
    {raw_sql}
  ) GROUP BY u, k, idx HAVING sum(w) > 0
), n_users AS (SELECT count(DISTINCT u) AS n FROM pairs
), dfs AS (SELECT idx, count(*) AS users FROM pairs GROUP BY idx
), totals AS (SELECT u, k, sum(w) AS total FROM pairs GROUP BY u, k
), tfidf AS (
  -- sublinear tf of the user's share of watch time in the block, x smoothed idf over users
  SELECT p.u, p.k, p.idx, p.w,
         ln(1 + 10 * p.w / t.total) * ln((1 + n.n) / (1 + d.users)) AS x
  FROM pairs p JOIN totals t USING (u, k) JOIN dfs d USING (idx) CROSS JOIN n_users n
), block_norms AS (SELECT u, k, sqrt(sum(x * x)) AS norm FROM tfidf GROUP BY u, k
), blocks AS (
  SELECT f.u, f.idx, f.w, coalesce(f.x / nullif(b.norm, 0), 0) AS x
  FROM tfidf f JOIN block_norms b USING (u, k)
), row_norms AS (SELECT u, sqrt(sum(x * x)) AS norm FROM blocks GROUP BY u
)"""
    vocab = (f"{ctes}\nSELECT idx, k AS kind, item, "
             "(SELECT count(*) FROM users_n) AS users_in_window, "
             "(SELECT count(DISTINCT u) FROM act) AS users_active, "
             "(SELECT CAST(min(t) AS VARCHAR) FROM ev) AS first_event, "
             "(SELECT CAST(max(t) AS VARCHAR) FROM ev) AS last_event FROM vocab ORDER BY idx")
    long = (f"{ctes}\nSELECT b.u AS user_id, b.idx, b.w AS watch, "
            "coalesce(b.x / nullif(r.norm, 0), 0) AS weight FROM blocks b JOIN row_norms r USING (u)")
    return vocab, long


def build_matrix(ws: object, schema: InteractionSchema, sources: list[FeatureSource],
                 start: datetime | None, end: datetime | None, min_events: int) -> InterestMatrix:
    """Run the feature SQL on ``ws`` (a Workspace) and pack the long table into CSR matrices."""
    vocab_sql, long_sql = feature_sql(schema, sources, has_start=start is not None,
                                      has_end=end is not None)
    params: list[object] = [b for b in (start, end) if b is not None] + [int(min_events)]
    vocab = ws.frame(vocab_sql, params, timeout_s=FEATURE_TIMEOUT_S)  # type: ignore[attr-defined]
    active = int(vocab["users_active"].iloc[0]) if len(vocab) else 0
    if active == 0:
        raise ToolArgumentError(
            f"no user has {min_events} or more interactions with items in {schema.events} "
            "in this window; lower min_events or widen start/end")
    long = ws.frame(long_sql, params, timeout_s=FEATURE_TIMEOUT_S)  # type: ignore[attr-defined]
    codes, user_ids = pd.factorize(long["user_id"], sort=True)
    cols = long["idx"].to_numpy(dtype=np.int64)
    used, cols = np.unique(cols, return_inverse=True)  # drop items nobody watched
    shape = (len(user_ids), len(used))
    weights = sp.csr_matrix((long["weight"].to_numpy(dtype=np.float32), (codes, cols)), shape=shape)
    weights.eliminate_zeros()
    watch = sp.csr_matrix((long["watch"].to_numpy(dtype=np.float64), (codes, cols)), shape=shape)
    vocab = vocab.set_index("idx").loc[used]
    return InterestMatrix(
        user_ids=np.asarray(user_ids), items=[str(v) for v in vocab["item"]],
        item_kinds=vocab["kind"].to_numpy(dtype=np.int64), kinds=[s.kind for s in sources],
        weights=weights, watch=watch, users_in_window=int(vocab["users_in_window"].iloc[0]),
        first_event=vocab["first_event"].iloc[0], last_event=vocab["last_event"].iloc[0],
        sql=long_sql)


def interest_lift(matrix: InterestMatrix, labels: np.ndarray, k: int, *, top: int = 10,
                  min_share: float = 0.002, min_reach: float = 0.05
                  ) -> list[list[tuple[str, str, float]]]:
    """Per cluster 1..k: the most distinctive items by lift (cluster's share of watch / overall).

    Returns (kind, label, lift) per item. Shares are taken within each item kind. An item qualifies when it holds at least
    ``min_share`` of the cluster's watch time and reaches ``min_reach`` of its members.
    """
    rows = np.flatnonzero(labels > 0)
    member = sp.csr_matrix((np.ones(len(rows)), (labels[rows] - 1, rows)),
                           shape=(k, matrix.watch.shape[0]))
    cluster_watch = np.asarray((member @ matrix.watch).todense())
    reach = np.asarray((member @ (matrix.watch > 0).astype(np.float64)).todense())
    sizes = np.asarray(member.sum(axis=1)).ravel()
    overall = np.asarray(matrix.watch.sum(axis=0)).ravel()
    out: list[list[tuple[str, str, float]]] = []
    kind_masks = [matrix.item_kinds == i for i in range(len(matrix.kinds))]
    for c in range(k):
        scores = np.zeros(len(matrix.items))
        for mask in kind_masks:
            total_c, total = cluster_watch[c, mask].sum(), overall[mask].sum()
            if total_c <= 0 or total <= 0:
                continue
            share_c = cluster_watch[c, mask] / total_c
            share = overall[mask] / total
            ok = (share_c >= min_share) & (reach[c, mask] >= min_reach * max(sizes[c], 1))
            scores[mask] = np.where(ok & (share > 0), share_c / np.maximum(share, 1e-12), 0.0)
        best = [int(i) for i in np.argsort(-scores, kind="stable")[:top] if scores[i] > MIN_LIFT]
        out.append([(matrix.kinds[matrix.item_kinds[i]], _item_label(matrix, i),
                     round(float(scores[i]), 2)) for i in best])
    return out


def _item_label(matrix: InterestMatrix, i: int) -> str:
    kind = matrix.kinds[matrix.item_kinds[i]]
    item = matrix.items[i]
    if kind == "hashtag" and not item.startswith("#"):
        return f"#{item}"
    return item if len(matrix.kinds) == 1 or kind == "hashtag" else f"{kind}: {item}"
