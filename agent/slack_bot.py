"""Atlas in Slack: a Bolt app that answers mentions in channels and messages in DMs.

Every answer goes into the thread of the question, and the thread is the conversation:
its session id is ``slack:{team}:{channel}:{thread_ts}``, so a follow-up in the thread
(mention the bot again in a channel; just write in a DM thread) keeps the context.
A reply is three posts: the answer, a chart PNG (when there is a chart or a chartable
table), and the trace (each tool, ok/failed, rows, ms, SQL).

Slack is acknowledged at once: events are filtered synchronously (bots, edits, retries)
and answered in Bolt's listener thread pool, in Socket Mode and in HTTP mode alike.
Allowlists (comma-separated ids, empty = everyone): ``ATLAS_SLACK_CHANNELS`` — a mention
in another channel gets a polite refusal; DMs are not channels and are not restricted by
it — and ``ATLAS_SLACK_USERS`` — anyone else gets a polite refusal and Atlas never runs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk import WebClient

from agent import slack_render as render
from agent.config import Settings
from agent.events import Chart, Done, Event, Table

log = logging.getLogger("atlas.slack")

EVENTS_PATH = "/slack/events"
REFUSE_USER = ("Sorry, I'm not enabled for you here; ask an admin to add you to "
               "ATLAS_SLACK_USERS.")
REFUSE_CHANNEL = ("Sorry, I'm not enabled in this channel; ask an admin to add it to "
                  "ATLAS_SLACK_CHANNELS.")
EMPTY_QUESTION = ("Hi! Ask me a question about the data, for example "
                  "_which countries watched the most last week?_ I answer in the thread.")
INTERNAL_FAILURE = "something went wrong on my side. Try again in a moment, or rephrase"
WORKING_REACTION = "eyes"
ANSWERED_SUBTYPES = {None, "file_share", "thread_broadcast"}


class SlackSetupError(RuntimeError):
    """A missing or wrong Slack setting; the message says which."""


def id_list(value: str | Iterable[str] | None, env_name: str) -> frozenset[str]:
    """Ids from ``value`` (a comma-separated string or a list), else from ``env_name``."""
    if value is None:
        value = os.environ.get(env_name, "")
    items = value.split(",") if isinstance(value, str) else value
    return frozenset(i.strip() for i in items if i and i.strip())


def session_id(team: str, channel: str, thread_ts: str) -> str:
    """The Atlas session of one Slack thread."""
    return f"slack:{team}:{channel}:{thread_ts}"


def strip_mention(text: str, bot_user_id: str | None) -> str:
    """The question without the bot's ``<@U…>`` mention(s)."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text or "")
    return " ".join((text or "").split())


