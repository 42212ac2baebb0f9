"""A stand-in for Slack's Web API on 127.0.0.1 (threaded stdlib server) that records calls.

Point a ``WebClient`` at it with ``base_url=stub.url + "/api/"``. It answers every
``/api/<method>`` with ``{"ok": true, ...}`` and the fields the SDK reads: auth.test
(bot user/bot id/team), chat.postMessage (a fresh ts), files.getUploadURLExternal (an
upload URL pointing back to the stub), the upload POST itself (bytes kept in ``uploads``),
files.completeUploadExternal, reactions.add, conversations.replies.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    """One request the stub received."""

    method: str
    params: dict[str, Any]
    token: str | None = None
    body: bytes = b""


@dataclass
class SlackStub:
    """Run with ``with SlackStub() as stub:``; inspect ``stub.calls`` / ``stub.wait_for``."""

    bot_user_id: str = "UBOT"
    bot_id: str = "BBOT"
    team_id: str = "T1"
    calls: list[Call] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._changed = threading.Condition()
        self._counter = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                stub._handle(self)

            do_GET = do_POST  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SlackStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SlackStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection -------------------------------------------------------------------------
    def of(self, method: str) -> list[dict[str, Any]]:
        """The params of every call to ``method`` so far."""
        with self._changed:
            return [c.params for c in self.calls if c.method == method]

    def methods(self) -> list[str]:
        """Every method called, in order (auth.test included)."""
        with self._changed:
            return [c.method for c in self.calls]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until ``method`` was called ``count`` times; return their params."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [c.params for c in self.calls if c.method == method]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{method} called {len(found)} times, wanted {count}; "
                                         f"calls: {[c.method for c in self.calls]}")
                self._changed.wait(left)

    # -- serving ----------------------------------------------------------------------------
    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ") or None
        if parts.path.startswith("/upload/"):
            file_id = parts.path.rsplit("/", 1)[-1]
            self._record(Call("upload", {"file_id": file_id, "length": len(raw)}, token, raw))
            with self._changed:
                self.uploads[file_id] = raw
            self._reply(request, 200, b"OK - %d" % len(raw), "text/plain")
            return
        if not parts.path.startswith("/api/"):
            self._reply(request, 404, b"not found", "text/plain")
            return
        method = parts.path.removeprefix("/api/")
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        kind = request.headers.get("Content-Type") or ""
        if "json" in kind and raw:
            params.update(json.loads(raw))
        elif raw:
            params.update({k: v[-1] for k, v in
                           parse_qs(raw.decode(), keep_blank_values=True).items()})
        if "token" in params:
            token = params.pop("token")
        self._record(Call(method, params, token, raw))
        body = self._response(method, params)
        self._reply(request, 200, json.dumps(body).encode(), "application/json; charset=utf-8")

    def _record(self, call: Call) -> None:
        with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    def _response(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._changed:
            self._counter += 1
            n = self._counter
        if method == "auth.test":
            return {"ok": True, "url": "https://atlas-test.slack.com/", "team": "Atlas Test",
                    "user": "atlas", "team_id": self.team_id, "user_id": self.bot_user_id,
                    "bot_id": self.bot_id, "is_enterprise_install": False}
        if method == "chat.postMessage":
            ts = f"{int(time.time())}.{n:06d}"
            return {"ok": True, "channel": params.get("channel"), "ts": ts,
                    "message": {"type": "message", "text": params.get("text"), "ts": ts,
                                "user": self.bot_user_id, "bot_id": self.bot_id}}
        if method == "files.getUploadURLExternal":
            file_id = f"F{n:05d}"
            return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = params.get("files") or []
            files = json.loads(files) if isinstance(files, str) else files
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        if method == "conversations.replies":
            return {"ok": True, "messages": [], "has_more": False}
        return {"ok": True}

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
        request.send_response(status)
        request.send_header("Content-Type", kind)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
