"""The scripted evaluation runner: run a suite of questions through Atlas and score the answers.

A suite is a YAML file: either a list of cases, or a mapping with a ``cases:`` list and a
header. A case is ``{id, category, turns: [question, ...], expect, tool}``; ``tool`` (a name or
a list of names) is the tool the last turn should call. Each case runs in a fresh session and
is scored on its last turn, from the answer text and the tables that turn returned.

Expectations (``expect`` may also be a list of these, all of which must hold):

- ``{number: x, tol: 0.01, atol: 0, percent: false, unit: null}`` — a number within relative
  ``tol`` (default 1%). Written numbers are parsed with thousands separators, ``%``/percent,
  k/M/B suffixes and their displayed precision ("1.2k" stands for 1150–1250, but that slack
  is capped at 5% of the expected value). A number written with ``%`` counts as both its
  percent and its fraction. ``percent: true`` says the expected value is a share: it is then
  matched as a fraction or as a percent, whichever way it was written. ``unit: seconds`` also
  accepts durations written in minutes, hours or days. ``near: [term, ...]`` only counts
  numbers written beside one of the terms (same line or sentence, same table row), e.g. the
  size of one named segment among many.
- ``{numbers: [x, ...]}`` — every number (same options).
- ``{values: [v, ...], ordered: false, at_least: n}`` — values (or lists of aliases of one
  value) found case-insensitively as whole words; two-letter codes must be written in
  capitals or by their country/language name ("BR" or "Brazil"); ISO dates also match as
  "September 27" or "Sep 27". ``ordered`` requires the order of first appearance (in the text, or down one column
  of a table).
- ``{mentions: [s, ...], any: false, at_least: n, words: false}`` — case-insensitive
  substrings (an item may be a list of alternatives); ``words: true`` anchors each one where a
  word begins (whole words only for terms of four letters or fewer); ``together: true`` wants
  them in one line, sentence or table row; ``before: [s, ...]`` wants them named before any
  of those rivals (the answer to "which one" among many).
- ``{sql: "..."}`` — a reference query run read-only on the same database before the run: one
  cell gives a ``number`` or a value; several rows give their first column (``ordered``
  optional); ``all: true`` expects every cell. Other keys (tol, percent, unit...) carry over.
  ``aliases: true`` reads each row as several names of one value (a title and an id).
- ``{either: [expectation, ...]}`` — any one of them.
- ``{clarify: true}`` — see :func:`is_clarification`.
- ``{significant: true|false}`` (or ``{significant: {sql: "SELECT <bool>"}}``) — see
  :func:`significance_verdict`.
- ``{direction: up|down|flat}`` (or ``{direction: {sql: "SELECT <change>", flat: 0.02}}``, the
  sign of a relative change) — see :func:`direction_of`.
- ``{<name>: key, ...}`` where the suite header declares ``resolvers: {<name>:
  "file.py:function"}`` — resolved by that function of the suite's own code into one of the
  forms above (see :class:`ResolveContext`). This is how a suite brings expectations that come
  from outside the database; the runner knows nothing of their source.

Numbers, values and mentions are looked for in the answer text and in the tables of the last
turn; in a table only its top rows count, as many as the expectation has numbers, values or
mentions to find (a table of every community does not answer which one is meant; at most
``TABLE_ROWS``). The header may also give ``db:`` —
``sample`` (the default database) or ``{build: "file.py:function", file: name.duckdb,
args: {...}}``, a builder called as ``function(path, **args)`` when no database was chosen —
and ``settings:`` overrides.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import importlib.util
import itertools
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import yaml

from agent.config import DEFAULT_DB, Settings
from agent.eval_report import (
    CaseResult,
    Report,
    load_report,
    previous_results,
    write_json,
)
from agent.events import Done, Error, Table, ToolFinished, ToolStarted
from tools.errors import AtlasError
from tools.jsonify import jsonable

TABLE_ROWS = 50
DEFAULT_TOL = 0.01
ROUNDING_CAP = 0.05  # displayed-precision slack, at most this share of the expected value
MAX_REFERENCE_ROWS = 50
TRACE_SQL_CHARS = 1500  # a tool's generated SQL is cut to this length in the trace
BUILT_IN = ("number", "numbers", "values", "mentions", "sql", "clarify", "significant",
            "direction", "all", "either")
MODIFIERS = ("tol", "atol", "percent", "unit", "ordered", "at_least", "any", "words", "near",
             "together", "before")


class EvalError(AtlasError):
    """A suite, a reference or a report that cannot be used."""


# -- suites ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One scripted conversation and what its last answer must contain."""

    id: str
    category: str
    turns: list[str]
    expect: Any
    tool: list[str] | None = None


@dataclass
class Suite:
    """A loaded suite: its cases and header."""

    name: str
    path: Path
    cases: list[Case]
    header: dict[str, Any] = field(default_factory=dict)

    def resolvers(self) -> dict[str, Callable[..., Any]]:
        """The expectation resolvers the suite declares, loaded from its own files."""
        declared = self.header.get("resolvers") or {}
        return {name: _load_callable(self.path.parent, spec) for name, spec in declared.items()}


