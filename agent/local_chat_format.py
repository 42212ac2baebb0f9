"""Qwen2.5's chat format (ChatML with tools), written and read by Atlas itself.

The prompt follows the official Qwen2.5 template for tool use: the system prompt, then a
``# Tools`` section listing one JSON schema per line inside ``<tools></tools>``; the model
answers a call as ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``; tool results go
back in a user turn as ``<tool_response>`` blocks. Formatting the prompt here (instead of
llama.cpp's chat handlers) keeps tools and results in the prompt and the layout stable, so
that the system prompt and the tool list form a prefix llama.cpp evaluates once.

:func:`parse_reply` turns the model's text into LangChain tool calls: ``<tool_call>`` blocks,
or fenced / bare JSON objects naming a bound tool; unparsable JSON becomes an invalid call.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
STOP = [IM_END, "<|endoftext|>", IM_START]
DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
TOOLS_HEADER = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_FOOTER = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
JSON_INSTRUCTION = "\n\nAnswer with one JSON object that matches this JSON schema:\n{schema}"
TOOL_TURN_HINT = ("Answer the question from these results in plain sentences with the numbers, "
                  "or call another tool if they are not enough.")
TOOL_ERROR_HINT = ("The call failed: read the error, fix the arguments (for SQL: the tables, "
                   "columns and joins it names) and call the tool again.")
"""Closes every turn of tool results (the error hint when a call failed): a small model
otherwise tends to echo the JSON, to describe the call it just made instead of answering, or
to answer a failed call from its imagination."""
DESCRIPTION_CHARS = 220
PARAM_CHARS = 90
OPTIONAL_PARAM_CHARS = 72


# ---------------------------------------------------------------- compact tool schemas


def _first_sentences(text: str, limit: int) -> str:
    """The first sentence of ``text`` on one line, cut at ``limit`` characters."""
    flat = " ".join(text.split())
    match = re.search(r"(?<=[.!?])\s+(?=[A-Z])", flat)
    first = flat[:match.start()] if match else flat
    if len(first) <= limit:
        return first
    cut = first[:limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:(") + "…"


def _compact_param(schema: dict[str, Any], required: bool) -> dict[str, Any]:
    """One parameter's schema without titles, ``null`` alternatives or null defaults; an
    optional parameter keeps its description only when it is short."""
    dropped = ("title", "anyOf", "default", "additionalProperties")
    out = {k: v for k, v in schema.items() if k not in dropped}
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        out = {**{k: v for k, v in options[0].items() if k not in dropped}, **out}
    elif options:
        out["anyOf"] = [{k: v for k, v in s.items() if k not in dropped} for s in options]
    if schema.get("default") is not None:
        out["default"] = schema["default"]
    if isinstance(out.get("description"), str):
        short = _first_sentences(out["description"], PARAM_CHARS)
        if required or (len(short) <= OPTIONAL_PARAM_CHARS and not short.endswith("…")):
            out["description"] = short
        else:
            del out["description"]
    order = ["type", "description", "enum", "items", "anyOf", "default"]
    return {k: out[k] for k in sorted(out, key=lambda k: order.index(k) if k in order else 99)}


def compact_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style tool schema, shortened for a small model's prompt.

    Keeps the name, the first sentence of the description and each parameter's type, enum,
    non-null default and first-sentence description (an optional one's only when short).
    """
    fn = tool.get("function", tool)
    params = fn.get("parameters") or {}
    required = set(params.get("required") or [])
    props = {name: _compact_param(p, name in required)
             for name, p in (params.get("properties") or {}).items()}
    compact: dict[str, Any] = {"type": "object", "properties": props}
    if params.get("required"):
        compact["required"] = list(params["required"])
    return {"type": "function", "function": {
        "name": fn["name"], "description": _first_sentences(fn.get("description", ""),
                                                            DESCRIPTION_CHARS),
        "parameters": compact}}


# ---------------------------------------------------------------- prompt


def _text(content: Any) -> str:
    """A message's content as text (a list of parts is joined)."""
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
    return "".join(parts)


def _turn(role: str, text: str) -> str:
    return f"{IM_START}{role}\n{text}{IM_END}\n"


def _dumps(value: Any) -> str:
    """JSON as the template's ``tojson`` writes it."""
    return json.dumps(value, ensure_ascii=False)


