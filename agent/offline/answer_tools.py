"""Say, after analysis tools: their plain readings first, then the segments, pairs and
suggestions they return, each in a line, then the filters, the dates and the offline note.

Tools other than run_sql return a JSON summary with a ``reading`` (a sentence with the key
figures) and lists of items; this renders any such summary without knowing the tool.
"""

from __future__ import annotations

import re
from typing import Any

from agent.offline.answer import FOOTER
from agent.offline.frame import Frame
from agent.offline.planner import Plan
from agent.offline.units import fmt_value

FLAT_PCT = 5.0  # a change smaller than this over the window reads as flat


NAME_KEYS = ("name", "label", "title", "topic", "handle", "segment", "group")
ID_KEYS = ("cluster_id", "community_id", "segment_id", "id", "ref")
SIZE_KEYS = ("size", "users", "members", "creators", "videos", "share", "count", "n")
TEXT_KEYS = ("description", "reading", "lever", "evidence", "impact")
LIST_KEYS = ("top_interests", "interests", "top_terms", "terms", "hashtags", "topics",
             "top_hashtags", "distinctive")


def _item(entry: dict[str, Any]) -> str:
    """One element of an analysis result (a segment, a community, a suggestion) in a line."""
    parts = []
    name = next((entry[k] for k in NAME_KEYS if entry.get(k) not in (None, "")), None)
    if name is None:  # the group's own column ("category": "Gaming")
        name = next((v for v in entry.values() if isinstance(v, str) and v), None)
    ident = next((entry[k] for k in ID_KEYS if entry.get(k) not in (None, "")), None)
    if name is not None:
        parts.append(f"**{name}**" + (f" (#{ident})" if ident is not None else ""))
    elif ident is not None:
        parts.append(f"#{ident}")
    for k in SIZE_KEYS:
        v = entry.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            shown = f"{v * 100:.1f}%" if k == "share" and v <= 1 else fmt_value(v)
            parts.append(f"{k} {shown}")
    for k in LIST_KEYS:
        v = entry.get(k)
        if isinstance(v, list) and v:
            parts.append(f"{k.replace('_', ' ')}: " + ", ".join(
                str(x.get("term", x.get("name", x)) if isinstance(x, dict) else x)[:40]
                for x in v[:6]))
    for k in TEXT_KEYS:
        v = entry.get(k)
        if isinstance(v, str) and v:
            parts.append(v[:200])
    return "; ".join(parts) if parts else str(entry)[:200]


def _direction(summary: dict[str, Any]) -> str | None:
    """A plain first line for a trend: up, down or flat, from first to last period."""
    overall = summary.get("overall") if isinstance(summary, dict) else None
    if not isinstance(overall, dict):
        return None
    growth = overall.get("growth_first_to_last_pct")
    slope = overall.get("growth_per_period_pct")
    periods = summary.get("periods")
    if not isinstance(slope, int | float) or not isinstance(periods, int):
        return None
    # The fitted slope over the whole window, not two noisy end points, sets the direction.
    fitted = slope * max(periods - 1, 1)
    grain = summary.get("grain", "period")
    if abs(fitted) < FLAT_PCT:
        word = "roughly flat"
    else:
        word = "up (it grew)" if fitted > 0 else "down (it fell)"
    ends = f"; first to last {grain}: {growth:+.1f}%" if isinstance(growth, int | float) else ""
    return (f"Direction: **{word}**, about {fitted:+.1f}% over the {periods} {grain}s by the "
            f"fitted trend{ends}.")


def _summary_lines(name: str, summary: Any) -> list[str]:
    if not isinstance(summary, dict):
        return [str(summary)[:800]]
    lines = []
    direction = _direction(summary)
    if direction:
        lines.append(direction)
    if isinstance(summary.get("reading"), str):
        lines.append(summary["reading"])
    for key, value in summary.items():
        if isinstance(value, list) and value and isinstance(value[0], dict) and (
                not lines or any(k in value[0] for k in NAME_KEYS + LIST_KEYS)):
            lines.append(f"{key.replace('_', ' ').capitalize()}:")
            lines += [f"- {_item(v)}" for v in value[:12]]
            if len(value) > 12:
                lines.append(f"- …and {len(value) - 12} more")
    if not lines:
        for key, value in list(summary.items())[:12]:
            if isinstance(value, str | int | float | bool):
                lines.append(f"- {key}: {value if isinstance(value, str) else fmt_value(value)}")
    notes = summary.get("notes") or summary.get("note")
    if isinstance(notes, list):
        lines += [f"Note: {n}" for n in notes[:4] if isinstance(n, str)]
    elif isinstance(notes, str):
        lines.append(f"Note: {notes}")
    refs = [str(v) for k, v in summary.items()
            if isinstance(v, str) and re.fullmatch(r"r\d+", v) and k != "source"]
    if refs:
        lines.append(f"Results from `{name}`: {', '.join(refs)}.")
    return lines


def _names(results: list[tuple[str, Any]]) -> dict[str, str]:
    """Segment names by id, from a labelling result of the same turn."""
    out = {}
    for _, summary in results:
        for seg in summary.get("segments", []) if isinstance(summary, dict) else []:
            if isinstance(seg, dict) and seg.get("name") and seg.get("segment_id") is not None:
                out[str(seg["segment_id"])] = str(seg["name"])
    return out


def _pairs(summary: Any, names: dict[str, str]) -> list[str]:
    """Pairs of segments that share members ("between": [a, b]), named when possible."""
    found = []
    stack = [summary]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("pairs") and isinstance(value, list):
                    found += [v for v in value if isinstance(v, dict) and "between" in v]
                else:
                    stack.append(value)
    lines = []
    for pair in found[:3]:
        a, b = (str(x) for x in pair["between"][:2])
        shared = ", ".join(f"{fmt_value(v)} {k}" for k, v in pair.items()
                           if isinstance(v, int | float) and not isinstance(v, bool))
        lines.append(f"- #{a} {names.get(a, '')} ↔ #{b} {names.get(b, '')}: {shared} in both"
                     .replace("  ", " "))
    return (["Most shared members between segments:", *lines]) if lines else []


# Tools whose arguments carry the question's filters; the others cover all the data.
FILTERING_TOOLS = frozenset({"summarize_metric", "compare_groups", "trend", "correlate"})
# Tools whose result is the answer when earlier tools only prepared their input.
CONCLUDING_TOOLS = frozenset({"draft_strategy"})


def say_analysis(results: list[tuple[str, Any]], frame: Frame, plan: Plan | None) -> str:
    """The answer after analysis tools: their plain readings, their items, filters, dates."""
    lines: list[str] = []
    names = _names(results)
    shown = results
    if results and results[-1][0] in CONCLUDING_TOOLS and len(results) > 1:
        # the preparatory steps stay in the trace; the answer is the conclusion
        shown = results[-1:]
        lines.append("Prepared with " + ", ".join(f"`{n}`" for n, _ in results[:-1])
                     + " (see the steps above).")
    for name, summary in shown:
        lines += _summary_lines(name, summary) + _pairs(summary, names)
    applied = any(name in FILTERING_TOOLS for name, _ in results)
    filters = "; ".join(plan.filters) if applied and plan and plan.filters else "none"
    dates = plan.dates if plan else "as chosen by the analysis (all data unless stated above)"
    return "\n".join([*lines, "", f"Filters: {filters}.", f"Dates: {dates}.", FOOTER])