def load_suite(path: Path | str) -> Suite:
    """Read and check a suite file."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"there is no suite at {path}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    header: dict[str, Any] = {}
    if isinstance(data, dict):
        header = {k: v for k, v in data.items() if k != "cases"}
        data = data.get("cases")
    if not isinstance(data, list) or not data:
        raise EvalError(f"{path}: a suite is a list of cases (or a mapping with 'cases:')")
    cases, seen = [], set()
    for i, raw in enumerate(data):
        if not isinstance(raw, dict):
            raise EvalError(f"{path}: case {i + 1} is not a mapping")
        turns = raw.get("turns", raw.get("question"))
        turns = [turns] if isinstance(turns, str) else turns
        cid = str(raw.get("id") or f"case{i + 1}")
        if not turns or not all(isinstance(t, str) and t.strip() for t in turns):
            raise EvalError(f"{path}: case '{cid}' needs 'turns' (a list of questions)")
        if "expect" not in raw:
            raise EvalError(f"{path}: case '{cid}' has no 'expect'")
        if cid in seen:
            raise EvalError(f"{path}: the case id '{cid}' is used twice")
        seen.add(cid)
        tool = raw.get("tool")
        cases.append(Case(cid, str(raw.get("category") or "uncategorized"), list(turns),
                          raw["expect"], [tool] if isinstance(tool, str) else tool))
    return Suite(str(header.get("suite") or path.stem), path, cases, header)


def _load_callable(base: Path, spec: str) -> Callable[..., Any]:
    """``"file.py:function"`` relative to ``base`` (the suite's folder)."""
    file, _, name = str(spec).partition(":")
    target = (base / file).resolve()
    if not target.is_file() or not name:
        raise EvalError(f"cannot load '{spec}': expected 'file.py:function' beside the suite")
    module_name = f"_atlas_eval_{abs(hash(str(target)))}"
    module_spec = importlib.util.spec_from_file_location(module_name, target)
    if module_spec is None or module_spec.loader is None:
        raise EvalError(f"cannot load {target}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, name):
        raise EvalError(f"{target} has no '{name}'")
    return getattr(module, name)


def suite_settings(suite: Suite, settings: Settings) -> Settings:
    """``settings`` with the suite's header applied: its database (when none was chosen: the
    settings still name the default database) and its ``settings:`` overrides."""
    settings = settings.with_overrides(**(suite.header.get("settings") or {}))
    hint = suite.header.get("db")
    if isinstance(hint, dict) and hint.get("build") and Path(settings.db) == DEFAULT_DB:
        target = Path(settings.home) / "eval-dbs" / str(hint.get("file") or f"{suite.name}.duckdb")
        target.parent.mkdir(parents=True, exist_ok=True)
        _load_callable(suite.path.parent, hint["build"])(target, **(hint.get("args") or {}))
        settings = settings.with_overrides(db=target)
    return settings


# -- resolving expectations -----------------------------------------------------------------
@dataclass
class ResolveContext:
    """What a suite's resolver gets: the database and a read-only query function."""

    db: Path
    query: Callable[[str], pd.DataFrame]
    settings: Settings


def resolve_expectation(expect: Any, ctx: ResolveContext,
                        resolvers: dict[str, Callable[..., Any]] | None = None) -> Any:
    """Turn a case's ``expect`` into plain forms (number/numbers/values/mentions/...)."""
    resolvers = resolvers or {}
    if isinstance(expect, list):
        return {"all": [resolve_expectation(e, ctx, resolvers) for e in expect]}
    if not isinstance(expect, dict):
        raise EvalError(f"an expectation must be a mapping or a list, not {expect!r}")
    for key in ("either", "all"):
        if isinstance(expect.get(key), list):
            return {key: [resolve_expectation(e, ctx, resolvers) for e in expect[key]]}
    plugin = [k for k in expect if k in resolvers]
    if plugin:
        resolved = resolvers[plugin[0]](expect[plugin[0]], dict(expect), ctx)
        return resolve_expectation(resolved, ctx, resolvers)
    if "sql" in expect:
        return _from_reference(expect, ctx.query(str(expect["sql"])))
    for key in ("significant", "direction"):
        if isinstance(expect.get(key), dict):
            spec = expect[key]
            value = _one_cell(ctx.query(str(spec["sql"])))
            if key == "significant":
                return {**expect, key: bool(value)}
            flat = float(spec.get("flat", 0.02))
            change = float(value)
            word = "flat" if abs(change) <= flat else ("up" if change > 0 else "down")
            return {**expect, key: word, "change": round(change, 4)}
    if not any(k in expect for k in BUILT_IN):
        raise EvalError(f"unknown expectation {expect!r}")
    return expect


def _one_cell(df: pd.DataFrame) -> Any:
    if df.empty:
        raise EvalError("the reference query returned no rows")
    return jsonable(df.iat[0, 0])


def _from_reference(expect: dict[str, Any], df: pd.DataFrame) -> dict[str, Any]:
    extra = {k: v for k, v in expect.items() if k in MODIFIERS}
    if df.empty:
        raise EvalError("the reference query returned no rows")
    if len(df) > MAX_REFERENCE_ROWS:
        raise EvalError(f"the reference query returned {len(df)} rows; aggregate or limit it")
    if expect.get("aliases"):  # each row names one value in several ways
        rows = [[jsonable(v) for v in row if v is not None] for row in df.itertuples(index=False)]
        return {"values": rows, **extra}
    if expect.get("all"):
        cells = [jsonable(v) for row in df.itertuples(index=False) for v in row]
        numbers = [v for v in cells if _is_number(v)]
        values = [v for v in cells if not _is_number(v) and v is not None]
        parts = ([{"numbers": numbers, **extra}] if numbers else []) + (
            [{"values": values, **extra}] if values else [])
        return parts[0] if len(parts) == 1 else {"all": parts}
    if len(df) == 1:
        value = jsonable(df.iat[0, 0])
        if value is None:
            raise EvalError("the reference query returned NULL")
        return {"number": float(value), **extra} if _is_number(value) else {
            "values": [value], **extra}
    column = [jsonable(v) for v in df.iloc[:, 0]]
    if all(_is_number(v) for v in column):
        return {"numbers": [float(v) for v in column], **extra}
    return {"values": column, **extra}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _ReadOnlyQuery:
    """Reference queries on one read-only connection, serialized."""

    def __init__(self, db: Path) -> None:
        self._con = duckdb.connect(str(db), read_only=True,
                                   config={"enable_external_access": False})
        self._lock = threading.Lock()

    def __call__(self, sql: str) -> pd.DataFrame:
        with self._lock:
            try:
                return self._con.execute(sql).df()
            except duckdb.Error as exc:
                raise EvalError(f"the reference query failed: {exc}") from exc

    def close(self) -> None:
        self._con.close()


def resolve_suite(suite: Suite, settings: Settings, cases: Sequence[Case] | None = None
                  ) -> dict[str, Any]:
    """Every case's resolved expectation, by id; an :class:`EvalError` instance when it failed."""
    resolvers = suite.resolvers()
    query = _ReadOnlyQuery(Path(settings.db))
    ctx = ResolveContext(Path(settings.db), query, settings)
    out: dict[str, Any] = {}
    try:
        for case in cases if cases is not None else suite.cases:
            try:
                out[case.id] = resolve_expectation(case.expect, ctx, resolvers)
            except Exception as exc:  # noqa: BLE001 - a broken reference fails its case only
                out[case.id] = exc if isinstance(exc, EvalError) else EvalError(
                    f"{type(exc).__name__}: {exc}")
    finally:
        query.close()
    return out


# -- evidence -------------------------------------------------------------------------------
@dataclass
class Evidence:
    """What an answer offers to be scored: its text and its tables."""

    text: str
    tables: list[pd.DataFrame] = field(default_factory=list)
    error: str | None = None

    def cells(self, rows: int = TABLE_ROWS) -> list[tuple[int, str, int, Any]]:
        """(table, column, row, value) of the first ``rows`` rows of every table."""
        out = []
        for t, df in enumerate(self.tables):
            head = df.head(min(rows, TABLE_ROWS))
            for column in head.columns:
                for row, value in enumerate(head[column].tolist()):
                    out.append((t, str(column), row, value))
        return out

    def table_text(self, rows: int = TABLE_ROWS) -> str:
        """The column names and first ``rows`` rows of every table, as text."""
        parts = []
        for df in self.tables:
            parts.append(" | ".join(str(c) for c in df.columns))
            parts.extend(" | ".join(_cell_text(v) for v in row)
                         for row in df.head(min(rows, TABLE_ROWS)).itertuples(index=False))
        return "\n".join(parts)


def _cell_text(value: Any) -> str:
    value = jsonable(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


# -- numbers --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Written:
    """A number as written: its value, its rounding slack and what followed it."""

    value: float
    slack: float = 0.0
    percent: bool = False
    unit: str | None = None


_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?\b")
_NUMBER = re.compile(
    r"(?<![\w.,])(?P<sign>[-−])?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?(?![\w,]*\d)"
    r"(?:\s?(?P<suffix>%|per\s?cent\b|pct\b|[kK]\b|thousand\b|[mM]\b|mn\b|million\b|[bB]n?\b"
    r"|billion\b))?"
    r"(?:\s*(?P<unit>seconds?|secs?|s|minutes?|mins?|hours?|hrs?|h|days?)\b)?")
_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9,
          "billion": 1e9}
_SECONDS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "min": 60, "mins": 60,
            "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600,
            "hours": 3600, "day": 86400, "days": 86400}


def _blank_dates(text: str) -> str:
    """``text`` with ISO dates and clock times blanked out (same length, so positions hold)."""
    text = _DATE.sub(lambda m: " " * len(m.group(0)), text)
    return re.sub(r"\b\d{1,2}:\d{2}(?::\d{2})?\b", lambda m: " " * len(m.group(0)), text)


def extract_numbers(text: str) -> list[Written]:
    """The numbers written in ``text`` (dates and times left out), each with its slack."""
    out: list[Written] = []
    for m in _NUMBER.finditer(_blank_dates(text)):
        digits = m.group("int").replace(",", "")
        frac = m.group("frac") or ""
        value = float(digits + frac) * (-1 if m.group("sign") else 1)
        slack = 0.5 * 10 ** -(len(frac) - 1) if frac else 0.5
        written_suffix = (m.group("suffix") or "").replace(" ", "")
        suffix = written_suffix.lower()
        unit = (m.group("unit") or "").lower() or None
        if suffix in ("%", "percent", "pct"):
            out.append(Written(value, slack, percent=True, unit=unit))
        elif suffix in _SCALE:
            scale = _SCALE[suffix]
            out.append(Written(value * scale, slack * scale, unit=unit))
            if written_suffix == "m":  # "5m" may be minutes as well as millions
                out.append(Written(value, slack, unit="min"))
        else:
            out.append(Written(value, slack, unit=unit))
    return out


def _table_numbers(evidence: Evidence, rows: int) -> list[Written]:
    out: list[Written] = []
    for _, column, _, value in evidence.cells(rows):
        value = jsonable(value)
        if _is_number(value) and math.isfinite(value):
            unit = "hours" if "hour" in column.lower() else (
                "minutes" if "minute" in column.lower() else None)
            out.append(Written(float(value), 0.0, unit=unit))
        elif isinstance(value, str):
            out.extend(extract_numbers(value))
    return out


def _near_numbers(evidence: Evidence, terms: list[str], words: bool) -> list[Written]:
    """Numbers written beside one of ``terms``: in the same line or sentence of the text, or
    in the same table row."""
    patterns = [_term_pattern(t, words) for t in terms]
    out: list[Written] = []
    for piece in re.split(r"\n+|(?<=[.!?])\s+(?=[A-Z*_])", evidence.text):
        if any(p.search(piece) for p in patterns):
            out += extract_numbers(piece)
    for df in evidence.tables:
        for row in df.head(TABLE_ROWS).itertuples(index=False):
            if any(p.search(" | ".join(_cell_text(v) for v in row)) for p in patterns):
                for value in row:
                    value = jsonable(value)
                    if _is_number(value) and math.isfinite(value):
                        out.append(Written(float(value)))
                    elif isinstance(value, str):
                        out.extend(extract_numbers(value))
    return out


def _candidates(w: Written, spec: dict[str, Any]) -> list[tuple[float, float]]:
    """The values ``w`` may stand for under ``spec``, each with its slack."""
    out = [(w.value, w.slack)]
    if w.percent or (spec.get("percent") and 1 < abs(w.value) <= 100):
        out.append((w.value / 100, w.slack / 100))
    if spec.get("unit") in ("s", "seconds", "second") and w.unit in _SECONDS:
        factor = _SECONDS[w.unit]
        out += [(v * factor, s * factor) for v, s in list(out)]
    return out


def number_found(expected: float, written: list[Written], spec: dict[str, Any]) -> bool:
    """Whether any written number matches ``expected`` under the tolerance of ``spec``."""
    targets = [float(expected)]
    if spec.get("percent") and abs(expected) > 1:
        targets.append(expected / 100)  # a share given as a percent
    tol = float(spec.get("tol", DEFAULT_TOL))
    atol = float(spec.get("atol", 0.0))
    for target in targets:
        for w in written:
            for value, slack in _candidates(w, spec):
                allowed = max(tol * abs(target), atol, min(slack, ROUNDING_CAP * abs(target)))
                if abs(value - target) <= allowed + 1e-12:
                    return True
    return False


# -- values and mentions --------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def value_aliases(value: Any) -> tuple[str, ...]:
    """Ways a value may be written: itself, a country/language name for an ISO code, date forms."""
    text = str(value)
    out = [text]
    if re.fullmatch(r"[A-Z]{2}", text):
        import pycountry

        country = pycountry.countries.get(alpha_2=text)
        if country is not None:
            out += [getattr(country, k) for k in ("name", "common_name", "official_name",
                                                  "alpha_3") if getattr(country, k, None)]
            out += ["UK"] if text == "GB" else []
    elif re.fullmatch(r"[a-z]{2}", text):
        import pycountry

        language = pycountry.languages.get(alpha_2=text)
        if language is not None:
            out.append(language.name)
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?:[ T]00:00(?::00)?)?", text)
    if match:
        day = dt.date.fromisoformat(match.group(1))
        out.append(match.group(1))
        for month in (day.strftime("%B"), day.strftime("%b"), day.strftime("%b") + "."):
            out += [f"{month} {day.day}", f"{day.day} {month}"]
        out += ["Sept " + str(day.day)] if day.month == 9 else []
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _alias_pattern(alias: str) -> re.Pattern[str]:
    body = r"[\s_\-]+".join(re.escape(part) for part in alias.split())
    if len(alias) <= 2 and alias.isalpha():  # a code: as written, or in capitals
        return re.compile(rf"(?<![\w]){re.escape(alias)}(?![\w])|(?<![\w])"
                          rf"{re.escape(alias.upper())}(?![\w])")
    return re.compile(rf"(?<![\w]){body}(?![\w])", re.IGNORECASE)


