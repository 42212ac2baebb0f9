"""Interest taxonomies for label_items: given by the person, or proposed from the data.

A taxonomy is a list of leaves ("Parent > Child" or a single level), each with weighted
keywords: the words of its label, and for a data-proposed taxonomy its defining hashtags and
most distinctive words. The proposal needs no model: level 1 is the item table's coarse
category, level 2 the communities of the hashtag co-occurrence graph (edges where two tags
meet more often than chance, by NPMI; generic reach tags like #fyp meet everything at chance
and fall out). :func:`score_items` is the deterministic item labeler: keyword and hashtag
match scoring against every leaf.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from tools.errors import ToolArgumentError
from tools.evidence import STOPWORDS, terms_expr, tokens_expr, words_of
from tools.features import FEATURE_TIMEOUT_S, q

OTHER = "Other"
MAX_TAGS = 400
MIN_TAG_ITEMS = 5
MIN_NPMI = 0.1
LEAF_WORDS = 40
PARENT_WEIGHT = 0.5
TAG_SUBSTRING_WEIGHT = 0.7
SEED = 0
PROPOSAL_ITEMS = 200_000  # items a proposal reads at most (a hash sample above)


@dataclass(frozen=True)
class ItemText:
    """The text of one item as a labeler sees it (never its id)."""

    text: str  # title, description (or the query itself)
    tags: tuple[str, ...] = ()
    category: str | None = None

    @property
    def prompt_text(self) -> str:
        """Text and hashtags on one line."""
        tags = " ".join(f"#{t}" for t in self.tags)
        return f"{self.text} {tags}".strip()


@dataclass(frozen=True)
class TaxonomyLeaf:
    """One label and its keywords: ``"#tag"``, ``"word"`` or ``"two words"``, with weights."""

    label: str
    keywords: tuple[str, ...]
    weights: tuple[float, ...] = ()

    def weighted(self) -> list[tuple[str, float]]:
        """(keyword, weight) pairs; weight 1 when none was given."""
        weights = self.weights or (1.0,) * len(self.keywords)
        return list(zip(self.keywords, weights, strict=True))


@dataclass(frozen=True)
class Taxonomy:
    """The leaves items are assigned to, and where the taxonomy came from."""

    leaves: tuple[TaxonomyLeaf, ...]
    source: str
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """Leaf labels in order."""
        return [leaf.label for leaf in self.leaves]


def _norm(word: str) -> str:
    word = word.lower()
    for suffix in ("ies", "es", "s"):
        if len(word) > 4 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def parse_taxonomy(labels: Sequence[str]) -> Taxonomy:
    """A taxonomy from the person's labels ("Food > Street food" or "Street food").

    Raises:
        ToolArgumentError: when fewer than two distinct labels remain.
    """
    leaves: list[TaxonomyLeaf] = []
    seen: set[str] = set()
    for raw in labels:
        parts = [re.sub(r"\s+", " ", p).strip() for p in str(raw).split(">")]
        parts = [p for p in parts if p]
        if not parts:
            continue
        label = " > ".join(parts)
        if label.lower() in seen:
            continue
        seen.add(label.lower())
        child = [w for w in words_of(parts[-1]) if w not in STOPWORDS]
        parent = [w for p in parts[:-1] for w in words_of(p) if w not in STOPWORDS]
        keywords = child + [w for w in parent if w not in child]
        weights = [1.0] * len(child) + [PARENT_WEIGHT] * (len(keywords) - len(child))
        if len(child) > 1:
            keywords.append(" ".join(words_of(parts[-1])))
            weights.append(1.0)
        leaves.append(TaxonomyLeaf(label, tuple(keywords), tuple(weights)))
    if len(leaves) < 2:
        raise ToolArgumentError(
            "give a taxonomy of at least two labels, e.g. ['Food > Street food', "
            "'Food > Budget cooking', 'Sports'], or leave it empty to have one proposed")
    return Taxonomy(tuple(leaves), "given")


class _Index:
    """Keyword → (leaf, weight × idf) lookups, built once per taxonomy."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.n = len(taxonomy.leaves)
        owners: dict[str, set[int]] = {}
        for i, leaf in enumerate(taxonomy.leaves):
            for kw, _ in leaf.weighted():
                owners.setdefault(self._key(kw), set()).add(i)
        self.exact: dict[str, list[tuple[int, float]]] = {}
        for i, leaf in enumerate(taxonomy.leaves):
            for kw, w in leaf.weighted():
                key = self._key(kw)
                idf = math.log(1 + self.n / len(owners[key]))
                self.exact.setdefault(key, []).append((i, w * idf))
        self.words = [k for k in self.exact if not k.startswith("#") and " " not in k
                      and len(k) >= 4]
        self._tag_cache: dict[str, list[str]] = {}

    @staticmethod
    def _key(kw: str) -> str:
        kw = kw.lower().strip()
        if kw.startswith("#"):
            return kw
        return " ".join(_norm(w) for w in kw.split())

    def tag_words(self, tag: str) -> list[str]:
        if tag not in self._tag_cache:
            self._tag_cache[tag] = [w for w in self.words if w in tag]
        return self._tag_cache[tag]