class AtlasSlack:
    """The listeners' state: the analyst, the allowlists and recently seen event ids."""

    def __init__(self, settings: Settings, analyst: Any, channels: frozenset[str],
                 users: frozenset[str]) -> None:
        self.settings, self.analyst = settings, analyst
        self.channels, self.users = channels, users
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_lock = threading.Lock()

    # -- the synchronous gate (runs before Slack is acknowledged) ---------------------------
    def first_time(self, event_id: str | None) -> bool:
        """False for an event id already handled (Slack retries a delivery it thinks failed)."""
        if not event_id:
            return True
        with self._seen_lock:
            if event_id in self._seen:
                return False
            self._seen[event_id] = None
            while len(self._seen) > 2_000:
                self._seen.popitem(last=False)
            return True

    @staticmethod
    def wanted(event: dict[str, Any], bot_user_id: str | None) -> bool:
        """Whether ``event`` is a person's question to Atlas (not a bot's, not an edit)."""
        kind = event.get("type")
        if kind not in ("app_mention", "message"):
            return True  # not ours to filter
        if event.get("bot_id") or event.get("bot_profile") or not event.get("user"):
            return False
        if event.get("user") == bot_user_id or event.get("subtype") not in ANSWERED_SUBTYPES:
            return False
        # in channels the app_mention event is the question; plain messages only in DMs
        return kind == "app_mention" or event.get("channel_type") == "im"

    def gate(self, body: dict[str, Any], context: Any, next: Callable[[], Any]) -> Any:  # noqa: A002
        """Global middleware: drop what Atlas must not answer with a plain 200."""
        if body.get("type") == "event_callback":
            event = body.get("event") or {}
            if not self.wanted(event, context.bot_user_id):
                return BoltResponse(status=200, body="")
            if event.get("type") in ("app_mention", "message") and not self.first_time(
                    body.get("event_id")):
                return BoltResponse(status=200, body="")
        return next()

    # -- answering (Bolt's listener threads) ------------------------------------------------
    def on_event(self, event: dict[str, Any], body: dict[str, Any], context: Any,
                 client: WebClient) -> None:
        """Answer one question in its thread."""
        channel, ts = event["channel"], event["ts"]
        thread_ts = event.get("thread_ts") or ts
        team = context.team_id or body.get("team_id") or event.get("team") or "-"
        user = event.get("user", "")

        def reply(text: str, **extra: Any) -> None:
            client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text,
                                    unfurl_links=False, unfurl_media=False, **extra)

        try:
            if self.channels and event.get("channel_type") != "im" and channel not in self.channels:
                reply(REFUSE_CHANNEL)
                return
            if self.users and user not in self.users:
                reply(REFUSE_USER)
                return
            question = strip_mention(event.get("text", ""), context.bot_user_id)
            if not question:
                reply(EMPTY_QUESTION)
                return
            self._react(client, channel, ts)
            session = session_id(team, channel, thread_ts)
            try:
                events = list(self.analyst.stream(question, session, user=f"slack:{user}"))
            except Exception:  # noqa: BLE001 - a person gets a sentence, the log gets the trace
                log.exception("Atlas failed on a Slack question in %s", session)
                reply(render.error_text(INTERNAL_FAILURE))
                return
            self.post_answer(client, channel, thread_ts, session, events)
        except Exception:  # noqa: BLE001 - Slack API failures: nothing more to say in Slack
            log.exception("could not reply in Slack channel %s thread %s", channel, thread_ts)

    def post_answer(self, client: WebClient, channel: str, thread_ts: str, session: str,
                    events: list[Event]) -> None:
        """The answer, then the chart PNG, then the trace, all in the thread."""
        post = dict(channel=channel, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False)
        error = render.first_error(events)
        done = next((e for e in reversed(events) if isinstance(e, Done)), Done(answer=""))
        client.chat_postMessage(text=render.error_text(error) if error
                                else render.answer_text(done.answer), **post)
        if error is None:
            chart = self.chart(session, events)
            if chart is not None:
                png, title = chart
                try:
                    client.files_upload_v2(channel=channel, thread_ts=thread_ts, file=png,
                                           filename="atlas-chart.png", title=title or "Chart")
                except Exception:  # noqa: BLE001 - the answer and trace still go out
                    log.exception("chart upload failed in %s", session)
        trace = render.trace_text(events, self.settings.model)
        if trace:
            client.chat_postMessage(text=trace, **post)

    def chart(self, session: str, events: list[Event]) -> tuple[bytes, str] | None:
        """A PNG of the answer's chart, else of its last chartable table, with a title."""
        charts = [e for e in reversed(events) if isinstance(e, Chart)]
        tables = [e for e in reversed(events) if isinstance(e, Table)]
        for event, draw in [(c, render.figure_png) for c in charts] + [
                (t, render.table_png) for t in tables]:
            try:
                png = draw(self.analyst.result(session, event.ref), event.title)
            except Exception:  # noqa: BLE001 - a chart is a bonus, never a failure
                log.exception("could not draw %s of %s", event.ref, session)
                continue
            if png:
                return png, event.title
        return None

    @staticmethod
    def _react(client: WebClient, channel: str, ts: str) -> None:
        """Best effort 👀 on the question (needs the optional reactions:write scope)."""
        try:
            client.reactions_add(channel=channel, timestamp=ts, name=WORKING_REACTION)
        except Exception:  # noqa: BLE001
            log.debug("could not add a reaction", exc_info=True)