def _first_position(text: str, aliases: Sequence[str]) -> int | None:
    found = [m.start() for a in aliases if (m := _alias_pattern(a).search(text))]
    return min(found) if found else None


def _value_in_cell(cell: Any, value: Any, aliases: Sequence[str]) -> bool:
    if _is_number(value):
        cell = jsonable(cell)
        return (_is_number(cell) and abs(float(cell) - float(value)) < 1e-9) or (
            isinstance(cell, str) and number_found(float(value), extract_numbers(cell),
                                                   {"tol": 0}))
    text = _cell_text(cell)
    return any(_alias_pattern(a).search(text) for a in aliases)


def _as_group(item: Any) -> list[Any]:
    return list(item) if isinstance(item, list | tuple) else [item]


def check_values(spec: dict[str, Any], evidence: Evidence) -> tuple[bool, str]:
    """Values: found (at least ``at_least`` of them), in order when ``ordered``."""
    groups = [_as_group(v) for v in spec["values"]]
    text_positions: list[int | None] = []
    numbers = [(m.start(), extract_numbers(m.group(0)))
               for m in _NUMBER.finditer(_blank_dates(evidence.text))]
    for group in groups:
        positions = []
        for v in group:
            if _is_number(v):
                positions += [pos for pos, w in numbers
                              if number_found(float(v), w, {"tol": 0})][:1]
            else:
                pos = _first_position(evidence.text, value_aliases(v))
                positions += [pos] if pos is not None else []
        text_positions.append(min(positions) if positions else None)
    rows: dict[tuple[int, str], list[int | None]] = {}
    cells = evidence.cells(len(groups))
    for i, group in enumerate(groups):
        aliases = [a for v in group for a in value_aliases(v)]
        for t, column, row, value in cells:
            key = (t, column)
            found = rows.setdefault(key, [None] * len(groups))
            if found[i] is None and any(_value_in_cell(value, v, aliases) for v in group):
                found[i] = row
    in_tables = [any(r[i] is not None for r in rows.values()) for i in range(len(groups))]
    hits = [p is not None or t for p, t in zip(text_positions, in_tables, strict=True)]
    need = int(spec.get("at_least") or len(groups))
    missing = [str(g[0]) for g, h in zip(groups, hits, strict=True) if not h]
    if sum(hits) < need:
        return False, f"values not found: {', '.join(missing)}"
    in_order = _increasing(text_positions) or any(map(_increasing, rows.values()))
    if spec.get("ordered") and not spec.get("at_least") and not in_order:
        return False, "the values are there but not in the expected order"
    return True, "values found"


