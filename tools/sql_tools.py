"""The SQL tools: list_tables, describe_table and run_sql."""

from __future__ import annotations

import difflib

from tools.base import ToolContext, ToolOutput
from tools.errors import ToolArgumentError
from tools.jsonify import frame_rows, jsonable

PREVIEW_ROWS = 20


def list_tables(ctx: ToolContext) -> ToolOutput:
    """List the tables you can query, with row counts and what each holds.

    Includes the session's own tables (clusters, communities, labels) once they exist.
    """
    catalog = ctx.catalog()
    tables = [
        {"table": t.name, "rows": t.rows, "origin": t.origin, "description": t.description,
         "columns": [c.name for c in t.columns]}
        for t in catalog.tables.values()
    ]
    metrics = [{"metric": m.name, "table": m.table, "sql": m.sql, "unit": m.unit}
               for m in catalog.metrics.values()]
    return ToolOutput(summary={"tables": tables, "metrics": metrics}, rows=len(tables))


def describe_table(ctx: ToolContext, table: str) -> ToolOutput:
    """Describe one table: its columns, types, meanings, and a few example values.

    Args:
        table: the table's name, as given by list_tables.
    """
    catalog = ctx.catalog()
    info = catalog.table(table)
    if info is None:
        close = difflib.get_close_matches(table.lower(), list(catalog.tables), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ToolArgumentError(
            f"unknown table '{table}' — tables are: {', '.join(catalog.tables)}.{hint}"
        )
    columns = []
    for c in info.columns:
        entry: dict[str, object] = {"column": c.name, "type": c.type}
        if c.description:
            entry["description"] = c.description
        if c.unit:
            entry["unit"] = c.unit
        if c.personal:
            entry["personal"] = True
        elif c.values:
            entry["examples"] = list(c.values[:10])
        elif c.min is not None and c.kind in ("number", "time"):
            entry["range"] = [c.min, c.max]
        columns.append(entry)
    metrics = [{"metric": m.name, "sql": m.sql, "unit": m.unit}
               for m in catalog.metrics.values() if m.table == info.name]
    summary = {"table": info.name, "rows": info.rows, "description": info.description,
               "columns": columns, "metrics": metrics}
    return ToolOutput(summary=summary, rows=len(columns))


def run_sql(ctx: ToolContext, sql: str, title: str = "Query result") -> ToolOutput:
    """Run one read-only SELECT over the tables and keep its full result by reference.

    Use bare table names (warehouse and session tables). Aggregate in SQL rather than
    listing raw rows. Returns the first rows, the row count and a ref to the full table.

    Args:
        sql: a single SELECT (CTEs allowed) in DuckDB's dialect.
        title: a short title for the result table, shown to the person.
    """
    result = ctx.workspace.query(sql)
    ref = ctx.results.put_table(result.df, title, result.sql)
    personal = _personal_columns(ctx, list(result.columns))
    preview = result.df.head(PREVIEW_ROWS)
    summary = {
        "ref": ref,
        "columns": list(result.columns),
        "row_count": result.row_count,
        "truncated": result.truncated,
        "rows": [
            [None if col in personal else jsonable(v) for col, v in zip(result.columns, row, strict=True)]
            if personal else row
            for row in frame_rows(preview)
        ],
    }
    if personal:
        summary["withheld_columns"] = sorted(personal)
    if result.truncated:
        summary["note"] = (f"only the first {result.row_count} rows were kept; "
                           "aggregate or filter to see everything")
    return ToolOutput(summary=summary, sql=result.sql, rows=result.row_count, refs=[ref])


def _personal_columns(ctx: ToolContext, columns: list[str]) -> set[str]:
    """Result columns whose name is a personal column of some table (kept out of prompts)."""
    catalog = ctx.catalog()
    personal = {c.name.lower() for t in catalog.tables.values() for c in t.columns if c.personal}
    return {c for c in columns if c.lower() in personal}
