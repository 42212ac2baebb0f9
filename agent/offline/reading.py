"""Reading one question: which grounded words are measures, dimensions, filters or context.

Roles come from the operator cues around each grounded span: a count cue takes the table
named after it, ``per``/``by``/``each`` and rank words the dimension after them, values and
yes/no columns become filters. Nothing is resolved against the fact table here; that is
:func:`agent.offline.frame.assemble`'s job, so that ties can be asked about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from agent.offline import lexicon as lx
from agent.offline.cues import Cues, read_cues
from agent.offline.grounding import CatalogIndex, Match, Ref, Token, ground, make_tokens
from agent.offline.joins import distance
from tools.catalog import Catalog

NEAR = 4  # tokens between a cue and the word it governs


@dataclass
class Reading:
    """Roles of the grounded spans of one question."""

    text: str
    catalog: Catalog
    toks: list[Token]
    cues: Cues
    matches: list[Match]
    roles: dict[int, str] = field(default_factory=dict)
    measures: list[tuple[int, str, str | None]] = field(default_factory=list)  # (k, kind, func)
    dims: list[int] = field(default_factory=list)
    filters: list[tuple[int, bool, float | None]] = field(default_factory=list)

    def kind(self, ref: Ref) -> str:
        """'table', 'metric', 'value', or the column's kind ('key' for identifiers)."""
        if ref.kind != "column":
            return ref.kind
        t = self.catalog.table(ref.table)
        c = t.column(ref.column or "") if t else None
        if c is None:
            return "column"
        return "key" if c.is_key else c.kind

    def mkind(self, k: int) -> str:
        """The kind of match ``k`` (its best reading)."""
        return self.kind(self.matches[k].refs[0])

    def after(self, pos: int, within: int = NEAR) -> list[int]:
        """Indices of matches starting after token ``pos``, closest first."""
        return [k for k, m in enumerate(self.matches) if pos < m.start <= pos + within]

    def unknown_blocking(self, *, explicit: bool) -> bool:
        """Whether unmatched words make the reading a guess: they sit where the measure is
        named ("how many <unknown> users"), or nothing says what to measure at all."""
        unknown = unknown_tokens(self)
        if not unknown:
            return False
        if not explicit:
            return True
        # Before the measured noun ("churned users") or right after a count cue, an unknown
        # word changes what is measured. Right after the noun ("views lasted ...") it is a
        # verb, harmless when a condition the parser did read follows it.
        spots: set[int] = set()
        for p in [*self.cues.count_at, *(p for p, _ in self.cues.agg_at)]:
            spots.add(p + 1)
        explained = {m.start for k, m in enumerate(self.matches)
                     if self.roles.get(k) in ("filter", "dim", "measure")}
        explained |= {c.pos for c in self.cues.comparisons} | self._grain_positions()
        for k, _, _ in self.measures:
            m = self.matches[k]
            spots.add(m.start - 1)
            if not any(m.end < p <= m.end + 4 for p in explained):
                spots.add(m.end)
        return any(t.i in spots for t in unknown)

    def _grain_positions(self) -> set[int]:
        return {t.i for t in self.toks if t.low in lx.GRAIN_WORDS and t.i in self.cues.used}

    def tables(self) -> list[str]:
        """Tables named outright, in question order."""
        return [m.refs[0].table for m in self.matches if m.refs[0].kind == "table"]


def _add_measure(r: Reading, k: int, kind: str, func: str | None = None) -> None:
    r.measures.append((k, kind, func))
    r.roles[k] = "measure"


