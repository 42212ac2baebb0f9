"""The chat page: rendering, reopening a chat after a restart, and several people at once."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

import tools.registry as registry
from agent.analyst import Analyst
from agent.chat_render import history_messages, stream_messages
from agent.config import Settings
from tests.model import ScriptedChatModel, answer, call, tool_turn
from tools.sql_tools import run_sql


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stream_then_reopen_after_restart_renders_the_same_chat(tiny_db: Path,
                                                                 isolated_home: Path) -> None:
    script = [tool_turn(call("run_sql", "c1", sql="SELECT country, sum(minutes) AS m FROM plays "
                                                "GROUP BY 1 ORDER BY 2 DESC", title="By country")),
              answer("Brazil leads with 15 minutes.")]
    settings = Settings(db=tiny_db, home=isolated_home)
    with Analyst(settings, model_factory=lambda ctx: ScriptedChatModel(steps=list(script))) as a:
        live = list(stream_messages(a, "minutes by country", "chat1", [], "ui"))[-1]
    with Analyst(settings, model_factory=lambda ctx: ScriptedChatModel(steps=[])) as again:
        reopened = history_messages(again, "chat1")

    def shape(messages: list[dict]) -> list[str]:
        out = []
        for m in messages:
            content = m["content"]
            kind = type(content).__name__ if not isinstance(content, str | dict) else "text"
            title = (m.get("metadata") or {}).get("title", "")
            out.append(f"{m['role']}:{kind}:{title}")
        return out

    assert shape(live) == shape(reopened) == [
        "user:text:", "assistant:text:Tool: run_sql", "assistant:HTML:", "assistant:text:",
        "assistant:text:"]
    box = live[1]
    assert box["metadata"]["status"] == "done" and "LIMIT" in box["content"]
    assert "15" in live[2]["content"].value and "By country" in live[2]["content"].value
    assert Path(live[3]["content"]["path"]).read_text().startswith("country,m")
    assert live[-1]["content"] == "Brazil leads with 15 minutes."


def test_errors_are_chat_messages_and_the_chat_goes_on(tiny_db: Path, isolated_home: Path) -> None:
    def boom(messages: list) -> AIMessage:
        raise RuntimeError("model exploded")

    steps = [boom, answer("Fine again.")]
    settings = Settings(db=tiny_db, home=isolated_home)
    with Analyst(settings, model_factory=lambda ctx: ScriptedChatModel(steps=steps)) as a:
        first = list(stream_messages(a, "first", "s", [], "ui"))[-1]
        assert first[-1]["content"].startswith("**Problem:**")
        assert "Traceback" not in first[-1]["content"]
        second = list(stream_messages(a, "second", "s", first, "ui"))[-1]
        assert second[-1]["content"] == "Fine again."


def _slow_run_sql(ctx, sql: str, title: str = "Query result"):
    time.sleep(1.0)
    return run_sql(ctx, sql, title)


def _per_session_model(ctx) -> ScriptedChatModel:
    def ask_sql(messages: list) -> AIMessage:
        number = int(str(messages[-1].content).split()[-1])
        return tool_turn(call("run_sql", "q", sql=f"SELECT {number} * 7 AS n"))

    def reply(messages: list) -> AIMessage:
        rows = json.loads(messages[-1].content)["rows"]
        return answer(f"The answer for {ctx.session} is {rows[0][0]}.")

    return ScriptedChatModel(steps=[ask_sql, reply])


def test_eight_sessions_at_once_through_the_gradio_api(tiny_db: Path, isolated_home: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from gradio_client import Client

    import ui

    slow = tuple(_slow_run_sql if f is run_sql else f for f in registry.TOOL_FUNCTIONS)
    monkeypatch.setattr(registry, "TOOL_FUNCTIONS", slow)
    monkeypatch.setattr(_slow_run_sql, "__name__", "run_sql")
    monkeypatch.setattr(_slow_run_sql, "__doc__", run_sql.__doc__)
    settings = Settings(db=tiny_db, home=isolated_home)
    analyst = Analyst(settings, model_factory=_per_session_model)
    port = free_port()
    app = ui.launch(settings, port=port, analyst=analyst, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        started = time.perf_counter()
        single = client.predict("number 100", "warmup", api_name="/ask")
        single_s = time.perf_counter() - started
        assert single == "The answer for warmup is 700."

        answers: dict[int, str] = {}

        def ask(i: int) -> None:
            answers[i] = client.predict(f"number {i}", f"user-{i}", api_name="/ask")

        started = time.perf_counter()
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        together_s = time.perf_counter() - started
        assert answers == {i: f"The answer for user-{i} is {7 * i}." for i in range(8)}
        assert single_s >= 1.0
        print(f"one question {single_s:.2f} s; eight sessions at once {together_s:.2f} s")
        # eight 1-second tool calls in parallel: clearly less than running them one by one
        assert together_s < 0.5 * 8 * single_s, (together_s, single_s)
    finally:
        app.close()
        analyst.close()


def test_login_is_required_when_configured_and_named_in_the_audit(
        tiny_db: Path, isolated_home: Path) -> None:
    from gradio_client import Client

    import ui

    script = [answer("hello")]
    settings = Settings(db=tiny_db, home=isolated_home, ui_auth="ann:s3cret")
    analyst = Analyst(settings, model_factory=lambda ctx: ScriptedChatModel(steps=list(script)))
    port = free_port()
    app = ui.launch(settings, port=port, analyst=analyst, block=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(Exception):  # noqa: B017 - gradio_client's error type varies
            Client(url, verbose=False, download_files=False).predict("hi", "s", api_name="/ask")
        client = Client(url, verbose=False, download_files=False, auth=("ann", "s3cret"))
        assert client.predict("hi", "s", api_name="/ask") == "hello"
    finally:
        app.close()
        analyst.close()
    record = json.loads((isolated_home / "audit.jsonl").read_text().splitlines()[-1])
    assert record["who"] == "ann"


def test_auth_setting_is_validated() -> None:
    import ui

    assert ui.auth_pair(None) is None
    assert ui.auth_pair("ann:s3:cret") == ("ann", "s3:cret")
    with pytest.raises(ValueError, match="user:password"):
        ui.auth_pair("no-colon")
