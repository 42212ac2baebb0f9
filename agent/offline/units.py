"""Units of columns and metrics, and readable numbers (1,234,567 · 12.3% · 4.2 h · €1,234.50)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from agent.offline import lexicon as lx
from tools.catalog import ColumnInfo

MONEY_UNITS = {"eur": "€", "euro": "€", "euros": "€", "€": "€", "usd": "$", "dollars": "$",
               "$": "$", "gbp": "£", "£": "£"}
PERCENT_UNITS = ("%", "percent", "pct", "ratio", "share", "rate", "fraction", "proportion")
MONEY_WORDS = ("price", "amount", "cost", "revenue", "spend", "fee", "paid", "sales")
DURATION_WORDS = ("duration", "length", "runtime", "dwell")


def unit_of(col: ColumnInfo | None, unit: str | None = None) -> tuple[str, float, str]:
    """(kind, factor to base unit, symbol): kind is "duration" (base: seconds), "money",
    "percent" or ""; from the notes' unit first, then the column name."""
    unit = (unit if unit is not None else (col.unit if col else "") or "").strip().lower()
    if unit in lx.DURATION_UNITS:
        return "duration", lx.DURATION_UNITS[unit], ""
    if unit in MONEY_UNITS:
        return "money", 1.0, MONEY_UNITS[unit]
    if unit in PERCENT_UNITS:
        return "percent", 1.0, "%"
    if col is None:
        return "", 1.0, ""
    words = lx.split_name(col.name)
    last = words[-1] if words else ""
    if last in lx.DURATION_UNITS and len(words) > 1:
        return "duration", lx.DURATION_UNITS[last], ""
    if last in lx.MONEY_SUFFIXES:
        return "money", 1.0, lx.MONEY_SUFFIXES[last]
    if any(w in MONEY_WORDS for w in words):
        return "money", 1.0, ""
    if any(w in DURATION_WORDS for w in words):
        return "duration", 1.0, ""
    return "", 1.0, ""


def fmt_plain(value: float) -> str:
    """1,234,567 for whole numbers; 3 significant digits below 100; one decimal below 1,000."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    a = abs(value)
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:,.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def fmt_duration(seconds: float) -> str:
    """Seconds as s, min or h, whichever reads best."""
    a = abs(seconds)
    if a < 120:
        return f"{seconds:.1f} s"
    if a < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


def fmt_value(value: Any, kind: str = "", factor: float = 1.0, symbol: str = "") -> str:
    """A readable number of the given unit kind (see :func:`unit_of`)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()[:19].replace("T", " ")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "n/a"
    if kind == "duration":
        return fmt_duration(number * factor)
    if kind == "percent":
        pct = number * 100 if abs(number) <= 1.0 else number
        return f"{pct:.1f}%"
    if kind == "money":
        text = f"{number:,.2f}"
        return f"{symbol}{text}" if symbol else text
    return fmt_plain(number)


def fmt_label(value: Any) -> str:
    """A group label: dates without midnight times, None as '(none)'."""
    if value is None:
        return "(none)"
    if isinstance(value, float) and math.isnan(value):
        return "(none)"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d") if value.time() == dt.time(0) else value.isoformat(" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "to_pydatetime"):
        return fmt_label(value.to_pydatetime())
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
