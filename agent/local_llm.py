"""The ``local:<path.gguf>`` provider: an open model run in-process by llama-cpp-python.

:class:`LocalChatModel` is a LangChain chat model around an injected ``llama_cpp.Llama`` (tests
inject a fake). It writes the prompt in the model's own chat format (Qwen2.5's ChatML with
``<tools>``, see :mod:`agent.local_chat_format`) and reads the reply into real LangChain tool
calls, so the agent graph runs unchanged. ``with_structured_output`` asks for JSON matching a
schema, constrained by a llama.cpp grammar built from the schema. The system prompt and the
tool list always open the prompt, so llama.cpp evaluates that prefix once and reuses it (its
KV cache keeps the last prompt; a RAM cache of states keeps prefixes across other prompts,
such as the labeling calls made between two agent steps).

A small model often describes a call instead of making it (fenced JSON, a ```sql block, a plan
in prose, an explanation of a tool error). The reader accepts fenced JSON and ``<tool …/>``
tags; a SELECT in a ```sql fence becomes a ``run_sql`` call where one is due; and a reply that
owes a call is continued from its own words into a ``<tool_call>`` whose JSON a grammar built
from the tools' schemas constrains. A repeated identical call is never forced (it would loop).
A failed call gets one retry; a turn whose calls all failed ends with :data:`FAILED_OPENER` and
one sentence without digits (no number was computed, so none may be written).

Install with ``pip install 'interest-atlas[local]'``; fetch the default model with
``make local-model``.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field

from agent.local_chat_format import SQL_FENCE, STOP, ParsedReply, format_prompt, parse_reply
from tools.errors import AtlasError

if TYPE_CHECKING:
    from agent.config import Settings

N_CTX = 8192
MAX_TOKENS = 1024
MIN_ANSWER_TOKENS = 256
RAM_CACHE_BYTES = 1 << 30
TRUNCATED_TOOL_CHARS = 600
INSTALL_HINT = ("the local model needs llama-cpp-python: pip install 'interest-atlas[local]' "
                "(a source build of about 10 minutes), or pick another model with --model")

GrammarFactory = Callable[[dict[str, Any]], Any]


class LocalModelError(AtlasError):
    """The local model cannot be loaded or cannot answer."""


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise LocalModelError(INSTALL_HINT) from exc
    return llama_cpp


def llama_grammar(schema: dict[str, Any]) -> Any:
    """A llama.cpp grammar for JSON matching ``schema`` (None when it cannot be built)."""
    try:
        import llama_cpp
    except ImportError:
        return None
    try:
        return llama_cpp.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except Exception:  # noqa: BLE001 - an unsupported schema falls back to free text
        return None


FAILED_OPENER = "I could not answer this from the data: "
TEXT_GBNF = r'root ::= [^\x00-\x20<`{] [^<`{]*'
"""Prose that starts with a visible character, without code fences, JSON or tags."""
FAILURE_GBNF = r"""root ::= [A-Za-z"'(] [A-Za-z ,"'()_:;=*/-]* "." """
"""One sentence of plain ASCII words without digits: what a failed turn's answer may say (a
small model otherwise goes on to invent numbers, or rewrites the failed call)."""


def llama_text_grammar(gbnf: str = TEXT_GBNF) -> Any:
    """A llama.cpp grammar for a non-empty plain-text answer (None when unavailable)."""
    try:
        import llama_cpp
    except ImportError:
        return None
    try:
        return llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
    except Exception:  # noqa: BLE001 - without it the retry is unconstrained
        return None


def _forced_name(tool_choice: Any, names: Sequence[str]) -> str | list[str] | None:
    """The tool(s) the reply must call: a name, all names, or None for a free reply."""
    if tool_choice in (None, "auto", "none", False):
        return None
    if tool_choice in ("any", "required", True):
        return list(names)
    if isinstance(tool_choice, dict):
        tool_choice = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    return tool_choice if tool_choice in names else list(names)


def tool_call_schema(tools: Sequence[dict[str, Any]], forced: str | list[str]) -> dict[str, Any]:
    """JSON schema of one ``{"name", "arguments"}`` call to the forced tool(s)."""
    chosen = [t["function"] for t in tools
              if t["function"]["name"] == forced or (isinstance(forced, list)
                                                     and t["function"]["name"] in forced)]
    options = [{"type": "object", "properties": {
        "name": {"const": fn["name"]},
        "arguments": fn.get("parameters") or {"type": "object"}},
        "required": ["name", "arguments"]} for fn in chosen]
    return options[0] if len(options) == 1 else {"anyOf": options}


MENTION = r"`{name}`|\b{name}\s*(?:\(|function\b|tool\b)"


def mentions_tool(text: str, names: Sequence[str]) -> bool:
    """Whether ``text`` names a tool as one: in backticks, ``name(``, "name function/tool", or a
    snake_case name as a word."""
    for name in names:
        pattern = MENTION.format(name=re.escape(name))
        if "_" in name:
            pattern += rf"|\b{re.escape(name)}\b"
        if re.search(pattern, text):
            return True
    return False


def _calls_this_turn(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The tool calls made since the person's last message."""
    calls: list[dict[str, Any]] = []
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, AIMessage):
            calls.extend(message.tool_calls)
    return calls


def _owes_a_call(text: str, names: Sequence[str], messages: Sequence[BaseMessage]) -> bool:
    """Whether a reply without a call should have made one: it names a tool as one; or it is
    the first reply to a question and asks nothing back; or it answers the turn's first tool
    error (one retry with the error)."""
    if mentions_tool(text, names):
        return True
    last = messages[-1] if messages else None
    if isinstance(last, HumanMessage):
        return not text.rstrip().endswith("?")
    return _errors_this_turn(messages) == 1


def _failures_this_turn(messages: Sequence[BaseMessage]) -> list[bool]:
    """Whether each tool result since the person's last message failed, latest first."""
    failed = []
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, ToolMessage):
            failed.append(message.status == "error")
    return failed