def _measures(r: Reading) -> None:
    cues = r.cues
    for pos in cues.count_at + cues.distinct_at:
        for k in r.after(pos, NEAR + 1):
            if r.roles.get(k):
                break
            kind = r.mkind(k)
            if kind == "metric":
                _add_measure(r, k, "metric")
            elif kind == "table":
                _add_measure(r, k, "count")
            elif kind in ("key", "text", "list") and any(
                    r.mkind(j) == "table" for j in r.after(r.matches[k].end - 1, 3)):
                continue  # "how many <kind of> <things>": the table comes next
            elif kind in ("key", "text") or (pos in cues.distinct_at and kind != "bool"):
                _add_measure(r, k, "distinct")
            elif kind in ("bool", "value"):
                later = [j for j in r.after(r.matches[k].end - 1, 3) if r.mkind(j) == "table"]
                if later:
                    continue  # "how many Brazilian users": the table comes next
                r.measures.append((k, "count", None))  # the flag stays a filter too
            elif kind in ("number", "time"):
                _add_measure(r, k, "count")
            else:
                continue
            break
    if cues.rate_at is not None and not r.measures:  # "more likely to <flag>": its rate
        for k in range(len(r.matches)):  # a count of flagged rows (a metric) names its flag
            flag = _metric_flag(r, r.matches[k].refs[0])
            if flag is not None and not r.roles.get(k):
                r.matches[k] = replace(r.matches[k], refs=(flag,), weights=(1.0,))
        flags = [k for k in range(len(r.matches)) if r.mkind(k) == "bool" and not r.roles.get(k)]
        columns = [r.matches[k].refs[0].column for k in flags]
        flags = [k for k, c in zip(flags, columns, strict=True) if columns.count(c) == 1]
        if flags:
            k = min(flags, key=lambda k: abs(r.matches[k].start - (cues.rate_at or 0)))
            r.measures.append((k, "agg", "avg"))
            r.roles[k] = "rate"
    counted = bool(r.measures)
    for pos, func in cues.agg_at:
        for k in r.after(pos):
            kind = r.mkind(k)
            if r.roles.get(k) == "measure":
                break
            if kind == "metric":
                near = 0 < r.matches[k].start - pos <= 2
                _add_measure(r, k, "avg_metric" if func == "avg" and near else "metric")
                break
            if kind == "number":
                _add_measure(r, k, "agg", func)
                break
            if kind == "table" and func == "sum" and not any(
                    r.mkind(j) == "number" for j in r.after(r.matches[k].end - 1, 2)):
                _add_measure(r, k, "count")
                break
    if cues.how_much and not r.measures:  # "how much do people <verb>": the amount behind it
        for k in range(len(r.matches)):
            if not r.roles.get(k) and r.mkind(k) == "number":
                _add_measure(r, k, "agg", "sum")
                break
    for k, m in enumerate(r.matches):
        if r.roles.get(k) or not any(x.kind == "metric" for x in m.refs):
            continue
        if counted:
            r.roles[k] = "context"  # "<count> <people> <activity verb>": activity, not count
        else:
            _add_measure(r, k, "metric")


def _metric_flag(r: Reading, ref: Ref) -> Ref | None:
    """The one yes/no column a metric's SQL reads ("SUM(CASE WHEN liked ...)"), if any."""
    if ref.kind != "metric":
        return None
    metric = r.catalog.metrics.get(ref.metric or "")
    table = r.catalog.table(ref.table)
    if metric is None or table is None:
        return None
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", metric.sql.lower()))
    flags = [c.name for c in table.columns if c.kind == "bool" and c.name.lower() in words]
    return Ref("column", table.name, flags[0]) if len(flags) == 1 else None


def _counted_before_entity(r: Reading, k: int) -> bool:
    """After a rank word, "<events> <items>" counts the first per the second."""
    here = r.matches[k].refs[0].table
    for j in range(k + 1, min(k + 3, len(r.matches))):
        other = r.matches[j].refs[0]
        if other.kind == "table" and other.table != here and \
                distance(r.catalog, here, other.table) < 50:
            _add_measure(r, k, "count")
            return True
    return False


def _dims(r: Reading) -> None:
    cues = r.cues
    starts = list(cues.dim_at)
    if cues.rank_at is not None:
        starts.append(cues.rank_at)
    if cues.adjective is not None:
        starts.append(cues.adjective[2])
    if cues.which_at is not None:
        starts.append(cues.which_at)
    for pos in sorted(set(starts)):
        nxt = r.toks[pos + 1].low if pos + 1 < len(r.toks) else ""
        if cues.grain and nxt in lx.GRAIN_WORDS:
            continue
        for k in r.after(pos, NEAR):
            role = r.roles.get(k)
            if role == "measure" and r.mkind(k) != "bool" and pos != cues.rank_at:
                break
            if role:
                continue
            kind = r.mkind(k)
            if kind in ("metric", "value"):
                break
            if kind == "number" and pos not in (cues.which_at, cues.adjective and
                                                 cues.adjective[2]):
                owner = r.matches[r.dims[0]].refs[0].table if r.dims else None
                same = owner == r.matches[k].refs[0].table
                _add_measure(r, k, "agg", "max" if same else "sum")
                break
            if kind == "table" and pos == cues.rank_at and _counted_before_entity(r, k):
                continue
            if kind == "table" and pos == cues.rank_at and r.dims:
                # "which country has the most users": the table after the rank word is counted
                # (or is what a metric already counts, e.g. "posted the most clips")
                measured = {r.matches[j].refs[0].table for j, _, _ in r.measures}
                if r.matches[k].refs[0].table in measured:
                    r.roles[k] = "context"
                else:
                    _add_measure(r, k, "count")
                break
            if kind == "bool" and pos not in cues.dim_at:
                break
            if kind in ("table", "text", "list", "bool", "key", "time"):
                if pos == cues.which_at and not (cues.rank or r.measures or cues.compare
                                                 or cues.adjective):
                    break
                r.dims.append(k)
                r.roles[k] = "dim"
                _more_dims(r, k)
            break


def _more_dims(r: Reading, k: int) -> None:
    """"by device and age band": a dimension joined by "and" to the previous one."""
    while k + 1 < len(r.matches) and not r.roles.get(k + 1):
        gap = [t.low for t in r.toks[r.matches[k].end:r.matches[k + 1].start]]
        if not gap or any(w not in ("and", "the", "by", "&", "per") for w in gap):
            return
        if r.mkind(k + 1) not in ("text", "list", "bool", "table", "time"):
            return
        k += 1
        r.dims.append(k)
        r.roles[k] = "dim"


