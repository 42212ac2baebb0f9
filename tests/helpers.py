"""Small builders shared by the tool tests."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from agent.config import Settings
from tools.base import ToolContext
from tools.results import ResultStore
from tools.semantic import SemanticNotes
from tools.workspace import Workspace


def make_ctx(db: Path, home: Path, notes: SemanticNotes, floor: int = 20,
             session: str = "s") -> ToolContext:
    """A tool context over ``db`` with its state in ``home`` and a privacy floor."""
    settings = Settings(db=db, home=home, privacy_floor=floor)
    return ToolContext(settings=settings, workspace=Workspace(db, home, session),
                       results=ResultStore(home / "results" / session), notes=notes,
                       session=session)


def write_tables(path: Path, frames: dict[str, pd.DataFrame]) -> Path:
    """Write each DataFrame as a table of a new DuckDB file at ``path``."""
    con = duckdb.connect(str(path))
    try:
        for name, frame in frames.items():
            con.register("frame", frame)
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
            con.unregister("frame")
    finally:
        con.close()
    return path