def _errors_this_turn(messages: Sequence[BaseMessage]) -> int:
    """Failed tool calls since the person's last message, when the latest result failed."""
    failed = _failures_this_turn(messages)
    return sum(failed) if failed and failed[0] and isinstance(messages[-1], ToolMessage) else 0


def _nothing_worked(messages: Sequence[BaseMessage]) -> bool:
    """Whether this turn called tools and every call failed."""
    failed = _failures_this_turn(messages)
    return bool(failed) and all(failed)


def _not_an_answer(text: str, names: Sequence[str]) -> bool:
    """Whether a final reply is empty, or code, JSON or a tool's description, not prose."""
    stripped = text.strip()
    return (not stripped or "```" in stripped or stripped.startswith(("{", "<", "["))
            or mentions_tool(stripped, names))


def _repeats(reply: ParsedReply, messages: Sequence[BaseMessage]) -> bool:
    """Whether one of the reply's calls was already made, with the same arguments, this turn."""
    earlier = [(c["name"], c["args"]) for c in _calls_this_turn(messages)]
    return any((c["name"], c["args"]) in earlier for c in reply.tool_calls)


def _sql_argument(tools: Sequence[dict[str, Any]], sql_tool: str) -> str:
    """The SQL tool's argument for the query: its first required parameter ("sql")."""
    for tool in tools:
        fn = tool["function"]
        if fn["name"] == sql_tool:
            required = (fn.get("parameters") or {}).get("required") or []
            return str(required[0]) if required else "sql"
    return "sql"


@dataclass
class _Completion:
    """What one or two completions produced for one reply."""

    text: str
    finish: str | None
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    calls: int = 1

    def plus(self, other: _Completion) -> _Completion:
        """This completion followed by ``other`` (the reply is ``other``'s text)."""
        return _Completion(other.text, other.finish, self.prompt_tokens + other.prompt_tokens,
                           self.completion_tokens + other.completion_tokens,
                           self.seconds + other.seconds, self.calls + other.calls)


