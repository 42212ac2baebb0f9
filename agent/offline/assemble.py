"""From a reading to a frame: choose the fact table, resolve every span, set intent and order.

A follow-up (a question with filters, dimensions or a window but no measure of its own, or one
that opens with "and", "what about", "only"...) edits the previous frame instead of starting
from nothing: a filter on the same column replaces the old one, a new one is added, a new
dimension is added, a new window replaces the old one.
"""

from __future__ import annotations

from dataclasses import replace

from agent.offline.finish import finish, merge
from agent.offline.frame import (
    Dim,
    Filter,
    Frame,
    Measure,
    column_info,
    resolve,
)
from agent.offline.grounding import Ref
from agent.offline.intents import tool_intent
from agent.offline.joins import distance, edges, paths_from, primary_key
from agent.offline.reading import Reading, unknown_words
from agent.offline.units import unit_of
from tools.catalog import Catalog

Prefer = tuple[str, str | None] | None
LOW_VALUES = 60  # a text column with fewer known values than this lists all of them


class Tie(Exception):
    """Two readings of a span are equally near (or none fits): ask which one was meant."""

    def __init__(self, text: str, refs: list[Ref], question: str = "") -> None:
        super().__init__(text)
        self.text = text
        self.refs = refs
        self.question = question


def _measures(r: Reading, prefer: Prefer) -> list[Measure]:
    cat = r.catalog
    anchors = r.tables()
    out: list[Measure] = []
    for k, kind, func in r.measures:
        m = r.matches[k]
        if kind in ("metric", "avg_metric"):
            ref = next(x for x in m.refs if x.kind == "metric")
            metric = cat.metrics[ref.metric or ""]
            sql = metric.sql.strip()
            inner = sql[4:-1] if sql.upper().startswith("SUM(") and sql.endswith(")") else ""
            avg = kind == "avg_metric" and inner.replace("_", "").isalnum()
            out.append(Measure("metric", metric.table, metric=metric.name,
                               func="avg" if avg else None))
            continue
        ref, tied = resolve(cat, anchors, m, prefer)
        if ref is None:
            raise Tie(m.text, tied)
        if kind == "count":
            out.append(Measure("count", ref.table))
        elif kind == "distinct":
            out.append(Measure("distinct", ref.table, ref.column))
        else:
            out.append(Measure("agg", ref.table, ref.column, func))
    if out:
        first = out[0].table
        out = [x for x in out if x.table == first]
        plain = [x for x in out if x.kind == "metric" and
                 cat.metrics[x.metric or ""].sql.replace(" ", "").upper() == "COUNT(*)"]
        if plain:
            out = [x for x in out if x.kind != "count"]
    return list(dict.fromkeys(out))


def _default_fact(r: Reading, prefer: Prefer) -> str | None:
    """No measure named: count rows of the table named, or of the table behind the words."""
    cat = r.catalog
    named = [r.matches[k].refs[0].table for k, role in sorted(r.roles.items())
             if role == "context"]
    others: list[str] = []
    for k in [*r.dims, *(f[0] for f in r.filters)]:
        ref, _ = resolve(cat, named, r.matches[k], prefer)
        if ref is not None:
            others.append(ref.table)
    candidates = list(dict.fromkeys(named or others))
    if not candidates:
        return None
    needed = set(others)

    def reach(t: str) -> int:  # how many of the needed tables ``t`` reaches
        return len(needed & set(paths_from(cat, t)))

    return max(candidates, key=lambda t: (reach(t), -candidates.index(t)))


def _entity_clarify(cat: Catalog, entity: str) -> str:
    options = [m.name.replace("_", " ") for m in cat.metrics.values()
               if distance(cat, m.table, entity) < 50]
    options += [f"number of {t.replace('_', ' ')}" for t in cat.tables
                if t != entity and distance(cat, t, entity) < 50]
    listed = ", ".join(options[:4]) or "a count"
    return f"Ranked by what? For {entity.replace('_', ' ')} I can rank by: {listed}. Which one?"