def build_slack_app(settings: Settings, analyst: Any = None, client_base_url: str | None = None,
                    signing_secret: str | None = None, token: str | None = None, *,
                    channels: str | Iterable[str] | None = None,
                    users: str | Iterable[str] | None = None,
                    process_before_response: bool = False) -> App:
    """The Bolt app. Tokens default to SLACK_BOT_TOKEN / SLACK_SIGNING_SECRET, allowlists to
    ATLAS_SLACK_CHANNELS / ATLAS_SLACK_USERS; without a signing secret HTTP requests are refused.
    """
    token = token or os.environ.get("SLACK_BOT_TOKEN")
    if not token:
        raise SlackSetupError("set SLACK_BOT_TOKEN to the bot's xoxb- token "
                              "(Slack app → OAuth & Permissions)")
    if signing_secret is None:
        signing_secret = os.environ.get("SLACK_SIGNING_SECRET", "")
    if analyst is None:
        from agent.analyst import Analyst

        analyst = Analyst(settings)
    client = WebClient(token=token, base_url=client_base_url or WebClient.BASE_URL)
    app = App(client=client, signing_secret=signing_secret, name="atlas",
              process_before_response=process_before_response)
    bot = AtlasSlack(settings, analyst, id_list(channels, "ATLAS_SLACK_CHANNELS"),
                     id_list(users, "ATLAS_SLACK_USERS"))
    app.use(bot.gate)
    app.event("app_mention")(bot.on_event)
    app.event("message")(bot.on_event)

    @app.error
    def on_error(error: Exception) -> None:
        log.error("Slack listener error: %s", error, exc_info=error)

    return app


class _BoltHandler(BaseHTTPRequestHandler):
    app: App
    path_prefix = EVENTS_PATH
    server_version = "AtlasSlack/1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        if parts.path != self.path_prefix:
            self._send(404, {}, b"not found")
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.app.dispatch(BoltRequest(body=raw, query=parts.query, headers=headers))
        body = response.body if isinstance(response.body, str) else json.dumps(response.body)
        self._send(response.status, response.first_headers_without_set_cookie(), body.encode())

    def do_GET(self) -> None:  # noqa: N802
        if urlsplit(self.path).path == "/health":
            self._send(200, {"content-type": "text/plain"}, b"ok")
        else:
            self._send(404, {}, b"not found")

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("http: " + format, *args)


def serve_http(app: App, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A threaded HTTP server for Slack's Events API at ``/slack/events`` (not yet serving)."""
    handler = type("AtlasBoltHandler", (_BoltHandler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def run_slack(settings: Settings, mode: str = "socket", port: int = 3000, *,
              host: str = "0.0.0.0") -> None:
    """Run Atlas in Slack until interrupted: ``socket`` (SLACK_APP_TOKEN) or ``http`` mode."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if mode not in ("socket", "http"):
        raise SlackSetupError(f"unknown Slack mode {mode!r}: use 'socket' or 'http'")
    app_token = os.environ.get("SLACK_APP_TOKEN", "")
    if mode == "socket" and not app_token.startswith("xapp-"):
        raise SlackSetupError("Socket Mode needs SLACK_APP_TOKEN, an app-level xapp- token with "
                              "the connections:write scope (Slack app → Basic Information)")
    if mode == "http" and not os.environ.get("SLACK_SIGNING_SECRET"):
        raise SlackSetupError("HTTP mode needs SLACK_SIGNING_SECRET (Slack app → Basic "
                              "Information → App Credentials) to verify requests")
    from agent.analyst import Analyst

    analyst = Analyst(settings)
    try:
        app = build_slack_app(settings, analyst)
        if mode == "socket":
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            log.info("Atlas is connecting to Slack in Socket Mode (model %s)", settings.model)
            SocketModeHandler(app, app_token).start()
        else:
            server = serve_http(app, host, port)
            log.info("Atlas listens for Slack events on http://%s:%d%s (model %s)",
                     host, server.server_address[1], EVENTS_PATH, settings.model)
            try:
                server.serve_forever()
            finally:
                server.server_close()
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        analyst.close()