def _filters(r: Reading) -> None:
    cues = r.cues
    for k, m in enumerate(r.matches):
        kind = r.mkind(k)
        if r.roles.get(k) and not (kind == "bool" and r.roles[k] == "measure"):
            continue
        negate = any(m.start - 3 <= p < m.start for p in cues.negations) or (
            m.fuzzy and m.text.lower().startswith(("un", "non")))
        if kind in ("value", "bool") and not (
                m.end < len(r.toks) and r.toks[m.end].number is not None and _numbered(r, k)):
            r.filters.append((k, negate, None))
            r.roles[k] = "filter"
        elif m.end < len(r.toks) and r.toks[m.end].number is not None \
                and m.end not in cues.used and _numbered(r, k):
            r.filters.append((k, negate, r.toks[m.end].number))  # "cluster 2"
            r.roles[k] = "filter"
            cues.used.add(m.end)
        else:
            r.roles[k] = "context"


def _numbered(r: Reading, k: int) -> bool:
    """Whether span ``k`` can be a column followed by its value ("cluster 2", "tier 1"); if
    so, the span is narrowed to that column."""
    m = r.matches[k]
    cols = [x for x in (m.alternates or m.refs) if x.kind == "column"
            and r.kind(x) in ("key", "number", "text")]
    if not cols:
        return False
    r.matches[k] = replace(m, refs=tuple(cols), weights=tuple(1.0 for _ in cols))
    return True


def _merge_qualifiers(matches: list[Match]) -> list[Match]:
    """"<table> <column of that table>" reads as that table's column ("video language")."""
    out: list[Match] = []
    skip = False
    for k, m in enumerate(matches):
        if skip:
            skip = False
            continue
        nxt = matches[k + 1] if k + 1 < len(matches) else None
        tables = {x.table for x in m.refs if x.kind == "table"}
        if tables and nxt is not None and nxt.start == m.end and m.refs[0].kind == "table" \
                and nxt.refs[0].kind in ("column", "value"):
            own = tuple(x for x in nxt.refs if x.table in tables and x.kind in ("column", "value"))
            if own and any(x.kind == "column" for x in own):
                out.append(replace(nxt, start=m.start, refs=own, text=f"{m.text} {nxt.text}"))
                skip = True
                continue
        out.append(m)
    return out


def read(text: str, catalog: Catalog, index: CatalogIndex) -> Reading:
    """Tokenize, find the cues, ground the rest, and give each grounded span a role."""
    toks = make_tokens(text)
    cues = read_cues(toks)
    matches = _merge_qualifiers(ground(toks, index, set(cues.used)))
    # "countries like Brazil": a preposition, not the verb of a yes/no column
    matches = [m for k, m in enumerate(matches)
               if not (m.text.lower() == "like" and k + 1 < len(matches)
                       and matches[k + 1].start == m.end
                       and matches[k + 1].refs[0].kind == "value")]
    r = Reading(text, catalog, toks, cues, matches)
    _measures(r)
    _dims(r)
    _filters(r)
    return r


def unknown_words(r: Reading) -> list[str]:
    """Content words that neither ground in the catalog nor read as an operator."""
    return [t.text for t in unknown_tokens(r)]


def unknown_tokens(r: Reading) -> list[Token]:
    """Tokens of content words that neither ground in the catalog nor read as an operator."""
    covered = set(r.cues.used)
    for m in r.matches:
        covered.update(range(m.start, m.end))
    vocab = (lx.STOPWORDS | lx.FILLER_WORDS | lx.DESCRIBE_WORDS | lx.HELP_WORDS | lx.NEGATIONS
             | set(lx.GRAIN_WORDS) | set(lx.AGG_WORDS) | lx.TOP_WORDS | lx.BOTTOM_WORDS
             | lx.COMPARE_WORDS | lx.SHARE_WORDS | lx.LIST_WORDS | set(lx.DURATION_UNITS)
             | set(lx.MONTHS) | set(lx.ADJECTIVE_KINDS) | lx.MONEY_VERBS)
    cue_words = (lx.GROUPING_WORDS | lx.COMMUNITY_WORDS | lx.LABEL_WORDS | lx.STRATEGY_WORDS
                 | lx.CORRELATE_WORDS | lx.CHART_WORDS | lx.STAT_WORDS)
    out = []
    for t in r.toks:
        if t.number is not None and t.i not in covered and not t.low.isalpha():
            out.append(t)  # a number nothing used: say so rather than drop it silently
            continue
        if t.i in covered or t.number is not None or len(t.low) < 3:
            continue
        if t.low in vocab or t.stem in vocab or t.low in cue_words or t.low.rstrip("s") in vocab:
            continue
        out.append(t)
    return out
