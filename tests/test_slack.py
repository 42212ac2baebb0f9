"""The Slack front-end over real HTTP: signed events in, Web API calls out (to a stub)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from slack_bolt import BoltRequest

from agent import slack_render as render
from agent.analyst import Analyst
from agent.config import Settings
from agent.events import Done, ToolFinished, ToolStarted, Usage
from agent.slack_bot import (
    REFUSE_CHANNEL,
    REFUSE_USER,
    SlackSetupError,
    build_slack_app,
    run_slack,
    serve_http,
    strip_mention,
)
from tests.model import ScriptedChatModel, answer, call, tool_turn
from tests.slack_stub import SlackStub

SECRET = "test-signing-secret"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def no_slack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN",
                 "ATLAS_SLACK_CHANNELS", "ATLAS_SLACK_USERS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def tiny_db(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE plays(user_id INTEGER, country VARCHAR, minutes DOUBLE, day DATE)")
    con.execute("INSERT INTO plays VALUES (1, 'BR', 10, '2024-05-01'), (2, 'BR', 5, '2024-05-02'),"
                " (3, 'US', 7, '2024-05-02')")
    con.close()
    return path


def sign(body: str, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/json"}


@dataclass
class Bot:
    """Atlas's Slack app served on 127.0.0.1, talking to a Slack stub."""

    stub: SlackStub
    url: str
    model: ScriptedChatModel | None
    analyst: Any
    events_sent: int = 0
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def send(self, event: dict[str, Any], *, secret: str = SECRET,
             event_id: str | None = None) -> tuple[int, str]:
        self.events_sent += 1
        body = json.dumps({
            "token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
            "event": {"event_ts": event.get("ts", "1.0"), **event},
            "event_id": event_id or f"Ev{self.events_sent:04d}", "event_time": int(time.time()),
        })
        return self.post(body, sign(body, secret))

    def post(self, body: str, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(self.url, data=body.encode(), headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def posts(self) -> list[dict[str, Any]]:
        return self.stub.of("chat.postMessage")


@pytest.fixture()
def make_bot(tiny_db: Path, isolated_home: Path) -> Iterator[Callable[..., Bot]]:
    bots: list[Bot] = []

    def make(steps: list | None = None, *, analyst: Any = None, db: Path | None = None,
             **options: Any) -> Bot:
        stub = SlackStub().start()
        model = ScriptedChatModel(steps=list(steps or []))
        if analyst is None:
            settings = Settings(db=db or tiny_db, home=isolated_home)
            analyst = Analyst(settings, model_factory=lambda ctx: model)
        app = build_slack_app(Settings(db=db or tiny_db, home=isolated_home), analyst,
                              client_base_url=stub.url + "/api/", signing_secret=SECRET,
                              token="xoxb-test", **options)
        server = serve_http(app, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        bot = Bot(stub, f"http://127.0.0.1:{server.server_address[1]}/slack/events", model, analyst)
        bot.cleanup += [server.shutdown, server.server_close, stub.stop]
        if hasattr(analyst, "close"):
            bot.cleanup.append(analyst.close)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        for step in bot.cleanup:
            step()


def mention(text: str, ts: str = "1700000000.000100", *, user: str = "U1", channel: str = "C1",
            **extra: Any) -> dict[str, Any]:
    return {"type": "app_mention", "user": user, "text": f"<@UBOT> {text}", "ts": ts,
            "channel": channel, **extra}


def humans(messages: list) -> list[str]:
    return [m.content for m in messages if isinstance(m, HumanMessage)]


# -- the whole path ------------------------------------------------------------------------------
def test_mention_gets_answer_then_chart_then_trace_in_thread(make_bot, isolated_home: Path) -> None:
    sql = "SELECT country, sum(minutes) AS minutes FROM plays GROUP BY 1 ORDER BY 2 DESC"
    bot = make_bot([tool_turn(call("run_sql", "q1", sql=sql, title="Minutes per country")),
                    answer("**BR** watched 15 minutes, US 7 (x < y & z).")])
    status, _ = bot.send(mention("minutes per country?"))
    assert status == 200
    answer_post, trace_post = bot.stub.wait_for("chat.postMessage", 2)
    assert answer_post["channel"] == "C1" and answer_post["thread_ts"] == "1700000000.000100"
    assert answer_post["text"] == "*BR* watched 15 minutes, US 7 (x &lt; y &amp; z)."
    # the chart: upload URL, the PNG bytes to it, completion into the thread
    (url_call,) = bot.stub.of("files.getUploadURLExternal")
    assert url_call["filename"] == "atlas-chart.png" and int(url_call["length"]) > 1000
    (png,) = bot.stub.uploads.values()
    assert png.startswith(PNG) and len(png) == int(url_call["length"])
    (complete,) = bot.stub.of("files.completeUploadExternal")
    assert complete["channel_id"] == "C1" and complete["thread_ts"] == "1700000000.000100"
    assert json.loads(complete["files"])[0]["title"] == "Minutes per country"
    # the trace, last
    assert trace_post["thread_ts"] == "1700000000.000100"
    trace = trace_post["text"]
    assert "✓ `run_sql` · 2 rows" in trace and "```SELECT country" in trace and "LIMIT" in trace
    order = [m for m in bot.stub.methods() if m in (
        "chat.postMessage", "files.getUploadURLExternal", "files.completeUploadExternal")]
    assert order == ["chat.postMessage", "files.getUploadURLExternal",
                     "files.completeUploadExternal", "chat.postMessage"]
    assert bot.stub.of("reactions.add")[0]["name"] == "eyes"
    # the question without the mention; the audit names the Slack user and the thread session
    assert humans(bot.model.seen[0]) == ["minutes per country?"]
    record = json.loads((isolated_home / "audit.jsonl").read_text().splitlines()[-1])
    assert record["who"] == "slack:U1" and record["session"] == "slack:T1:C1:1700000000.000100"


def test_follow_up_in_the_thread_keeps_the_context(make_bot) -> None:
    bot = make_bot([answer("There are 3 plays."), answer("2 of them are from Brazil."),
                    answer("A new thread.")])
    bot.send(mention("how many plays?", "1700000000.000100"))
    bot.stub.wait_for("chat.postMessage", 1)
    bot.send(mention("and in Brazil?", "1700000005.000200", thread_ts="1700000000.000100"))
    first, second = bot.stub.wait_for("chat.postMessage", 2)
    assert second["thread_ts"] == "1700000000.000100" and second["text"] == "2 of them are from Brazil."
    assert humans(bot.model.seen[1]) == ["how many plays?", "and in Brazil?"]
    assert isinstance(bot.model.seen[1][2], AIMessage)
    # a new top-level mention is a new conversation
    bot.send(mention("hello again", "1700000009.000300"))
    bot.stub.wait_for("chat.postMessage", 3)
    assert humans(bot.model.seen[2]) == ["hello again"]
    assert not bot.stub.of("files.getUploadURLExternal")  # no table, no chart; no tools, no trace


def test_direct_message_is_acknowledged_at_once_and_answered_in_its_thread(make_bot) -> None:
    release = threading.Event()

    def slow(messages: list) -> AIMessage:
        assert release.wait(5)
        return answer("Hello from Atlas.")

    bot = make_bot([slow])
    started = time.perf_counter()
    status, _ = bot.send({"type": "message", "channel_type": "im", "channel": "D1", "user": "U1",
                          "text": "hi there", "ts": "1700000100.000100"})
    assert status == 200 and time.perf_counter() - started < 3  # acked while Atlas still works
    assert bot.posts() == []
    release.set()
    (post,) = bot.stub.wait_for("chat.postMessage", 1)
    assert post == {**post, "channel": "D1", "thread_ts": "1700000100.000100",
                    "text": "Hello from Atlas."}


def test_socket_mode_requests_take_the_same_path(make_bot) -> None:
    bot = make_bot([answer("Over the socket.")])
    app = build_slack_app(Settings(), bot.analyst, client_base_url=bot.stub.url + "/api/",
                          token="xoxb-test", signing_secret="")
    payload = {"type": "event_callback", "team_id": "T1", "event_id": "EvSock",
               "event": mention("via socket?", "1700000400.000100")}
    response = app.dispatch(BoltRequest(body=payload, mode="socket_mode"))
    assert response.status == 200
    (post,) = bot.stub.wait_for("chat.postMessage", 1)
    assert post["text"] == "Over the socket." and post["thread_ts"] == "1700000400.000100"


# -- refusals and filters ------------------------------------------------------------------------
def test_bad_signature_is_refused(make_bot) -> None:
    bot = make_bot([answer("never")])
    assert bot.send(mention("hi"), secret="not-the-secret")[0] == 401
    body = json.dumps({"type": "event_callback", "event": mention("hi"), "team_id": "T1"})
    stale = sign(body, timestamp=int(time.time()) - 3600)
    assert bot.post(body, stale)[0] == 401
    assert bot.post(body, {"Content-Type": "application/json"})[0] == 401
    time.sleep(0.2)
    assert bot.posts() == [] and bot.model.seen == []


def test_url_verification_challenge(make_bot) -> None:
    bot = make_bot()
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "x"})
    status, text = bot.post(body, sign(body))
    assert status == 200 and "c-123" in text


@pytest.mark.parametrize("options, event, refusal", [
    ({"users": "U_OK, U_BOSS"}, mention("top countries?", user="U1"), REFUSE_USER),
    ({"channels": ["C_OK"]}, mention("top countries?", channel="C2"), REFUSE_CHANNEL),
])
def test_outside_the_allowlist_gets_a_polite_refusal(make_bot, options, event, refusal) -> None:
    bot = make_bot([answer("never")], **options)
    assert bot.send(event)[0] == 200
    (post,) = bot.stub.wait_for("chat.postMessage", 1)
    assert post["text"] == refusal and post["thread_ts"] == event["ts"]
    assert bot.model.seen == []


def test_allowlists_come_from_the_environment(make_bot, monkeypatch) -> None:
    monkeypatch.setenv("ATLAS_SLACK_USERS", "U1")
    monkeypatch.setenv("ATLAS_SLACK_CHANNELS", "C1")
    bot = make_bot([answer("Yes, you may.")])
    bot.send(mention("may I?"))
    bot.send({"type": "message", "channel_type": "im", "channel": "D9", "user": "U2",
              "text": "me too?", "ts": "1700000200.000100"})
    posts = bot.stub.wait_for("chat.postMessage", 2)
    assert sorted(p["text"] for p in posts) == sorted(["Yes, you may.", REFUSE_USER])


def test_bots_edits_channel_chatter_and_retries_are_ignored(make_bot) -> None:
    bot = make_bot([answer("Only once.")])
    ignored = [
        mention("talking to myself", user="UBOT"),
        mention("I am another bot", bot_id="B2"),
        {"type": "message", "subtype": "bot_message", "bot_id": "B2", "channel": "D1",
         "channel_type": "im", "text": "beep", "ts": "1.1"},
        {"type": "message", "channel_type": "im", "channel": "D1", "user": "UBOT",
         "bot_id": "BBOT", "text": "my own answer", "ts": "1.2"},
        {"type": "message", "subtype": "message_changed", "channel": "D1", "channel_type": "im",
         "message": {"user": "U1", "text": "edited"}, "ts": "1.3"},
        {"type": "message", "channel_type": "channel", "channel": "C1", "user": "U1",
         "text": "<@UBOT> seen as app_mention instead", "ts": "1.4"},
    ]
    for event in ignored:
        assert bot.send(event)[0] == 200
    assert bot.posts() == [] and bot.model.seen == []  # filtered before Slack was acknowledged
    real = mention("once please", "1700000300.000100")
    assert bot.send(real, event_id="EvSame")[0] == 200
    assert bot.send(real, event_id="EvSame")[0] == 200  # Slack's retry of the same event
    bot.stub.wait_for("chat.postMessage", 1)
    time.sleep(0.3)
    assert len(bot.posts()) == 1 and len(bot.model.seen) == 1


def test_an_empty_mention_gets_a_hint(make_bot) -> None:
    bot = make_bot()
    bot.send({"type": "app_mention", "user": "U1", "text": "<@UBOT>", "ts": "5.5", "channel": "C1"})
    (post,) = bot.stub.wait_for("chat.postMessage", 1)
    assert post["text"].startswith("Hi! Ask me a question") and bot.model.seen == []


# -- failures ---------------------------------------------------------------------------------------
def test_a_failing_model_gets_a_polite_reply(make_bot) -> None:
    def explode(messages: list) -> AIMessage:
        raise RuntimeError("boom in /srv/secret/module.py")

    bot = make_bot([explode])
    bot.send(mention("crash please"))
    (post,) = bot.stub.wait_for("chat.postMessage", 1)
    assert post["thread_ts"] == "1700000000.000100"
    assert post["text"].startswith("I couldn't answer that: something went wrong")
    assert "boom" not in post["text"] and "Traceback" not in post["text"]


def test_an_error_event_gets_a_polite_reply(make_bot, tmp_path: Path) -> None:
    bot = make_bot([answer("never")], db=tmp_path / "missing.duckdb")
    bot.send(mention("anything"))
    (post,) = bot.stub.wait_for("chat.postMessage", 1)
    assert post["text"].startswith("I couldn't answer that: there is no database at")
    assert bot.model.seen == []


def test_an_exception_from_the_analyst_gets_a_polite_reply(make_bot) -> None:
    class Broken:
        def stream(self, question: str, session: str, *, user: str):
            yield ToolStarted("c", "run_sql", {})
            raise KeyError("internal detail")

    bot = make_bot(analyst=Broken())
    bot.send(mention("break"))
    (post,) = bot.stub.wait_for("chat.postMessage", 1)
    assert post["text"] == ("I couldn't answer that: something went wrong on my side. "
                            "Try again in a moment, or rephrase.")


# -- set-up and rendering ---------------------------------------------------------------------------
def test_setup_errors_are_sentences(tiny_db: Path, monkeypatch) -> None:
    with pytest.raises(SlackSetupError, match="SLACK_BOT_TOKEN"):
        build_slack_app(Settings(db=tiny_db), analyst=object())
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-x")
    with pytest.raises(SlackSetupError, match="SLACK_APP_TOKEN"):
        run_slack(Settings(db=tiny_db), "socket", 0)
    with pytest.raises(SlackSetupError, match="SLACK_SIGNING_SECRET"):
        run_slack(Settings(db=tiny_db), "http", 0)
    with pytest.raises(SlackSetupError, match="socket"):
        run_slack(Settings(db=tiny_db), "carrier-pigeon", 0)


def test_mention_stripping_and_mrkdwn() -> None:
    assert strip_mention("<@UBOT>  top 5 <@U7> creators?", "UBOT") == "top 5 <@U7> creators?"
    assert strip_mention("<@UBOT|atlas> hi", "UBOT") == "hi"
    text = render.to_mrkdwn("# Result\n- **BR**: 15 and *rising*\n[docs](https://x.io/a)\n"
                            "`a<b`\n```\nSELECT 1 WHERE a < 2\n```")
    assert text == ("*Result*\n• *BR*: 15 and _rising_\n<https://x.io/a|docs>\n`a&lt;b`\n"
                    "```\nSELECT 1 WHERE a &lt; 2\n```")
    table = render.to_mrkdwn("Top:\n| country | n |\n|---|---|\n| BR | 2 |\nDone.")
    assert table == "Top:\n```\n| country | n |\n|---|---|\n| BR | 2 |\n```\nDone."
    long = render.answer_text("word " * 2000)
    assert len(long) <= render.MAX_TEXT and long.endswith("…")


def test_trace_is_truncated_sensibly() -> None:
    sql = "SELECT " + ", ".join(f"col_{i}" for i in range(600)) + " FROM t"
    events = [ToolStarted("a", "list_tables", {}),
              ToolFinished("a", "list_tables", True, {}, None, 2, 3.0),
              ToolStarted("b", "describe_table", {"table": "plays"}),
              ToolFinished("b", "describe_table", False, "unknown table 'ploys'\nuse plays", ms=1),
              *[ToolFinished(f"s{i}", "run_sql", True, {}, sql, 10, 12.5) for i in range(6)],
              Done("ok", Usage(3, 100, 20))]
    text = render.trace_text(events, "offline")
    assert len(text) <= render.MAX_TEXT and text.count("```") % 2 == 0
    assert text.startswith("*How I got this* (8 steps, model `offline`, 3 model calls")
    assert "✓ `list_tables` · 2 rows · 3 ms" in text
    assert "✗ `describe_table` · failed · 1 ms\n> unknown table 'ploys' use plays" in text
    assert "`{\"table\": \"plays\"}`" in text and "-- … (truncated)" in text
    assert "more steps, not shown_" in text
    assert render.trace_text([Done("hi")]) is None


def test_chart_choice_and_pngs() -> None:
    bars = pd.DataFrame({"country": [f"c{i}" for i in range(20)], "user_id": range(20),
                         "plays": range(20, 0, -1)})
    assert render.chart_plan(bars) == ("bar", "country", "plays")
    assert render.table_png(bars, "Plays").startswith(PNG)
    days = pd.DataFrame({"day": pd.to_datetime(["2024-05-02", "2024-05-01"]), "n": [3, 1]})
    assert render.chart_plan(days) == ("line", "day", "n")
    assert render.table_png(pd.DataFrame({"day": ["2024-05-01", "2024-05-02"], "n": [1, 2]}),
                            "x").startswith(PNG)
    assert render.chart_plan(pd.DataFrame({"n": [3]})) is None
    assert render.chart_plan(pd.DataFrame({"a": ["x", "y"], "b": ["p", "q"]})) is None
    assert render.chart_plan(pd.DataFrame({"user_id": [1, 2], "n": [3, 4]})) is None

    import plotly.express as px
    import plotly.io as pio

    figure = pio.from_json(px.bar(bars, x="country", y="plays", title="Plays").to_json())
    assert render.figure_png(figure, "Plays").startswith(PNG)
    line = px.line(days, x="day", y="n")
    assert render.figure_png(line, "Trend").startswith(PNG)
    assert render.figure_png(object(), "nothing") is None
    assert isinstance(io.BytesIO(render.figure_png(px.pie(bars, names="country", values="plays"),
                                                   "Share")).read(), bytes)
