"""Graph tests with a scripted tool-calling model: exact assertions on messages and events."""

from __future__ import annotations

import json
from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from agent.analyst import Analyst
from agent.config import Settings
from agent.events import AnswerDelta, Done, Error, Table, ToolFinished, ToolStarted
from tests.model import ScriptedChatModel, answer, call, tool_turn


def make(tiny_db: Path, home: Path, steps: list, **overrides) -> tuple[Analyst, ScriptedChatModel]:
    model = ScriptedChatModel(steps=steps)
    settings = Settings(db=tiny_db, home=home, **overrides)
    return Analyst(settings, model_factory=lambda ctx: model), model


def kinds(events: list) -> list[str]:
    return [type(e).__name__ for e in events]


def test_one_tool_call_then_answer(tiny_db: Path, isolated_home: Path) -> None:
    analyst, model = make(tiny_db, isolated_home, [
        tool_turn(call("run_sql", "c1", sql="SELECT count(*) AS n FROM plays", title="Plays")),
        answer("There are 3 plays."),
    ])
    events = list(analyst.stream("how many plays?", "s1"))
    assert kinds(events) == ["ToolStarted", "ToolFinished", "Table", "AnswerDelta", "Done"]
    started, finished, table, delta, done = events
    assert started == ToolStarted("c1", "run_sql", {"sql": "SELECT count(*) AS n FROM plays",
                                                     "title": "Plays"})
    assert finished.ok and finished.rows == 1 and "LIMIT" in finished.sql.upper()
    assert table == Table(finished.refs[0], "Plays")
    assert delta == AnswerDelta("There are 3 plays.")
    assert done.answer == "There are 3 plays."
    assert (done.usage.model_calls, done.usage.input_tokens, done.usage.output_tokens) == (2, 20, 20)
    assert model.bound_tools[:3] == ["list_tables", "describe_table", "run_sql"]
    second = model.seen[1]
    assert [type(m) for m in second] == [SystemMessage, HumanMessage, AIMessage, ToolMessage]
    assert json.loads(second[3].content)["rows"] == [[3]]
    assert "plays" in second[0].content  # the schema summary is in the system prompt
    assert analyst.result("s1", finished.refs[0])["n"].tolist() == [3]
    analyst.close()


def test_several_tools_in_a_row(tiny_db: Path, isolated_home: Path) -> None:
    analyst, model = make(tiny_db, isolated_home, [
        tool_turn(call("list_tables", "a")),
        tool_turn(call("describe_table", "b", table="plays")),
        tool_turn(call("run_sql", "c", sql="SELECT country, sum(minutes) AS m FROM plays "
                                          "GROUP BY 1 ORDER BY 2 DESC")),
        answer("BR watched 15 minutes."),
    ])
    events = list(analyst.stream("minutes per country", "s"))
    tools = [e.tool for e in events if isinstance(e, ToolFinished)]
    assert tools == ["list_tables", "describe_table", "run_sql"]
    described = json.loads(model.seen[2][-1].content)
    assert [c["column"] for c in described["columns"]] == ["user_id", "country", "minutes"]
    assert described["columns"][0].get("personal") is True  # *_id without notes is personal
    assert json.loads(model.seen[3][-1].content)["rows"] == [["BR", 15.0], ["US", 7.0]]
    assert events[-1].answer == "BR watched 15 minutes."
    analyst.close()


def test_tool_error_is_returned_to_the_model_which_recovers(tiny_db: Path,
                                                            isolated_home: Path) -> None:
    analyst, model = make(tiny_db, isolated_home, [
        tool_turn(call("run_sql", "bad", sql="SELECT * FROM ploys")),
        tool_turn(call("run_sql", "good", sql="SELECT count(*) FROM plays")),
        answer("3 plays."),
    ])
    events = list(analyst.stream("plays?", "s"))
    failed = [e for e in events if isinstance(e, ToolFinished) and not e.ok]
    assert len(failed) == 1 and "unknown table 'ploys'" in failed[0].summary
    error_message = model.seen[1][-1]
    assert isinstance(error_message, ToolMessage) and error_message.status == "error"
    assert "plays" in error_message.content  # the message names the real tables
    assert events[-1] == Done(answer="3 plays.", usage=events[-1].usage)
    assert not any(isinstance(e, Error) for e in events)
    analyst.close()


