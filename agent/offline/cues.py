"""Operator cues of a question: counting, aggregates, ranking, grouping, comparing, trends, shares.

This reads only the operator vocabulary of :mod:`agent.offline.lexicon` (never catalog
names): it marks where each cue sits so that the frame can attach it to the grounded words
around it, and which tokens it used so that grounding skips them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.offline import lexicon as lx
from agent.offline.grounding import Token
from agent.offline.timewords import TimeSpec, parse_time


@dataclass(frozen=True)
class Comparison:
    """A numeric condition: ``op value`` with the unit the question gave (if any)."""

    pos: int
    op: str
    value: float
    unit: str = ""  # "duration" (value in seconds), "money", "percent" or ""
    text: str = ""


@dataclass
class Cues:
    """Where the operators of one question are (token positions)."""

    tokens: list[Token]
    used: set[int] = field(default_factory=set)
    count_at: list[int] = field(default_factory=list)
    distinct_at: list[int] = field(default_factory=list)
    agg_at: list[tuple[int, str]] = field(default_factory=list)
    rank: str | None = None  # "desc" | "asc"
    rank_at: int | None = None
    limit: int | None = None
    dim_at: list[int] = field(default_factory=list)  # a dimension follows these positions
    grain: str | None = None
    trend: bool = False
    compare: bool = False
    share: bool = False
    describe: bool = False
    list_rows: bool = False
    followup: bool = False
    helpish: bool = False
    which_at: int | None = None
    negations: set[int] = field(default_factory=set)
    adjective: tuple[str, str, int] | None = None  # (kind, order, position)
    money: bool = False
    stat: bool = False  # asks whether a difference is real
    how_much: bool = False
    duration: bool = False  # asks for an amount of time
    rate_at: int | None = None  # "how often", "more likely"
    yes_no: bool = False
    comparisons: list[Comparison] = field(default_factory=list)
    numbers: list[tuple[int, float]] = field(default_factory=list)
    time: TimeSpec | None = None
    tool: str | None = None

    @property
    def has_measure_cue(self) -> bool:
        """Whether the question says what to compute (a count or an aggregate)."""
        return bool(self.count_at or self.distinct_at or self.agg_at or self.adjective
                    or self.money or self.duration)


def _phrase_at(low: list[str], i: int, phrase: str) -> bool:
    words = phrase.split()
    return low[i:i + len(words)] == words


def _find_phrases(low: list[str], phrases: tuple[str, ...]) -> list[tuple[int, int]]:
    found = []
    for i in range(len(low)):
        for p in sorted(phrases, key=lambda p: -len(p.split())):
            if _phrase_at(low, i, p):
                found.append((i, len(p.split())))
                break
    return found


def _unit_after(toks: list[Token], j: int) -> tuple[str, float, int]:
    """The unit word after a number: (kind, factor, tokens used)."""
    if j >= len(toks):
        return "", 1.0, 0
    w = toks[j].low
    if w in lx.DURATION_UNITS:
        return "duration", lx.DURATION_UNITS[w], 1
    if w in lx.SCALE_SUFFIXES:
        return "", lx.SCALE_SUFFIXES[w], 1
    if w in ("eur", "euro", "euros", "usd", "dollar", "dollars", "gbp", "pounds"):
        return "money", 1.0, 1
    if w in ("percent", "%", "pct"):
        return "percent", 1.0, 1
    return "", 1.0, 0


def _comparisons(toks: list[Token], low: list[str], cues: Cues) -> None:
    table = [(p, ">") for p in lx.GREATER] + [(p, ">=") for p in lx.GREATER_EQ] + \
        [(p, "<") for p in lx.LESS] + [(p, "<=") for p in lx.LESS_EQ]
    table.sort(key=lambda x: -len(x[0].split()))
    for i in range(len(toks)):
        for phrase, op in table:
            size = len(phrase.split())
            if not _phrase_at(low, i, phrase):
                continue
            j = i + size
            if phrase in ("or more", "or less"):  # "3 or more"
                if i and toks[i - 1].number is not None:
                    cues.comparisons.append(Comparison(i - 1, op, toks[i - 1].number or 0.0))
                    cues.used.update({i - 1, i, i + 1})
                break
            if j < len(toks) and toks[j].number is not None and j not in cues.used:
                kind, factor, used = _unit_after(toks, j + 1)
                if toks[j].low.endswith("%"):
                    kind = "percent"
                first = phrase.split()[0]
                if not kind and first in lx.ADJECTIVE_KINDS:  # "longer than 60"
                    kind = lx.ADJECTIVE_KINDS[first][0]
                value = (toks[j].number or 0.0) * factor
                cues.comparisons.append(Comparison(i, op, value, kind, " ".join(low[i:j + 1 + used])))
                cues.used.update(range(i, j + 1 + used))
                break


def _rank(toks: list[Token], low: list[str], cues: Cues) -> None:
    for i, w in enumerate(low):
        if i in cues.used:
            continue
        order = "desc" if w in lx.TOP_WORDS else "asc" if w in lx.BOTTOM_WORDS else None
        if order is None or w == "more":
            continue
        cues.rank = cues.rank or order
        cues.rank_at = i if cues.rank_at is None else cues.rank_at
        cues.used.add(i)
        if i + 1 < len(toks) and toks[i + 1].number is not None and (toks[i + 1].number or 0) < 1000:
            cues.limit = int(toks[i + 1].number or 0)
            cues.used.add(i + 1)
        elif i and toks[i - 1].number is not None and (toks[i - 1].number or 0) < 1000:
            cues.limit = int(toks[i - 1].number or 0)
            cues.used.add(i - 1)
    for i, w in enumerate(low):
        if w == "first" and i + 1 < len(toks) and toks[i + 1].number is not None:
            cues.rank, cues.rank_at, cues.limit = "desc", i, int(toks[i + 1].number or 0)
            cues.used.update({i, i + 1})


def read_cues(toks: list[Token]) -> Cues:
    """Find every operator cue of the question's tokens."""
    cues = Cues(toks)
    low = [t.low for t in toks]
    cues.time, used = parse_time(toks)
    cues.used |= used
    _comparisons(toks, low, cues)
    for i, size in _find_phrases(low, lx.COUNT_PHRASES):
        if low[i] in ("count", "counts") and i and low[i - 1] in ("the", "a"):
            continue
        if low[i + size:i + size + 1] and low[i + size] in lx.DURATION_UNITS:
            cues.duration = True  # "how many hours": an amount of time, not a count
            cues.used.update(range(i, i + size + 1))
            continue
        cues.count_at.append(i + size - 1)
        cues.used.update(range(i, i + size))
    for i, w in enumerate(low):
        if w in lx.DISTINCT_WORDS and low[i + 1:i + 2] not in (["from"], ["to"], ["than"]):
            cues.distinct_at.append(i)
            cues.used.add(i)
        elif w in lx.AGG_WORDS and i not in cues.used:
            cues.agg_at.append((i, lx.AGG_WORDS[w]))
            cues.used.add(i)
        elif w in lx.ADJECTIVE_KINDS and i not in cues.used:
            kind, order = lx.ADJECTIVE_KINDS[w]
            cues.adjective = cues.adjective or (kind, order, i)
            cues.used.add(i)
            if i and toks[i - 1].number is not None and 0 < (toks[i - 1].number or 0) < 1000:
                cues.limit = int(toks[i - 1].number or 0)  # "the 5 shortest"
                cues.used.add(i - 1)
        elif w in lx.NEGATIONS:
            cues.negations.add(i)
        elif w in lx.MONEY_VERBS and i not in cues.used:
            if any(x == "time" or x in lx.DURATION_UNITS for x in low[i + 1:i + 4]):
                cues.duration = True  # "spend more time"
            else:
                cues.money = True  # not "used": the word may still name a metric
    _rank(toks, low, cues)
    for i, size in _find_phrases(low, lx.DIM_PHRASES):
        cues.dim_at.append(i + size - 1)
        cues.used.update(range(i, i + size))
    for i, w in enumerate(low):
        if w in lx.DIM_WORDS and i not in cues.used:
            cues.dim_at.append(i)
            cues.used.add(i)
    for i, w in enumerate(low):
        if w in lx.GRAIN_WORDS and i not in cues.used and (
                w.endswith("ly") or (i and low[i - 1] in lx.DIM_WORDS | {"a", "each"})):
            cues.grain = lx.GRAIN_WORDS[w]
            cues.trend = True
            cues.used.add(i)
    for i, size in _find_phrases(low, lx.TREND_PHRASES):
        cues.trend = True
        cues.used.update(range(i, i + size))
    for i, w in enumerate(low):
        if w in lx.COMPARE_WORDS or (w in lx.COMPARATIVES and "than" in low[i:i + 5]) \
                or (w in ("different", "differ", "differs") and low[i + 1:i + 2] in (
                    ["from"], ["to"], ["than"], ["between"])):
            cues.compare = True
            cues.used.add(i)
        if w in lx.SHARE_WORDS and w != "share" or (w == "share" and (
                low[i + 1:i + 2] == ["of"] or (i and low[i - 1] in ("the", "what", "market")))):
            cues.share = True
            cues.used.add(i)
        if w.endswith("%") and i not in cues.used and toks[i].number is None:
            cues.share = True
    if low and low[0] in ("which", "what") or any(w == "which" for w in low):
        cues.which_at = low.index("which") if "which" in low else 0
    cues.describe = any(w in lx.DESCRIBE_WORDS for w in low) and not cues.has_measure_cue
    cues.list_rows = any(w in lx.LIST_WORDS for w in low[:3])
    cues.followup = any(_phrase_at(low, 0, p) for p in lx.FOLLOWUP_STARTS) or any(
        w in ("those", "these", "them", "same") for w in low)
    cues.helpish = bool(low) and all(w in lx.HELP_WORDS or w in lx.STOPWORDS for w in low)
    for i, t in enumerate(toks):
        if t.number is not None and i not in cues.used:
            cues.numbers.append((i, t.number))
    if cues.compare and "now" in low and not cues.stat:
        cues.trend = True  # "more ... now than before": a change over time
    cues.stat = any(w in lx.STAT_WORDS for w in low)
    cues.how_much = any(_phrase_at(low, i, "how much") for i in range(len(low)))
    cues.duration = cues.duration or any(_phrase_at(low, i, "how much time")
                                         for i in range(len(low)))
    cues.rate_at = next((i for i, w in enumerate(low) if w in lx.RATE_WORDS), None)
    cues.yes_no = bool(low) and low[0] in lx.YES_NO_STARTS
    return cues
