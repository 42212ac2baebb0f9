"""Creator graphs and community audiences, built in SQL (ARCHITECTURE decision 10).

Tables are found in the live catalog, never by the sample's names:

- the *follow table*: exactly two key columns, a follower (user) and a followed creator,
  recognised by its name (follow / subscri / fan) or a creator-like key (creator_id,
  channel_id, author_id, ...);
- the *interaction table*, its item table, watch-time column, user table and demographic
  columns: :func:`tools.features.discover_schema` (shared with cluster_users); the item
  table's creator column links watch time to creators.

Graphs (edges between creators, each edge weight > 0):

- ``follow``: creators linked by shared followers. A follower of d creators adds 1/(d-1) to
  each pair of them (Newman's collaboration weighting): everyone spreads one unit of tie
  strength over their follows, so accounts that follow hundreds of creators do not knit
  unrelated creators together. A follower of more than ``MAX_FOLLOWS_PER_USER`` creators
  contributes a fixed pseudo-random sample of that many, which bounds the self-join to
  ``MAX_FOLLOWS_PER_USER²/2`` pairs per follower.
- ``co_engagement``: creators linked by viewers who watched both; each viewer's watch time
  over their top ``MAX_CREATORS_PER_USER`` creators is turned into shares, and a pair gains
  the smaller of its two shares (the watch time the viewer demonstrably splits between
  them), so a heavy viewer weighs no more than a light one.

``min_shared`` (shared followers / viewers) and ``min_weight`` threshold the edges.
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.catalog import Catalog, ColumnInfo, TableInfo
from tools.errors import ToolArgumentError
from tools.features import ALIASES, InteractionSchema, discover_schema, q

GRAPHS = ("follow", "co_engagement")
FOLLOW_TABLE_HINTS = ("follow", "subscri", "fan")
FOLLOWER_HINTS = ("follower", "subscriber", "fan", "user", "viewer", "member", "account")
CREATOR_HINTS = (*ALIASES["creator"], "followee", "followed", "publisher", "streamer", "target")
MAX_FOLLOWS_PER_USER = 200
MAX_CREATORS_PER_USER = 50
GRAPH_TIMEOUT_S = 600.0
CREATOR_TABLE = "creator_communities"
USER_TABLE = "user_communities"


@dataclass(frozen=True)
class GraphSchema:
    """Where the creator graphs come from (all names are catalog names)."""

    follows: str | None
    follower_col: str | None
    followed_col: str | None
    events: InteractionSchema | None
    item_creator_col: str | None
    hashtags_col: str | None
    hashtags_is_list: bool

    @property
    def watch(self) -> str:
        """The per-event watch-time expression on alias ``e`` (1 per event without one)."""
        if self.events is None or not self.events.weight_col:
            return "1.0"
        return f"greatest(coalesce(CAST(e.{q(self.events.weight_col)} AS DOUBLE), 0), 0)"

    @property
    def has_watch(self) -> bool:
        """Whether watch time (or events) can be linked to creators."""
        return bool(self.events and self.events.item_table and self.item_creator_col)

    def watch_join(self) -> str:
        """``FROM`` events ``e`` joined to items ``i`` (needs :attr:`has_watch`)."""
        e = self.events
        assert e is not None and e.item_table and e.item_key
        return (f"{q(e.events)} e JOIN {q(e.item_table)} i ON i.{q(e.item_key)} = e.{q(e.item_key)}")


def _hint(name: str, hints: tuple[str, ...]) -> bool:
    lowered = name.lower()
    return any(h in lowered for h in hints)


def _follow_table(catalog: Catalog) -> tuple[TableInfo, ColumnInfo, ColumnInfo] | None:
    """(table, follower column, creator column) of the most follow-like table, if any."""
    best: tuple[int, TableInfo, ColumnInfo, ColumnInfo] | None = None
    for table in catalog.tables.values():
        if table.origin != "warehouse":
            continue
        keys = [c for c in table.columns if c.is_key]
        if len(keys) != 2:
            continue
        named = _hint(table.name, FOLLOW_TABLE_HINTS)
        for user, creator in ((keys[0], keys[1]), (keys[1], keys[0])):
            creatorish = _hint(creator.name, CREATOR_HINTS) and not _hint(creator.name, ("follower",))
            if not (named or creatorish):
                continue
            score = 2 * named + 2 * creatorish + _hint(user.name, FOLLOWER_HINTS)
            if best is None or score > best[0]:
                best = (score, table, user, creator)
    return None if best is None else best[1:]


def discover_graph_schema(catalog: Catalog) -> GraphSchema:
    """Find the follow table and the interaction tables in ``catalog``."""
    found = _follow_table(catalog)
    try:
        events: InteractionSchema | None = discover_schema(catalog)
    except ToolArgumentError:
        events = None
    creator_col = hashtags = None
    is_list = False
    if events is not None and events.item_table:
        items = catalog.tables[events.item_table.lower()]
        if found is not None and items.column(found[2].name) is not None:
            creator_col = items.column(found[2].name).name  # type: ignore[union-attr]
        else:
            keyed = [c for c in items.columns if c.is_key and _hint(c.name, CREATOR_HINTS)]
            creator_col = keyed[0].name if keyed else None
        tags = [c for c in items.columns if not c.personal and _hint(c.name, ALIASES["hashtag"])
                and c.kind in ("list", "text")]
        if tags:
            hashtags, is_list = tags[0].name, tags[0].kind == "list"
    return GraphSchema(
        follows=found[0].name if found else None,
        follower_col=found[1].name if found else None,
        followed_col=found[2].name if found else None,
        events=events, item_creator_col=creator_col, hashtags_col=hashtags,
        hashtags_is_list=is_list)


def require(schema: GraphSchema, graph: str) -> None:
    """Raise a ToolArgumentError the model can act on when ``graph`` cannot be built."""
    if graph not in GRAPHS:
        raise ToolArgumentError(f"unknown graph '{graph}'; choose 'follow' or 'co_engagement'")
    if graph == "follow" and schema.follows is None:
        other = " (try graph='co_engagement')" if schema.has_watch else ""
        raise ToolArgumentError(
            "this database has no follow-like table (two key columns: a follower and a "
            f"followed creator, e.g. follows(follower_id, creator_id)){other}")
    if graph == "co_engagement" and not schema.has_watch:
        other = " (try graph='follow')" if schema.follows else ""
        raise ToolArgumentError(
            "co_engagement needs an interaction table whose items name their creator (e.g. "
            f"watch_events(user_id, video_id) and videos(video_id, creator_id)){other}")


def edges_sql(schema: GraphSchema, graph: str) -> str:
    """Creator pairs ``source, target, shared, weight`` (params: min_shared, min_weight)."""
    if graph == "follow":
        fol, cre = q(schema.follower_col or ""), q(schema.followed_col or "")
        pairs = f"""WITH f AS (
  SELECT {fol} AS u, {cre} AS c FROM {q(schema.follows or '')}
  WHERE {fol} IS NOT NULL AND {cre} IS NOT NULL GROUP BY 1, 2
), d AS (
  SELECT u, c, count(*) OVER (PARTITION BY u) AS du,
         row_number() OVER (PARTITION BY u ORDER BY hash(c), c) AS rk FROM f
), k AS (
  SELECT u, c, least(du, {MAX_FOLLOWS_PER_USER}) AS du FROM d
  WHERE rk <= {MAX_FOLLOWS_PER_USER} AND du >= 2
)
SELECT a.c AS source, b.c AS target, count(*) AS shared, sum(1.0 / (a.du - 1)) AS weight"""
    else:
        e = schema.events
        assert e is not None
        user, cre = f"e.{q(e.user_key)}", f"i.{q(schema.item_creator_col or '')}"
        pairs = f"""WITH uc AS (
  SELECT {user} AS u, {cre} AS c, sum({schema.watch}) AS w
  FROM {schema.watch_join()} WHERE {user} IS NOT NULL AND {cre} IS NOT NULL
  GROUP BY 1, 2 HAVING sum({schema.watch}) > 0
), r AS (
  SELECT u, c, w, row_number() OVER (PARTITION BY u ORDER BY w DESC, c) AS rk,
         count(*) OVER (PARTITION BY u) AS du FROM uc
), k AS (
  SELECT u, c, w / sum(w) OVER (PARTITION BY u) AS s FROM r
  WHERE rk <= {MAX_CREATORS_PER_USER} AND du >= 2
)
SELECT a.c AS source, b.c AS target, count(*) AS shared, sum(least(a.s, b.s)) AS weight"""
    weight = "sum(1.0 / (a.du - 1))" if graph == "follow" else "sum(least(a.s, b.s))"
    return (f"{pairs}\nFROM k a JOIN k b ON a.u = b.u AND a.c < b.c GROUP BY 1, 2\n"
            f"HAVING count(*) >= ? AND {weight} >= ? AND {weight} > 0")


def source_stats_sql(schema: GraphSchema, graph: str) -> str:
    """``creators`` with any follower (viewer) and ``capped_users`` over the per-user cap."""
    if graph == "follow":
        rel = (f"SELECT {q(schema.follower_col or '')} AS u, {q(schema.followed_col or '')} AS c "
               f"FROM {q(schema.follows or '')}")
        cap = MAX_FOLLOWS_PER_USER
    else:
        e = schema.events
        assert e is not None
        rel = (f"SELECT e.{q(e.user_key)} AS u, i.{q(schema.item_creator_col or '')} AS c "
               f"FROM {schema.watch_join()}")
        cap = MAX_CREATORS_PER_USER
    return (f"WITH x AS ({rel}) SELECT (SELECT count(DISTINCT c) FROM x) AS creators, "
            f"(SELECT count(*) FROM (SELECT u FROM x GROUP BY u HAVING count(DISTINCT c) > {cap})) "
            "AS capped_users")


def assignment_sql(schema: GraphSchema) -> str:
    """Each user's community (by watch time; by follows when they watched nothing of the
    communities' creators), its share, and the runner-up community with its share."""
    ctes: list[str] = []
    scored: list[str] = []
    if schema.has_watch:
        e = schema.events
        assert e is not None
        ctes.append(f"""watch AS (
  SELECT e.{q(e.user_key)} AS user_id, cc.community_id, sum({schema.watch}) AS w
  FROM {schema.watch_join()}
  JOIN {CREATOR_TABLE} cc ON cc.creator_id = i.{q(schema.item_creator_col or '')}
  WHERE e.{q(e.user_key)} IS NOT NULL GROUP BY 1, 2 HAVING sum({schema.watch}) > 0)""")
        scored.append("SELECT user_id, community_id, w, 'watch_time' AS basis FROM watch")
    if schema.follows:
        skip = " AND f.u NOT IN (SELECT user_id FROM watch)" if schema.has_watch else ""
        ctes.append(f"""fol AS (
  SELECT f.u AS user_id, cc.community_id, CAST(count(*) AS DOUBLE) AS w
  FROM (SELECT {q(schema.follower_col or '')} AS u, {q(schema.followed_col or '')} AS c
        FROM {q(schema.follows)}) f
  JOIN {CREATOR_TABLE} cc ON cc.creator_id = f.c WHERE f.u IS NOT NULL{skip} GROUP BY 1, 2)""")
        scored.append("SELECT user_id, community_id, w, 'follows' AS basis FROM fol")
    return f"""WITH {', '.join(ctes)}, scored AS ({' UNION ALL '.join(scored)}), ranked AS (
  SELECT user_id, basis, community_id, w / sum(w) OVER (PARTITION BY user_id) AS share,
         row_number() OVER (PARTITION BY user_id ORDER BY w DESC, community_id) AS rk
  FROM scored)
SELECT user_id, any_value(basis) AS basis,
       max(community_id) FILTER (WHERE rk = 1) AS community_id,
       max(share) FILTER (WHERE rk = 1) AS share,
       max(community_id) FILTER (WHERE rk = 2) AS second_id,
       coalesce(max(share) FILTER (WHERE rk = 2), 0) AS second_share
FROM ranked WHERE rk <= 2 GROUP BY user_id ORDER BY community_id, user_id"""


