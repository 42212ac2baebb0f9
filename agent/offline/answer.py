"""Say: the offline model's answers, written from tool results with plain templates.

Every answer gives the key numbers first, then the filters and the dates used, the result
ref, and a last line saying it came from the offline mode.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from agent.offline.frame import Frame
from agent.offline.joins import paths_from, primary_key
from agent.offline.planner import OutCol, Plan, label_column, plural, singular, words
from agent.offline.units import fmt_label, fmt_value
from tools.catalog import Catalog

FOOTER = "_Offline mode: answered by Atlas's built-in parser (no LLM)._"
SHOWN = 10
GRAIN_DAYS = {"day": 1, "week": 7, "month": 31, "hour": 1}


def fmt(value: Any, out: OutCol) -> str:
    """A value of a result column, in its unit."""
    return fmt_value(value, *out.unit)


def _row_label(row: pd.Series, plan: Plan) -> str:
    dims = [o for o in plan.columns if o.role == "dim"]
    labels = {o.name for o in plan.columns if o.role == "label"}
    parts = []
    for o in dims:
        label = next((c for c in labels if c in row.index and row[c] is not None), None)
        value = row[label] if label and not pd.isna(row[label]) else row[o.name]
        parts.append(fmt_label(value))
        labels.discard(label or "")
    return " · ".join(parts)


def _measure_text(row: pd.Series, plan: Plan) -> str:
    outs = [o for o in plan.columns if o.role in ("measure", "share")]
    first, rest = outs[0], outs[1:]
    text = fmt(row[first.name], first)
    extra = [f"{fmt(row[o.name], o)} {'share' if o.role == 'share' else o.label}" for o in rest]
    return text + (f" ({'; '.join(extra)})" if extra else "")


def _lines(df: pd.DataFrame, plan: Plan, numbered: bool) -> list[str]:
    out = []
    for n, (_, row) in enumerate(df.head(SHOWN).iterrows(), start=1):
        bullet = f"{n}." if numbered else "-"
        out.append(f"{bullet} {_row_label(row, plan)}: {_measure_text(row, plan)}")
    if len(df) > SHOWN:
        out.append(f"- …and {len(df) - SHOWN:,} more rows in the full table")
    return out


def _trend(df: pd.DataFrame, plan: Plan, measure: OutCol) -> list[str]:
    dim = next(o for o in plan.columns if o.role == "dim")
    rows = df.dropna(subset=[measure.name]).reset_index(drop=True)
    if rows.empty:
        return ["There are no rows in this period."]
    full = rows
    note = ""
    start, end = plan.span
    if len(rows) >= 3 and start and end:
        days = GRAIN_DAYS.get(dim.name, 7)
        first = pd.Timestamp(rows[dim.name].iloc[0]).date()
        last = pd.Timestamp(rows[dim.name].iloc[-1]).date()
        partial_first = first < dt.date.fromisoformat(start)
        partial_last = last + dt.timedelta(days=days) > dt.date.fromisoformat(end) \
            if dim.name != "month" else (last.replace(day=28) + dt.timedelta(days=4)) \
            .replace(day=1) > dt.date.fromisoformat(end)
        full = rows.iloc[int(partial_first): len(rows) - int(partial_last)]
        if len(full) < 2:
            full = rows
        elif partial_first or partial_last:
            note = f" (complete {dim.name}s only; the data covers part of the first or last {dim.name})"
    a, b = full.iloc[0], full.iloc[-1]
    va, vb = float(a[measure.name]), float(b[measure.name])
    change = vb - va
    pct = f" ({change / va * 100:+.1f}%)" if va else ""
    change_text = fmt_value(abs(change), *measure.unit)
    if measure.unit[0] == "percent":
        change_text = f"{abs(change) * (100 if max(abs(va), abs(vb)) <= 1 else 1):.1f} points"
    direction = "up" if change > 0 else "down" if change < 0 else "flat"
    lines = [f"{measure.label.capitalize()} per {dim.name}{note}: from "
             f"**{fmt(va, measure)}** in the {dim.name} of {fmt_label(a[dim.name])} to "
             f"**{fmt(vb, measure)}** in the {dim.name} of {fmt_label(b[dim.name])} — "
             f"{direction} {change_text}{pct}."]
    peak = rows.loc[rows[measure.name].astype(float).idxmax()]
    low = rows.loc[rows[measure.name].astype(float).idxmin()]
    lines.append(f"Highest: {fmt_label(peak[dim.name])} ({fmt(peak[measure.name], measure)}); "
                 f"lowest: {fmt_label(low[dim.name])} ({fmt(low[measure.name], measure)}).")
    if len(plan.columns) == 2 and len(rows) <= 16:
        lines += [f"- {fmt_label(r[dim.name])}: {fmt(r[measure.name], measure)}"
                  for _, r in rows.iterrows()]
    return lines


def _compare(df: pd.DataFrame, plan: Plan, measure: OutCol) -> list[str]:
    lines = [f"{measure.label.capitalize()}:"] + _lines(df, plan, numbered=False)
    if len(df) == 2:
        a, b = df.iloc[0], df.iloc[1]
        va, vb = float(a[measure.name]), float(b[measure.name])
        la, lb = _row_label(a, plan), _row_label(b, plan)
        if measure.unit[0] == "percent":
            scale = 100 if max(abs(va), abs(vb)) <= 1 else 1
            diff = f"{abs(va - vb) * scale:.1f} percentage points"
        else:
            diff = fmt_value(abs(va - vb), *measure.unit)
        rel = f", {abs(va - vb) / vb * 100:.1f}% {'higher' if va >= vb else 'lower'}" if vb else ""
        lines.append(f"{la} vs {lb}: a difference of {diff}{rel} for {la}.")
    return lines


def say_result(plan: Plan, frame: Frame, df: pd.DataFrame, ref: str | None) -> str:
    """The answer to a run_sql result."""
    measures = [o for o in plan.columns if o.role in ("measure", "part")]
    body: list[str] = []
    if df.empty:
        body.append("No rows match this question's filters and dates, so the answer is none.")
    elif plan.intent == "list":
        total = int(df["matching_rows"].iloc[0])
        body.append(f"**{total:,}** rows of {frame.fact} match. The first ones:")
        infos = [o for o in plan.columns if o.role == "info"]
        for _, row in df.head(SHOWN).iterrows():
            body.append("- " + ", ".join(f"{o.label}: {fmt_label(row[o.name])}" for o in infos))
    elif plan.condition:
        part, total = df["part"].iloc[0], df["total"].iloc[0]
        out = measures[0]
        if total and out.role == "part" and plan.columns[-1].role == "total" and \
                _additive_unit(out):
            share = float(part or 0) / float(total)
            noun = out.label.removeprefix("number of ")
            body.append(f"**{share * 100:.1f}%** of {noun} have {plan.condition}: "
                        f"{fmt(part, out)} out of {fmt(total, out)}.")
        else:
            body.append(f"{out.label.capitalize()} where {plan.condition}: **{fmt(part, out)}**, "
                        f"against **{fmt(total, out)}** overall.")
    elif not any(o.role == "dim" for o in plan.columns):
        row = df.iloc[0]
        for o in [o for o in plan.columns if o.role == "measure"]:
            body.append(f"{o.label.capitalize()}: **{fmt(row[o.name], o)}**.")
    elif plan.intent == "trend":
        body += _trend(df, plan, measures[0])
    elif plan.intent == "compare":
        body += _compare(df, plan, measures[0])
    else:
        dims = " and ".join(o.label for o in plan.columns if o.role == "dim")
        if plan.intent == "rank":
            word = "Top" if frame.order != "asc" else "Bottom"
            top = df.iloc[0]
            body.append(f"**{_row_label(top, plan)}** comes {'first' if word == 'Top' else 'last'} "
                        f"with {_measure_text(top, plan)}.")
            body.append(f"{word} {min(len(df), SHOWN)} {plural(dims)} by {measures[0].label}:")
        else:
            body.append(f"{measures[0].label.capitalize()} by {dims} "
                        f"({len(df):,} groups, largest first):")
        body += _lines(df, plan, numbered=plan.intent == "rank")
    return "\n".join(body + _context(plan, frame, ref, len(df)))


def _additive_unit(out: OutCol) -> bool:
    return out.unit[0] != "percent" and not out.label.startswith(("average", "median"))


def _context(plan: Plan, frame: Frame, ref: str | None, rows: int) -> list[str]:
    lines = ["", f"Filters: {'; '.join(plan.filters) if plan.filters else 'none'}.",
             f"Dates: {plan.dates}."]
    if ref:
        lines.append(f"Full result: table {ref} ({rows:,} row{'' if rows == 1 else 's'}).")
    lines += [f"Note: {n}." for n in plan.notes]
    if frame.unknown:
        lines.append("Words I did not use: " + ", ".join(frame.unknown) + ".")
    return [*lines, FOOTER]


def suggestions(catalog: Catalog) -> list[str]:
    """Two or three questions this database can answer, built from the live catalog."""
    out: list[str] = []
    tables = sorted(catalog.tables.values(), key=lambda t: -t.rows)
    for t in tables:
        cols = [c for c in t.columns if c.kind == "text" and not c.personal and c.values
                and 2 <= len(c.values) <= 20]
        if cols:
            out.append(f"How many {words(t.name)} per {words(cols[0].name)}?")
            break
    for m in catalog.metrics.values():
        ranked = sorted(paths_from(catalog, m.table).items(),
                        key=lambda x: (len(x[1]), label_column(catalog, x[0]) is None, x[0]))
        for other, path in ranked:
            if path and primary_key(catalog.tables[other]) is not None:
                out.append(f"Top 5 {words(other)} by {words(m.name)}")
                break
        if len(out) > 1:
            break
    for t in tables:
        if any(c.kind == "time" for c in t.columns):
            out.append(f"Number of {words(t.name)} per week over time")
            break
    for t in tables:
        lists = [c for c in t.columns if c.kind == "list" and c.values and not c.personal]
        if lists and len(out) < 4:
            out.append(f"Top 10 {words(lists[0].name)}")
            break
    return out[:3]


def say_help(catalog: Catalog, question: str) -> str:
    """What the offline mode can answer, with rephrasings from the catalog."""
    tips = "\n".join(f"- {s}" for s in suggestions(catalog))
    return (f"I could not read \"{question.strip()[:120]}\" as a question about this data. "
            "In the offline mode I can count, sum and average, rank (top N), split by one or "
            "two columns, compare groups, follow trends over time, and describe the tables "
            f"({', '.join(catalog.tables)}). For example:\n{tips}\n\n{FOOTER}")


def say_clarify(text: str, catalog: Catalog | None = None) -> str:
    """A clarifying question (it ends with a question mark), with examples when given a
    catalog."""
    text = text.strip()
    text = text if text.endswith("?") else text + "?"
    if catalog is None:
        return f"(Offline mode) {text}"
    head, _, ask = text.rpartition(". ")
    tips = "\n".join(f"- {s}" for s in suggestions(catalog))
    return f"(Offline mode) {head}. Questions I can answer look like:\n{tips}\n\n{ask}"


def say_unavailable(tool: str, description: str, catalog: Catalog) -> str:
    """An honest 'not yet' for an analysis tool that is not connected."""
    tips = "\n".join(f"- {s}" for s in suggestions(catalog))
    return (f"{description.capitalize()} is not available yet in this session (the `{tool}` "
            "tool is not connected), so I cannot do it offline. I can answer SQL questions "
            f"such as:\n{tips}\n\n{FOOTER}")


def say_error(message: str, catalog: Catalog) -> str:
    """An honest failure: what went wrong and what to try."""
    tips = "\n".join(f"- {s}" for s in suggestions(catalog))
    return (f"I could not answer this: {message.strip()}\nTry a simpler wording, for example:\n"
            f"{tips}\n\n{FOOTER}")


def say_tables(summary: dict[str, Any]) -> str:
    """The answer to list_tables."""
    tables = summary.get("tables", [])
    lines = [f"This database has {len(tables)} tables:"]
    for t in tables:
        desc = f": {t['description']}" if t.get("description") else ""
        cols = ", ".join(t.get("columns", [])[:12])
        lines.append(f"- **{t['table']}** ({int(t.get('rows') or 0):,} rows){desc} — columns: {cols}")
    metrics = summary.get("metrics", [])
    if metrics:
        lines.append("Named metrics: " + ", ".join(f"{m['metric']} ({m['sql']} on {m['table']})"
                                                   for m in metrics) + ".")
    return "\n".join([*lines, "", "Filters: none. Dates: not applicable.", FOOTER])


def say_table(summary: dict[str, Any]) -> str:
    """The answer to describe_table."""
    desc = str(summary.get("description") or "").strip().rstrip(".")
    lines = [f"**{summary.get('table')}** has {int(summary.get('rows') or 0):,} rows"
             + (f": {desc}" if desc else "") + ".",
             "Columns:"]
    for c in summary.get("columns", []):
        extra = c.get("description") or ""
        if c.get("examples"):
            extra += (" — e.g. " if extra else "e.g. ") + ", ".join(map(str, c["examples"][:6]))
        elif c.get("range"):
            extra += (" — " if extra else "") + f"from {c['range'][0]} to {c['range'][1]}"
        lines.append(f"- {c['column']} ({c['type']}){': ' + extra if extra else ''}")
    return "\n".join([*lines, "", "Filters: none. Dates: not applicable.", FOOTER])


__all__ = ["FOOTER", "say_result", "singular"]
