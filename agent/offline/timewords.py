"""Time windows in questions ("last 30 days", "this month", "in August", "since 2026-09-01").

Windows are parsed into a :class:`TimeSpec` first and resolved to dates later against the
latest timestamp of the table asked about (ARCHITECTURE decision 14: time is the data's
time, not today's), so that the answer can say exactly which dates were used.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from agent.offline import lexicon as lx
from agent.offline.grounding import Token

ROLLING_WORDS = frozenset({"last", "past", "previous", "trailing", "recent", "preceding",
                           "final", "latest"})
UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365, "quarter": 91}
UNITS = {"day": "day", "days": "day", "week": "week", "weeks": "week", "month": "month",
         "months": "month", "year": "year", "years": "year", "quarter": "quarter",
         "quarters": "quarter", "hour": "hour", "hours": "hour"}
MONTH_ALIASES = {m[:3]: i + 1 for i, m in enumerate(lx.MONTHS)} | \
    {m: i + 1 for i, m in enumerate(lx.MONTHS)} | {"sept": 9}
START_WORDS = frozenset({"since", "after", "from", "starting"})
END_WORDS = frozenset({"before", "until", "till", "to", "through"})
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NO_YEAR = 4  # a placeholder year for "March 3": replaced by the data's year


@dataclass(frozen=True)
class TimeSpec:
    """A time window as the question put it (resolved later against the data)."""

    kind: str  # rolling | this | month | year | range | day
    n: int = 0
    unit: str = ""
    month: int | None = None
    year: int | None = None
    start: dt.date | None = None
    end: dt.date | None = None  # inclusive
    text: str = ""


@dataclass(frozen=True)
class Window:
    """A resolved window: [start, end) as dates, and how to say it."""

    start: dt.date | None
    end: dt.date | None  # exclusive
    label: str


def _date_at(toks: list[Token], i: int, year_hint: int | None) -> tuple[dt.date | None, int]:
    """A date starting at token ``i`` and how many tokens it used (ISO, or month + day)."""
    if i >= len(toks):
        return None, 0
    t = toks[i]
    if ISO_DATE.match(t.low):
        try:
            return dt.date.fromisoformat(t.low), 1
        except ValueError:
            return None, 0
    month = MONTH_ALIASES.get(t.low)
    if month and i + 1 < len(toks) and toks[i + 1].number is not None:
        day = int(toks[i + 1].number or 0)
        used = 2
        year = year_hint
        if i + 2 < len(toks) and toks[i + 2].number and 1900 < (toks[i + 2].number or 0) < 2200:
            year, used = int(toks[i + 2].number or 0), 3
        try:
            return dt.date(year or NO_YEAR, month, day), used
        except ValueError:
            return None, 0
    return None, 0


def parse_time(toks: list[Token]) -> tuple[TimeSpec | None, set[int]]:
    """Find the first time window in the tokens; return it and the token positions it used."""
    n = len(toks)
    low = [t.low for t in toks]
    for i in range(n):
        w = low[i]
        nxt = low[i + 1] if i + 1 < n else ""
        if w in ROLLING_WORDS:
            if toks[i + 1:i + 2] and toks[i + 1].number is not None and i + 2 < n \
                    and low[i + 2] in UNITS:
                count = int(toks[i + 1].number or 0)
                return (TimeSpec("rolling", max(count, 1), UNITS[low[i + 2]],
                                 text=" ".join(low[i:i + 3])), {i, i + 1, i + 2})
            if nxt in UNITS:
                return TimeSpec("rolling", 1, UNITS[nxt], text=f"{w} {nxt}"), {i, i + 1}
        if w in ("this", "current") and nxt in UNITS:
            return TimeSpec("this", 1, UNITS[nxt], text=f"{w} {nxt}"), {i, i + 1}
        if w in ("today", "yesterday"):
            return TimeSpec("day", 0 if w == "today" else 1, text=w), {i}
        if w == "between" and i + 1 < n:
            d1, u1 = _date_at(toks, i + 1, None)
            if d1 and i + 1 + u1 < n and low[i + 1 + u1] in ("and", "to"):
                d2, u2 = _date_at(toks, i + 2 + u1, d1.year)
                if d2:
                    used = set(range(i, i + 2 + u1 + u2))
                    return TimeSpec("range", start=d1, end=d2, text="between"), used
        if w in START_WORDS or w in END_WORDS:
            d, used_n = _date_at(toks, i + 1, None)
            if d:
                used = set(range(i, i + 1 + used_n))
                if w in START_WORDS:
                    return TimeSpec("range", start=d, text=f"{w} {d}"), used
                end = d if w in ("until", "till", "through", "to") else d - dt.timedelta(days=1)
                return TimeSpec("range", end=end, text=f"{w} {d}"), used
        if ISO_DATE.match(w) and (i == 0 or low[i - 1] in ("on", "for", "of")):
            d, _ = _date_at(toks, i, None)
            if d:
                return TimeSpec("range", start=d, end=d, text=w), {i} | ({i - 1} if i else set())
        month = MONTH_ALIASES.get(w)
        if month and (len(w) > 3 or w == "may") and (w != "may" or (i and low[i - 1] in (
                "in", "during", "of", "for", "since"))):
            year = None
            used = {i}
            if i + 1 < n and toks[i + 1].number and 1900 < (toks[i + 1].number or 0) < 2200:
                year = int(toks[i + 1].number or 0)
                used.add(i + 1)
            if i and low[i - 1] in ("in", "during", "of", "for"):
                used.add(i - 1)
            if i and low[i - 1] in START_WORDS:
                return TimeSpec("month", month=month, year=year, start=dt.date(NO_YEAR, 1, 1),
                                text=f"since {w}"), used | {i - 1}
            return TimeSpec("month", month=month, year=year, text=w), used
        if w in ("in", "during") and toks[i + 1:i + 2] and toks[i + 1].number \
                and 1900 < (toks[i + 1].number or 0) < 2200 and float(toks[i + 1].low) \
                .is_integer():
            return TimeSpec("year", year=int(toks[i + 1].number or 0), text=nxt), {i, i + 1}
    return None, set()


def resolve(spec: TimeSpec, latest: dt.datetime) -> Window:
    """Turn a spec into dates, counting back from ``latest`` (the data's last timestamp)."""
    last_day = latest.date()
    if spec.kind == "rolling":
        if spec.unit == "hour":
            start_dt = latest - dt.timedelta(hours=spec.n)
            return Window(start_dt.date(), last_day + dt.timedelta(days=1),
                          f"the {spec.n} hour(s) up to {latest:%Y-%m-%d %H:%M}")
        days = spec.n * UNIT_DAYS.get(spec.unit, 1)
        start = last_day - dt.timedelta(days=days - 1)
        return Window(start, last_day + dt.timedelta(days=1),
                      f"{start:%Y-%m-%d} to {last_day:%Y-%m-%d} (the last {days} days of data)")
    if spec.kind == "this":
        if spec.unit == "week":
            start = last_day - dt.timedelta(days=last_day.weekday())
        elif spec.unit == "month":
            start = last_day.replace(day=1)
        elif spec.unit == "year":
            start = last_day.replace(month=1, day=1)
        else:
            start = last_day
        return Window(start, last_day + dt.timedelta(days=1),
                      f"{start:%Y-%m-%d} to {last_day:%Y-%m-%d} (this {spec.unit or 'day'} of the data)")
    if spec.kind == "day":
        day = last_day - dt.timedelta(days=spec.n)
        return Window(day, day + dt.timedelta(days=1), f"{day:%Y-%m-%d}")
    if spec.kind == "month" and spec.month:
        year = spec.year or (last_day.year if spec.month <= last_day.month else last_day.year - 1)
        start = dt.date(year, spec.month, 1)
        end = dt.date(year + (spec.month == 12), spec.month % 12 + 1, 1)
        if spec.start is not None:  # "since August"
            return Window(start, None, f"since {start:%Y-%m-%d}")
        return Window(start, end, f"{start:%Y-%m-%d} to {end - dt.timedelta(days=1):%Y-%m-%d}")
    if spec.kind == "year" and spec.year:
        start = dt.date(spec.year, 1, 1)
        return Window(start, dt.date(spec.year + 1, 1, 1), f"the year {spec.year}")
    start = spec.start
    end = spec.end
    if start and start.year == NO_YEAR:
        start = start.replace(year=last_day.year)
    if end and end.year == NO_YEAR:
        end = end.replace(year=last_day.year)
    label_start = f"{start:%Y-%m-%d}" if start else "the start of the data"
    label_end = f"{end:%Y-%m-%d}" if end else f"{last_day:%Y-%m-%d}"
    return Window(start, end + dt.timedelta(days=1) if end else None,
                  f"{label_start} to {label_end}")