def _dims(r: Reading, fact: str, prefer: Prefer) -> list[Dim]:
    out: list[Dim] = []
    for k in r.dims:
        ref, tied = resolve(r.catalog, [fact], r.matches[k], prefer)
        if ref is None:
            raise Tie(r.matches[k].text, tied)
        entity = _entity_of_key(r.catalog, ref) if r.kind(ref) == "key" else None
        if ref.kind == "table" or entity:
            out.append(Dim(entity or ref.table))
        elif r.kind(ref) == "time":
            out.append(Dim(ref.table, ref.column, r.cues.grain or "auto"))
        else:
            out.append(Dim(ref.table, ref.column))
    return list(dict.fromkeys(out))


def _entity_of_key(cat: Catalog, ref: Ref) -> str | None:
    """The table a key column identifies: its own table, or the one it refers to."""
    t = cat.table(ref.table)
    if t is not None and (primary_key(t) or "").lower() == (ref.column or "").lower():
        return ref.table
    for e in edges(cat):
        if e.src == ref.table and e.src_col.lower() == (ref.column or "").lower():
            return e.dst
    return None


def _filters(r: Reading, fact: str, prefer: Prefer) -> list[Filter]:
    merged: dict[tuple[str, str, bool], Filter] = {}
    for k, negate, number in r.filters:
        ref, tied = resolve(r.catalog, [fact], r.matches[k], prefer)
        if ref is None:
            raise Tie(r.matches[k].text, tied)
        col = column_info(r.catalog, ref.table, ref.column)
        key = (ref.table, ref.column or "", negate)
        if number is not None:
            value = int(number) if float(number).is_integer() else number
            if col is not None and col.kind == "text" and col.values and \
                    str(value) not in col.values and len(col.values) < LOW_VALUES:
                raise Tie(f"{r.matches[k].text} {value}", [], (
                    f"{ref.table}.{ref.column} has no value '{value}' (its values: "
                    f"{', '.join(col.values[:12])}). Which one did you mean?"))
            new = Filter(ref.table, ref.column or "", "=", (value,), negate)
        elif ref.kind == "value":
            op = "contains" if col is not None and col.kind == "list" else "="
            new = Filter(ref.table, ref.column or "", op, (ref.value,), negate)
        else:
            new = Filter(ref.table, ref.column or "", "is", (not negate,))
            key = (ref.table, ref.column or "", False)
            old = merged.get(key)
            if old is not None and old.values != new.values:  # "verified vs unverified"
                new = Filter(ref.table, ref.column or "", "both", ())
        old = merged.get(key)
        if old is not None and new.op in ("=", "contains") and new.values[0] not in old.values:
            op = "in" if new.op == "=" else "contains"
            new = Filter(old.table, old.column, op, (*old.values, *new.values), negate)
        merged[key] = new
    return list(merged.values())


def contrasts(filters: list[Filter]) -> tuple[list[Filter], list[Dim]]:
    """A yes/no column asked both ways becomes the groups to compare."""
    return ([f for f in filters if f.op != "both"],
            [Dim(f.table, f.column) for f in filters if f.op == "both"])