def system_block(system: str | None, tools: Sequence[dict[str, Any]]) -> str:
    """The first turn: the system prompt, then the tools (the prefix reused across calls)."""
    text = system if system is not None else DEFAULT_SYSTEM
    if tools:
        lines = "".join("\n" + _dumps(compact_tool(t)) for t in tools)
        text = text + TOOLS_HEADER + lines + TOOLS_FOOTER
    return _turn("system", text)


def _assistant(message: AIMessage) -> str:
    text = _text(message.content)
    calls = list(message.tool_calls) + [
        {"name": c.get("name") or "", "args": c.get("args") or "", "invalid": True}
        for c in message.invalid_tool_calls or []]
    if not calls:
        return _turn("assistant", text)
    out = IM_START + "assistant" + (f"\n{text}" if text else "")
    for call in calls:
        args = call["args"]
        rendered = args if isinstance(args, str) else _dumps(args)
        out += f'\n<tool_call>\n{{"name": "{call["name"]}", "arguments": {rendered}}}\n</tool_call>'
    return out + IM_END + "\n"


def format_prompt(messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]] = (), *,
                  response_schema: dict[str, Any] | None = None,
                  assistant_prefix: str = "") -> str:
    """The whole prompt in Qwen2.5's ChatML, ending with the assistant's turn opened.

    Args:
        messages: LangChain messages; a leading SystemMessage is the system prompt.
        tools: OpenAI-style tool schemas (shown compactly in ``<tools>``).
        response_schema: a JSON schema the answer must match (added to the last user turn).
        assistant_prefix: text the assistant's reply starts with (e.g. ``<tool_call>\\n``).
    """
    rest = list(messages)
    system = None
    if rest and isinstance(rest[0], SystemMessage):
        system = _text(rest.pop(0).content)
    out = [system_block(system, tools)]
    last_user = max((i for i, m in enumerate(rest) if isinstance(m, HumanMessage)), default=-1)
    i = 0
    while i < len(rest):
        message = rest[i]
        if isinstance(message, ToolMessage):
            block = f"{IM_START}user"
            failed = False
            while i < len(rest) and isinstance(rest[i], ToolMessage):
                block += f"\n<tool_response>\n{_text(rest[i].content)}\n</tool_response>"
                failed = failed or rest[i].status == "error"
                i += 1
            hint = TOOL_ERROR_HINT if failed else TOOL_TURN_HINT
            out.append(block + "\n" + hint + IM_END + "\n")
            continue
        if isinstance(message, AIMessage):
            out.append(_assistant(message))
        elif isinstance(message, SystemMessage):
            out.append(_turn("system", _text(message.content)))
        else:
            text = _text(message.content)
            if response_schema is not None and i == last_user:
                text += JSON_INSTRUCTION.format(schema=_dumps(response_schema))
            out.append(_turn("user", text))
        i += 1
    if response_schema is not None and last_user < 0:
        out.append(_turn("user", JSON_INSTRUCTION.format(schema=_dumps(response_schema)).strip()))
    return "".join(out) + f"{IM_START}assistant\n" + assistant_prefix


# ---------------------------------------------------------------- reply


@dataclass
class ParsedReply:
    """The model's reply: text, tool calls and unparsable calls (LangChain's shapes)."""

    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    invalid_tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def message(self, **kwargs: Any) -> AIMessage:
        """The reply as an AIMessage."""
        return AIMessage(content=self.content, tool_calls=self.tool_calls,
                         invalid_tool_calls=self.invalid_tool_calls, **kwargs)


TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|(?=<tool_call>)|$)", re.DOTALL)
FENCE = re.compile(r"```(?:json|tool_call|JSON)?\s*(.*?)\s*(?:```|$)", re.DOTALL)
NAME = re.compile(r'"name"\s*:\s*"([^"]+)"')
XML_CALL = re.compile(r"<([A-Za-z_][\w]*)((?:\s+\w+\s*=\s*\"[^\"]*\")*)\s*/?>")
XML_ATTR = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
SQL_FENCE = re.compile(r"```(?:sql|duckdb|SQL)\s*\n(.*?)```", re.DOTALL)
SELECT = re.compile(r"\s*(?:SELECT|WITH)\b", re.IGNORECASE)


def new_call_id() -> str:
    """A fresh tool call id."""
    return f"call_{uuid.uuid4().hex[:16]}"