def _increasing(positions: list[int | None]) -> bool:
    known = [p for p in positions if p is not None]
    return len(known) == len(positions) and all(a < b for a, b in itertools.pairwise(known))


def _term_pattern(term: str, words: bool) -> re.Pattern[str]:
    if not words:
        return re.compile(re.escape(term), re.IGNORECASE)
    body = r"[\s_\-#]*".join(re.escape(p) for p in term.split())
    tail = r"(?:s|es)?(?![a-z0-9])" if len(term.replace(" ", "")) <= 4 else ""
    return re.compile(rf"(?<![a-z0-9]){body}{tail}", re.IGNORECASE)


def _pieces(evidence: Evidence) -> list[str]:
    """The lines and sentences of the text, and the rows of the tables."""
    out = [p for p in re.split(r"\n+|(?<=[.!?])\s+(?=[A-Z*_])", evidence.text) if p.strip()]
    for df in evidence.tables:
        out += [" | ".join(_cell_text(v) for v in row)
                for row in df.head(TABLE_ROWS).itertuples(index=False)]
    return out


def _group_position(text: str, group: list[Any], words: bool) -> int | None:
    found = [m.start() for t in group if (m := _term_pattern(str(t), words).search(text))]
    return min(found) if found else None


def check_mentions(spec: dict[str, Any], evidence: Evidence) -> tuple[bool, str]:
    """Mentions: every item (an item may be a list of alternatives), or ``at_least``/``any``;
    ``together``: all in one line, sentence or table row; ``before: [item, ...]``: named
    before any of those (in the text, or alone in the top row of a table)."""
    words = bool(spec.get("words"))
    groups = [_as_group(m) for m in spec["mentions"]]
    need = 1 if spec.get("any") else int(spec.get("at_least") or len(groups))
    text = evidence.text + "\n" + evidence.table_text(need)
    hits = [any(_term_pattern(str(t), words).search(text) for t in g) for g in groups]
    if sum(hits) < need:
        missing = [str(g[0]) for g, h in zip(groups, hits, strict=True) if not h]
        return False, (f"mentioned {sum(hits)} of {len(groups)} (needed {need}); missing: "
                       + ", ".join(missing[:8]))
    if spec.get("together") and not any(
            all(_group_position(piece, g, words) is not None for g in groups)
            for piece in _pieces(evidence)):
        return False, "mentioned, but never together in one sentence or row"
    if spec.get("before"):
        rivals = [_as_group(m) for m in spec["before"]]
        mine = [p for g in groups if (p := _group_position(evidence.text, g, words)) is not None]
        theirs = [p for g in rivals
                  if (p := _group_position(evidence.text, g, words)) is not None]
        top_rows = [" | ".join(_cell_text(v) for v in df.iloc[0]) for df in evidence.tables
                    if len(df)]
        alone_on_top = any(any(_group_position(row, g, words) is not None for g in groups)
                           and not any(_group_position(row, g, words) is not None
                                       for g in rivals) for row in top_rows)
        if not ((mine and (not theirs or min(mine) < min(theirs))) or alone_on_top):
            return False, "mentioned, but something else is named first"
    return True, "mentions found"


