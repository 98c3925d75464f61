"""The staff console in a real browser (Playwright driving Debian's chromium): an agent logs in through the
form, takes a complaint from the queue, sees the customer's next message arrive by live update, replies (the
customer's web chat receives it) and resolves; customer HTML stays text everywhere, including live updates.
The customer side is the web chat HTTP API on the same real server (`server_url` and `page` are in
conftest.py)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from bot.crm.db import session_scope
from bot.support.staff import create_staff

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PASSWORD = "correct horse battery staple"
LIVE_UPDATE_MS = 15_000  # the page polls every 3 s

pytestmark = pytest.mark.browser  # the `page` fixture skips (or fails in CI) without chromium


def add_agent(runtime, email: str = "ana@fernhill.example", name: str = "Ana") -> None:
    with session_scope(runtime.engine) as session:
        create_staff(session, email, role="agent", password=PASSWORD, name=name)


#: The customers' browser: its cookie jar keeps each chat session's token (set by the session's first answer).
customers = httpx.Client(timeout=60)


def customer_says(server_url: str, session_id: str, text: str, name: str | None = None) -> dict:
    response = customers.post(
        f"{server_url}/api/v1/chat", json={"session_id": session_id, "text": text, "name": name}
    )
    assert response.status_code == 200, response.text
    return response.json()


def customer_sees(server_url: str, session_id: str) -> list[dict]:
    response = customers.get(f"{server_url}/api/v1/chat/{session_id}/messages")
    assert response.status_code == 200, response.text
    return response.json()


def log_in(page, server_url: str, email: str = "ana@fernhill.example") -> None:
    page.goto(server_url + "/console")
    assert "/console/login" in page.url
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server_url + "/console")


def wait_for_notice(page, conversation_id: int) -> None:
    """Wait for the redirect back to the conversation after a form post (it carries a notice)."""
    page.wait_for_url(lambda url: f"/console/conversations/{conversation_id}?notice=" in url)


def mark_page(page) -> None:
    """Tag the current document; if the page reloads, the tag is gone."""
    page.evaluate("window.__noReload = 'still here'")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__noReload") == "still here", "the page was reloaded"


def test_an_agent_takes_a_complaint_sees_live_updates_replies_and_resolves(server_url, runtime, page):
    page.set_viewport_size({"width": 1280, "height": 900})
    session_id = f"web-{uuid.uuid4().hex}"
    complaint = customer_says(
        server_url,
        session_id,
        "My jacket fell apart after two days and nobody answers my emails!!",
        name="Mia Jensen",
    )
    assert complaint["state"] == "human"
    conversation_id = complaint["conversation_id"]
    other = customer_says(
        server_url, f"web-{uuid.uuid4().hex}", "my order is late again, this is awful", name="Tom Berg"
    )
    add_agent(runtime)

    log_in(page, server_url)
    row = page.locator(
        "table.queue tr", has=page.locator(f'a[href="/console/conversations/{conversation_id}"]')
    )
    assert row.count() == 1
    assert "fell apart after two days" in row.inner_text()
    assert "unassigned" in row.inner_text()
    if other["state"] == "human":
        assert page.locator(f'a[href="/console/conversations/{other["conversation_id"]}"]').count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-queue.png"), full_page=True)

    row.get_by_role("link").click()
    page.wait_for_url(f"{server_url}/console/conversations/{conversation_id}")
    assert page.locator("#state").inner_text() == "human"
    page.get_by_role("button", name="Take it").click()
    wait_for_notice(page, conversation_id)
    assert "You took the conversation" in page.get_by_role("status").inner_text()
    assert page.locator("#take").count() == 0  # it is ours now

    mark_page(page)
    again = customer_says(server_url, session_id, "hello?? is anyone there? I want a refund")
    assert again["replies"] == [] and again["state"] == "human"  # the bot stays silent
    live = page.locator("#log .msg--new", has_text="is anyone there? I want a refund")
    live.wait_for(timeout=LIVE_UPDATE_MS)
    assert_not_reloaded(page)
    assert live.locator(".msg__text").inner_text() == "hello?? is anyone there? I want a refund"
    assert "msg--in" in live.get_attribute("class")
    # the message is on screen, so the reply form counts it as seen (no "the customer wrote again" warning)
    seen = page.locator('.reply input[name="seen_message_id"]').get_attribute("value")
    assert seen == live.get_attribute("data-id") == str(again["message_id"])
    live_time = live.locator("time").inner_text()

    reply = "Hi Mia, Ana here - a replacement jacket is on its way today, and I've refunded the delivery."
    page.get_by_label("Reply to the customer on webchat").fill(reply)
    page.get_by_role("button", name="Send reply").click()
    wait_for_notice(page, conversation_id)
    assert "Reply queued" in page.get_by_role("status").inner_text()
    assert page.locator("#collision").count() == 0
    # after the reload the server renders the same message with the same time as the live update did
    assert page.locator(f'#log .msg[data-id="{again["message_id"]}"] time').inner_text() == live_time
    assert page.locator("#log .msg--out", has_text="a replacement jacket is on its way").count() == 1

    deadline = time.monotonic() + 15
    while True:
        staff_lines = [m["text"] for m in customer_sees(server_url, session_id) if m["author"] == "staff"]
        if staff_lines or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert staff_lines == [reply]

    page.reload()  # the delivery status is now "sent"
    page.screenshot(path=str(ARTIFACTS / "console-conversation.png"), full_page=True)

    page.get_by_role("button", name="Resolve").click()
    wait_for_notice(page, conversation_id)
    assert page.locator("#state").inner_text() == "resolved"
    assert "Resolved the conversation (now resolved)" in page.get_by_role("status").inner_text()
    assert page.locator("#resolve").count() == 0


HOSTILE = (
    "<script>window.__xss = 'script'; document.title = 'pwned'</script>"
    "<img src=x onerror=\"window.__xss = 'img'; document.title = 'pwned'\"> I want to talk to a human"
)
HOSTILE_LIVE = (
    "<img src=x onerror=\"window.__xss = 'live'; document.title = 'pwned'\"><b>bold?</b> still waiting"
)


def assert_shown_as_text(message, text: str) -> None:
    """The message's text node holds exactly the customer's characters: no elements were parsed from it."""
    body = message.locator(".msg__text")
    assert body.inner_text() == text
    assert body.evaluate("node => node.childElementCount") == 0
    assert body.evaluate("node => node.textContent") == text


def test_customer_html_is_shown_as_text_in_the_queue_the_conversation_and_live_updates(
    server_url, runtime, page
):
    page.set_viewport_size({"width": 1280, "height": 900})
    session_id = f"web-{uuid.uuid4().hex}"
    first = customer_says(server_url, session_id, HOSTILE)
    assert first["state"] == "human"
    conversation_id = first["conversation_id"]
    add_agent(runtime)

    log_in(page, server_url)
    snippet = page.locator("table.queue .snippet").first
    assert snippet.inner_text() == HOSTILE[:140]
    assert page.locator("table.queue img, table.queue script").count() == 0
    assert page.evaluate("window.__xss") is None and "pwned" not in page.title()

    page.goto(f"{server_url}/console/conversations/{conversation_id}")
    assert f"Conversation {conversation_id}" in page.title()  # after the unread count, if any
    first_message = page.locator("#log .msg", has_text="I want to talk to a human")
    assert_shown_as_text(first_message, HOSTILE)
    assert page.locator("#log img, #log script").count() == 0

    mark_page(page)
    customer_says(server_url, session_id, HOSTILE_LIVE)
    live = page.locator("#log .msg--new", has_text="still waiting")
    live.wait_for(timeout=LIVE_UPDATE_MS)
    assert_not_reloaded(page)
    assert_shown_as_text(live, HOSTILE_LIVE)
    assert page.locator("#log img, #log script, #log b").count() == 0
    page.wait_for_timeout(500)  # give any injected handler a chance to fire
    assert page.evaluate("window.__xss") is None
    assert "pwned" not in page.title()


def test_a_logged_out_visit_to_the_console_lands_on_the_login_page(server_url, page):
    page.goto(server_url + "/console")
    assert page.url == f"{server_url}/console/login?next=/console"
    assert page.get_by_role("heading", name="Log in").is_visible()
    assert page.locator("input[name=next]").get_attribute("value") == "/console"
    assert page.locator(".topbar__nav").count() == 0  # no staff navigation for strangers

    page.goto(server_url + "/console/conversations/1")
    assert "/console/login" in page.url
    assert page.locator("input[name=next]").get_attribute("value") == "/console/conversations/1"
