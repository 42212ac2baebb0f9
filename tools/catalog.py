"""The live catalog: tables, columns, types, sizes and value profiles of the database.

Everything here is read from the database Atlas is pointed at (never from a list in the
code) and merged with the semantic notes. Warehouse profiles are cached in the state
directory by the database fingerprint; session tables are profiled fresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tools.semantic import Metric, SemanticNotes

if TYPE_CHECKING:
    from tools.workspace import Workspace

LOW_CARDINALITY = 60
TOP_LIST_VALUES = 60
CATALOG_VERSION = 2


@dataclass(frozen=True)
class ColumnInfo:
    """One column: its type, notes and a profile of its values."""

    name: str
    type: str
    description: str = ""
    personal: bool = False
    synonyms: tuple[str, ...] = ()
    unit: str | None = None
    distinct: int | None = None
    values: tuple[str, ...] = ()
    min: str | None = None
    max: str | None = None

    @property
    def kind(self) -> str:
        """A coarse kind: 'list', 'bool', 'time', 'number' or 'text'."""
        t = self.type.upper()
        if t.endswith("[]") or t.startswith("LIST") or t.startswith("STRUCT"):
            return "list"
        if t == "BOOLEAN":
            return "bool"
        if t.startswith(("TIMESTAMP", "DATE", "TIME")):
            return "time"
        if t.startswith(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                         "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL",
                         "REAL")):
            return "number"
        return "text"

    @property
    def is_key(self) -> bool:
        """Whether the column looks like an identifier used for joins."""
        return self.name.lower() == "id" or self.name.lower().endswith("_id")


@dataclass(frozen=True)
class TableInfo:
    """One table of the warehouse or of the session."""

    name: str
    origin: str
    rows: int
    columns: tuple[ColumnInfo, ...]
    description: str = ""
    synonyms: tuple[str, ...] = ()

    def column(self, name: str) -> ColumnInfo | None:
        """The column called ``name`` (case-insensitive), if any."""
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)


@dataclass(frozen=True)
class Catalog:
    """All tables Atlas may query, plus the metrics of the notes."""

    tables: dict[str, TableInfo]
    notes: SemanticNotes = field(default_factory=SemanticNotes)

    @property
    def metrics(self) -> dict[str, Metric]:
        """Named metrics whose table exists in this database."""
        return {k: m for k, m in self.notes.metrics.items() if m.table in self.tables}

    def table(self, name: str) -> TableInfo | None:
        """The table called ``name`` (case-insensitive), if any."""
        return self.tables.get(name.lower())

    def schema_text(self, *, include_values: bool = True) -> str:
        """A compact schema summary for a prompt: no personal values, ever."""
        lines: list[str] = []
        if self.notes.description:
            lines.append(self.notes.description.strip())
        for t in self.tables.values():
            head = f"- {t.name} ({t.rows:,} rows{', session table' if t.origin == 'session' else ''})"
            if t.description:
                head += f": {t.description}"
            lines.append(head)
            for c in t.columns:
                bits = [f"    {c.name} {c.type}"]
                if c.description:
                    bits.append(c.description)
                if c.personal:
                    bits.append("[personal: never quote values]")
                elif include_values and c.values and c.kind in ("text", "list"):
                    bits.append("values: " + ", ".join(c.values[:12]))
                if c.kind == "time" and c.min and c.max:
                    # the latest first: relative windows ("last 30 days") count back from it
                    bits.append(f"latest {c.max}, earliest {c.min}")
                lines.append(" — ".join(bits))
        if self.metrics:
            lines.append("Metrics (use these definitions):")
            for m in self.metrics.values():
                unit = f" [{m.unit}]" if m.unit else ""
                lines.append(f"- {m.name} = {m.sql} on {m.table}{unit}: {m.description}")
        return "\n".join(lines)


def calendar_text(catalog: Catalog, *, limit: int = 6) -> str:
    """Ready-made date bounds for the usual relative windows, per latest timestamp.

    One line per last day of the time columns (the latest first): the columns, that day, and
    the bounds of the last 7 and 30 days (that day included), of its month and of the month
    before. A small model copies these instead of doing date arithmetic it gets wrong.
    """
    day = dt.timedelta(days=1)
    lines = []
    found: list[tuple[dt.date, str]] = []
    for t in catalog.tables.values():
        for c in t.columns:
            if c.kind == "time" and c.max:
                try:
                    found.append((dt.date.fromisoformat(c.max[:10]), f"{t.name}.{c.name}"))
                except ValueError:
                    continue
    by_day: dict[dt.date, list[str]] = {}
    for last, where in sorted(found):
        by_day.setdefault(last, []).append(where)
    for last in sorted(by_day, reverse=True)[:limit]:
        where = ", ".join(by_day[last])
        month = last.replace(day=1)
        previous = (month - day).replace(day=1)
        lines.append(
            f"- {where}: last day {last}; last 7 days >= '{last - 6 * day}'; last 30 days >= "
            f"'{last - 29 * day}'; this month >= '{month}'; last month >= '{previous}' and "
            f"< '{month}'; every bound < '{last + day}'")
    return "\n".join(lines)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _profile_table(ws: Workspace, name: str, origin: str, notes: SemanticNotes) -> TableInfo:
    described = ws.frame(f"DESCRIBE {_quote(name)}")
    cols = list(zip(described["column_name"], described["column_type"], strict=True))
    selects = ["count(*) AS n"]
    for i, (cname, ctype) in enumerate(cols):
        q = _quote(cname)
        if not (ctype.endswith("[]") or ctype.startswith(("STRUCT", "MAP"))):
            selects.append(f"approx_count_distinct({q}) AS d{i}")
            selects.append(f"CAST(min({q}) AS VARCHAR) AS lo{i}, CAST(max({q}) AS VARCHAR) AS hi{i}")
    stats = ws.frame(f"SELECT {', '.join(selects)} FROM {_quote(name)}").iloc[0]
    columns: list[ColumnInfo] = []
    for i, (cname, ctype) in enumerate(cols):
        note = notes.column(name, cname)
        personal = notes.is_personal(name, cname)
        distinct = int(stats[f"d{i}"]) if f"d{i}" in stats else None
        info = ColumnInfo(
            name=cname, type=ctype, description=note.description, personal=personal,
            synonyms=note.synonyms, unit=note.unit, distinct=distinct,
            min=None if f"lo{i}" not in stats or stats[f"lo{i}"] is None else str(stats[f"lo{i}"]),
            max=None if f"hi{i}" not in stats or stats[f"hi{i}"] is None else str(stats[f"hi{i}"]),
        )
        values: tuple[str, ...] = ()
        q = _quote(cname)
        if not personal and info.kind == "text" and distinct is not None and distinct <= LOW_CARDINALITY:
            vals = ws.frame(
                f"SELECT {q} AS v FROM {_quote(name)} WHERE {q} IS NOT NULL "
                f"GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT {LOW_CARDINALITY * 2}"
            )
            values = tuple(str(v) for v in vals["v"])
        elif not personal and info.kind == "list" and ctype.upper().startswith("VARCHAR"):
            vals = ws.frame(
                f"SELECT v FROM (SELECT unnest({q}) AS v FROM {_quote(name)}) WHERE v IS NOT NULL "
                f"GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT {TOP_LIST_VALUES}"
            )
            values = tuple(str(v) for v in vals["v"])
        columns.append(ColumnInfo(**{**asdict(info), "values": values}))
    tnote = notes.table(name)
    return TableInfo(
        name=name, origin=origin, rows=int(stats["n"]), columns=tuple(columns),
        description=tnote.description, synonyms=tnote.synonyms,
    )


def _to_json(tables: list[TableInfo]) -> str:
    return json.dumps({"version": CATALOG_VERSION, "tables": [asdict(t) for t in tables]})


def _from_json(text: str) -> list[TableInfo] | None:
    data = json.loads(text)
    if data.get("version") != CATALOG_VERSION:
        return None
    out = []
    for t in data["tables"]:
        cols = tuple(
            ColumnInfo(**{**c, "synonyms": tuple(c["synonyms"]), "values": tuple(c["values"])})
            for c in t["columns"]
        )
        out.append(TableInfo(**{**t, "columns": cols, "synonyms": tuple(t["synonyms"])}))
    return out


def build_catalog(ws: Workspace, notes: SemanticNotes, cache_dir: Path | None = None) -> Catalog:
    """Profile every warehouse and session table that ``ws`` can query.

    Args:
        ws: the session's workspace.
        notes: the semantic notes of the database (possibly empty).
        cache_dir: where warehouse profiles are cached by fingerprint (None: no cache).
    """
    warehouse: list[TableInfo] | None = None
    cache_file = None
    if cache_dir is not None:
        raw = json.dumps(asdict(notes), sort_keys=True, default=str).encode()
        notes_key = hashlib.sha256(raw).hexdigest()[:10]
        cache_file = Path(cache_dir) / f"catalog-{ws.fingerprint()}-{notes_key}.json"
        if cache_file.exists():
            warehouse = _from_json(cache_file.read_text(encoding="utf-8"))
    if warehouse is None:
        warehouse = [_profile_table(ws, t, "warehouse", notes) for t in ws.warehouse_tables]
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp")
            tmp.write_text(_to_json(warehouse), encoding="utf-8")
            tmp.replace(cache_file)
    session = [_profile_table(ws, t, "session", notes) for t in ws.session_tables]
    tables = {t.name.lower(): t for t in [*warehouse, *session]}
    return Catalog(tables=tables, notes=notes)
