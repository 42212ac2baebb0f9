"""`Analyst`: the front door every front-end uses.

``Analyst(settings).stream(question, session)`` runs the agent for one question and
yields the typed events of :mod:`agent.events`; ``Analyst.result(session, ref)`` returns
the DataFrame or figure behind a ref.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.sqlite import SqliteSaver

import prompts
from agent.audit import append_audit
from agent.config import Settings
from agent.events import (
    AnswerDelta,
    Chart,
    Done,
    Error,
    Event,
    Table,
    ToolFinished,
    ToolStarted,
    Usage,
)
from agent.graph import build_graph
from agent.llm import describe_llm_error, estimate_cost, make_chat_model
from tools.base import ToolContext
from tools.catalog import calendar_text
from tools.errors import AtlasError
from tools.registry import SMALL_MODEL_TOOLS, build_tools
from tools.results import ResultStore
from tools.semantic import load_notes
from tools.workspace import Workspace, session_filename

ModelFactory = Callable[[ToolContext], BaseChatModel]


@dataclass
class _Session:
    context: ToolContext
    graph: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Tally:
    """Model calls and tokens of one question, kept even when the turn fails midway."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, message: AIMessage) -> None:
        usage = message.usage_metadata or {}
        # the graph's own step-limit/budget messages are not model calls
        if usage or message.tool_calls or message.invalid_tool_calls or message.response_metadata:
            self.calls += 1
        self.input_tokens += int(usage.get("input_tokens", 0))
        self.output_tokens += int(usage.get("output_tokens", 0))

    def usage(self, model: str) -> Usage:
        cost = estimate_cost(model, self.input_tokens, self.output_tokens)
        return Usage(self.calls, self.input_tokens, self.output_tokens, cost)


@dataclass
class Answer:
    """A whole answer, collected from the event stream."""

    answer: str = ""
    events: list[Event] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    error: str | None = None