def audience_sql(schema: GraphSchema) -> tuple[str, str]:
    """(SQL of ``creator_id, community_id, n``: a creator's followers — viewers when there is
    no follow table — per user community, what "their audience" means in words)."""
    if schema.follows:
        who = (f"SELECT {q(schema.follower_col or '')} AS u, {q(schema.followed_col or '')} AS c "
               f"FROM {q(schema.follows)}")
        what = "followers"
    else:
        e = schema.events
        assert e is not None
        who = (f"SELECT e.{q(e.user_key)} AS u, i.{q(schema.item_creator_col or '')} AS c "
               f"FROM {schema.watch_join()}")
        what = "viewers"
    return (f"WITH a AS ({who}) SELECT a.c AS creator_id, uc.community_id, "
            f"count(DISTINCT a.u) AS n FROM a JOIN {USER_TABLE} uc ON uc.user_id = a.u "
            f"WHERE a.c IN (SELECT creator_id FROM {CREATOR_TABLE}) GROUP BY 1, 2"), what


def popularity_sql(schema: GraphSchema) -> str:
    """``creator_id, audience``: distinct followers (viewers without a follow table)."""
    if schema.follows:
        return (f"SELECT {q(schema.followed_col or '')} AS creator_id, "
                f"count(DISTINCT {q(schema.follower_col or '')}) AS audience "
                f"FROM {q(schema.follows)} GROUP BY 1")
    e = schema.events
    assert e is not None
    return (f"SELECT i.{q(schema.item_creator_col or '')} AS creator_id, "
            f"count(DISTINCT e.{q(e.user_key)}) AS audience FROM {schema.watch_join()} GROUP BY 1")