def _as_call(obj: Any) -> tuple[str, dict[str, Any]] | None:
    """(name, args) when ``obj`` is a tool call object, else None."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):  # {"function": {"name":…, "arguments":…}}
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None
    args = obj.get("arguments", obj.get("parameters", obj.get("args", {})))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
    if args is None:
        args = {}
    return (name, args) if isinstance(args, dict) else None


def _decode_objects(text: str) -> tuple[list[Any], str]:
    """Every top-level JSON object in ``text``, and the text left around them."""
    decoder = json.JSONDecoder()
    found, rest, i = [], [], 0
    while i < len(text):
        j = text.find("{", i)
        if j < 0:
            rest.append(text[i:])
            break
        try:
            obj, end = decoder.raw_decode(text, j)
        except ValueError:
            rest.append(text[i:j + 1])
            i = j + 1
            continue
        found.append(obj)
        rest.append(text[i:j])
        i = end
    return found, "".join(rest)


def _invalid(raw: str, error: str) -> dict[str, Any]:
    name = NAME.search(raw)
    return {"name": name.group(1) if name else None, "args": raw, "id": new_call_id(),
            "error": error, "type": "invalid_tool_call"}


def _call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "args": args, "id": new_call_id(), "type": "tool_call"}


def _xml_calls(text: str, known: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """``<run_sql sql="…" title="…"/>``-style calls to bound tools (a small model's habit)."""
    calls = []
    for match in XML_CALL.finditer(text):
        if match.group(1) in known:
            args = {k: html.unescape(v) for k, v in XML_ATTR.findall(match.group(2))}
            calls.append((match.group(1), args))
    return calls


def _sql_call(text: str, sql_tool: str, sql_arg: str) -> tuple[str, dict[str, Any]] | None:
    """A call of ``sql_tool`` when the reply holds exactly one fenced SELECT."""
    blocks = SQL_FENCE.findall(text)
    if len(blocks) != 1 or not SELECT.match(blocks[0]):
        return None
    return sql_tool, {sql_arg: blocks[0].strip().rstrip(";").strip()}


def parse_reply(text: str, tool_names: Sequence[str] = (), *,
                sql_tool: str | None = None, sql_arg: str = "sql") -> ParsedReply:
    """Read the model's reply into text, tool calls and invalid tool calls.

    ``<tool_call>`` blocks are always read; fenced or bare JSON objects and
    ``<tool attr="…"/>`` tags count as calls only when tools are bound and they name one of
    them (an answer may contain JSON). With ``sql_tool`` (the first reply to a question, when
    a SQL tool is bound), a reply that only writes one SELECT in a ```` ```sql ```` fence
    instead of calling the tool becomes a call of it, with the SQL as its ``sql_arg``.
    """
    text = text.strip()
    if "<tool_call>" in text:
        reply = ParsedReply(content=TOOL_CALL.sub("", text).replace("</tool_call>", "").strip())
        for raw in TOOL_CALL.findall(text):
            body = FENCE.sub(lambda m: m.group(1), raw).strip()
            objects, _ = _decode_objects(body)
            call = _as_call(objects[0]) if objects else None
            if call is None:
                reply.invalid_tool_calls.append(_invalid(
                    body, "not a JSON object with name and arguments"))
            else:
                reply.tool_calls.append(_call(*call))
        return reply
    if not tool_names:
        return ParsedReply(content=text)
    known = set(tool_names)
    unfenced = FENCE.sub(lambda m: "\n" + m.group(1) + "\n", text)
    objects, rest = _decode_objects(unfenced)
    calls = [c for c in (_as_call(o) for o in objects) if c is not None and c[0] in known]
    if calls:
        return ParsedReply(content=rest.strip() if len(calls) == len(objects) else text,
                           tool_calls=[_call(*c) for c in calls])
    mentioned = NAME.search(unfenced)
    looks_like_call = unfenced.lstrip().startswith("{") and mentioned and mentioned.group(1) in known
    if looks_like_call:
        return ParsedReply(content="", invalid_tool_calls=[_invalid(
            unfenced.strip(), "the tool call's JSON could not be parsed")])
    tags = _xml_calls(text, known)
    if tags:
        return ParsedReply(content="", tool_calls=[_call(*c) for c in tags])
    sql = _sql_call(text, sql_tool, sql_arg) if sql_tool in known else None
    if sql is not None:
        return ParsedReply(content="", tool_calls=[_call(*sql)])
    return ParsedReply(content=text)
