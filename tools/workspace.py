"""One session's view of the data: a locked-down DuckDB connection (ARCHITECTURE decisions 4, 5, 9).

The connection is an in-memory DuckDB database that attaches the warehouse READ_ONLY as ``wh``
and the session's own state file read-write as ``sess``; ``search_path`` makes bare table names
resolve to both (warehouse first). External access, Python replacement scans and extension
loading are switched off, a memory limit and thread count are set, and the configuration is
locked. Untrusted SQL goes through :func:`tools.sql_guard.guard_sql` first (:meth:`Workspace.query`);
SQL built by Atlas's own tools runs unguarded but under the same limits (:meth:`Workspace.frame`).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd

from tools.errors import (
    AtlasError,
    QueryError,
    QueryMemoryExceeded,
    QueryTimeout,
    SessionTableClash,
    SqlRejected,
    ToolArgumentError,
)
from tools.sql_guard import guard_sql

if TYPE_CHECKING:
    from agent.config import Settings

WAREHOUSE = "wh"
SESSION = "sess"
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_COLUMN_MISSING = (
    re.compile(r'Referenced column "([^"]+)" not found'),
    re.compile(r'does not have a column named "([^"]+)"'),
)


class SessionBusy(AtlasError):
    """The session's state file is held by another open workspace."""


@dataclass
class QueryResult:
    """The outcome of one query: the SQL that ran, at most ``row_limit`` rows, and timing."""

    sql: str
    df: pd.DataFrame
    truncated: bool
    ms: float

    @property
    def columns(self) -> list[str]:
        """Column names of the result."""
        return [str(c) for c in self.df.columns]

    @property
    def row_count(self) -> int:
        """Rows in :attr:`df` (after the row cap)."""
        return len(self.df)