# -- judgements on the text -----------------------------------------------------------------
_ASKS = re.compile(r"\?\s*$|\b(?:did|do) you mean\b|\bwhich (?:one|of)\b|\bplease "
                   r"(?:specify|clarify|tell me)\b|\bcould you (?:clarify|specify|say)\b|"
                   r"\bdo you want\b|\bwould you like\b", re.IGNORECASE | re.MULTILINE)
_CANNOT = re.compile(r"\b(?:can ?not|can't|cannot|unable|not able to|(?:do|does)(?: not|n't) "
                     r"(?:have|contain|record|track|include)|no (?:data|column|table|"
                     r"information|record)|not (?:in|available|recorded|tracked|possible)|"
                     r"there is no|isn't (?:in|available|recorded|tracked))\b", re.IGNORECASE)
_CHOICES = re.compile(r"\b(?:could (?:mean|refer)|either\b.*\bor\b|options?:|for example)",
                      re.IGNORECASE)


def _is_figure(m: re.Match[str]) -> bool:
    digits = m.group("int").replace(",", "")
    if not m.group("frac") and not m.group("suffix") and re.fullmatch(r"(?:19|20)\d\d", digits):
        return False  # a year
    return bool(m.group("frac") or m.group("suffix")) or float(digits) >= 100


