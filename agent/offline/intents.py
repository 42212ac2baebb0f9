"""Which analysis tool a question asks for, if any: segments, communities, names, strategy...

Read from general analytics words (lexicon) and the catalog: grouping words count only when
the question is about the people of the database (the table most other tables refer to), and
a word that names a catalog column outright ("segment" as a column) is that column, not a
request for clustering.
"""

from __future__ import annotations

from collections import Counter

from agent.offline import lexicon as lx
from agent.offline.joins import edges
from agent.offline.reading import Reading
from tools.catalog import Catalog


def people_table(catalog: Catalog) -> str | None:
    """The table whose key most other tables refer to (the users of the data)."""
    counts = Counter(e.dst for e in edges(catalog))
    if not counts:
        return None
    return sorted(counts.items(), key=lambda x: (-x[1], x[0]))[0][0]


def item_tables(catalog: Catalog, people: str | None) -> set[str]:
    """Tables of things people interact with (referred to by a table that refers to people)."""
    out = set()
    for e in edges(catalog):
        if e.dst != people and any(o.src == e.src and o.dst == people for o in edges(catalog)):
            out.add(e.dst)
    return out


def _named(r: Reading, words: frozenset[str], strict: bool = False) -> bool:
    """Whether one of ``words`` names the catalog here (a column's name, or part of a longer
    catalog phrase such as "age group"), rather than asking for a tool. ``strict``: only a
    name counts."""
    return any((m.by_name or (m.end - m.start > 1 and not strict))
               and any(t.low in words for t in r.toks[m.start:m.end]) for m in r.matches)


def tool_intent(r: Reading) -> str | None:
    """The analysis tool the question asks for, or None for a plain SQL question."""
    tool = _tool_words(r)
    words = lx.GROUPING_WORDS | lx.COMMUNITY_WORDS
    filters = [k for k, _, _ in r.filters
               if not any(t.low in words for t in r.toks[r.matches[k].start:r.matches[k].end])]
    asks_sql = r.cues.has_measure_cue or filters or r.dims or r.cues.rank
    if tool in ("cluster_users", "detect_communities") and asks_sql and _named(
            r, words, strict=True):
        return None  # a count over saved segments ("... in cluster 2") is plain SQL
    return tool


def _tool_words(r: Reading) -> str | None:
    low = {t.low for t in r.toks}
    cat = r.catalog
    people = people_table(cat)
    tables = {x.table for m in r.matches for x in m.refs if x.kind in ("table", "column")}
    label = bool(low & lx.LABEL_VERBS) or bool(low & {"names", "labels"})
    if low & lx.COMMUNITY_WORDS:
        return "label_segments" if label and "communities" in low and _asks_names(r) \
            else "detect_communities"
    grouping = bool(low & lx.GROUPING_WORDS) and not _named(r, lx.GROUPING_WORDS - {
        "cluster", "clusters"})
    if grouping and label and _asks_names(r):
        return "label_segments"
    if label and tables & item_tables(cat, people) and low & {"topic", "topics", "theme",
                                                                 "themes", "tag", "label"}:
        return "label_items"
    if grouping and (low & lx.STRONG_GROUPING or (people is not None and people in tables)):
        return "cluster_users"
    if low & lx.STRATEGY_WORDS and not _named(r, lx.STRATEGY_WORDS):
        return "draft_strategy"
    if low & lx.CORRELATE_WORDS:
        return "correlate"
    if low & lx.CHART_WORDS:
        return "make_chart"
    return None


def _asks_names(r: Reading) -> bool:
    """Whether the question asks for names or labels (a naming verb or noun)."""
    low = [t.low for t in r.toks]
    return any(w in lx.LABEL_VERBS or w in ("names", "labels") for w in low)