def hashtags_sql(schema: GraphSchema) -> str | None:
    """``community_id, tag, n``: tags of the community creators' items (None without tags)."""
    e = schema.events
    if not schema.hashtags_col or e is None or not e.item_table or not schema.item_creator_col:
        return None
    value = f"unnest(i.{q(schema.hashtags_col)})" if schema.hashtags_is_list else \
        f"i.{q(schema.hashtags_col)}"
    return (f"SELECT cc.community_id, CAST(x.tag AS VARCHAR) AS tag, count(*) AS n FROM "
            f"(SELECT i.{q(schema.item_creator_col)} AS c, {value} AS tag FROM {q(e.item_table)} i) x "
            f"JOIN {CREATOR_TABLE} cc ON cc.creator_id = x.c WHERE x.tag IS NOT NULL GROUP BY 1, 2")


def demographics_sql(schema: GraphSchema) -> str | None:
    """``col, community_id, value, n`` over the users of each community (None without a user
    table with demographic columns)."""
    e = schema.events
    if e is None or not e.user_table or not e.demographics:
        return None
    return " UNION ALL ".join(
        f"SELECT {i} AS col, uc.community_id, CAST(u.{q(col)} AS VARCHAR) AS value, count(*) AS n "
        f"FROM {USER_TABLE} uc JOIN {q(e.user_table)} u ON u.{q(e.user_key)} = uc.user_id "
        "GROUP BY ALL" for i, col in enumerate(e.demographics))
