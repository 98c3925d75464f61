"""The web chat page in a real browser (Playwright driving Debian's chromium)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is not installed (scripts/test installs it)"
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server_url(runtime):
    import uvicorn

    from bot.web.app import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-background-networking"]
        )
        page = browser.new_page(viewport={"width": 520, "height": 760})
        yield page
        browser.close()


def test_a_customer_types_a_question_and_sees_the_answer(server_url, page):
    page.goto(server_url + "/")
    page.fill("#text", "how much does delivery cost?")
    page.press("#text", "Enter")

    bubbles = page.locator(".bubble--bot")
    bubbles.nth(1).wait_for(timeout=30_000)
    answer = bubbles.nth(1).inner_text()
    assert "deliver" in answer.lower()
    assert page.locator(".bubble--customer").inner_text() == "how much does delivery cost?"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "webchat.png"), full_page=True)


def test_customer_html_is_shown_as_text_not_run(server_url, page):
    page.goto(server_url + "/")
    hostile = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script> hi'
    page.fill("#text", hostile)
    page.click("#send")
    page.locator(".bubble--bot").nth(1).wait_for(timeout=30_000)

    assert page.locator(".bubble--customer").inner_text() == hostile
    assert page.locator(".bubble img").count() == 0
    assert page.title() != "pwned"