class Analyst:
    """Runs questions for any number of sessions over one database and model."""

    def __init__(self, settings: Settings | None = None, *,
                 model_factory: ModelFactory | None = None) -> None:
        self.settings = settings or Settings()
        self._model_factory = model_factory or (lambda ctx: make_chat_model(self.settings, ctx))
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        home = Path(self.settings.home)
        home.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(home / "checkpoints.sqlite", check_same_thread=False)
        self._checkpointer = SqliteSaver(self._db)
        self.notes = load_notes(self.settings.semantic_path)

    # -- sessions -------------------------------------------------------------------------
    def context(self, session: str) -> ToolContext:
        """The tool context (workspace, results, catalog) of ``session``."""
        return self._session(session).context

    def _session(self, session: str) -> _Session:
        with self._lock:
            found = self._sessions.get(session)
            if found is not None:
                return found
            if not Path(self.settings.db).exists():
                raise AtlasError(f"there is no database at {self.settings.db}; run `make setup` "
                                 "or point ATLAS_DB / --db at a DuckDB file")
            workspace = Workspace.from_settings(self.settings, session)
            results = ResultStore(Path(self.settings.home) / "results" / session_filename(session))
            ctx = ToolContext(settings=self.settings, workspace=workspace, results=results,
                              notes=self.notes, session=session)
            model = self._model_factory(ctx)
            small = self.settings.small_profile
            tools = build_tools(ctx, list(SMALL_MODEL_TOOLS) if small else None)
            graph = build_graph(
                model, tools, lambda: self.system_prompt(ctx),
                max_steps=self.settings.max_steps, token_budget=self.settings.token_budget,
                checkpointer=self._checkpointer,
            )
            found = _Session(context=ctx, graph=graph)
            self._sessions[session] = found
            return found

    def system_prompt(self, ctx: ToolContext) -> str:
        """The system prompt: rules plus the live schema and metric notes (no personal values)."""
        catalog = ctx.catalog()
        if self.settings.small_profile:
            return prompts.render("system_small", database=Path(self.settings.db).name,
                                  schema=catalog.schema_text(), calendar=calendar_text(catalog))
        return prompts.render("system", database=Path(self.settings.db).name,
                              schema=catalog.schema_text())

    def result(self, session: str, ref: str) -> Any:
        """The DataFrame or plotly figure behind ``ref`` in ``session``."""
        return self._session(session).context.results.get(ref)

    def history(self, session: str) -> list[Any]:
        """The session's messages, oldest first (empty for a new session)."""
        state = self._session(session).graph.get_state({"configurable": {"thread_id": session}})
        return list(state.values.get("messages", [])) if state and state.values else []

    # -- answering --------------------------------------------------------------------------
    def stream(self, question: str, session: str = "default", *, user: str = "cli") -> Iterator[Event]:
        """Answer ``question`` in ``session``, yielding events; always ends with Done."""
        started = time.perf_counter()
        trace: list[dict[str, Any]] = []
        answer, error = "", None
        tally = _Tally()
        try:
            sess = self._session(session)
        except AtlasError as exc:
            yield Error(str(exc))
            yield Done(answer=str(exc), usage=Usage())
            return
        with sess.lock:
            try:
                for event in self._run(sess, question, session, tally):
                    if isinstance(event, ToolFinished):
                        trace.append({"tool": event.tool, "sql": event.sql, "ok": event.ok})
                    if isinstance(event, Done):
                        answer = event.answer
                        continue
                    yield event
            except Exception as exc:  # noqa: BLE001 - every failure ends in a sentence
                error = (describe_llm_error(exc, self.settings)
                         if not isinstance(exc, AtlasError) else str(exc))
                error = error or (f"Something went wrong while answering ({type(exc).__name__}). "
                                  "Your conversation is kept; try again or rephrase.")
                answer = error
                yield Error(error)
        append_audit(Path(self.settings.home), {
            "who": user, "session": session, "question": question, "tools": trace,
            "model": self.settings.model, "prompt_version": prompts.version("system"),
            "db_fingerprint": sess.context.workspace.fingerprint(), "ok": error is None,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        })
        yield Done(answer=answer, usage=tally.usage(self.settings.model))

    def _run(self, sess: _Session, question: str, session: str, tally: _Tally
             ) -> Iterator[Event]:
        config = {"configurable": {"thread_id": session},
                  "recursion_limit": 2 * self.settings.max_steps + 6}
        inputs = {"messages": [HumanMessage(question)], "steps": 0,
                  "input_tokens": 0, "output_tokens": 0}
        final = ""
        started: dict[str, float] = {}
        for update in sess.graph.stream(inputs, config, stream_mode="updates"):
            for node, delta in update.items():
                if not delta:
                    continue
                for message in delta.get("messages", []):
                    if node == "model" and isinstance(message, AIMessage):
                        tally.add(message)
                        for call in message.tool_calls:
                            started[call["id"]] = time.perf_counter()
                            yield ToolStarted(call["id"], call["name"], dict(call["args"]))
                        if not message.tool_calls and not message.invalid_tool_calls:
                            final = _text(message)
                            if final:
                                yield AnswerDelta(final)
                    elif isinstance(message, ToolMessage):
                        yield from self._tool_events(sess, message, started)
        yield Done(answer=final, usage=tally.usage(self.settings.model))

    def _tool_events(self, sess: _Session, message: ToolMessage,
                     started: dict[str, float]) -> Iterator[Event]:
        art = message.artifact if isinstance(message.artifact, dict) else {}
        ok = message.status != "error" and art.get("ok", True)
        ms = art.get("ms") or round((time.perf_counter() - started.get(message.tool_call_id,
                                                                       time.perf_counter())) * 1000, 1)
        summary = art.get("summary") if ok else art.get("error", _text(message))
        yield ToolFinished(message.tool_call_id, message.name or "", bool(ok), summary,
                           art.get("sql"), art.get("rows"), float(ms), list(art.get("refs", [])))
        for ref in art.get("refs", []):
            meta = sess.context.results.meta(ref)
            if meta.kind == "table":
                yield Table(ref, meta.title)
            elif meta.kind == "chart":
                yield Chart(ref, meta.title)

    def ask(self, question: str, session: str = "default", *, user: str = "cli") -> Answer:
        """Answer ``question`` and collect the whole stream."""
        out = Answer()
        for event in self.stream(question, session, user=user):
            out.events.append(event)
            if isinstance(event, Error):
                out.error = event.message
            if isinstance(event, Done):
                out.answer, out.usage = event.answer, event.usage
        return out

    def close(self) -> None:
        """Close every session's workspace and the checkpointer."""
        with self._lock:
            for sess in self._sessions.values():
                sess.context.workspace.close()
            self._sessions.clear()
        self._db.close()

    def __enter__(self) -> Analyst:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(message: Any) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