def _comparisons(r: Reading, fact: str) -> tuple[list[Filter], list[str]]:
    """Numeric conditions: the number column named just before, else one of the right unit."""
    cat = r.catalog
    out, unplaced = [], []
    reach = paths_from(cat, fact)
    for c in r.cues.comparisons:
        column: tuple[str, str] | None = None
        before = [m for m in r.matches if c.pos - 4 <= m.end <= c.pos + 1]
        for m in reversed(before):
            ref, _ = resolve(cat, [fact], m)
            if ref is not None and r.kind(ref) == "number":
                column = (ref.table, ref.column or "")
                break
        if column is None and c.unit:
            fits = [(len(reach[t]), t, col.name) for t in reach
                    for col in cat.tables[t].columns
                    if col.kind == "number" and unit_of(col)[0] == c.unit]
            # "<table> longer than <n> s": the table named just before owns the quantity.
            named = {x.table for m in before for x in m.refs if x.kind == "table"}
            fits = [f for f in fits if f[1] in named] or fits
            if fits and (len(fits) == 1 or fits[0][0] < sorted(fits)[1][0]):
                _, t, name = sorted(fits)[0]
                column = (t, name)
        if column is None:
            unplaced.append(c.text)
            continue
        col = column_info(cat, *column)
        factor = unit_of(col)[1] if col is not None and c.unit == "duration" else 1.0
        value = c.value / factor if factor else c.value
        value = round(value, 6)
        out.append(Filter(column[0], column[1], c.op,
                          (int(value) if float(value).is_integer() else value,)))
    return out, unplaced


def _unknown_or_help(base: Frame) -> Frame:
    if not base.unknown:
        return replace(base, intent="help")
    words = ", ".join(f"'{w}'" for w in base.unknown)
    return replace(base, intent="clarify", clarify=(
        f"I could not match {words} to anything in this database, so I would be guessing. "
        "Which table or column should I use?"))


def _amount_measure(r: Reading, tables: list[str], kind: str) -> Measure | None:
    """"spends the most", "how many hours": a metric of that unit (money or duration), else
    the sum of such a column, that reaches the tables the question names."""
    cat = r.catalog
    for m in cat.metrics.values():
        if unit_of(None, m.unit)[0] == kind and m.sql.strip().upper().startswith("SUM(") \
                and all(t in paths_from(cat, m.table) for t in tables):
            return Measure("metric", m.table, metric=m.name)
    # Activity tables (those that refer to the most others, then the largest) first.
    ranked = sorted(cat.tables, key=lambda n: (-len(paths_from(cat, n)), -cat.tables[n].rows, n))
    for name in ranked:
        if not all(t in paths_from(cat, name) for t in tables):
            continue
        for c in cat.tables[name].columns:
            if c.kind == "number" and not c.is_key and unit_of(c)[0] == kind:
                return Measure("agg", name, c.name, "sum")
    return None


def _adjective_measure(r: Reading, tables: list[str]) -> Measure | None:
    """"longest", "cheapest", "newest": a column of that kind in the table named."""
    if r.cues.adjective is None:
        return None
    kind = r.cues.adjective[0]
    for t in tables:
        info = r.catalog.table(t)
        for c in info.columns if info else ():
            if (kind == "time" and c.kind == "time") or (
                    c.kind == "number" and not c.is_key and unit_of(c)[0] == kind):
                avg = any(func == "avg" for _, func in r.cues.agg_at)
                return Measure("agg", t, c.name, "avg" if avg else "max")
    return None


def _unit_kind(r: Reading, m: Measure) -> str:
    if m.kind == "metric":
        return unit_of(None, r.catalog.metrics[m.metric or ""].unit)[0]
    return unit_of(column_info(r.catalog, m.table, m.column))[0] if m.column else ""


def _all_measures(r: Reading) -> list[Measure]:
    """Every metric and numeric column named (what a correlation relates)."""
    out: list[Measure] = []
    for m in r.matches:
        ref = m.refs[0]
        if ref.kind == "metric":
            out.append(Measure("metric", ref.table, metric=ref.metric))
        elif r.kind(ref) == "number":
            out.append(Measure("agg", ref.table, ref.column, "sum"))
    return list(dict.fromkeys(out))


def assemble(r: Reading, prev: Frame | None, prefer: Prefer = None) -> Frame:
    """Turn a reading into a frame, editing ``prev`` when the question is a follow-up."""
    cues = r.cues
    base = Frame(question=r.text, unknown=tuple(unknown_words(r)), time=cues.time,
                 named=tuple(dict.fromkeys(r.tables())))
    tool = tool_intent(r)
    if tool == "label_items":  # label the items, then answer the ranking with the labels
        query = _query_frame(r, prev, prefer, base)
        if query.answerable and query.intent in ("rank", "breakdown", "list"):
            return replace(query, tool=tool)
    if tool == "correlate":
        return replace(base, intent="tool", tool=tool, measures=tuple(_all_measures(r)))
    if tool and tool != "make_chart":
        return replace(base, intent="tool", tool=tool, subject=(r.tables() or [None])[0])
    return _query_frame(r, prev, prefer, base)


