"""The query frame: what one question asks, as measures, dimensions, filters and a time window.

:func:`assemble` resolves a :class:`~agent.offline.reading.Reading` against the catalog: the
fact table comes from the measure, every other grounded word takes the reading nearest to it
by joins, and readings that tie are not guessed (the frame then carries a clarifying
question and the candidates). Follow-ups edit the previous frame (:mod:`agent.offline.followup`).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.offline.grounding import Match, Ref
from agent.offline.joins import distance
from agent.offline.timewords import TimeSpec
from tools.catalog import Catalog, ColumnInfo


@dataclass(frozen=True)
class Measure:
    """What to compute: a metric, a count of rows, a distinct count or an aggregate."""

    kind: str  # metric | count | distinct | agg
    table: str
    column: str | None = None
    func: str | None = None
    metric: str | None = None
    per: str | None = None  # divide by the distinct rows of this table ("per user")


@dataclass(frozen=True)
class Dim:
    """A group-by: a column, an entity (table key + label, column None), or a time bucket."""

    table: str
    column: str | None = None
    grain: str | None = None


@dataclass(frozen=True)
class Filter:
    """A condition on one column."""

    table: str
    column: str
    op: str  # = | in | contains | is | > | >= | < | <=
    values: tuple = ()
    negate: bool = False


@dataclass(frozen=True)
class Frame:
    """One question's reading, ready to plan."""

    intent: str = "aggregate"  # aggregate|breakdown|rank|compare|trend|share|list|describe|tool|help|clarify
    measures: tuple[Measure, ...] = ()
    dims: tuple[Dim, ...] = ()
    filters: tuple[Filter, ...] = ()
    time: TimeSpec | None = None
    time_column: tuple[str, str] | None = None
    order: str | None = None
    limit: int | None = None
    share: bool = False
    tool: str | None = None
    subject: str | None = None
    unknown: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    clarify: str | None = None
    choices: tuple[tuple[str, str | None], ...] = ()
    question: str = ""
    named: tuple[str, ...] = ()  # tables the question names outright

    @property
    def fact(self) -> str | None:
        """The table the measures are computed over."""
        return self.measures[0].table if self.measures else None

    @property
    def answerable(self) -> bool:
        """Whether this frame can be planned as a query (and edited by a follow-up)."""
        return bool(self.measures) and self.clarify is None and self.intent not in (
            "describe", "help", "tool", "clarify")


def column_info(catalog: Catalog, table: str, column: str | None) -> ColumnInfo | None:
    """The catalog column ``table.column``, if any."""
    t = catalog.table(table)
    return t.column(column) if t and column else None


def time_column(catalog: Catalog, table: str) -> str | None:
    """The main time column of ``table``: a timestamp named like ts/time/at, else the first."""
    t = catalog.table(table)
    if t is None:
        return None
    times = [c for c in t.columns if c.kind == "time"]
    if not times:
        return None
    for c in times:
        if c.type.upper().startswith("TIMESTAMP") and c.name.lower() in ("ts", "timestamp", "time"):
            return c.name
    return times[0].name


def nearest(catalog: Catalog, anchors: list[str], refs: list[Ref],
            prefer: tuple[str, str | None] | None = None,
            weights: tuple[float, ...] = ()) -> tuple[Ref | None, list[Ref]]:
    """The reading of a span nearest (by joins) to the anchor tables; (None, tied) on a tie.

    Readings named more exactly (a table's own name over a column's synonym) come first;
    the join distance decides between equally exact readings, and a reading that cannot
    be reached from the anchors gives way to a less exact one that can.
    """
    if prefer is not None:
        chosen = [x for x in refs if (x.table, x.column) == prefer or
                  (prefer[1] is None and x.table == prefer[0])]
        if chosen:
            refs, weights = chosen, ()
    weights = weights if len(weights) == len(refs) else tuple(1.0 for _ in refs)
    tiers = sorted(set(weights), reverse=True)
    for n, tier in enumerate(tiers):
        group = [x for x, w in zip(refs, weights, strict=True) if w == tier]
        if len({(x.table, x.column, x.metric) for x in group}) == 1:
            if not anchors or n == len(tiers) - 1 or _cost(catalog, anchors, group[0]) < 99:
                return group[0], []
            continue
        if not anchors:
            return None, group
        scored = sorted(((_cost(catalog, anchors, x), i, x) for i, x in enumerate(group)),
                        key=lambda s: s[:2])
        if scored[0][0] >= 99 and n < len(tiers) - 1:
            continue
        best = [x for c, _, x in scored if c == scored[0][0]]
        if len({(x.table, x.column) for x in best}) > 1:
            return None, best
        return best[0], []
    return None, refs


def _cost(catalog: Catalog, anchors: list[str], x: Ref) -> int:
    return min(min(distance(catalog, a, x.table), distance(catalog, x.table, a))
               for a in anchors)


def resolve(catalog: Catalog, anchors: list[str], m: Match,
            prefer: tuple[str, str | None] | None = None) -> tuple[Ref | None, list[Ref]]:
    """:func:`nearest` for a grounded span."""
    return nearest(catalog, anchors, list(m.refs), prefer, m.weights)