def session_filename(session: str) -> str:
    """A safe file stem for a session id: ``[A-Za-z0-9_-]`` kept, plus a hash when changed."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", session)[:64]
    if safe != session or not safe:
        safe = f"{safe}-{hashlib.sha256(session.encode()).hexdigest()[:8]}"
    return safe


class Workspace:
    """A session's DuckDB connection: warehouse read-only, session tables read-write.

    Safe to share between threads: calls are serialized on one connection (a DuckDB cursor
    would not inherit the connection-local ``search_path``).
    """

    def __init__(
        self,
        db_path: Path,
        state_dir: Path,
        session: str = "default",
        *,
        timeout_s: float = 30.0,
        row_limit: int = 10_000,
        memory_limit: str = "4GB",
        threads: int = 2,
    ) -> None:
        self.db_path = Path(db_path).resolve()
        self.session = session
        self.timeout_s = float(timeout_s)
        self.row_limit = int(row_limit)
        self.memory_limit = memory_limit
        if not self.db_path.is_file():
            raise AtlasError(f"the warehouse {self.db_path} does not exist; check ATLAS_DB or --db")
        stem = session_filename(session)
        sessions_dir = Path(state_dir) / "sessions"
        sessions_dir.mkdir(parents=True, exist_ok=True)
        self.session_path = (sessions_dir / f"{stem}.duckdb").resolve()
        temp_dir = (Path(state_dir) / "tmp" / stem).resolve()
        temp_dir.parent.mkdir(parents=True, exist_ok=True)  # DuckDB makes only the last level

        self._lock = threading.RLock()
        self._interrupt_lock = threading.Lock()
        self._running: object | None = None  # token of the statement now running
        self._fingerprint: str | None = None
        self._closed = False
        self._con = duckdb.connect(":memory:")
        try:
            self._open(temp_dir, threads)
            self._warehouse_tables = self._list_tables(WAREHOUSE)
        except BaseException:
            self._con.close()
            raise

    def _open(self, temp_dir: Path, threads: int) -> None:
        con = self._con
        try:
            con.execute(f"ATTACH {_literal(self.db_path)} AS {WAREHOUSE} (READ_ONLY)")
        except duckdb.Error as error:
            raise AtlasError(
                f"could not open the warehouse {self.db_path}: {_first_line(error)}"
            ) from error
        try:
            con.execute(f"ATTACH {_literal(self.session_path)} AS {SESSION}")
        except (duckdb.ResourceInUseException, duckdb.IOException) as error:
            if not re.search(r"lock|conflict|already attached", str(error), re.IGNORECASE):
                raise AtlasError(
                    f"could not open the session file {self.session_path}: {_first_line(error)}"
                ) from error
            raise SessionBusy(
                f"session '{self.session}' is open in another Atlas process (or twice in this "
                "one); close it there or use another session id"
            ) from error
        # lock_configuration freezes the global settings; search_path is connection-local and
        # stays changeable (the guard rejects SET and USE, so untrusted SQL cannot change it).
        settings = [
            f"SET search_path = '{WAREHOUSE}.main,{SESSION}.main'",
            "SET enable_progress_bar = false",
            f"SET temp_directory = {_literal(temp_dir)}",
            f"SET memory_limit = {_literal(self.memory_limit)}",
            f"SET threads = {int(threads)}",
            "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false",
            "SET allow_community_extensions = false",
            "SET python_enable_replacements = false",
            "SET enable_external_access = false",
            "SET lock_configuration = true",
        ]
        for statement in settings:
            try:
                con.execute(statement)
            except duckdb.Error as error:
                raise AtlasError(
                    f"could not configure DuckDB ({statement}): {_first_line(error)}"
                ) from error

    @classmethod
    def from_settings(cls, settings: Settings, session: str = "default") -> Workspace:
        """Open the workspace of ``session`` for ``settings.db``, with state in ``settings.home``."""
        return cls(
            settings.db,
            settings.home,
            session,
            timeout_s=settings.sql_timeout_s,
            row_limit=settings.sql_row_limit,
            memory_limit=settings.sql_memory_limit,
            threads=settings.sql_threads,
        )

    # -- catalog -----------------------------------------------------------------------------

    @property
    def warehouse_tables(self) -> list[str]:
        """Tables and views of the warehouse's main schema, sorted."""
        return list(self._warehouse_tables)

    @property
    def session_tables(self) -> list[str]:
        """Tables this session has saved, sorted."""
        with self._lock:
            self._check_open()
            return self._list_tables(SESSION)

    def table_names(self) -> list[str]:
        """Every table a query may name: warehouse tables, then session tables."""
        return self.warehouse_tables + self.session_tables

    def _list_tables(self, catalog: str) -> list[str]:
        rows = self._con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = ? AND table_schema = 'main' ORDER BY table_name",
            [catalog],
        ).fetchall()
        return [str(r[0]) for r in rows]

    # -- queries -----------------------------------------------------------------------------

    def query(self, sql: str, *, timeout_s: float | None = None) -> QueryResult:
        """Run untrusted SQL: guarded (one read-only SELECT over known tables), row-capped.

        Returns at most ``row_limit`` rows; ``truncated`` tells whether more existed. Raises
        :class:`SqlRejected` / :class:`UnknownTable` from the guard, :class:`QueryTimeout`,
        :class:`QueryMemoryExceeded` or :class:`QueryError` from DuckDB.
        """
        guarded = guard_sql(sql, self.table_names(), self.row_limit + 1)
        start = time.perf_counter()
        df = self._run(guarded.sql, None, timeout_s, guarded.tables)
        ms = (time.perf_counter() - start) * 1000
        truncated = len(df) > self.row_limit
        if truncated:
            df = df.iloc[: self.row_limit].reset_index(drop=True)
        return QueryResult(sql=guarded.sql, df=df, truncated=truncated, ms=ms)

    def frame(
        self, sql: str, params: list[Any] | None = None, *, timeout_s: float | None = None
    ) -> pd.DataFrame:
        """Run SQL built by Atlas's tools (never user text): no guard and no row cap, but the
        same connection, time limit and memory limit as :meth:`query`."""
        return self._run(sql, params, timeout_s, frozenset())

    def _run(
        self,
        sql: str,
        params: list[Any] | None,
        timeout_s: float | None,
        tables: frozenset[str],
    ) -> pd.DataFrame:
        limit = self.timeout_s if timeout_s is None else float(timeout_s)
        with self._lock:
            self._check_open()
            token = object()
            timed_out = threading.Event()

            def stop() -> None:
                # Only interrupt the statement this timer was started for, never the next one.
                with self._interrupt_lock:
                    if self._running is token:
                        timed_out.set()
                        self._con.interrupt()

            self._running = token
            timer = threading.Timer(limit, stop)
            timer.daemon = True
            timer.start()
            try:
                result = self._con.execute(sql, params) if params else self._con.execute(sql)
                return _plain_frame(result.df())
            except duckdb.Error as error:
                raise self._translate(error, limit, timed_out.is_set(), tables) from error
            finally:
                with self._interrupt_lock:
                    self._running = None
                timer.cancel()

    def _translate(
        self, error: duckdb.Error, limit: float, timed_out: bool, tables: frozenset[str]
    ) -> AtlasError:
        if isinstance(error, duckdb.InterruptException):
            if timed_out:
                return QueryTimeout(
                    f"stopped after {limit:g} s; add filters or aggregate before listing rows"
                )
            return QueryError("the query was interrupted")
        if isinstance(error, duckdb.OutOfMemoryException):
            return QueryMemoryExceeded(
                f"the query needed more than {self.memory_limit} of memory; aggregate or filter first"
            )
        if isinstance(error, duckdb.PermissionException):
            return SqlRejected("the query tried to reach files or settings, which is not allowed")
        text = str(error)
        for pattern in _COLUMN_MISSING:
            match = pattern.search(text)
            if match:
                return QueryError(self._unknown_column(match.group(1), text, tables))
        return QueryError(_first_line(error))

    def _unknown_column(self, column: str, text: str, tables: frozenset[str]) -> str:
        message = f'unknown column "{column}"'
        try:
            everything = self._con.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_catalog IN (?, ?) AND table_schema = 'main' "
                "ORDER BY table_name, ordinal_position", [WAREHOUSE, SESSION]).fetchall()
        except duckdb.Error:
            everything = []
        columns: dict[str, list[str]] = {}
        for table, name in everything:
            if not table.startswith("__atlas"):
                columns.setdefault(table, []).append(name)
        mine = {t: cols for t, cols in columns.items() if t.lower() in tables}
        elsewhere = _found_elsewhere(column.rsplit(".", 1)[-1], mine, columns)
        hint = None if elsewhere else re.search(r"Candidate bindings:[ :]*(.+)", text)
        if hint:
            candidates = re.findall(r'"([^"]+)"', hint.group(1))
            if candidates:
                message += " (did you mean " + " or ".join(f'"{c}"' for c in candidates) + "?)"
        for table, cols in mine.items():
            message += f"; columns of {table}: {', '.join(cols)}"
        return message + elsewhere

    # -- session tables ----------------------------------------------------------------------

    def save_table(self, name: str, df: pd.DataFrame) -> bool:
        """Create or replace the session table ``name`` from ``df``; True if it replaced one.

        Raises :class:`SessionTableClash` when ``name`` is a warehouse table and
        :class:`ToolArgumentError` when it is not a lowercase identifier.
        """
        self._check_session_name(name)
        view = f"__atlas_save_{uuid.uuid4().hex}"
        with self._lock:
            self._check_open()
            existed = name in self._list_tables(SESSION)
            self._con.register(view, df)
            try:
                self._con.execute(
                    f'CREATE OR REPLACE TABLE {SESSION}.main."{name}" AS SELECT * FROM "{view}"'
                )
            except duckdb.Error as error:
                raise QueryError(f"could not save table {name}: {_first_line(error)}") from error
            finally:
                self._con.unregister(view)
        return existed

    def drop_table(self, name: str) -> None:
        """Drop the session table ``name`` (nothing happens when it does not exist)."""
        self._check_session_name(name)
        with self._lock:
            self._check_open()
            self._con.execute(f'DROP TABLE IF EXISTS {SESSION}.main."{name}"')

    def _check_session_name(self, name: str) -> None:
        if not _TABLE_NAME.fullmatch(name):
            raise ToolArgumentError(
                f"'{name}' is not a valid table name; use lowercase letters, digits and _"
            )
        if name in {t.lower() for t in self._warehouse_tables}:
            raise SessionTableClash(
                f"'{name}' is a warehouse table; give the session table another name"
            )

    # -- identity and lifetime ---------------------------------------------------------------

    def fingerprint(self) -> str:
        """16 hex chars identifying the warehouse: path, size, mtime, tables and row counts."""
        if self._fingerprint is None:
            stat = self.db_path.stat()
            parts = [str(self.db_path), str(stat.st_size), str(stat.st_mtime_ns)]
            with self._lock:
                self._check_open()
                rows = self._con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = ? "
                    "AND schema_name = 'main' ORDER BY table_name",
                    [WAREHOUSE],
                ).fetchall()
                for (table,) in rows:
                    count = self._con.execute(
                        f'SELECT count(*) FROM {WAREHOUSE}.main."{_ident(table)}"'
                    ).fetchall()[0][0]
                    parts.append(f"table {table} {count}")
            base_tables = {r[0] for r in rows}
            parts.extend(f"view {v}" for v in self._warehouse_tables if v not in base_tables)
            self._fingerprint = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
        return self._fingerprint

    def close(self) -> None:
        """Close the connection (session tables are checkpointed to the state file)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._con.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise AtlasError("this workspace is closed")


def _literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return name.replace('"', '""')


def _found_elsewhere(column: str, mine: dict[str, list[str]],
                     columns: dict[str, list[str]]) -> str:
    """Where else ``column`` is, and the shared id column to join on: the hint a model needs
    when it asks a table (of ``mine``) for another table's column. ``customer_segment`` also
    finds ``customers.segment`` (a column named with its table's name in front)."""
    wanted = column.lower()
    hints = []
    for other, cols in columns.items():
        if other in mine:
            continue
        names = {f"{prefix}_{c.lower()}": c for c in cols
                 for prefix in {other.lower(), other.lower().removesuffix("s")}}
        names.update({c.lower(): c for c in cols})
        if wanted not in names:
            continue
        theirs = {c.lower() for c in cols}
        keys = [(t, c.lower()) for t, own in mine.items() for c in own
                if c.lower() in theirs and (c.lower().endswith("_id") or c.lower() == "id")]
        join = (f" (join {other} ON {keys[0][0]}.{keys[0][1]} = {other}.{keys[0][1]})"
                if keys else "")
        hints.append(f"{other} has {names[wanted]}{join}")
    return "; " + "; ".join(hints[:3]) if hints else ""


def _first_line(error: BaseException) -> str:
    line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^[A-Za-z ]*Error: ", "", line)[:300]


def _plain(value: Any) -> Any:
    """DuckDB hands lists back as numpy arrays (also inside structs): make them Python lists."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _plain_frame(df: pd.DataFrame) -> pd.DataFrame:
    for column in df.columns:
        series = df[column]
        if series.dtype == object:
            sample = series.dropna()
            if len(sample) and isinstance(sample.iloc[0], np.ndarray | dict | list):
                df[column] = series.map(_plain, na_action="ignore")
    return df