def is_clarification(evidence: Evidence) -> tuple[bool, str]:
    """An honest clarification or refusal, and no confident number.

    Detectable when the answer (a) asks (a sentence ending in "?", "did you mean", "which
    one", "please specify"...), says it cannot (cannot, unable, the data does not have/track,
    no data/column, not available...) or offers choices (could mean, either ... or, options),
    and (b) presents no figure outside its questions: a figure is a number written with a
    decimal point, %, a k/M/B suffix, or of absolute value 100 or more, not a year, a date or
    a time; small integers ("last 7 days", "top 5") are not figures. A run that ended in an
    error is not a clarification.
    """
    if evidence.error:
        return False, f"the run failed: {evidence.error}"
    text = evidence.text.strip()
    if not text:
        return False, "empty answer"
    if not (_ASKS.search(text) or _CANNOT.search(text) or _CHOICES.search(text)):
        return False, "neither asks, declines nor offers choices"
    statements = [s for s in re.split(r"(?<=[.!?:;])\s+|\n+", text)
                  if s.strip() and not s.strip().endswith("?")]
    for sentence in statements:
        clean = re.sub(r"^\s*\d+[.)]\s", " ", _blank_dates(sentence))  # list markers
        for m in _NUMBER.finditer(clean):
            if _is_figure(m):
                return False, f"states a figure ({m.group(0).strip()}) instead of asking"
    return True, "asks or declines without a figure"


_NOT_SIG = re.compile(
    r"(?:\bnot|\bno|n't|\bnever|\bwithout|\bnor)\s+(?:\w+\s+){0,3}?significant|"
    r"\binsignificant|\bnon-?significant|\b(?:could|may|might|can)\s+(?:well\s+)?(?:just\s+)?"
    r"be\s+(?:due\s+to\s+)?(?:random\s+)?(?:chance|noise)|\b(?:likely|probably|just)\s+"
    r"(?:random\s+)?(?:noise|chance)|\bno\s+(?:real|reliable|meaningful|clear|detectable)\s+"
    r"(?:difference|evidence|effect)|\bnot\s+(?:a\s+)?real\b|\bnot\s+enough\s+evidence|"
    r"\bcan(?:'t|not)\s+rule\s+out\b|\bwithin\s+(?:the\s+)?(?:noise|margin)|"
    r"\bindistinguishable|\bno evidence\b", re.IGNORECASE)
_SIG = re.compile(r"\bsignificant|\breal\s+difference|\bunlikely\s+to\s+"
                  r"be\s+(?:due\s+to\s+)?(?:random\s+)?chance|\bis\s+real\b|"
                  r"\bp\s*[<≤]\s*0?\.0[0-5]", re.IGNORECASE)


_QUOTED = re.compile(r"(?<!\w)'[^'\n]+'(?!\w)|\"[^\"\n]+\"|“[^”\n]+”|‘[^’\n]+’")


def _statements(text: str) -> str:
    """``text`` without quoted words and without its questions: what it asserts."""
    text = _QUOTED.sub(" ", text)
    return " ".join(s for s in re.split(r"(?<=[.!?])\s+|\n+", text)
                    if s.strip() and not s.strip().endswith("?"))


def significance_verdict(text: str) -> bool | None:
    """True when the text calls a difference real/significant, False when it says it is not
    (not significant, could be chance, no real difference...), None when it says neither.
    The first sentence with a verdict decides; quoted words and questions (the person's
    words echoed back) are left out."""
    for sentence in re.split(r"(?<=[.!?;])\s+|\n+", _statements(text)):
        if _NOT_SIG.search(sentence):
            return False
        if _SIG.search(sentence):
            return True
    return None


_UP = re.compile(r"\b(?:increas|grow|grew|rising|rose\b|rise[sn]?\b|upward|gain|climb|doubl|"
                 r"tripl)|(?<!sign )(?<!follow )(?<![-\w])up\b", re.IGNORECASE)
