"""Atlas's chat page (Gradio). It renders the agent's event stream; no analysis logic here.

`atlas ui` (and `make run`) serve it on 127.0.0.1. Chats are kept per browser: the list of
this browser's chat ids lives in its local storage, the conversations in ATLAS_HOME.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import gradio as gr

from agent.analyst import Analyst
from agent.chat_render import follow_up_suggestions, history_messages, stream_messages
from agent.config import Settings

EXAMPLES = [
    "What data do we have?",
    "Which 10 countries watch the most hours of video?",
    "What are the most popular hashtags this month?",
    "How many new users signed up each week?",
]
CONCURRENCY = 16
Message = dict[str, Any]


def _chat_choices(chats: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(c.get("title") or c["id"][:8], c["id"]) for c in reversed(chats)]


def _remember(chats: list[dict[str, str]], session: str, question: str) -> list[dict[str, str]]:
    if any(c["id"] == session for c in chats):
        return chats
    return [*chats, {"id": session, "title": question[:60]}]


def _results_panel(analyst: Analyst, session: str) -> tuple[Any, Any]:
    """The session's result tables for the dropdown, and the newest one shown sortable."""
    metas = [m for m in analyst.context(session).results.refs() if m.kind == "table"]
    if not metas:
        return gr.update(choices=[], value=None), None
    choices = [(f"{m.ref}: {m.title}", m.ref) for m in reversed(metas)]
    return gr.update(choices=choices, value=metas[-1].ref), _display(analyst.result(session, metas[-1].ref))


def _display(df: Any) -> Any:
    """A table for people: floats rounded (the CSV keeps full precision)."""
    return df.round(3) if df is not None else None


def build_app(settings: Settings, analyst: Analyst | None = None) -> gr.Blocks:
    """The chat page for ``settings``; one Analyst serves every browser session."""
    analyst = analyst or Analyst(settings)
    mode = "offline mode (built-in parser, no LLM)" if settings.model == "offline" \
        else f"model `{settings.model}`"

    with gr.Blocks(title="Atlas") as app:
        gr.Markdown(f"## Atlas — ask about our viewers and videos\n"
                    f"<span id='atlas-status'>{mode} · database `{settings.db.name}`</span>")
        chats = gr.BrowserState([], storage_key="atlas-chats")
        session = gr.State(lambda: uuid.uuid4().hex)
        with gr.Row():
            with gr.Column(scale=1, min_width=200):
                new_chat = gr.Button("+ New chat", elem_id="new-chat")
                chat_list = gr.Radio(choices=[], label="Your earlier chats", elem_id="chat-list")
            with gr.Column(scale=4):
                chatbot = gr.Chatbot(height=620, label="Atlas", elem_id="chat",
                                     placeholder="Ask a question in plain words, for example "
                                                 "one of those below.")
                with gr.Row():
                    question = gr.Textbox(placeholder="Ask a question…", show_label=False,
                                          scale=5, elem_id="question")
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                    stop = gr.Button("Stop", scale=1, elem_id="stop")
                gr.Examples(EXAMPLES, inputs=question, label="Try one of these")
                with gr.Accordion("Result tables (sortable; click a column header)", open=True):
                    result_pick = gr.Dropdown(choices=[], label="Table", elem_id="result-pick")
                    result_table = gr.Dataframe(interactive=False, elem_id="result-table",
                                                max_height=420)

        def answer(text: str, sid: str, known: list[dict[str, str]], request: gr.Request
                   ) -> Iterator[tuple[Any, ...]]:
            text = (text or "").strip()
            if not text:
                yield gr.update(), gr.update(), known, gr.update(), gr.update(), gr.update()
                return
            user = getattr(request, "username", None) or "ui"
            known = _remember(known or [], sid, text)
            history = history_messages(analyst, sid)
            last: list[Message] = history
            listing = gr.update(choices=_chat_choices(known), value=sid)
            for last in stream_messages(analyst, text, sid, history, user):
                yield "", last, known, listing, gr.update(), gr.update()
            if last and last[-1]["role"] == "assistant":
                options = follow_up_suggestions(analyst.context(sid).catalog(), text)
                last[-1] = {**last[-1], "options": [{"value": o} for o in options]}
            yield "", last, known, listing, *_results_panel(analyst, sid)

        outputs = [question, chatbot, chats, chat_list, result_pick, result_table]
        asked = question.submit(answer, [question, session, chats], outputs,
                                concurrency_limit=CONCURRENCY)
        clicked = send.click(answer, [question, session, chats], outputs,
                             concurrency_limit=CONCURRENCY)
        stop.click(None, cancels=[asked, clicked])

        def pick_option(sid: str, known: list[dict[str, str]], evt: gr.SelectData,
                        request: gr.Request) -> Iterator[tuple[Any, ...]]:
            yield from answer(str(evt.value.get("value") if isinstance(evt.value, dict)
                                  else evt.value), sid, known, request)

        chatbot.option_select(pick_option, [session, chats], outputs,
                              concurrency_limit=CONCURRENCY)

        def start_new() -> tuple[Any, ...]:
            return (uuid.uuid4().hex, [], gr.update(value=None),
                    gr.update(choices=[], value=None), None)

        new_chat.click(start_new, None, [session, chatbot, chat_list, result_pick, result_table])

        def reopen(sid: str | None, current: str) -> tuple[Any, ...]:
            if not sid:
                return current, gr.update(), gr.update(), gr.update()
            return sid, history_messages(analyst, sid), *_results_panel(analyst, sid)

        chat_list.input(reopen, [chat_list, session],
                        [session, chatbot, result_pick, result_table])

        def show_result(ref: str | None, sid: str) -> Any:
            return _display(analyst.result(sid, ref)) if ref else None

        result_pick.input(show_result, [result_pick, session], [result_table])

        def on_load(known: list[dict[str, str]]) -> Any:
            return gr.update(choices=_chat_choices(known or []))

        app.load(on_load, [chats], [chat_list])

        def ask_api(text: str, sid: str, request: gr.Request) -> str:
            """Answer one question in a session and return the answer text (for scripts)."""
            user = getattr(request, "username", None) or "api"
            return analyst.ask(text, sid, user=user).answer

        gr.api(ask_api, api_name="ask", concurrency_limit=CONCURRENCY)
    return app


def auth_pair(value: str | None) -> tuple[str, str] | None:
    """Parse ATLAS_UI_AUTH ('user:password') into Gradio's auth pair."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("ATLAS_UI_AUTH must look like user:password")
    return user, password


def launch(settings: Settings, host: str = "127.0.0.1", port: int = 7860,
           analyst: Analyst | None = None, block: bool = True) -> gr.Blocks:
    """Serve the chat page (login when ATLAS_UI_AUTH is set)."""
    app = build_app(settings, analyst)
    app.queue(default_concurrency_limit=CONCURRENCY)
    app.launch(server_name=host, server_port=port, auth=auth_pair(settings.ui_auth),
               allowed_paths=[str(settings.home)], prevent_thread_lock=not block,
               show_error=False, quiet=not block)
    return app
