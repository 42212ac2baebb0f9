"""What every tool shares: the session context it runs in and the output it returns."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tools.cache import DerivedCache
from tools.catalog import Catalog, build_catalog
from tools.results import ResultStore
from tools.semantic import SemanticNotes

if TYPE_CHECKING:
    from agent.config import Settings
    from tools.workspace import Workspace


@dataclass
class ToolOutput:
    """A tool's answer: a small JSON summary for the model, the rest by reference.

    Attributes:
        summary: what the model reads (first rows, counts, figures); never full tables.
        sql: the SQL the tool ran, shown in the trace.
        rows: rows in the main result, when there is one.
        refs: refs of results kept in the store (tables, charts).
    """

    summary: dict[str, Any]
    sql: str | None = None
    rows: int | None = None
    refs: list[str] = field(default_factory=list)


@dataclass
class ToolContext:
    """Everything a tool may touch for one session."""

    settings: Settings
    workspace: Workspace
    results: ResultStore
    notes: SemanticNotes
    session: str = "default"
    _catalog: Catalog | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def cache_dir(self) -> Path:
        """Atlas's cache of derived results (keyed by database fingerprint)."""
        return Path(self.settings.cache_dir or Path(self.settings.home) / "cache")

    def catalog(self) -> Catalog:
        """The live catalog (warehouse profile cached; refreshed after session tables change)."""
        with self._lock:
            if self._catalog is None:
                self._catalog = build_catalog(self.workspace, self.notes, self.cache_dir)
            return self._catalog

    def save_table(self, name: str, df: pd.DataFrame) -> bool:
        """Create or replace a session table; True when it replaced an existing one."""
        replaced = self.workspace.save_table(name, df)
        with self._lock:
            self._catalog = None
        return replaced


def derived_cache(ctx: ToolContext) -> DerivedCache:
    """The session-independent cache of derived results for ``ctx``'s state directory."""
    return DerivedCache(ctx.cache_dir)