_DOWN = re.compile(r"\b(?:decreas|declin|fall|fell\b|drop|downward|shrink|shrank)|"
                   r"(?<!break )(?<!broken )(?<![-\w])down\b", re.IGNORECASE)
_FLAT = re.compile(r"\b(?:flat|stable|steady|unchanged|no (?:clear|significant|real) "
                   r"(?:trend|change)|roughly (?:the )?same|little change)", re.IGNORECASE)


def direction_of(text: str) -> str | None:
    """The direction a text reports: the first of up/down/flat words it asserts (quoted
    words and questions left out). A rise or fall called not significant in the same
    sentence counts as flat."""
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", _statements(text)):
        found = [(m.start(), name) for name, pattern in (("up", _UP), ("down", _DOWN),
                                                           ("flat", _FLAT))
                 if (m := pattern.search(sentence))]
        if found:
            name = min(found)[1]
            return "flat" if name != "flat" and _NOT_SIG.search(sentence) else name
    return None


# -- scoring --------------------------------------------------------------------------------
def score(expect: Any, evidence: Evidence) -> tuple[bool, str]:
    """Score a resolved expectation against an answer: (passed, reason)."""
    if isinstance(expect, EvalError):
        return False, f"the reference could not be computed: {expect}"
    if isinstance(expect.get("either"), list):
        reasons = []
        for part in expect["either"]:
            ok, reason = score(part, evidence)
            if ok:
                return True, reason
            reasons.append(reason)
        return False, " / ".join(reasons)
    if "all" in expect and isinstance(expect["all"], list):
        for part in expect["all"]:
            ok, reason = score(part, evidence)
            if not ok:
                return False, reason
        return True, "all expectations hold"
    if expect.get("clarify"):
        return is_clarification(evidence)
    if evidence.error:
        return False, f"the run failed: {evidence.error}"
    if "number" in expect or "numbers" in expect:
        expected = [expect["number"]] if "number" in expect else expect["numbers"]
        if expect.get("near"):
            written = _near_numbers(evidence, [str(t) for t in expect["near"]],
                                    bool(expect.get("words")))
        else:
            written = extract_numbers(evidence.text) + _table_numbers(evidence, len(expected))
        missing = [x for x in expected if not number_found(float(x), written, expect)]
        if missing:
            shown = ", ".join(f"{x:,.6g}" for x in missing[:6])
            return False, f"number not found: {shown}"
        return True, "numbers found"
    if "values" in expect:
        return check_values(expect, evidence)
    if "mentions" in expect:
        return check_mentions(expect, evidence)
    if "significant" in expect:
        verdict = significance_verdict(evidence.text)
        if verdict is None:
            return False, "says neither that the difference is real nor that it is not"
        ok = verdict == bool(expect["significant"])
        return ok, ("the verdict on significance is right" if ok else
                    f"calls the difference {'significant' if verdict else 'not significant'}")
    if "direction" in expect:
        said = direction_of(evidence.text)
        ok = said == expect["direction"]
        return ok, f"reports {said or 'no direction'}; expected {expect['direction']}"
    return False, f"cannot score {expect!r}"


# -- running --------------------------------------------------------------------------------
def default_workers(model: str) -> int:
    """Parallel cases by provider: offline 2, OpenAI-compatible 4, a local model 1."""
    if model.startswith("openai:"):
        return 4
    if model.startswith("local:"):
        return 1
    return 2


