"""Evidence about segments of users, computed in SQL: what makes each segment distinctive.

Per segment (a ``user_clusters`` cluster or a ``user_communities`` community): class-based
TF-IDF (c-TF-IDF, as in BERTopic) over the titles, descriptions, hashtags and search queries
of what its members watch and search, representative items (most watched by members, titles
only), size and share, the dominant coarse category and demographics.

c-TF-IDF: ``tf(t, c)`` is the share of term ``t`` in class ``c`` (item text and hashtags
weighted by members' watch time, searches by count; each source L1-normalised per class and
mixed by :data:`SOURCE_WEIGHTS`), ``idf(t) = log(1 + A / f(t))`` with ``A`` the average
terms per class and ``f(t)`` the frequency of ``t`` over all classes; generic terms (fyp,
viral) spread over every class and sink; a term must also be over-represented in the class
(share at least :data:`MIN_LIFT` times its average share), which matters with few classes,
where idf alone barely separates "best" from "pasta". Item terms must occur in at least
:data:`MIN_ITEM_DF` items, so one item's text (say an injected title) never becomes a term.
Search queries are personal: they only feed counts, and a search term is kept only when at
least ``k = max(5, privacy_floor // 4)`` distinct members of the segment used it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from tools.catalog import Catalog, ColumnInfo, TableInfo
from tools.errors import ToolArgumentError
from tools.features import FEATURE_TIMEOUT_S, InteractionSchema, discover_schema, q

SOURCE_WEIGHTS: dict[str, float] = {"text": 0.4, "tag": 0.3, "search": 0.3}
MIN_ITEM_DF = 3
MIN_LIFT = 1.5  # a term must be this over-represented in a segment vs the average one
SUPPORT_TERMS = 60  # terms per segment kept to validate names (more than shown)
REPRESENTATIVES = 5
TITLE_HINTS = ("title", "headline", "name", "caption", "subject")
CATEGORY_HINTS = ("category", "genre", "topic", "vertical", "section")
SEARCH_HINTS = ("query", "search", "term", "keyword")
MAX_CATEGORY_VALUES = 60
SPLIT = r"[^\p{L}\p{N}]+"
STOPWORDS: frozenset[str] = frozenset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing don down during each few for from further
get got had has have having he her here hers him his how i if in into is it its itself just let
like me more most my myself no nor not now of off on once only or other our ours out over own
part really same she should so some such than that the their theirs them then there these they
this those through to too under until up very vs was we were what when where which while who
whom why will with won would you your yours yourself via
de la el en y que los las del con por para un una mi es em do da das dos no na um uma meu com
le les des et du au pour ma mon und der die das ist mit ich ke ka ki se hai yang dan di ini itu
""".split())
PREVIEW_SEPARATOR = " · "


@dataclass(frozen=True)
class SegmentTable:
    """A session table of segment members: which column holds members, which segments."""

    kind: str  # "cluster" | "community"
    table: str
    member_col: str
    segment_col: str
    creator_table: str | None = None  # creator_communities, for creator-side evidence
    creator_col: str | None = None


@dataclass(frozen=True)
class TextSources:
    """Where item text lives (item table columns) and where searches live, from the catalog."""

    item_table: str
    item_key: str
    text_cols: tuple[str, ...]
    title_col: str | None
    tag_cols: tuple[str, ...]
    category_col: str | None
    creator_col: str | None
    search_table: str | None = None
    search_user: str | None = None
    search_text: str | None = None


@dataclass(frozen=True)
class Term:
    """One distinctive term of a segment: text, c-TF-IDF score, sources it came from."""

    term: str
    score: float
    sources: tuple[str, ...]

    @property
    def is_tag(self) -> bool:
        """Whether the term is a hashtag (written with a leading '#')."""
        return self.term.startswith("#")