class LocalChatModel(BaseChatModel):
    """A chat model on an in-process ``llama_cpp.Llama`` (or any object with its interface:
    ``create_completion(prompt=…, max_tokens=…, temperature=…, stop=…, grammar=…)``,
    ``tokenize(bytes, add_bos=…, special=…)`` and ``n_ctx()``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    llama: Any = Field(exclude=True)
    model_name: str = "local:model"
    max_tokens: int = MAX_TOKENS
    temperature: float = 0.0
    repeat_penalty: float = 1.0
    retry_described_calls: bool = True
    """When a reply makes no call where one is due (see :func:`_owes_a_call`: a small model
    tends to describe calls, plan in prose or explain an error instead of acting), continue
    its own words with a grammar-constrained ``<tool_call>``."""
    sql_tool: str | None = "run_sql"
    """A tool whose SQL the model may write in a ```sql fence instead of calling it; read as a
    call in the first reply to a question, right after a tool error, or when the reply is
    nothing but that fence (and not a query already run this turn)."""
    lock: Any = Field(default_factory=threading.Lock, exclude=True)
    grammar_factory: GrammarFactory | None = Field(default=llama_grammar, exclude=True)
    text_grammar_factory: Callable[[], Any] | None = Field(default=llama_text_grammar,
                                                           exclude=True)
    """Builds the grammar of a plain-prose answer (no code, JSON or tags), used when a final
    reply after a tool result is empty or is code, JSON or a description of a call instead
    of an answer."""
    failure_grammar_factory: Callable[[], Any] | None = Field(
        default=lambda: llama_text_grammar(FAILURE_GBNF), exclude=True)
    """Builds the grammar of the answer to a turn whose calls all failed: one sentence
    without digits, since no number was computed."""
    max_tool_errors: int = 2
    """Failed calls in one turn after which the model answers in words (the first error
    gets one retry; then it says what went wrong instead of trying again)."""
    prompts: list[str] | None = Field(default=None, exclude=True)
    """When a list, every prompt sent is appended (for tests and measurements)."""

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature}

    # -- binding ------------------------------------------------------------------------
    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None,
                   **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (kept as full OpenAI-style JSON schemas; shown compactly)."""
        schemas = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=schemas, tool_choice=tool_choice, **kwargs)

    def with_structured_output(self, schema: Any, *, include_raw: bool = False,
                               **kwargs: Any) -> Runnable[LanguageModelInput, Any]:
        """Answers parsed into ``schema`` (a pydantic class or a JSON schema), from JSON the
        model writes under a grammar built from the schema."""
        if kwargs.get("method") not in (None, "json_schema", "json_mode"):
            raise ValueError(f"unsupported method {kwargs['method']!r}")
        is_pydantic = isinstance(schema, type) and issubclass(schema, BaseModel)
        json_schema = schema.model_json_schema() if is_pydantic else convert_to_json_schema(schema)
        llm = self.bind(response_schema=json_schema)
        parser: Runnable = (PydanticOutputParser(pydantic_object=schema) if is_pydantic
                            else JsonOutputParser())
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser,
                                            parsing_error=lambda _: None)
        failed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([failed],
                                                            exception_key="parsing_error")

    # -- generation ---------------------------------------------------------------------
    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, *,
                  tools: Sequence[dict[str, Any]] | None = None, tool_choice: Any = None,
                  response_schema: dict[str, Any] | None = None,
                  **kwargs: Any) -> ChatResult:
        tools = list(tools or []) if response_schema is None else []
        names = [t["function"]["name"] for t in tools]
        forced = _forced_name(tool_choice, names) if tools else None
        prefix = "<tool_call>\n" if forced else ""
        grammar_schema = tool_call_schema(tools, forced) if forced else response_schema
        stops = [*STOP, *(stop or [])]
        call_stops = [*stops, "</tool_call>"]
        last = messages[-1] if messages else None
        with self.lock:
            prompt, max_tokens = self._fit(messages, tools, response_schema, prefix)
            if tools and not forced and _errors_this_turn(messages) >= self.max_tool_errors:
                # the call failed and so did its retry: say so instead of trying again
                done = self._failure_answer(prompt, max_tokens, stops)
                reply = ParsedReply(content=done.text)
            else:
                done = self._complete(prompt, max_tokens, call_stops if forced else stops,
                                      self._grammar(grammar_schema))
                text = prefix + done.text + ("\n</tool_call>" if forced else "")
                reply = parse_reply(text, names)
                if not reply.tool_calls and not reply.invalid_tool_calls and tools and not forced:
                    reply, done = self._recover_call(reply, done, text, prompt, tools, messages)
                answered = (not reply.tool_calls and not reply.invalid_tool_calls
                            and response_schema is None and isinstance(last, ToolMessage))
                if answered and _nothing_worked(messages):
                    again = self._failure_answer(prompt, max_tokens, stops)
                    reply, done = ParsedReply(content=again.text), done.plus(again)
                elif answered and _not_an_answer(reply.content, names):
                    again = self._complete(prompt, max_tokens, stops, self._prose_grammar())
                    reply = ParsedReply(content=again.text.strip())  # an answer, not a call
                    done = done.plus(again)
        message = reply.message(
            usage_metadata={"input_tokens": done.prompt_tokens,
                            "output_tokens": done.completion_tokens,
                            "total_tokens": done.prompt_tokens + done.completion_tokens},
            response_metadata={"model_name": self.model_name, "finish_reason": done.finish,
                               "seconds": round(done.seconds, 3), "model_calls": done.calls})
        return ChatResult(generations=[ChatGeneration(message=message)],
                          llm_output={"model_name": self.model_name})

    def _recover_call(self, reply: ParsedReply, done: _Completion, text: str, prompt: str,
                      tools: list[dict[str, Any]], messages: Sequence[BaseMessage]
                      ) -> tuple[ParsedReply, _Completion]:
        """A reply without a call, read or continued into the call it owes, if any.

        A ```sql fence becomes a call of :attr:`sql_tool` where a call is due (or the reply is
        nothing but SQL); a reply that describes a call is continued from its own words into a
        ``<tool_call>`` whose JSON a grammar constrains. A repeated call is never made (it
        would only loop).
        """
        names = [t["function"]["name"] for t in tools]
        owed = (bool(messages) and isinstance(messages[-1], HumanMessage)
                or _errors_this_turn(messages) > 0)
        only_sql = SQL_FENCE.sub("", done.text).strip() == ""
        if self.sql_tool and (owed or only_sql):
            recovered = parse_reply(text, names, sql_tool=self.sql_tool,
                                    sql_arg=_sql_argument(tools, self.sql_tool))
            if recovered.tool_calls and not _repeats(recovered, messages):
                return recovered, done
        if not (self.retry_described_calls and _owes_a_call(done.text, names, messages)):
            return reply, done
        plan = done.text.split("```", 1)[0].rstrip()
        opened = (plan + "\n" if plan else "") + "<tool_call>\n"
        room = int(self.llama.n_ctx()) - self._count(prompt + opened)
        if room < MIN_ANSWER_TOKENS:
            return reply, done
        more = self._complete(prompt + opened, min(self.max_tokens, room),
                              [*STOP, "</tool_call>"],
                              self._grammar(tool_call_schema(tools, names)))
        retried = parse_reply(opened + more.text + "\n</tool_call>", names)
        return (reply if _repeats(retried, messages) else retried), done.plus(more)

    def _failure_answer(self, prompt: str, max_tokens: int, stops: list[str]) -> _Completion:
        """The answer of a turn whose every call failed: it opens with :data:`FAILED_OPENER`
        and the model says, in prose, what went wrong (no number comes from a failed call)."""
        grammar = self.failure_grammar_factory() if self.failure_grammar_factory else None
        done = self._complete(prompt + FAILED_OPENER, max_tokens, stops, grammar)
        done.text = FAILED_OPENER + done.text.strip()
        return done

    def _prose_grammar(self) -> Any:
        return self.text_grammar_factory() if self.text_grammar_factory else None

    def _grammar(self, schema: dict[str, Any] | None) -> Any:
        return self.grammar_factory(schema) if schema is not None and self.grammar_factory else None

    def _complete(self, prompt: str, max_tokens: int, stop: list[str], grammar: Any) -> _Completion:
        """One completion by llama.cpp (the caller holds the lock)."""
        if self.prompts is not None:
            self.prompts.append(prompt)
        started = time.perf_counter()
        out = self.llama.create_completion(
            prompt=prompt, max_tokens=max_tokens, temperature=self.temperature,
            repeat_penalty=self.repeat_penalty, stop=stop, grammar=grammar)
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return _Completion(choice.get("text") or "", choice.get("finish_reason"),
                           int(usage.get("prompt_tokens", 0) or 0),
                           int(usage.get("completion_tokens", 0) or 0),
                           time.perf_counter() - started)

    def _count(self, prompt: str) -> int:
        return len(self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    def _fit(self, messages: list[BaseMessage], tools: list[dict[str, Any]],
             response_schema: dict[str, Any] | None, prefix: str) -> tuple[str, int]:
        """The prompt and the reply's token allowance within the context window.

        When the conversation is too long, older tool results are shortened (oldest first);
        when that is not enough, a clear error says so.
        """
        n_ctx = int(self.llama.n_ctx())
        msgs = list(messages)
        older = [i for i, m in enumerate(msgs) if isinstance(m, ToolMessage)]
        last_tool_turn = set()
        for i in reversed(range(len(msgs))):  # the latest results are kept whole
            if not isinstance(msgs[i], ToolMessage):
                break
            last_tool_turn.add(i)
        older = [i for i in older if i not in last_tool_turn]
        while True:
            prompt = format_prompt(msgs, tools, response_schema=response_schema,
                                   assistant_prefix=prefix)
            used = self._count(prompt)
            room = n_ctx - used
            if room >= min(self.max_tokens, MIN_ANSWER_TOKENS):
                return prompt, min(self.max_tokens, room)
            if not older:
                raise LocalModelError(
                    f"this conversation needs {used:,} tokens, more than the local model's "
                    f"context of {n_ctx:,}: start a new session, or ask a narrower question")
            i = older.pop(0)
            content = str(msgs[i].content)
            if len(content) > TRUNCATED_TOOL_CHARS:
                msgs[i] = msgs[i].model_copy(
                    update={"content": content[:TRUNCATED_TOOL_CHARS] + " …(shortened)"})


# ---------------------------------------------------------------- loading


@functools.lru_cache(maxsize=2)
def load_llama(path: str, n_threads: int, n_ctx: int = N_CTX) -> tuple[Any, threading.Lock]:
    """One loaded model per (path, threads, context) per process, with the lock its calls
    share (a llama.cpp context serves one call at a time)."""
    llama_cpp = _llama_cpp()
    try:
        llama = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads,
                                n_threads_batch=n_threads, n_batch=512, verbose=False)
    except Exception as exc:  # noqa: BLE001 - llama.cpp raises ValueError/RuntimeError
        raise LocalModelError(f"llama.cpp could not load {path}: {exc}") from exc
    llama.set_cache(llama_cpp.LlamaRAMCache(capacity_bytes=RAM_CACHE_BYTES))
    return llama, threading.Lock()


def resolve_model_path(path: str, home: Path) -> Path:
    """The GGUF file named by ``local:<path>``: the path itself, else under ``<home>/models``."""
    given = Path(path).expanduser()
    if given.is_file():
        return given.resolve()
    in_home = Path(home) / "models" / given
    if not given.is_absolute() and in_home.is_file():
        return in_home.resolve()
    from agent.model_fetch import MODEL_FILE

    raise LocalModelError(
        f"there is no model file at {given} (nor in {Path(home) / 'models'}): run "
        f"`make local-model` to fetch {MODEL_FILE} into {Path(home) / 'models'}, or give the "
        "path of any GGUF chat model as local:<path.gguf>")


def make_local_model(path: str, settings: Settings) -> LocalChatModel:
    """The chat model for ``--model local:<path>`` (threads from ``settings.llm_threads``)."""
    resolved = resolve_model_path(path, Path(settings.home))
    _llama_cpp()  # a clear message when llama-cpp-python is missing
    llama, lock = load_llama(str(resolved), int(settings.llm_threads))
    return LocalChatModel(llama=llama, lock=lock, model_name=f"local:{resolved.name}")
