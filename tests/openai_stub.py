"""A scripted OpenAI-compatible HTTP server for tests of the real ``openai:`` model path.

It speaks just enough of the Chat Completions API for ``ChatOpenAI`` and the ``openai``
client: ``POST /v1/chat/completions`` (plain JSON, or SSE when ``stream`` is true, with a
final usage chunk when ``stream_options.include_usage`` is set) and ``GET /v1/models``.
Each chat request takes the next reply from a script::

    stub.script([
        reply(tool_calls=[tool_call("run_sql", {"sql": "SELECT 1"}, "c1")], usage=(30, 5)),
        http_error(429),
        delay(3, reply("late")),
        reply("The answer.", usage=(40, 8)),
    ])

and every request (method, path, headers, JSON body) is kept in ``stub.requests``.
A request that finds the script empty gets an HTTP 500 the client will not retry.
Use the ``openai_stub`` fixture by importing ``openai_stub_fixture`` into a test module.

Like the real API, the stub refuses (HTTP 400, without using a script item) a conversation
where an assistant message's ``tool_calls`` are not each answered by a ``tool`` message, or
a ``tool`` message answers no pending call; ``OpenAIStub(validate=False)`` turns that off.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

DEFAULT_USAGE = (10, 5)


# -- script items ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    """An assistant message: text and/or tool calls, with its token usage."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = DEFAULT_USAGE[0]
    completion_tokens: int = DEFAULT_USAGE[1]


@dataclass(frozen=True)
class HttpError:
    """An HTTP error status with an OpenAI-style JSON error body."""

    status: int
    message: str = ""
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delay:
    """Sleep ``seconds`` before sending ``then`` (to make the client time out)."""

    seconds: float
    then: Reply | HttpError


ScriptItem = Reply | HttpError | Delay


def reply(content: str | None = None, *, tool_calls: list[dict[str, Any]] | None = None,
          usage: tuple[int, int] = DEFAULT_USAGE) -> Reply:
    """An assistant reply; ``usage`` is (prompt_tokens, completion_tokens)."""
    return Reply(content=content, tool_calls=list(tool_calls or []),
                 prompt_tokens=usage[0], completion_tokens=usage[1])


def tool_call(name: str, arguments: dict[str, Any] | str, call_id: str) -> dict[str, Any]:
    """A tool call in the wire format; ``arguments`` is sent as a JSON string."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error",
                403: "permission_error", 404: "invalid_request_error",
                429: "rate_limit_exceeded", 500: "server_error"}
_ERROR_MESSAGES = {401: "Incorrect API key provided.", 403: "Access denied.",
                   404: "The model does not exist.", 429: "Rate limit reached.",
                   500: "The server had an error while processing your request."}


def http_error(status: int, message: str | None = None, *, code: str | None = None,
               headers: dict[str, str] | None = None) -> HttpError:
    """An error reply.

    A 429 gets ``retry-after-ms: 50`` unless ``headers`` says otherwise, so that the
    client's (honoured) retry waits 50 ms instead of its 0.5-1 s backoff.
    """
    extra = dict(headers or {})
    if status == 429 and not any(k.lower().startswith("retry-after") for k in extra):
        extra["retry-after-ms"] = "50"
    default_code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    return HttpError(status, message or _ERROR_MESSAGES.get(status, f"HTTP {status}"),
                     code or default_code, extra)


def delay(seconds: float, then: Reply | HttpError | None = None) -> Delay:
    """Wait ``seconds``, then send ``then`` (a short text reply by default)."""
    return Delay(seconds, then if then is not None else reply("too late"))


# -- recorded requests -----------------------------------------------------------------------
@dataclass
class RecordedRequest:
    """One request the stub received; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of a chat-completions request."""
        return list((self.body or {}).get("messages", []))

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools offered in the request."""
        return [t["function"]["name"] for t in (self.body or {}).get("tools", [])]