@dataclass(frozen=True)
class SegmentEvidence:
    """Everything known about one segment that may be shown to a person or a model."""

    segment_id: int
    size: int
    share: float
    terms: tuple[Term, ...]
    support: tuple[Term, ...]  # more terms (terms first), for names and their validation
    categories: tuple[tuple[str, float], ...]
    representatives: tuple[str, ...]
    demographics: dict[str, tuple[str, float]] = field(default_factory=dict)
    creators: int | None = None

    @property
    def category(self) -> str | None:
        """The dominant coarse category, if the data has one."""
        return self.categories[0][0] if self.categories else None


@dataclass(frozen=True)
class EvidenceSet:
    """Evidence of every segment of one segment table, plus the SQL that made it."""

    kind: str
    segments: tuple[SegmentEvidence, ...]
    total: int
    k_anonymity: int
    sql: str

    def vocabulary(self) -> frozenset[str]:
        """Every word of every supported term of every segment (lowercase)."""
        words: set[str] = set()
        for seg in self.segments:
            for term in seg.support:
                words.update(words_of(term.term))
        return frozenset(words)


def words_of(text: str) -> list[str]:
    """Lowercase word tokens (letters and digits) of ``text``."""
    return [w for w in re.split(r"[^\w]+", text.lower().lstrip("#")) if w and w != "_"]