def run_case(analyst: Any, case: Case, expect: Any, session: str) -> CaseResult:
    """Ask the case's turns in a fresh session and score the last answer."""
    trace: list[list[dict[str, Any]]] = []
    latency: list[float] = []
    usage = {"model_calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    events: list[Any] = []
    try:
        for question in case.turns:
            started, events = time.perf_counter(), []
            events = list(analyst.stream(question, session, user="eval"))
            latency.append(round((time.perf_counter() - started) * 1000, 1))
            trace.append(_trace(events))
            done = next((e for e in events if isinstance(e, Done)), None)
            if done is not None:
                u = done.usage
                usage["model_calls"] += u.model_calls
                usage["input_tokens"] += u.input_tokens
                usage["output_tokens"] += u.output_tokens
                usage["cost_usd"] = (None if u.cost_usd is None or usage["cost_usd"] is None
                                     else round(usage["cost_usd"] + u.cost_usd, 6))
        done = next((e for e in events if isinstance(e, Done)), None)
        errors = [e.message for e in events if isinstance(e, Error)]
        tables = []
        for e in events:
            if isinstance(e, Table):
                frame = analyst.result(session, e.ref)
                if isinstance(frame, pd.DataFrame):
                    tables.append(frame)
        evidence = Evidence(done.answer if done else "", tables, "; ".join(errors) or None)
        passed, reason = score(expect, evidence)
    except Exception as exc:  # noqa: BLE001 - one broken case must not stop the suite
        evidence = Evidence("", [], f"{type(exc).__name__}: {exc}")
        passed, reason = False, f"crashed: {type(exc).__name__}: {exc}"
    finally:
        _close_session(analyst, session)
    called = [e.tool for e in events if isinstance(e, ToolStarted)]
    tool_ok = None if not case.tool else any(t in called for t in case.tool)
    return CaseResult(
        id=case.id, category=case.category, turns=list(case.turns), passed=passed,
        reason=reason, expected=jsonable(expect) if not isinstance(expect, Exception) else None,
        answer=evidence.text, tool=case.tool, tools_called=called, tool_ok=tool_ok,
        trace=trace, latency_ms=latency, usage=usage, error=evidence.error,
        reference_error=isinstance(expect, EvalError))


def _trace(events: list[Any]) -> list[dict[str, Any]]:
    started = {e.call_id: e for e in events if isinstance(e, ToolStarted)}
    out = []
    for e in events:
        if isinstance(e, ToolFinished):
            args = started[e.call_id].args if e.call_id in started else {}
            sql = e.sql if not e.sql or len(e.sql) <= TRACE_SQL_CHARS else (
                e.sql[:TRACE_SQL_CHARS] + " …")
            step = {"tool": e.tool, "args": jsonable(args), "ok": e.ok, "sql": sql,
                    "rows": e.rows, "ms": e.ms}
            if not e.ok:
                step["error"] = str(e.summary)[:500]
            out.append(step)
    return out


def _close_session(analyst: Any, session: str) -> None:
    """Release the case's DuckDB connection; the session is never used again."""
    with contextlib.suppress(Exception):
        analyst.context(session).workspace.close()


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it is inside it (portable reports)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def default_out(suite: Suite, model: str, root: Path = Path("reports")) -> Path:
    """``reports/<suite>-<model>-<timestamp>/``."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{suite.name}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', model)}-{stamp}"


def latest_out(suite: Suite, model: str, root: Path = Path("reports")) -> Path | None:
    """The newest default report folder of ``suite`` and ``model``, for ``--resume``."""
    prefix = f"{suite.name}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', model)}-"
    found = sorted(p for p in root.glob(prefix + "*") if (p / "report.json").exists())
    return found[-1] if found else None


def run_suite(suite_path: Path | str, settings: Settings | None = None, *,
              workers: int | None = None, limit: int | None = None,
              model_factory: Callable[..., Any] | None = None, out: Path | None = None,
              resume: bool = False, baseline: Path | None = None,
              only: Sequence[str] | None = None, progress: bool = False) -> Report:
    """Run a suite (or, with ``resume``, the cases not yet in ``out``'s report) and report.

    ``settings`` name the model and database (the suite's header may build its own database);
    ``model_factory`` replaces the model (tests); ``limit`` runs at most that many cases;
    ``only`` picks cases by id; ``out`` receives ``report.json`` (rewritten after every case,
    so an interrupted run can be resumed) and ``report.md``; ``baseline`` is an earlier
    report to compare with.
    """
    from agent.analyst import Analyst
    from agent.eval_report import compare_reports

    suite = load_suite(suite_path)
    settings = suite_settings(suite, settings or Settings())
    done: list[CaseResult] = []
    if resume and out is not None and (Path(out) / "report.json").exists():
        earlier = load_report(Path(out))
        if earlier.get("model") != settings.model or earlier.get("suite") != suite.name:
            raise EvalError(f"the report in {out} is of {earlier.get('suite')} with model "
                            f"{earlier.get('model')}; resume it with the same suite and model")
        ids = {c.id for c in suite.cases}
        done = [r for r in previous_results(earlier) if r.id in ids]
    finished_ids = {r.id for r in done}
    todo = [c for c in suite.cases if c.id not in finished_ids
            and (only is None or c.id in only)]
    if limit is not None:
        todo = todo[:max(0, limit)]
    workers = max(1, workers or default_workers(settings.model))
    earlier_report = load_report(Path(baseline)) if baseline is not None else None
    expectations = resolve_suite(suite, settings, todo)
    started = dt.datetime.now().isoformat(timespec="seconds")
    report = Report(suite.name, _shown(suite.path), settings.model, _shown(settings.db), [],
                    len(suite.cases), started, started, workers)
    order = {c.id: i for i, c in enumerate(suite.cases)}
    results = list(done)
    lock = threading.Lock()
    token = uuid.uuid4().hex[:8]

    def record(result: CaseResult) -> None:
        with lock:
            results.append(result)
            results.sort(key=lambda r: order.get(r.id, len(order)))
            report.results = list(results)
            if out is not None:
                Path(out).mkdir(parents=True, exist_ok=True)
                write_json(Path(out), report.to_dict())

    from tqdm import tqdm

    with Analyst(settings, model_factory=model_factory) as analyst, tqdm(
            total=len(todo), desc=f"eval {suite.name}", unit="case",
            disable=not progress) as bar:
        def one(case: Case) -> CaseResult:
            return run_case(analyst, case, expectations[case.id],
                            f"eval-{suite.name}-{case.id}-{token}")

        if workers == 1:
            for case in todo:
                record(one(case))
                bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for future in as_completed([pool.submit(one, c) for c in todo]):
                    record(future.result())
                    bar.update(1)
    report.results = sorted(results, key=lambda r: order.get(r.id, len(order)))
    report.finished = dt.datetime.now().isoformat(timespec="seconds")
    if earlier_report is not None:
        report.baseline = compare_reports(report.to_dict(), earlier_report, str(baseline))
    if out is not None:
        report.write(Path(out))
    return report
