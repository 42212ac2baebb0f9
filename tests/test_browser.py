"""A real browser (Debian's Chromium driven by Playwright) against the chat page."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.analyst import Analyst
from agent.config import Settings

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
QUESTION = "How has total watch time changed week by week?"
FOLLOW_UP = "What about only people on iPhones?"


@pytest.fixture(scope="module")
def page_url(sample_db_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import ui

    home = tmp_path_factory.mktemp("browser-home")
    settings = Settings(db=sample_db_path, home=home)
    analyst = Analyst(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = ui.launch(settings, port=port, analyst=analyst, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()
        analyst.close()


def test_ask_follow_up_reload_and_privacy_between_browsers(page_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is missing: `make test` installs Debian's chromium"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1100})
        page = context.new_page()
        page.goto(page_url)
        page.locator("#question textarea").fill(QUESTION)
        page.locator("#ask").click()
        chat = page.locator("#chat")
        expect(chat.get_by_text("Tool: trend").first).to_be_visible(timeout=60_000)
        expect(chat.locator(".atlas-table").first).to_be_visible(timeout=60_000)
        expect(chat.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
        expect(chat.get_by_text("Offline mode").first).to_be_visible(timeout=60_000)
        expect(page.locator("#result-table")).to_contain_text("2026-09-", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "answer.png"), full_page=True)

        page.locator("#question textarea").fill(FOLLOW_UP)
        page.locator("#ask").click()
        expect(chat.get_by_text(FOLLOW_UP)).to_be_visible(timeout=30_000)
        expect(chat.get_by_text("Offline mode")).to_have_count(2, timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "follow-up.png"), full_page=True)

        page.reload()
        earlier = page.locator("#chat-list").get_by_text(QUESTION[:40])
        expect(earlier).to_be_visible(timeout=30_000)
        earlier.click()
        expect(page.locator("#chat").get_by_text(FOLLOW_UP)).to_be_visible(timeout=30_000)
        expect(page.locator("#chat .js-plotly-plot").first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "reopened.png"), full_page=True)

        stranger = browser.new_context()
        other = stranger.new_page()
        other.goto(page_url)
        expect(other.locator("#question textarea")).to_be_visible(timeout=30_000)
        other.wait_for_timeout(1500)  # give the page's load event time to fill the chat list
        assert other.locator("#chat-list input[type=radio]").count() == 0
        assert other.locator("#chat").get_by_text(QUESTION).count() == 0
        other.screenshot(path=str(ARTIFACTS / "other-browser.png"), full_page=True)
        browser.close()