def score_items(items: Sequence[ItemText], taxonomy: Taxonomy) -> list[str]:
    """The best-matching leaf of every item by keyword and hashtag scores, or OTHER."""
    index = _Index(taxonomy)
    labels = taxonomy.labels
    out: list[str] = []
    for item in items:
        tokens = [_norm(w) for w in words_of(item.text)]
        scores = np.zeros(index.n)
        keys = set(tokens) | {f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)}
        tags = {t.lower().lstrip("#") for t in item.tags}
        keys |= {f"#{t}" for t in tags}
        for key in keys:
            for leaf, w in index.exact.get(key, ()):
                scores[leaf] += w
        for tag in tags:
            for word in index.tag_words(tag):
                if word not in keys:
                    for leaf, w in index.exact[word]:
                        scores[leaf] += TAG_SUBSTRING_WEIGHT * w
        best = int(np.argmax(scores)) if index.n else 0
        out.append(labels[best] if index.n and scores[best] > 0 else OTHER)
    return out


# ---------------------------------------------------------------- proposal from the data


def _tag_sql(source: str, key: str, tag_col: str) -> str:
    return (f"SELECT DISTINCT it.{q(key)} AS item, lower(trim(t.tag, '# ')) AS tag FROM "
            f"{source} it, (SELECT unnest(it.{q(tag_col)}) AS tag) t WHERE t.tag IS NOT NULL")


def data_taxonomy(ws: object, table: str, key: str, text_cols: Sequence[str],
                  tag_col: str | None, category_col: str | None, rows: int = 0) -> Taxonomy:
    """Propose a two-level taxonomy from the items' category and hashtag co-occurrence.

    Above :data:`PROPOSAL_ITEMS` items (``rows``), a deterministic hash sample of about that
    many items is enough to find the topics.
    """
    frame = ws.frame  # type: ignore[attr-defined]
    every = math.ceil(rows / PROPOSAL_ITEMS) if rows > PROPOSAL_ITEMS else 1
    source = (f"(SELECT * FROM {q(table)} WHERE hash({q(key)}) % {every} = 0)" if every > 1
              else q(table))
    if tag_col is None:
        if category_col is None:
            raise ToolArgumentError(
                f"{table} has neither hashtags nor a category to propose a taxonomy from; "
                "give one with taxonomy=['label', ...]")
        cats = frame(f"SELECT CAST({q(category_col)} AS VARCHAR) AS c, count(*) AS n FROM "
                     f"{source} WHERE {q(category_col)} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1")
        words = _leaf_words(ws, source, key, text_cols, f"CAST(it.{q(category_col)} AS VARCHAR)",
                            list(cats["c"]))
        leaves = tuple(TaxonomyLeaf(c, (c.lower(), *words.get(c, ()))) for c in cats["c"])
        return Taxonomy(leaves, "proposed from the data (categories)")
    tags = f"WITH tags AS ({_tag_sql(source, key, tag_col)})"
    top = frame(f"{tags} SELECT tag, count(*) AS n FROM tags GROUP BY tag HAVING count(*) >= $1 "
                "ORDER BY n DESC, tag LIMIT $2", [MIN_TAG_ITEMS, MAX_TAGS],
                timeout_s=FEATURE_TIMEOUT_S)
    if len(top) < 2:
        raise ToolArgumentError(f"too few hashtags in {table} to propose a taxonomy; give one")
    n_items = int(frame(f"{tags} SELECT count(DISTINCT item) AS n FROM tags").iloc[0]["n"])
    pairs = frame(
        f"{tags}, top AS (SELECT unnest($1::VARCHAR[]) AS tag), t AS (SELECT * FROM tags "
        "SEMI JOIN top USING (tag)) SELECT a.tag AS a, b.tag AS b, count(*) AS n FROM t a "
        "JOIN t b ON a.item = b.item AND a.tag < b.tag GROUP BY ALL HAVING count(*) >= $2",
        [list(top["tag"]), MIN_TAG_ITEMS], timeout_s=FEATURE_TIMEOUT_S)
    count = dict(zip(top["tag"], top["n"].astype(float), strict=True))
    graph = nx.Graph()
    for a, b, n in zip(pairs["a"], pairs["b"], pairs["n"].astype(float), strict=True):
        p_ab, p_a, p_b = n / n_items, count[a] / n_items, count[b] / n_items
        npmi = math.log(p_ab / (p_a * p_b)) / -math.log(p_ab) if p_ab < 1 else 1.0
        if npmi > MIN_NPMI:
            graph.add_edge(a, b, weight=npmi)
    groups = [sorted(c, key=lambda t: (-count[t], t)) for c in
              nx.community.louvain_communities(graph, weight="weight", seed=SEED) if len(c) >= 2]
    if len(groups) < 2:
        raise ToolArgumentError(f"the hashtags of {table} do not form topics; give a taxonomy")
    groups.sort(key=lambda g: (-sum(count[t] for t in g), g[0]))
    parents = _parents(ws, tags, groups, source, key, category_col)
    names = [f"{p} > #{g[0]}, #{g[1]}" if p else f"#{g[0]}, #{g[1]}"
             for p, g in zip(parents, groups, strict=True)]
    tag_leaf = {t: i for i, g in enumerate(groups) for t in g}
    vote = ("(SELECT item, arg_max(leaf, n) AS leaf FROM (SELECT item, m.leaf, count(*) AS n "
            "FROM tags JOIN (SELECT unnest($1::VARCHAR[]) AS tag, unnest($2::INTEGER[]) AS leaf) m "
            "USING (tag) GROUP BY ALL) GROUP BY item)")
    words = _leaf_words(ws, source, key, text_cols, "v.leaf", list(range(len(groups))),
                        join=f"{tags.removeprefix('WITH ')}, votes AS {vote}",
                        params=[list(tag_leaf), list(tag_leaf.values())])
    leaves = tuple(TaxonomyLeaf(name, tuple(f"#{t}" for t in g) + words.get(i, ()))
                   for i, (name, g) in enumerate(zip(names, groups, strict=True)))
    return Taxonomy(leaves, "proposed from the data (category > hashtag communities)",
                    {"hashtags_used": len(tag_leaf), "hashtags_seen": len(top)})