def test_unknown_tool_and_bad_arguments_are_fixable(tiny_db: Path, isolated_home: Path) -> None:
    analyst, model = make(tiny_db, isolated_home, [
        tool_turn(call("drop_everything", "x"), call("describe_table", "y", tabel="plays")),
        answer("ok"),
    ])
    events = list(analyst.stream("do it", "s"))
    errors = {e.call_id: e.summary for e in events if isinstance(e, ToolFinished)}
    assert "there is no tool 'drop_everything'" in errors["x"]
    assert "invalid arguments for describe_table" in errors["y"] and "table" in errors["y"]
    assert events[-1].answer == "ok"
    analyst.close()


def test_step_limit_ends_with_an_honest_sentence(tiny_db: Path, isolated_home: Path) -> None:
    loop = [tool_turn(call("list_tables", f"l{i}")) for i in range(10)]
    analyst, model = make(tiny_db, isolated_home, loop, max_steps=3)
    events = list(analyst.stream("loop forever", "s"))
    assert len(model.seen) == 3
    assert events[-1].answer.startswith("I could not finish this within 3 steps")
    assert events[-1].usage.model_calls == 3
    analyst.close()


def test_token_budget_stops_the_turn(tiny_db: Path, isolated_home: Path) -> None:
    steps = [tool_turn(call("list_tables", f"l{i}"), tokens=800) for i in range(5)]
    analyst, model = make(tiny_db, isolated_home, steps, token_budget=2000)
    events = list(analyst.stream("expensive", "s"))
    assert len(model.seen) == 2  # 1,600 tokens after one call, 3,200 after two: stop
    assert "token budget (3,200 of 2,000 tokens)" in events[-1].answer
    assert (events[-1].usage.input_tokens, events[-1].usage.output_tokens) == (1600, 1600)
    analyst.close()


def test_memory_across_turns_and_a_restart(tiny_db: Path, isolated_home: Path) -> None:
    analyst, model = make(tiny_db, isolated_home, [
        tool_turn(call("run_sql", "q1", sql="SELECT count(*) AS n FROM plays")),
        answer("3 plays."),
        answer("Of those, 2 are from Brazil."),
    ])
    list(analyst.stream("how many plays?", "mem"))
    list(analyst.stream("and only in Brazil?", "mem"))
    second_turn = model.seen[2]
    assert [type(m).__name__ for m in second_turn] == [
        "SystemMessage", "HumanMessage", "AIMessage", "ToolMessage", "AIMessage", "HumanMessage"]
    analyst.context("mem").save_table("my_segment", __import__("pandas").DataFrame({"user_id": [1]}))
    analyst.close()

    again, model2 = make(tiny_db, isolated_home, [answer("Still 3.")])
    list(again.stream("remind me?", "mem"))
    restored = model2.seen[0]
    assert [m.content for m in restored if isinstance(m, HumanMessage)] == [
        "how many plays?", "and only in Brazil?", "remind me?"]
    assert "my_segment" in again.context("mem").workspace.session_tables
    # another session shares nothing
    other, model3 = make(tiny_db, isolated_home, [answer("new")])
    list(other.stream("hello", "other"))
    assert [type(m).__name__ for m in model3.seen[0]] == ["SystemMessage", "HumanMessage"]
    assert "my_segment" not in other.context("other").workspace.session_tables
    again.close()
    other.close()


def test_audit_line_per_question(tiny_db: Path, isolated_home: Path) -> None:
    analyst, _ = make(tiny_db, isolated_home, [
        tool_turn(call("run_sql", "q", sql="SELECT 1 AS one")), answer("one")])
    list(analyst.stream("one?", "aud", user="alice"))
    analyst.close()
    lines = (isolated_home / "audit.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    assert record["who"] == "alice" and record["session"] == "aud" and record["question"] == "one?"
    assert record["tools"][0]["tool"] == "run_sql" and "SELECT 1" in record["tools"][0]["sql"]
    assert record["model"] == "offline" and record["db_fingerprint"] and record["prompt_version"]