# -- server ---------------------------------------------------------------------------------
class OpenAIStub:
    """The server; start it with ``with OpenAIStub() as stub:`` or the ``openai_stub`` fixture."""

    def __init__(self, *, validate: bool = True) -> None:
        self.validate = validate
        self.requests: list[RecordedRequest] = []
        self.unscripted = 0  # chat requests that found the script empty
        self._script: list[ScriptItem] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> OpenAIStub:
        handler = type("Handler", (_Handler,), {"stub": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="openai-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes handlers sleeping in a Delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # test-facing API
    @property
    def port(self) -> int:
        assert self._server is not None, "the stub is not running"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The base URL to give the client (``OPENAI_BASE_URL``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, items: list[ScriptItem]) -> None:
        """Append replies for the coming chat requests, in order."""
        with self._lock:
            self._script.extend(items)

    @property
    def remaining(self) -> int:
        """Script items not used yet."""
        with self._lock:
            return len(self._script)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The chat-completions requests, oldest first."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # used by the handler
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next(self) -> ScriptItem | None:
        with self._lock:
            if not self._script:
                self.unscripted += 1
                return None
            return self._script.pop(0)

    def _new_id(self) -> str:
        return f"chatcmpl-stub{next(self._ids)}"


class _Handler(BaseHTTPRequestHandler):
    stub: OpenAIStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    # routing
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.stub._record(RecordedRequest("GET", self.path, self._headers(), None))
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "stub"}]})
        else:
            self._send_error_body(404, "not found", None)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        self.stub._record(RecordedRequest("POST", self.path, self._headers(), body))
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_error_body(404, f"unknown path {self.path}", None)
            return
        problem = _conversation_problem(body) if self.stub.validate else None
        if problem:
            self._send_error_body(400, problem, None)
            return
        item = self.stub._next()
        if item is None:
            self._send_error_body(500, "openai_stub: the script is exhausted", None,
                                  {"x-should-retry": "false"})
            return
        if isinstance(item, Delay):
            if self.stub._stop.wait(item.seconds):
                return
            item = item.then
        try:
            if isinstance(item, HttpError):
                self._send_error_body(item.status, item.message, item.code, item.headers)
            elif (body or {}).get("stream"):
                self._send_stream(item, body)
            else:
                self._send_json(200, self._completion(item, body))
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    # replies
    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error_body(self, status: int, message: str, code: str | None,
                         headers: dict[str, str] | None = None) -> None:
        error = {"message": message, "type": _ERROR_TYPES.get(status, "error"),
                 "param": None, "code": code}
        self._send_json(status, {"error": error}, headers)

    def _completion(self, item: Reply, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": item.content,
                                   "refusal": None}
        if item.tool_calls:
            message["tool_calls"] = item.tool_calls
        return {
            "id": self.stub._new_id(), "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "stub"), "system_fingerprint": "fp_stub",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if item.tool_calls else "stop"}],
            "usage": _usage(item),
        }

    def _send_stream(self, item: Reply, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        for chunk in self._chunks(item, body):
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _chunks(self, item: Reply, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        head = {"id": self.stub._new_id(), "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body.get("model", "stub"),
                "system_fingerprint": "fp_stub"}
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            out = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                        "finish_reason": finish}]}
            if with_usage:
                out["usage"] = None
            return out

        yield chunk({"role": "assistant", "content": "" if item.content is not None else None,
                     "refusal": None})
        if item.content:
            words = item.content.split(" ")
            for i, word in enumerate(words):
                yield chunk({"content": word if i == 0 else " " + word})
        for index, call in enumerate(item.tool_calls):
            args = call["function"]["arguments"]
            yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                         "function": {"name": call["function"]["name"],
                                                      "arguments": ""}}]})
            half = len(args) // 2
            for piece in (args[:half], args[half:]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls" if item.tool_calls else "stop")
        if with_usage:
            yield {**head, "choices": [], "usage": _usage(item)}


def _conversation_problem(body: Any) -> str | None:
    """What the real API would refuse about the request's message order, if anything."""
    messages = (body or {}).get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array."
    pending: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                return (f"Invalid parameter: messages with role 'tool' must be a response to a "
                        f"preceeding message with 'tool_calls'. (messages[{i}])")
            pending.remove(message["tool_call_id"])
            continue
        if pending:
            return ("An assistant message with 'tool_calls' must be followed by tool messages "
                    "responding to each 'tool_call_id'. The following tool_call_ids did not "
                    f"have response messages: {', '.join(pending)}")
        if role == "assistant":
            pending = [c.get("id") for c in message.get("tool_calls") or []]
    if pending:
        return ("An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not "
                f"have response messages: {', '.join(pending)}")
    return None


def _usage(item: Reply) -> dict[str, Any]:
    return {"prompt_tokens": item.prompt_tokens, "completion_tokens": item.completion_tokens,
            "total_tokens": item.prompt_tokens + item.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}


@pytest.fixture(name="openai_stub")
def openai_stub_fixture() -> Iterator[OpenAIStub]:
    """A running stub server; stopped (and any sleeping reply woken) at teardown."""
    with OpenAIStub() as stub:
        yield stub