def _query_frame(r: Reading, prev: Frame | None, prefer: Prefer, base: Frame) -> Frame:
    """The frame of a question answered by a query (or a describe/help/clarify frame)."""
    cues = r.cues
    context = [r.matches[k].refs[0].table for k, role in r.roles.items() if role == "context"]
    if cues.describe and not (r.measures or r.dims or r.filters or cues.time or cues.rank
                              or cues.trend or cues.compare or cues.share):
        return replace(base, intent="describe", subject=(r.tables() or [None])[0])
    if not r.matches and cues.time is None and not cues.comparisons and not cues.grain \
            and not (prev and cues.followup and (cues.rank or cues.trend or cues.share)):
        return _unknown_or_help(base)
    followup = prev is not None and prev.answerable and (
        cues.followup or (not r.measures and not context and not cues.adjective))
    try:
        measures = _measures(r, prefer)
        adjective = _adjective_measure(r, [r.matches[k].refs[0].table for k in r.dims] + context)
        if not measures and adjective is not None:
            measures = [adjective]
        if cues.duration and not any(_unit_kind(r, m) == "duration" for m in measures):
            measures = []  # "how many hours ... watched": the time, not the views
        if not measures and (cues.money or cues.duration):
            kind = "duration" if cues.duration else "money"
            named = [r.matches[k].refs[0].table for k in [*r.dims, *(f[0] for f in r.filters)]]
            amount = _amount_measure(r, list(dict.fromkeys(named + context)), kind)
            if amount is None:
                what = "amounts of money" if kind == "money" else "durations"
                words = ", ".join(f"'{w}'" for w in base.unknown)
                unmatched = f"I could not match {words}, and t" if words else "T"
                return replace(base, intent="clarify", clarify=(
                    f"{unmatched}his database records no {what} that I can relate to the "
                    "question, so I cannot compute it. Did you mean another measure?"))
            measures = [amount]
        if not measures and followup and prev is not None:
            measures = list(prev.measures)
        if not measures:
            fact = _default_fact(r, prefer)
            if fact is None:
                return _unknown_or_help(base)
            measures = [Measure("count", fact)]
        fact = measures[0].table
        dims = _dims(r, fact, prefer)
        filters, contrast = contrasts(_filters(r, fact, prefer))
        dims += [d for d in contrast if d not in dims]
    except Tie as tie:
        options = " or ".join(f"{x.table}.{x.column}" if x.column else x.table for x in tie.refs)
        return replace(base, intent="clarify", choices=tuple((x.table, x.column) for x in tie.refs),
                       clarify=tie.question or
                       f"'{tie.text}' could mean {options}. Which one did you mean?")
    numeric, unplaced = _comparisons(r, fact)
    filters += numeric
    if unplaced:
        return replace(base, intent="clarify", clarify=(
            f"I could not tell which quantity '{unplaced[0]}' applies to. Could you name the "
            "column (for example a duration or an amount)?"))
    if not r.measures and adjective is None and not followup and cues.rank and dims \
            and dims[0].column is None and dims[0].table == fact:
        return replace(base, intent="clarify", clarify=_entity_clarify(r.catalog, fact))
    frame = replace(base, measures=tuple(measures), dims=tuple(dims), filters=tuple(filters))
    if followup and prev is not None:
        frame = merge(r.catalog, prev, frame, bool(r.measures) or adjective is not None,
                      combine=cues.compare or cues.stat)
    return finish(r, frame, prefer,
                  explicit=bool(r.measures) or followup or cues.money or cues.duration)
