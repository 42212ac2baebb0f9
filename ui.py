"""Atlas's chat page (Gradio): renders the agent's event stream; no analysis logic here."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import gradio as gr

from agent.analyst import Analyst
from agent.config import Settings
from agent.events import AnswerDelta, Chart, Done, Error, Table, ToolFinished, ToolStarted
from tools.jsonify import frame_rows

EXAMPLES = [
    "What data do we have?",
    "How many people watched videos from Brazil in the last 7 days?",
    "Which 5 hashtags get the most views?",
    "Show me daily watch time over time",
]
PREVIEW_ROWS = 15


def _markdown_table(df: Any, limit: int = PREVIEW_ROWS) -> str:
    columns = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame_rows(df, limit):
        lines.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    if len(df) > limit:
        lines.append(f"\n_{limit} of {len(df):,} rows shown._")
    return "\n".join(lines)


def _tool_box(event: ToolStarted) -> dict[str, Any]:
    args = {k: v for k, v in event.args.items() if k != "sql"}
    body = f"```json\n{json.dumps(args, default=str)}\n```" if args else ""
    if "sql" in event.args:
        body += f"\n```sql\n{event.args['sql']}\n```"
    return {"role": "assistant", "content": body or "…",
            "metadata": {"title": f"🔧 {event.tool}", "id": event.call_id, "status": "pending"}}


def respond(analyst: Analyst, question: str, history: list[dict[str, Any]], session: str,
            user: str = "ui") -> Iterator[list[dict[str, Any]]]:
    """Answer ``question``, yielding the chat history as it grows."""
    history = [*history, {"role": "user", "content": question}]
    yield history
    boxes: dict[str, dict[str, Any]] = {}
    for event in analyst.stream(question, session, user=user):
        if isinstance(event, ToolStarted):
            box = _tool_box(event)
            boxes[event.call_id] = box
            history.append(box)
        elif isinstance(event, ToolFinished):
            box = boxes.get(event.call_id)
            if box is not None:
                meta = box["metadata"]
                meta["status"] = "done"
                meta["duration"] = event.ms / 1000
                if event.sql:
                    box["content"] = f"```sql\n{event.sql}\n```"
                if not event.ok:
                    meta["title"] = f"⚠️ {event.tool} failed"
                    box["content"] += f"\n\n{event.summary}"
                elif event.rows is not None:
                    box["content"] += f"\n\n{event.rows:,} rows"
        elif isinstance(event, Table):
            df = analyst.result(session, event.ref)
            history.append({"role": "assistant",
                            "content": f"**{event.title}** ({event.ref})\n\n{_markdown_table(df)}"})
        elif isinstance(event, Chart):
            history.append({"role": "assistant",
                            "content": gr.Plot(analyst.result(session, event.ref))})
        elif isinstance(event, AnswerDelta):
            history.append({"role": "assistant", "content": event.text})
        elif isinstance(event, Error):
            history.append({"role": "assistant", "content": f"⚠️ {event.message}"})
        elif isinstance(event, Done):
            pass
        yield history


def build_app(settings: Settings, analyst: Analyst | None = None) -> gr.Blocks:
    """The Gradio app for ``settings`` (one Analyst shared by every browser session)."""
    analyst = analyst or Analyst(settings)
    mode = "offline mode (no LLM)" if settings.model == "offline" else f"model {settings.model}"
    with gr.Blocks(title="Atlas") as app:
        gr.Markdown(f"## Atlas — ask about our viewers and videos\n"
                    f"<small>{mode} · database `{settings.db.name}`</small>")
        session = gr.State(lambda: uuid.uuid4().hex)
        chatbot = gr.Chatbot(height=560, label="Atlas")
        question = gr.Textbox(placeholder="Ask a question in plain words…", show_label=False)
        gr.Examples(EXAMPLES, inputs=question)

        def on_submit(text: str, history: list[dict[str, Any]], sid: str,
                      request: gr.Request) -> Iterator[tuple[str, list[dict[str, Any]]]]:
            user = getattr(request, "username", None) or "ui"
            for h in respond(analyst, text, history or [], sid, user=user):
                yield "", h

        question.submit(on_submit, [question, chatbot, session], [question, chatbot],
                        concurrency_limit=8)
    return app


def launch(settings: Settings, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the chat page."""
    app = build_app(settings)
    app.queue(default_concurrency_limit=8).launch(server_name=host, server_port=port)
