"""Turning the event stream into terminal output and into `atlas ask --json`."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table as RichTable

from agent.analyst import Analyst
from agent.events import Done, Error, Event, Table, ToolFinished, ToolStarted
from tools.jsonify import frame_rows, jsonable

JSON_TABLE_ROWS = 50


def answer_json(analyst: Analyst, session: str, events: list[Event]) -> dict[str, Any]:
    """The stable `atlas ask --json` object for one answered question."""
    started = {e.call_id: e for e in events if isinstance(e, ToolStarted)}
    trace = [
        {"tool": e.tool, "args": jsonable(started[e.call_id].args if e.call_id in started else {}),
         "sql": e.sql, "ok": e.ok, "rows": e.rows, "ms": float(e.ms)}
        for e in events if isinstance(e, ToolFinished)
    ]
    tables = []
    for e in events:
        if isinstance(e, Table):
            df = analyst.result(session, e.ref)
            tables.append({"ref": e.ref, "title": e.title, "columns": [str(c) for c in df.columns],
                           "rows": frame_rows(df, JSON_TABLE_ROWS)})
    done = next((e for e in events if isinstance(e, Done)), Done(answer=""))
    return {"answer": done.answer, "model": analyst.settings.model, "session": session,
            "trace": trace, "tables": tables, "usage": asdict(done.usage)}


def print_answer(console: Console, analyst: Analyst, session: str, events: list[Event],
                 *, show_trace: bool = True) -> None:
    """Print the answer, its tables (first rows) and the trace."""
    done = next((e for e in events if isinstance(e, Done)), None)
    errors = [e for e in events if isinstance(e, Error)]
    for e in errors:
        console.print(f"[red]{e.message}[/red]")
    if done and done.answer and not errors:
        console.print(Markdown(done.answer))
    for e in events:
        if isinstance(e, Table):
            df = analyst.result(session, e.ref)
            table = RichTable(title=f"{e.title} ({e.ref}, {len(df):,} rows)", title_justify="left")
            for column in df.columns:
                table.add_column(str(column))
            for row in frame_rows(df, 10):
                table.add_row(*["" if v is None else str(v) for v in row])
            console.print(table)
    if not show_trace:
        return
    started = {e.call_id: e for e in events if isinstance(e, ToolStarted)}
    for e in events:
        if isinstance(e, ToolFinished):
            args = started[e.call_id].args if e.call_id in started else {}
            head = (f"{'✓' if e.ok else '✗'} {e.tool}  {e.ms:.0f} ms"
                    + (f"  {e.rows:,} rows" if e.rows is not None else ""))
            body: Any = Syntax(e.sql, "sql", word_wrap=True) if e.sql else json.dumps(
                jsonable({k: v for k, v in args.items() if k != "sql"}) or {})
            if not e.ok:
                body = f"{body}\n{e.summary}"
            console.print(Panel(body, title=head, title_align="left", border_style="dim"))
    if done:
        u = done.usage
        cost = "n/a" if u.cost_usd is None else f"${u.cost_usd:.4f}"
        console.print(f"[dim]model {analyst.settings.model}: {u.model_calls} calls, "
                      f"{u.input_tokens:,} in / {u.output_tokens:,} out tokens, cost {cost}[/dim]")
