"""The real ``openai:<model>`` path over HTTP: ``make_chat_model`` → ``ChatOpenAI`` → the
``openai`` client → a scripted OpenAI-compatible server (``tests/openai_stub.py``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.analyst import Analyst
from agent.cli import app
from agent.config import Settings
from agent.events import AnswerDelta, Error, Table, ToolFinished, ToolStarted, Usage
from agent.llm import PRICES_PER_MTOK, make_chat_model
from tests.openai_stub import (
    OpenAIStub,
    delay,
    http_error,
    openai_stub_fixture,  # noqa: F401 - the `openai_stub` fixture
    reply,
    tool_call,
)

MODEL = "openai:gpt-4o-mini"
KEY = "sk-test-123"
COUNTRY_SQL = "SELECT country, count(*) AS n FROM plays GROUP BY 1 ORDER BY 1"


def settings(stub: OpenAIStub, db: Path, home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"db": db, "home": home, "model": MODEL, "openai_api_key": KEY,
                              "openai_base_url": stub.url, "llm_timeout_s": 5.0,
                              "llm_max_retries": 2}
    return Settings(**{**values, **overrides})


def kinds(events: list) -> list[str]:
    return [type(e).__name__ for e in events]


def errors(events: list) -> list[str]:
    return [e.message for e in events if isinstance(e, Error)]


def cost(input_tokens: int, output_tokens: int) -> float:
    price_in, price_out = PRICES_PER_MTOK["gpt-4o-mini"]
    return round((input_tokens * price_in + output_tokens * price_out) / 1_000_000, 6)


def same_sql(guarded: str, asked: str) -> bool:
    """The SQL guard re-renders the query and adds a row LIMIT."""
    return guarded.upper().startswith(asked.upper()) and "LIMIT" in guarded.upper()


def one_tool_script() -> list:
    return [
        reply(tool_calls=[tool_call("run_sql", {"sql": COUNTRY_SQL, "title": "Plays by country"},
                                    "call_1")], usage=(120, 20)),
        reply("Brazil has 2 plays and the US 1.", usage=(200, 15)),
    ]


# -- the happy path ------------------------------------------------------------------------
def test_one_tool_question_over_http(openai_stub: OpenAIStub, tiny_db: Path,
                                     isolated_home: Path) -> None:
    openai_stub.script(one_tool_script())
    with Analyst(settings(openai_stub, tiny_db, isolated_home)) as analyst:
        events = list(analyst.stream("How many plays per country?", "s1"))
        assert kinds(events) == ["ToolStarted", "ToolFinished", "Table", "AnswerDelta", "Done"]
        started, finished, table, delta, done = events
        assert started == ToolStarted("call_1", "run_sql",
                                      {"sql": COUNTRY_SQL, "title": "Plays by country"})
        assert finished.ok and finished.rows == 2 and same_sql(finished.sql, COUNTRY_SQL)
        assert table == Table(finished.refs[0], "Plays by country")
        assert analyst.result("s1", table.ref)["n"].tolist() == [2, 1]
        assert delta == AnswerDelta("Brazil has 2 plays and the US 1.")
        assert done.answer == "Brazil has 2 plays and the US 1."
        assert done.usage == Usage(model_calls=2, input_tokens=320, output_tokens=35,
                                   cost_usd=pytest.approx(cost(320, 35)))
        assert done.usage.cost_usd == pytest.approx(6.9e-5)

    assert len(openai_stub.chat_requests) == 2 and openai_stub.remaining == 0
    first, second = openai_stub.chat_requests
    # the first request: key, model, tools with JSON-schema parameters, schema in the prompt
    assert first.method == "POST" and first.path == "/v1/chat/completions"
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.body["model"] == "gpt-4o-mini" and first.body["temperature"] == 0
    from tools.registry import tool_names

    assert first.tool_names == tool_names()  # every registered tool, in the registry's order
    assert {"list_tables", "describe_table", "run_sql", "compare_groups", "cluster_users",
            "detect_communities", "label_segments", "draft_strategy", "make_chart"} <= set(
        first.tool_names)
    params = {t["function"]["name"]: t["function"]["parameters"] for t in first.body["tools"]}
    assert all(t["type"] == "function" and t["function"]["description"]
               for t in first.body["tools"])
    assert params["list_tables"] == {"type": "object", "properties": {}}
    assert params["describe_table"]["required"] == ["table"]
    assert params["describe_table"]["properties"]["table"]["type"] == "string"
    assert params["run_sql"]["type"] == "object" and params["run_sql"]["required"] == ["sql"]
    assert set(params["run_sql"]["properties"]) == {"sql", "title"}
    assert [m["role"] for m in first.messages] == ["system", "user"]
    system = first.messages[0]["content"]
    assert "tiny.duckdb" in system and "plays (3 rows)" in system
    assert "country VARCHAR" in system and "minutes DOUBLE" in system
    assert first.messages[1]["content"] == "How many plays per country?"
    # the second request carries the model's call and the tool's result
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "tool"]
    call = second.messages[2]["tool_calls"][0]
    assert call["id"] == "call_1" and call["function"]["name"] == "run_sql"
    assert json.loads(call["function"]["arguments"]) == {"sql": COUNTRY_SQL,
                                                         "title": "Plays by country"}
    tool_message = second.messages[3]
    assert tool_message["tool_call_id"] == "call_1"
    result = json.loads(tool_message["content"])
    assert result["rows"] == [["BR", 2], ["US", 1]] and result["columns"] == ["country", "n"]
    assert result["ref"] == table.ref
    assert second.headers["authorization"] == f"Bearer {KEY}"


def test_parallel_tool_calls_are_all_answered(openai_stub: OpenAIStub, tiny_db: Path,
                                              isolated_home: Path) -> None:
    openai_stub.script([
        reply(tool_calls=[tool_call("list_tables", {}, "a"),
                          tool_call("describe_table", {"table": "plays"}, "b")]),
        reply("plays has 3 columns."),
    ])
    with Analyst(settings(openai_stub, tiny_db, isolated_home)) as analyst:
        events = list(analyst.stream("what is there?", "s"))
    assert [(e.tool, e.ok) for e in events if isinstance(e, ToolFinished)] == [
        ("list_tables", True), ("describe_table", True)]
    assert events[-1].answer == "plays has 3 columns." and not errors(events)
    tool_messages = [m for m in openai_stub.chat_requests[1].messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["a", "b"]
    described = json.loads(tool_messages[1]["content"])
    assert [c["column"] for c in described["columns"]] == ["user_id", "country", "minutes"]


def test_a_failing_tool_call_goes_back_to_the_model(openai_stub: OpenAIStub, tiny_db: Path,
                                                    isolated_home: Path) -> None:
    openai_stub.script([
        reply(tool_calls=[tool_call("run_sql", {"sql": "SELECT * FROM ploys"}, "bad")]),
        reply(tool_calls=[tool_call("run_sql", {"sql": "SELECT count(*) AS n FROM plays"},
                                    "good")]),
        reply("3 plays."),
    ])
    with Analyst(settings(openai_stub, tiny_db, isolated_home)) as analyst:
        events = list(analyst.stream("plays?", "s"))
    assert events[-1].answer == "3 plays." and not errors(events)
    assert events[-1].usage.model_calls == 3
    error_message = openai_stub.chat_requests[1].messages[-1]
    assert error_message["role"] == "tool" and error_message["tool_call_id"] == "bad"
    assert "unknown table 'ploys'" in error_message["content"]


# -- provider failures ---------------------------------------------------------------------
def test_429_then_success_is_retried(openai_stub: OpenAIStub, tiny_db: Path,
                                     isolated_home: Path) -> None:
    openai_stub.script([http_error(429), http_error(500, headers={"retry-after-ms": "50"}),
                        reply("Fine now.", usage=(50, 5))])
    with Analyst(settings(openai_stub, tiny_db, isolated_home, llm_max_retries=2)) as analyst:
        events = list(analyst.stream("hello?", "s"))
    assert kinds(events) == ["AnswerDelta", "Done"]
    assert events[-1].answer == "Fine now."
    assert events[-1].usage == Usage(1, 50, 5, pytest.approx(cost(50, 5)))
    requests = openai_stub.chat_requests
    assert len(requests) == 3 and requests[0].body == requests[2].body


def test_429_beyond_the_retries_is_a_clear_error(openai_stub: OpenAIStub, tiny_db: Path,
                                                 isolated_home: Path) -> None:
    openai_stub.script([http_error(429), http_error(429), reply("Fine now.")])
    with Analyst(settings(openai_stub, tiny_db, isolated_home, llm_max_retries=1)) as analyst:
        events = list(analyst.stream("hello?", "s"))
        [message] = errors(events)
        assert "rate-limiting us (429) even after 1 retries" in message
        assert events[-1].answer == message
        assert len(openai_stub.chat_requests) == 2
        assert analyst.ask("again?", "s").answer == "Fine now."


def test_timeout_is_a_sentence_and_the_session_survives(openai_stub: OpenAIStub, tiny_db: Path,
                                                        isolated_home: Path) -> None:
    openai_stub.script([delay(4, reply("far too late")), reply("Back again.", usage=(30, 3))])
    config = settings(openai_stub, tiny_db, isolated_home, llm_timeout_s=1, llm_max_retries=0)
    with Analyst(config) as analyst:
        began = time.perf_counter()
        events = list(analyst.stream("how many plays?", "s"))
        assert time.perf_counter() - began < 3.5
        assert kinds(events) == ["Error", "Done"]
        [message] = errors(events)
        assert f"The language model at {openai_stub.url} did not answer within 1 s" in message
        assert "conversation is kept" in message
        assert events[-1].answer == message and events[-1].usage.model_calls == 0

        later = analyst.ask("and in Brazil?", "s")
        assert later.error is None and later.answer == "Back again."
    assert len(openai_stub.chat_requests) == 2
    users = [m["content"] for m in openai_stub.chat_requests[1].messages if m["role"] == "user"]
    assert users == ["how many plays?", "and in Brazil?"]
    audit = [json.loads(line) for line in
             (isolated_home / "audit.jsonl").read_text().splitlines()]
    assert [(r["ok"], r["model"]) for r in audit] == [(False, MODEL), (True, MODEL)]


def test_401_names_the_api_key_and_the_session_survives(openai_stub: OpenAIStub, tiny_db: Path,
                                                        isolated_home: Path) -> None:
    openai_stub.script([http_error(401), reply("Now it works.")])
    with Analyst(settings(openai_stub, tiny_db, isolated_home, llm_max_retries=2)) as analyst:
        events = list(analyst.stream("how many plays?", "s"))
        [message] = errors(events)
        assert "refused the API key (401)" in message and "OPENAI_API_KEY" in message
        assert len(openai_stub.chat_requests) == 1  # a 401 is not retried
        later = analyst.ask("try again", "s")
        assert later.error is None and later.answer == "Now it works."
    users = [m["content"] for m in openai_stub.chat_requests[1].messages if m["role"] == "user"]
    assert users == ["how many plays?", "try again"]


def test_an_error_after_a_tool_keeps_a_valid_conversation(openai_stub: OpenAIStub, tiny_db: Path,
                                                          isolated_home: Path) -> None:
    openai_stub.script([
        reply(tool_calls=[tool_call("run_sql", {"sql": COUNTRY_SQL}, "c1")]),
        http_error(500),
        reply("Brazil leads."),
    ])
    with Analyst(settings(openai_stub, tiny_db, isolated_home, llm_max_retries=0)) as analyst:
        events = list(analyst.stream("plays per country?", "s"))
        assert kinds(events) == ["ToolStarted", "ToolFinished", "Table", "Error", "Done"]
        assert "failed with HTTP 500" in errors(events)[0]
        assert analyst.ask("so who leads?", "s").answer == "Brazil leads."
    # the stub refuses unanswered tool calls as the real API does; this one was answered
    assert [m["role"] for m in openai_stub.chat_requests[2].messages] == [
        "system", "user", "assistant", "tool", "user"]


def test_missing_key_and_base_url_is_an_error_event(openai_stub: OpenAIStub, tiny_db: Path,
                                                    isolated_home: Path) -> None:
    config = Settings(db=tiny_db, home=isolated_home, model=MODEL)
    assert config.openai_api_key is None and config.openai_base_url is None
    with Analyst(config) as analyst:
        events = list(analyst.stream("how many plays?", "s"))
    assert kinds(events) == ["Error", "Done"]
    assert "the model is set to OpenAI but OPENAI_API_KEY is empty" in events[0].message
    assert events[-1].answer == events[0].message and events[-1].usage.model_calls == 0
    assert openai_stub.requests == []


def test_base_url_without_key_sends_a_placeholder(openai_stub: OpenAIStub, tiny_db: Path,
                                                  isolated_home: Path) -> None:
    openai_stub.script([reply("Local server says hi.")])
    config = settings(openai_stub, tiny_db, isolated_home, openai_api_key=None)
    with Analyst(config) as analyst:
        assert analyst.ask("hi", "s").answer == "Local server says hi."
    assert openai_stub.chat_requests[0].headers["authorization"] == "Bearer not-needed"


def test_malformed_tool_arguments_go_back_to_the_model(openai_stub: OpenAIStub, tiny_db: Path,
                                                       isolated_home: Path) -> None:
    openai_stub.script([
        reply(tool_calls=[tool_call("run_sql", '{"sql": "SELECT count(*) FROM plays', "c1")]),
        reply(tool_calls=[tool_call("run_sql", {"sql": "SELECT count(*) AS n FROM plays"},
                                    "c2")]),
        reply("3 plays."),
        reply("Still 3."),
    ])
    with Analyst(settings(openai_stub, tiny_db, isolated_home)) as analyst:
        first = analyst.ask("how many plays?", "s")
        second = analyst.ask("sure?", "s")
    assert first.error is None and first.answer == "3 plays."
    assert second.error is None and second.answer == "Still 3."


# -- the model object itself (streaming, as a UI streaming tokens would use it) -------------
def test_chat_model_streams_with_usage(openai_stub: OpenAIStub, tiny_db: Path,
                                       isolated_home: Path) -> None:
    openai_stub.script([
        reply("Three plays in all.", usage=(12, 4)),
        reply(tool_calls=[tool_call("run_sql", {"sql": "SELECT 1"}, "s1")], usage=(9, 2)),
    ])
    model = make_chat_model(settings(openai_stub, tiny_db, isolated_home), None)  # type: ignore[arg-type]
    chunks = list(model.stream("count the plays"))
    text = chunks[0]
    for chunk in chunks[1:]:
        text = text + chunk
    assert text.content == "Three plays in all."
    assert (text.usage_metadata["input_tokens"], text.usage_metadata["output_tokens"]) == (12, 4)
    calls = list(model.stream("run something"))
    called = calls[0]
    for chunk in calls[1:]:
        called = called + chunk
    assert called.tool_calls == [{"name": "run_sql", "args": {"sql": "SELECT 1"}, "id": "s1",
                                  "type": "tool_call"}]
    body = openai_stub.chat_requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}

    import openai

    client = openai.OpenAI(api_key=KEY, base_url=openai_stub.url)
    assert [m.id for m in client.models.list().data] == ["gpt-4o-mini"]


# -- `atlas ask --json` --------------------------------------------------------------------
def cli_env(stub: OpenAIStub, home: Path, **extra: str) -> dict[str, str]:
    return {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": stub.url, "ATLAS_HOME": str(home),
            "ATLAS_LLM_TIMEOUT_S": "5", "ATLAS_LLM_MAX_RETRIES": "0", **extra}


def test_cli_ask_json_has_the_stable_keys(openai_stub: OpenAIStub, tiny_db: Path,
                                          isolated_home: Path) -> None:
    openai_stub.script(one_tool_script())
    result = CliRunner().invoke(
        app, ["ask", "How many plays per country?", "--db", str(tiny_db), "--model", MODEL,
              "--session", "cli", "--json"],
        env=cli_env(openai_stub, isolated_home))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"answer", "model", "session", "trace", "tables", "usage"}
    assert payload["answer"] == "Brazil has 2 plays and the US 1."
    assert payload["model"] == MODEL and payload["session"] == "cli"
    [step] = payload["trace"]
    assert set(step) == {"tool", "args", "sql", "ok", "rows", "ms"}
    assert step["tool"] == "run_sql" and step["ok"] is True and step["rows"] == 2
    assert step["args"] == {"sql": COUNTRY_SQL, "title": "Plays by country"}
    assert same_sql(step["sql"], COUNTRY_SQL) and isinstance(step["ms"], float)
    [table] = payload["tables"]
    assert set(table) == {"ref", "title", "columns", "rows"}
    assert table["title"] == "Plays by country" and table["columns"] == ["country", "n"]
    assert table["rows"] == [["BR", 2], ["US", 1]]
    usage = payload["usage"]
    assert set(usage) == {"model_calls", "input_tokens", "output_tokens", "cost_usd"}
    assert (usage["model_calls"], usage["input_tokens"], usage["output_tokens"]) == (2, 320, 35)
    assert usage["cost_usd"] == pytest.approx(cost(320, 35))
    assert openai_stub.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_cli_ask_exits_1_on_a_401(openai_stub: OpenAIStub, tiny_db: Path,
                                  isolated_home: Path) -> None:
    openai_stub.script([http_error(401)])
    result = CliRunner().invoke(
        app, ["ask", "How many plays?", "--db", str(tiny_db), "--model", MODEL, "--json"],
        env=cli_env(openai_stub, isolated_home))
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert "refused the API key (401)" in payload["answer"]
    assert payload["trace"] == [] and payload["usage"]["model_calls"] == 0