def _parents(ws: object, tags: str, groups: list[list[str]], source: str, key: str,
             category_col: str | None) -> list[str | None]:
    """The dominant category of each tag group's items (None without a category column)."""
    if category_col is None:
        return [None] * len(groups)
    flat = [t for g in groups for t in g]
    leaf = [i for i, g in enumerate(groups) for _ in g]
    df = ws.frame(  # type: ignore[attr-defined]
        f"{tags} SELECT m.leaf, CAST(it.{q(category_col)} AS VARCHAR) AS c, count(*) AS n "
        f"FROM tags JOIN (SELECT unnest($1::VARCHAR[]) AS tag, unnest($2::INTEGER[]) AS leaf) m "
        f"USING (tag) JOIN {source} it ON it.{q(key)} = tags.item "
        f"WHERE it.{q(category_col)} IS NOT NULL GROUP BY ALL", [flat, leaf],
        timeout_s=FEATURE_TIMEOUT_S)
    best: dict[int, str] = {}
    for i, part in df.sort_values(["n", "c"], ascending=[False, True]).groupby("leaf", sort=False):
        best[int(i)] = str(part["c"].iloc[0])
    return [best.get(i) for i in range(len(groups))]


def _leaf_words(ws: object, source: str, key: str, text_cols: Sequence[str], leaf_sql: str,
                leaves: list, join: str | None = None, params: list | None = None
                ) -> dict[object, tuple[str, ...]]:
    """The most distinctive words (c-TF-IDF) of each leaf's items."""
    if not text_cols:
        return {}
    text = " || ' ' || ".join(f"coalesce(CAST(it.{q(c)} AS VARCHAR), '')" for c in text_cols)
    select = (f"WITH {join} SELECT v.leaf AS leaf, it.* FROM votes v JOIN {source} it "
              f"ON it.{q(key)} = v.item" if join else
              f"SELECT {leaf_sql} AS leaf, it.* FROM {source} it")
    sql = f"""WITH src AS ({select}),
terms AS (
  SELECT leaf, unnest(list_distinct({terms_expr('tk')})) AS term FROM (
    SELECT leaf, {tokens_expr(text)} AS tk FROM src it)
), tf AS (SELECT leaf, term, count(*) AS n FROM terms GROUP BY ALL
), scored AS (
  SELECT leaf, term, n / sum(n) OVER (PARTITION BY leaf)
    * ln(1 + (SELECT sum(n) / count(DISTINCT leaf) FROM tf) / sum(n) OVER (PARTITION BY term))
    AS score FROM tf WHERE n >= {MIN_TAG_ITEMS}
)
SELECT leaf, term FROM scored
QUALIFY row_number() OVER (PARTITION BY leaf ORDER BY score DESC, term) <= {LEAF_WORDS}
ORDER BY leaf, score DESC"""
    df = ws.frame(sql, params, timeout_s=FEATURE_TIMEOUT_S)  # type: ignore[attr-defined]
    out: dict[object, list[str]] = {}
    for leaf, term in zip(df["leaf"], df["term"], strict=True):
        out.setdefault(leaf if not isinstance(leaf, np.integer) else int(leaf), []).append(term)
    return {k: tuple(v) for k, v in out.items()}


def label_counts(labels: Sequence[str], top: int = 15) -> list[list[object]]:
    """[label, count, share] of the most common labels."""
    counts = Counter(labels)
    total = max(len(labels), 1)
    return [[lbl, n, round(n / total, 4)] for lbl, n in counts.most_common(top)]
