"""The web chat page in a real browser (Playwright driving Debian's chromium); the `server_url` and `page`
fixtures live in conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = pytest.mark.browser  # the `page` fixture skips (or fails in CI) without chromium


def test_a_customer_types_a_question_and_sees_the_answer(server_url, page):
    page.goto(server_url + "/")
    page.fill("#text", "how much does delivery cost?")
    page.press("#text", "Enter")

    bubbles = page.locator(".bubble--bot")
    bubbles.nth(1).wait_for(timeout=30_000)
    answer = bubbles.nth(1).inner_text()
    assert "deliver" in answer.lower()
    assert page.locator(".bubble--customer .bubble__text").inner_text() == "how much does delivery cost?"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "webchat.png"), full_page=True)


def test_customer_html_is_shown_as_text_not_run(server_url, page):
    page.goto(server_url + "/")
    hostile = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script> hi'
    page.fill("#text", hostile)
    page.click("#send")
    page.locator(".bubble--bot").nth(1).wait_for(timeout=30_000)

    assert page.locator(".bubble--customer .bubble__text").inner_text() == hostile
    assert page.locator(".bubble img").count() == 0
    assert page.title() != "pwned"