def k_anonymity(privacy_floor: int) -> int:
    """Distinct users a personal term needs before it may be shown: max(5, floor // 4)."""
    return max(5, int(privacy_floor) // 4)


def sql_list(values: frozenset[str] | list[str]) -> str:
    """A SQL list literal of trusted constant strings."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values)) + "]"


def _good(x: str) -> str:
    return (f"(length({x}) >= 2 AND NOT list_contains({sql_list(STOPWORDS)}, {x}) "
            f"AND NOT regexp_full_match({x}, '[0-9]+'))")


def tokens_expr(text_sql: str) -> str:
    """SQL: the lowercase word tokens of ``text_sql`` (split on anything but letters/digits)."""
    return f"regexp_split_to_array(lower({text_sql}), '{SPLIT}')"


def terms_expr(tk: str) -> str:
    """SQL: the unigrams and bigrams (no stopwords, no numbers) of the token list column ``tk``."""
    return (f"list_filter(list_concat({tk}, list_transform(range(1, len({tk})), lambda i: "
            f"CASE WHEN {_good(f'{tk}[i]')} AND {_good(f'{tk}[i + 1]')} "
            f"THEN {tk}[i] || ' ' || {tk}[i + 1] END)), lambda t: t IS NOT NULL AND "
            f"(contains(t, ' ') OR {_good('t')}))")


# ---------------------------------------------------------------- discovery


def _pick(columns: list[ColumnInfo], hints: tuple[str, ...]) -> ColumnInfo | None:
    for hint in hints:
        for c in columns:
            if hint in c.name.lower():
                return c
    return None


def item_text_columns(table: TableInfo) -> tuple[list[str], str | None, list[str], str | None]:
    """(free-text columns, title column, tag-list columns, category column) of an item table.

    Personal columns are never used. Free text is a text column with many distinct values;
    a category is a text column with 2..60 values.
    """
    usable = [c for c in table.columns if not c.personal and not c.is_key]
    many = max(50, table.rows // 50)
    text = [c for c in usable if c.kind == "text" and (c.distinct or 0) >= many]
    tags = [c.name for c in usable if c.kind == "list" and "VARCHAR" in c.type.upper()]
    low = [c for c in usable if c.kind == "text" and 2 <= (c.distinct or 0) <= MAX_CATEGORY_VALUES]
    title = _pick(text, TITLE_HINTS) or (text[0] if text else None)
    category = _pick(low, CATEGORY_HINTS)
    return [c.name for c in text], title.name if title else None, tags, \
        category.name if category else None


def discover_sources(catalog: Catalog, schema: InteractionSchema) -> TextSources:
    """Item text columns of the interaction schema's item table, and the searches table."""
    if not schema.item_table or not schema.item_key:
        raise ToolArgumentError(
            f"{schema.events} has no item key that points at an item table with text; "
            "label_segments needs items with titles or tags")
    items = catalog.tables[schema.item_table.lower()]
    text, title, tags, category = item_text_columns(items)
    if not text and not tags:
        raise ToolArgumentError(
            f"the item table {items.name} has no text or tag columns to describe segments by")
    creator = _pick([c for c in items.columns if c.is_key and c.name != schema.item_key],
                    ("creator", "author", "owner", "channel", "uploader", "artist"))
    search_table = search_user = search_text = None
    for t in catalog.tables.values():
        if t.origin != "warehouse" or t.name in (schema.events, items.name):
            continue
        user = t.column(schema.user_key)
        if user is None:
            continue
        texts = [c for c in t.columns if c.kind == "text" and not c.is_key]
        col = _pick(texts, SEARCH_HINTS)
        if col is not None and (any(h in t.name.lower() for h in SEARCH_HINTS) or col.personal
                                or "query" in col.name.lower()):
            search_table, search_user, search_text = t.name, user.name, col.name
            break
    return TextSources(items.name, schema.item_key, tuple(text), title, tuple(tags), category,
                       creator.name if creator else None, search_table, search_user, search_text)


SEGMENT_SOURCES = {"cluster": ("user_clusters", "cluster_id", "cluster_users"),
                   "community": ("user_communities", "community_id", "detect_communities")}
"""Each segment kind's session table, segment column and the tool that makes the table."""


def segment_table(catalog: Catalog, kind: str) -> SegmentTable:
    """The session table of ``kind`` ("cluster" or "community") and its columns.

    Raises:
        ToolArgumentError: for an unknown kind, or when the table does not exist yet.
    """
    if kind not in SEGMENT_SOURCES:
        raise ToolArgumentError(f"unknown segment_kind '{kind}'; choose 'cluster' or 'community'")
    table, seg_col, tool = SEGMENT_SOURCES[kind]
    info = catalog.table(table)
    if info is None or info.origin != "session":
        raise ToolArgumentError(f"there is no {table} table yet: run {tool} first")
    seg = info.column(seg_col)
    member = next((c for c in info.columns if c.is_key and c.name != seg_col), None)
    if seg is None or member is None:
        raise ToolArgumentError(f"{table} lacks its member or {seg_col} column: run {tool} again")
    creator_table = creator_col = None
    if kind == "community":
        ct = catalog.table("creator_communities")
        if ct is not None and ct.origin == "session" and ct.column(seg_col) is not None:
            cc = next((c for c in ct.columns if c.is_key and c.name != seg_col), None)
            if cc is not None:
                creator_table, creator_col = ct.name, cc.name
    return SegmentTable(kind, info.name, member.name, seg.name, creator_table, creator_col)


def membership_digest(ws: object, seg: SegmentTable) -> str:
    """A cheap fingerprint of the segment table's contents (part of the evidence cache key)."""
    parts = []
    for table, member in ((seg.table, seg.member_col), (seg.creator_table, seg.creator_col)):
        if table and member:
            row = ws.frame(  # type: ignore[attr-defined]
                f"SELECT count(*) AS n, bit_xor(hash({q(member)}, {q(seg.segment_col)})) AS h "
                f"FROM {q(table)}").iloc[0]
            parts.append(f"{table}:{int(row['n'])}:{row['h']}")
    return "|".join(parts)


# ---------------------------------------------------------------- SQL


def evidence_sql(schema: InteractionSchema, src: TextSources, seg: SegmentTable) -> str:
    """The c-TF-IDF query. Parameters: [min item df, k users, terms per segment, min lift]."""
    weight = f"CAST(e.{q(schema.weight_col)} AS DOUBLE)" if schema.weight_col else "1.0"
    text = " || ' ' || ".join(f"coalesce(CAST(it.{q(c)} AS VARCHAR), '')" for c in src.text_cols)
    item_parts = []
    if src.text_cols:
        item_parts.append(f"SELECT item, unnest({terms_expr('tk')}) AS term, 'text' AS src FROM "
                          f"(SELECT it.{q(src.item_key)} AS item, {tokens_expr(text)} AS tk "
                          f"FROM {q(src.item_table)} it)")
    for col in src.tag_cols:
        item_parts.append(f"SELECT it.{q(src.item_key)} AS item, '#' || lower(trim(unnest("
                          f"it.{q(col)}), '# ')) AS term, 'tag' AS src FROM {q(src.item_table)} it")
    sv = (f"SELECT m.s, e.{q(schema.item_key or '')} AS item, sum(greatest(coalesce({weight}, 0), "
          f"0)) AS w FROM {q(schema.events)} e JOIN seg m ON m.u = e.{q(schema.user_key)} "
          "GROUP BY ALL")
    if seg.creator_table and src.creator_col:
        # creator side: the community's creators' own items, weighted by all their watch time
        sv = (f"SELECT s, item, w / sum(w) OVER (PARTITION BY s) AS w FROM ({sv}) UNION ALL "
              f"SELECT s, item, w / sum(w) OVER (PARTITION BY s) AS w FROM ("
              f"SELECT cc.{q(seg.segment_col)} AS s, it.{q(src.item_key)} AS item, "
              f"sum(greatest(coalesce({weight}, 0), 0)) + 1e-9 AS w "
              f"FROM {q(seg.creator_table)} cc JOIN {q(src.item_table)} it "
              f"ON it.{q(src.creator_col)} = cc.{q(seg.creator_col or '')} "
              f"JOIN {q(schema.events)} e ON e.{q(schema.item_key or '')} = it.{q(src.item_key)} "
              "GROUP BY ALL)")
    search = ""
    if src.search_table and src.search_text and src.search_user:
        search = f""", search_tf AS (
  SELECT m.s, t.term, 'search' AS src, count(*) AS x
  FROM {q(src.search_table)} sq JOIN seg m ON m.u = sq.{q(src.search_user)}
  JOIN (SELECT query, unnest(list_distinct({terms_expr('tk')})) AS term FROM (
          SELECT query, {tokens_expr('query')} AS tk FROM (
            SELECT DISTINCT CAST({q(src.search_text)} AS VARCHAR) AS query
            FROM {q(src.search_table)}))) t ON t.query = CAST(sq.{q(src.search_text)} AS VARCHAR)
  GROUP BY ALL HAVING count(DISTINCT m.u) >= $2
)"""
    weights = " ".join(f"WHEN '{k}' THEN {v}" for k, v in SOURCE_WEIGHTS.items())
    return f"""WITH seg AS (
  SELECT {q(seg.member_col)} AS u, {q(seg.segment_col)} AS s FROM {q(seg.table)}
), sv AS ({sv}
), item_terms AS (
  SELECT DISTINCT item, term, src FROM ({' UNION ALL '.join(item_parts)}) WHERE length(term) > 1
), item_df AS (
  SELECT term, src FROM item_terms GROUP BY ALL HAVING count(*) >= $1
), item_tf AS (
  SELECT sv.s, t.term, t.src, sum(sv.w) AS x
  FROM sv JOIN item_terms t USING (item) JOIN item_df USING (term, src) GROUP BY ALL
){search}, mixed AS (
  SELECT s, term, src, x / sum(x) OVER (PARTITION BY s, src) * CASE src {weights} END AS x
  FROM (SELECT * FROM item_tf{' UNION ALL SELECT * FROM search_tf' if search else ''})
  WHERE x > 0
), tf AS (
  SELECT s, term, sum(x) AS x, list_sort(list_distinct(list(src))) AS srcs FROM mixed GROUP BY ALL
), shares AS (
  SELECT s, term, srcs, x / sum(x) OVER (PARTITION BY s) AS share FROM tf
), scored AS (
  SELECT s, term, srcs, share * ln(1 + (SELECT sum(share) / count(DISTINCT s) FROM shares)
      / sum(share) OVER (PARTITION BY term)) AS score,
    share * (SELECT count(DISTINCT s) FROM shares) / sum(share) OVER (PARTITION BY term) AS lift,
    (SELECT count(DISTINCT s) FROM shares) AS classes
  FROM shares
)
SELECT s AS segment_id, term, score, srcs FROM scored WHERE lift >= $4 OR classes = 1
QUALIFY row_number() OVER (PARTITION BY s ORDER BY score DESC, term) <= $3
ORDER BY segment_id, score DESC, term"""


def _segment_facts(ws: object, schema: InteractionSchema, src: TextSources, seg: SegmentTable
                   ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(sizes, categories, representative titles, demographics) per segment, in SQL."""
    frame = ws.frame  # type: ignore[attr-defined]
    seg_cte = (f"WITH seg AS (SELECT DISTINCT {q(seg.member_col)} AS u, {q(seg.segment_col)} AS s "
               f"FROM {q(seg.table)})")
    creators = ""
    if seg.creator_table and seg.creator_col:
        creators = (f" FULL JOIN (SELECT {q(seg.segment_col)} AS s, count(DISTINCT "
                    f"{q(seg.creator_col)}) AS creators FROM {q(seg.creator_table)} GROUP BY 1) c "
                    "USING (s)")
    sizes = frame(f"{seg_cte} SELECT s AS segment_id, coalesce(n, 0) AS size"
                  f"{', coalesce(creators, 0) AS creators' if creators else ''} FROM "
                  f"(SELECT s, count(*) AS n FROM seg GROUP BY s) m{creators} ORDER BY 1",
                  timeout_s=FEATURE_TIMEOUT_S)
    weight = f"CAST(e.{q(schema.weight_col)} AS DOUBLE)" if schema.weight_col else "1.0"
    watched = (f"{seg_cte}, sv AS (SELECT m.s, e.{q(schema.item_key or '')} AS item, "
               f"sum(greatest(coalesce({weight}, 0), 0)) AS w, count(DISTINCT m.u) AS viewers "
               f"FROM {q(schema.events)} e JOIN seg m ON m.u = e.{q(schema.user_key)} GROUP BY ALL)")
    categories = pd.DataFrame(columns=["segment_id", "value", "share"])
    if src.category_col:
        categories = frame(
            f"{watched} SELECT * FROM (SELECT s AS segment_id, CAST(it.{q(src.category_col)} AS "
            "VARCHAR) AS value, sum(w) / sum(sum(w)) OVER (PARTITION BY s) AS share FROM sv JOIN "
            f"{q(src.item_table)} it ON it.{q(src.item_key)} = sv.item WHERE it.{q(src.category_col)}"
            " IS NOT NULL GROUP BY 1, 2) QUALIFY row_number() OVER (PARTITION BY segment_id ORDER BY"
            " share DESC, value) <= 3 ORDER BY 1, 3 DESC", timeout_s=FEATURE_TIMEOUT_S)
    titles = pd.DataFrame(columns=["segment_id", "title"])
    if src.title_col:
        titles = frame(
            f"{watched} SELECT s AS segment_id, CAST(it.{q(src.title_col)} AS VARCHAR) AS title "
            f"FROM sv JOIN {q(src.item_table)} it ON it.{q(src.item_key)} = sv.item "
            f"WHERE it.{q(src.title_col)} IS NOT NULL QUALIFY row_number() OVER (PARTITION BY s "
            f"ORDER BY viewers DESC, w DESC, sv.item) <= {REPRESENTATIVES} ORDER BY 1",
            timeout_s=FEATURE_TIMEOUT_S)
    demo = pd.DataFrame(columns=["segment_id", "col", "value", "share"])
    if schema.user_table and schema.demographics:
        parts = [f"SELECT {i} AS col, m.s, CAST(u.{q(c)} AS VARCHAR) AS value, count(*) AS n "
                 f"FROM seg m JOIN {q(schema.user_table)} u ON u.{q(schema.user_key)} = m.u "
                 "GROUP BY ALL" for i, c in enumerate(schema.demographics)]
        demo = frame(f"{seg_cte} SELECT s AS segment_id, col, coalesce(value, '(missing)') AS "
                     "value, n / sum(n) OVER (PARTITION BY s, col) AS share FROM ("
                     f"{' UNION ALL '.join(parts)}) QUALIFY row_number() OVER (PARTITION BY s, col "
                     "ORDER BY n DESC, value) = 1", timeout_s=FEATURE_TIMEOUT_S)
        demo["col"] = [schema.demographics[int(i)] for i in demo["col"]]
    return sizes, categories, titles, demo


def collect_evidence(ctx_ws: object, catalog: Catalog, seg: SegmentTable, top_terms: int,
                     privacy_floor: int) -> EvidenceSet:
    """Compute the evidence of every segment of ``seg`` (all heavy work in SQL)."""
    schema = discover_schema(catalog)
    src = discover_sources(catalog, schema)
    k = k_anonymity(privacy_floor)
    sql = evidence_sql(schema, src, seg)
    terms = ctx_ws.frame(sql, [MIN_ITEM_DF, k, max(SUPPORT_TERMS, top_terms), MIN_LIFT],  # type: ignore[attr-defined]
                         timeout_s=FEATURE_TIMEOUT_S)
    sizes, categories, titles, demo = _segment_facts(ctx_ws, schema, src, seg)
    by_seg = {int(s): part for s, part in terms.groupby("segment_id")}
    total = int(sizes["size"].sum())
    segments = []
    for row in sizes.itertuples(index=False):
        sid = int(row.segment_id)
        part = by_seg.get(sid, terms.iloc[0:0])
        all_terms = [Term(str(t), round(float(s), 5), tuple(x)) for t, s, x in
                     zip(part["term"], part["score"], part["srcs"], strict=True)]
        cats = categories[categories["segment_id"] == sid]
        dem = demo[demo["segment_id"] == sid]
        segments.append(SegmentEvidence(
            segment_id=sid, size=int(row.size), share=round(int(row.size) / max(total, 1), 4),
            terms=tuple(all_terms[:top_terms]), support=tuple(all_terms),
            categories=tuple((str(v), round(float(s), 3)) for v, s in
                             zip(cats["value"], cats["share"], strict=True)),
            representatives=tuple(str(t) for t in titles[titles["segment_id"] == sid]["title"]),
            demographics={str(c): (str(v), round(float(s), 3)) for c, v, s in
                          zip(dem["col"], dem["value"], dem["share"], strict=True)},
            creators=int(row.creators) if "creators" in sizes.columns else None))
    segments.sort(key=lambda s: s.segment_id)
    return EvidenceSet(seg.kind, tuple(segments), total, k, sql)


def evidence_frame(evidence: EvidenceSet) -> pd.DataFrame:
    """The evidence as a table for the person (terms, categories, titles, demographics)."""
    rows = []
    for s in evidence.segments:
        rows.append({
            "segment_id": s.segment_id, "size": s.size, "share": s.share,
            "distinctive_terms": PREVIEW_SEPARATOR.join(t.term for t in s.terms),
            "categories": ", ".join(f"{v} {sh:.0%}" for v, sh in s.categories),
            "representative_titles": PREVIEW_SEPARATOR.join(s.representatives),
            **{f"top_{c}": f"{v} {sh:.0%}" for c, (v, sh) in s.demographics.items()},
            **({"creators": s.creators} if s.creators is not None else {}),
        })
    return pd.DataFrame(rows)
