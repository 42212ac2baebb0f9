"""Semantic notes: descriptions, synonyms, personal flags and named metrics of a database.

The notes are a YAML file beside the database (see ``sample_db/semantic.yaml`` for the
format). A database without notes still works: every lookup falls back to the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools.errors import AtlasError

PERSONAL_NAME_HINTS = ("_id", "handle", "email", "phone", "ip_address")


@dataclass(frozen=True)
class ColumnNote:
    """What the notes say about one column."""

    description: str = ""
    personal: bool = False
    synonyms: tuple[str, ...] = ()
    unit: str | None = None


@dataclass(frozen=True)
class TableNote:
    """What the notes say about one table."""

    description: str = ""
    synonyms: tuple[str, ...] = ()
    columns: dict[str, ColumnNote] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """A named metric: an aggregate SQL expression over one table."""

    name: str
    table: str
    sql: str
    unit: str = ""
    description: str = ""
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class SemanticNotes:
    """All notes of one database; empty when the database has none."""

    description: str = ""
    tables: dict[str, TableNote] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)

    def table(self, name: str) -> TableNote:
        """The note of ``name`` (an empty note when there is none)."""
        return self.tables.get(name.lower(), TableNote())

    def column(self, table: str, column: str) -> ColumnNote:
        """The note of ``table.column`` (an empty note when there is none)."""
        return self.table(table).columns.get(column.lower(), ColumnNote())

    def is_personal(self, table: str, column: str) -> bool:
        """Whether a column's values may identify a person (never sent to an LLM).

        Without notes, identifier-like names (``*_id``, handles, e-mails) count as personal.
        """
        note = self.table(table).columns.get(column.lower())
        if note is not None:
            return note.personal
        lowered = column.lower()
        return lowered == "id" or any(lowered.endswith(h) for h in PERSONAL_NAME_HINTS)


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def parse_notes(data: dict[str, Any]) -> SemanticNotes:
    """Build :class:`SemanticNotes` from the parsed YAML mapping."""
    tables: dict[str, TableNote] = {}
    for tname, traw in (data.get("tables") or {}).items():
        traw = traw or {}
        columns = {
            str(cname).lower(): ColumnNote(
                description=str((craw or {}).get("description", "")),
                personal=bool((craw or {}).get("personal", False)),
                synonyms=_strings((craw or {}).get("synonyms")),
                unit=(craw or {}).get("unit"),
            )
            for cname, craw in (traw.get("columns") or {}).items()
        }
        tables[str(tname).lower()] = TableNote(
            description=str(traw.get("description", "")),
            synonyms=_strings(traw.get("synonyms")),
            columns=columns,
        )
    metrics: dict[str, Metric] = {}
    for mname, mraw in (data.get("metrics") or {}).items():
        if not mraw or "sql" not in mraw or "table" not in mraw:
            raise AtlasError(f"metric '{mname}' in the semantic notes needs 'table' and 'sql'")
        metrics[str(mname)] = Metric(
            name=str(mname),
            table=str(mraw["table"]).lower(),
            sql=str(mraw["sql"]),
            unit=str(mraw.get("unit", "")),
            description=str(mraw.get("description", "")),
            synonyms=_strings(mraw.get("synonyms")),
        )
    return SemanticNotes(
        description=str(data.get("description", "")), tables=tables, metrics=metrics
    )


def load_notes(path: Path | None) -> SemanticNotes:
    """Load the notes at ``path``; no path means no notes.

    Raises:
        AtlasError: when the file exists but is not valid notes.
    """
    if path is None or not Path(path).exists():
        return SemanticNotes()
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise AtlasError(f"the semantic notes {path} are not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise AtlasError(f"the semantic notes {path} must be a mapping with 'tables'")
    return parse_notes(data)
