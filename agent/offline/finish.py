"""Finishing a frame: follow-up edits, the time column, the intent, order and limit.

A follow-up keeps the previous frame and edits it: a filter on the same column replaces the
old one (or, with "vs"/"different from", joins it for a comparison), a new filter or
dimension is added, a new window replaces the old one.
"""

from __future__ import annotations

from dataclasses import replace

from agent.offline.frame import Dim, Frame, resolve, time_column
from agent.offline.intents import tool_intent
from agent.offline.joins import distance, paths_from
from agent.offline.reading import Reading
from tools.catalog import Catalog

Prefer = tuple[str, str | None] | None


def _time_column(r: Reading, fact: str, prefer: Prefer) -> tuple[str, str] | None:
    cat = r.catalog
    reach = paths_from(cat, fact)
    for k, role in r.roles.items():
        if role == "context":
            ref, _ = resolve(cat, [fact], r.matches[k], prefer)
            # A date column named outright counts when it can filter what is measured.
            if ref is not None and r.kind(ref) == "time" and ref.table in reach:
                return ref.table, ref.column or ""
    mentioned = [r.matches[k].refs[0].table for k, role in r.roles.items()
                 if role == "context" and r.mkind(k) != "time"]
    for t in mentioned:
        if t not in reach and time_column(cat, t):
            return t, time_column(cat, t) or ""
    for t in sorted(reach, key=lambda t: len(reach[t])):
        if time_column(cat, t):
            return t, time_column(cat, t) or ""
    return None


def _mentioned_groups(r: Reading, fact: str, prefer: Prefer) -> list[Dim]:
    """"<A> vs <B> creators" with A and B unknown values: the yes/no or category column named."""
    for k, role in sorted(r.roles.items()):
        if role != "context":
            continue
        for ref in r.matches[k].refs:  # "creators vs the rest": their yes/no column too
            if r.kind(ref) in ("text", "bool") and distance(r.catalog, fact, ref.table) < 50:
                return [Dim(ref.table, ref.column)]
    return []


def merge(cat: Catalog, prev: Frame, new: Frame, new_measure: bool, *,
          combine: bool = False) -> Frame:
    """``prev`` edited by the follow-up ``new``; ``combine`` ("is that different from X?")
    keeps both values of a filter on the same column, to compare them."""
    fact = new.fact or prev.fact or ""
    notes = list(prev.notes)
    filters = {(f.table, f.column): f for f in prev.filters}
    for f in new.filters:
        old = filters.get((f.table, f.column))
        if combine and old is not None and old.op in ("=", "in") and f.op == "=" \
                and not (old.negate or f.negate):
            f = replace(f, op="in", values=tuple(dict.fromkeys((*old.values, *f.values))))
        filters[(f.table, f.column)] = f
    kept = []
    for f in filters.values():
        if distance(cat, fact, f.table) >= 99:
            notes.append(f"dropped the filter on {f.table}.{f.column}: it does not relate to {fact}")
        else:
            kept.append(f)
    dims = list(prev.dims)
    for d in new.dims:
        dims = [x for x in dims if (x.table, x.column) != (d.table, d.column)] + [d]
    return replace(new, measures=new.measures if new_measure else prev.measures,
                   dims=tuple(dims[-2:]), filters=tuple(kept), time=new.time or prev.time,
                   time_column=prev.time_column if new.time is None else None,
                   order=prev.order, limit=prev.limit, share=prev.share,
                   intent=prev.intent, notes=tuple(notes))


def finish(r: Reading, f: Frame, prefer: Prefer, *, explicit: bool) -> Frame:
    """Set the time column, the intent, order and limit of a frame; ask instead when unknown
    words sit where the measure is named (``explicit``: the question named its measure)."""
    cues = r.cues
    fact = f.fact or ""
    dims = list(f.dims)
    time_col = f.time_column
    if time_col is None:
        time_col = _time_column(r, fact, prefer)
    if (cues.trend or cues.grain) and time_col and not any(d.grain for d in dims):
        dims.insert(0, Dim(time_col[0], time_col[1], cues.grain or "auto"))
    intent = f.intent if f.intent not in ("aggregate", "breakdown") else "aggregate"
    multi = [x for x in f.filters if x.op == "in" or (x.op == "contains" and len(x.values) > 1)]
    if any(d.grain for d in dims) and cues.rank and not cues.trend:
        intent = "rank"  # a ranking of time buckets: the busiest day, the best week
    elif any(d.grain for d in dims):
        intent = "trend"
    elif cues.compare or multi or (cues.stat and dims):
        intent = "compare"
        for x in multi:
            if not any((d.table, d.column) == (x.table, x.column) for d in dims):
                dims.append(Dim(x.table, x.column))
        if not dims:
            dims += _mentioned_groups(r, fact, prefer)
        flags = [x for x in f.filters if x.op == "is"]
        if not dims and flags:  # "<flagged> things vs the rest": the flag makes the groups
            dims.append(Dim(flags[0].table, flags[0].column))
            f = replace(f, filters=tuple(x for x in f.filters if x is not flags[0]))
    elif cues.share or f.share:
        intent = "share"
    elif cues.rank or cues.adjective or f.intent == "rank":
        intent = "rank" if dims else "aggregate"
    elif dims:
        intent = "breakdown"
    elif cues.list_rows and not explicit and f.filters:
        intent = "list"
    measures = list(f.measures)
    if any(func == "avg" for _, func in cues.agg_at) and dims and dims[-1].column is None \
            and dims[-1].table == fact and intent == "breakdown":
        dims.pop()  # "average <quantity> per <row of the same table>": the plain average
        intent = "breakdown" if dims else "aggregate"
    if any(func == "avg" for _, func in cues.agg_at) and intent in ("breakdown", "aggregate") \
            and dims and dims[-1].column is None and dims[-1].table != fact:
        entity = dims.pop().table
        intent = "aggregate" if not dims else intent
        measures = [replace(m, func="sum" if m.func == "avg" else m.func, per=entity)
                    for m in measures]
    order = (cues.adjective[1] if cues.adjective else cues.rank) or f.order or \
        ("desc" if intent in ("rank", "breakdown", "compare") else None)
    limit = cues.limit or f.limit or (10 if intent == "rank" else None)
    if intent == "rank" and not cues.limit:  # "which 3 categories ..."
        starts = {r.matches[k].start for k in r.dims}
        limit = next((int(n) for i, n in cues.numbers if i + 1 in starts and 0 < n < 1000),
                     limit)
    clarify = None
    if r.unknown_blocking(explicit=explicit):
        words = ", ".join(f"'{w}'" for w in f.unknown)
        clarify = (f"I could not match {words} to anything in this database, so I would be "
                   "guessing. What should I count or measure?")
    chart = "make_chart" if tool_intent(r) == "make_chart" else None
    return replace(f, intent="clarify" if clarify else intent, measures=tuple(measures), tool=chart,
                   dims=tuple(dims[:2]), time_column=time_col, order=order, limit=limit,
                   share=cues.share or f.share, clarify=clarify)

