"""Chat messages for the web page, built from the event stream or from a saved session.

Both paths produce the same shapes (Gradio's message dicts), so a chat reopened after a
restart looks like it did while it streamed.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agent.analyst import Analyst
from agent.events import (
    AnswerDelta,
    Chart,
    Done,
    Error,
    Event,
    Table,
    ToolFinished,
    ToolStarted,
)
from tools.catalog import Catalog
from tools.workspace import session_filename

Message = dict[str, Any]
PREVIEW_ROWS = 12


def tool_box(call_id: str, tool: str, args: dict[str, Any]) -> Message:
    """A collapsible, pending box for one tool call (arguments and SQL)."""
    shown = {k: v for k, v in args.items() if k != "sql"}
    body = f"```json\n{json.dumps(shown, default=str, indent=1)}\n```\n" if shown else ""
    if args.get("sql"):
        body += f"```sql\n{args['sql']}\n```"
    return {"role": "assistant", "content": body or "(no arguments)",
            "metadata": {"title": f"Tool: {tool}", "id": call_id, "status": "pending"}}


def finish_box(box: Message, ok: bool, sql: str | None, rows: int | None, ms: float,
               error: str | None = None) -> None:
    """Mark a tool box done, with the exact SQL that ran, its rows and its duration."""
    meta = box["metadata"]
    meta["status"] = "done"
    meta["duration"] = round(ms / 1000, 2)
    if sql:
        before = box["content"].split("```sql")[0]
        box["content"] = f"{before}```sql\n{sql}\n```"
    if not ok:
        meta["title"] = meta["title"] + " (failed)"
        box["content"] += f"\n\n{error}"
    elif rows is not None:
        box["content"] += f"\n\n{rows:,} rows"


def export_csv(analyst: Analyst, session: str, ref: str) -> Path:
    """Write a result table as CSV under ATLAS_HOME/exports (once) and return its path."""
    folder = Path(analyst.settings.home) / "exports" / session_filename(session)
    path = folder / f"{ref}.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        analyst.result(session, ref).to_csv(path, index=False)
    return path.resolve()


def result_messages(analyst: Analyst, session: str, ref: str, kind: str, title: str
                    ) -> list[Message]:
    """A table preview plus its CSV download, or an inline chart.

    (Gradio 6 does not render a Dataframe inside a chat message, so the preview is HTML and
    the sortable table sits in the page's results panel.)
    """
    value = analyst.result(session, ref)
    if kind == "chart":
        return [{"role": "assistant", "content": gr.Plot(value, label=title)}]
    return [
        {"role": "assistant", "content": gr.HTML(html_table(value, title, ref))},
        {"role": "assistant", "content": {"path": str(export_csv(analyst, session, ref)),
                                          "alt_text": f"{ref}.csv"}},
    ]


def html_table(df: Any, title: str, ref: str, limit: int = PREVIEW_ROWS) -> str:
    """An escaped HTML preview of a result table with its title and size."""
    more = (f"first {limit} of {len(df):,} rows; sort or download below"
            if len(df) > limit else f"{len(df):,} rows")
    caption = f"<div class='atlas-table-title'><b>{html.escape(title)}</b> ({ref}, {more})</div>"
    body = df.head(limit).to_html(index=False, escape=True, border=0, na_rep="",
                                  classes="atlas-table", float_format=lambda v: f"{v:,.4g}")
    return caption + body


def report_messages(analyst: Analyst, session: str, refs: list[str]) -> list[Message]:
    """A download link for every Markdown report among ``refs`` (strategy answers)."""
    results = analyst.context(session).results
    out: list[Message] = []
    for ref in refs:
        if results.meta(ref).kind == "report":
            out.append({"role": "assistant", "content": {
                "path": str(results.path(ref).resolve()), "alt_text": f"{ref} strategy report.md"}})
    return out


def stream_messages(analyst: Analyst, question: str, session: str, history: list[Message],
                    user: str) -> Iterator[list[Message]]:
    """The history plus this question's messages, re-yielded at every event."""
    history = [*history, {"role": "user", "content": question}]
    yield history
    boxes: dict[str, Message] = {}
    for event in analyst.stream(question, session, user=user):
        history.extend(_event_messages(analyst, session, event, boxes))
        yield history


def _event_messages(analyst: Analyst, session: str, event: Event,
                    boxes: dict[str, Message]) -> list[Message]:
    if isinstance(event, ToolStarted):
        boxes[event.call_id] = tool_box(event.call_id, event.tool, event.args)
        return [boxes[event.call_id]]
    if isinstance(event, ToolFinished):
        if event.call_id in boxes:
            finish_box(boxes[event.call_id], event.ok, event.sql, event.rows, event.ms,
                       None if event.ok else str(event.summary))
        return report_messages(analyst, session, event.refs)
    if isinstance(event, Table | Chart):
        kind = "chart" if isinstance(event, Chart) else "table"
        return result_messages(analyst, session, event.ref, kind, event.title)
    if isinstance(event, AnswerDelta):
        return [{"role": "assistant", "content": event.text}]
    if isinstance(event, Error):
        return [{"role": "assistant", "content": f"**Problem:** {event.message}"}]
    if isinstance(event, Done):
        return []
    return []


def history_messages(analyst: Analyst, session: str) -> list[Message]:
    """Re-render a saved conversation (after a restart, or when a chat is reopened)."""
    out: list[Message] = []
    boxes: dict[str, Message] = {}
    for message in analyst.history(session):
        if isinstance(message, HumanMessage):
            out.append({"role": "user", "content": str(message.content)})
        elif isinstance(message, AIMessage):
            for call in message.tool_calls:
                boxes[call["id"]] = tool_box(call["id"], call["name"], call["args"])
                out.append(boxes[call["id"]])
            if not message.tool_calls and message.content:
                out.append({"role": "assistant", "content": str(message.content)})
        elif isinstance(message, ToolMessage):
            art = message.artifact if isinstance(message.artifact, dict) else {}
            ok = message.status != "error"
            if message.tool_call_id in boxes:
                finish_box(boxes[message.tool_call_id], ok, art.get("sql"), art.get("rows"),
                           float(art.get("ms") or 0), art.get("error"))
            for ref in art.get("refs", []):
                try:
                    meta = analyst.context(session).results.meta(ref)
                except Exception:  # noqa: BLE001 - a lost result must not hide the chat
                    continue
                if meta.kind == "report":
                    out.extend(report_messages(analyst, session, [ref]))
                else:
                    out.extend(result_messages(analyst, session, ref, meta.kind, meta.title))
    return out


def follow_up_suggestions(catalog: Catalog, asked: str) -> list[str]:
    """Two or three follow-ups a person might ask next, from the live catalog."""
    dims = [c.name.replace("_", " ") for t in catalog.tables.values() if t.origin == "warehouse"
            for c in t.columns if not c.personal and c.kind == "text" and c.values
            and c.distinct is not None and 2 <= c.distinct <= 12]
    out = []
    for dim in dims:
        if dim not in asked.lower():
            out.append(f"Now split that by {dim}")
            break
    out.append("Show that over time")
    out.append("Only the last 30 days")
    return out
