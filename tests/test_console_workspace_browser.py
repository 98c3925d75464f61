"""The agent's workspace in a real browser (Playwright driving Debian's chromium, on a real uvicorn server):
the queue updating live with the count in the tab title, working a conversation from the keyboard (j, Enter,
r, a canned reply picked with "/", Ctrl+Enter to send, e to resolve), the warning before resolving an
unanswered customer, snoozing and the conversation coming back live when its time comes, a correction of
the bot's reading stored, "not abuse" from the moderation queue, and the admin pages at 1280 px and on a
phone (screenshots in test-artifacts/, looked at when the pages change)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import Conversation, Correction, ModerationItem, WebhookEndpoint, utcnow
from bot.support.canned import save_canned
from bot.support.snooze import wake_due_snoozes
from tests.test_console_browser import LIVE_UPDATE_MS, add_agent, customer_says, customer_sees, log_in
from tests.test_staff_console import add_staff

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
COMPLAINT = "My jacket fell apart after two days and nobody answers my emails!!"
ABUSE = "You are a stupid idiot and I hope you die"
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.browser


def new_session() -> str:
    return f"web-{uuid.uuid4().hex}"


def complaint_from(server_url: str, name: str, text: str = COMPLAINT) -> dict:
    session_id = new_session()
    said = customer_says(server_url, session_id, text, name=name)
    assert said["state"] == "human", said
    return {**said, "session_id": session_id}


def state_of(runtime, conversation_id: int) -> str:
    with Session(runtime.engine) as session:
        return session.get(Conversation, conversation_id).state


def queue_row(page, conversation_id: int):
    return page.locator(f'table.queue tr[data-id="{conversation_id}"]')


def test_an_agent_works_the_queue_from_the_keyboard(server_url, runtime, page):
    page.set_viewport_size({"width": 1280, "height": 900})
    ana, _ = add_staff(runtime, "ana@fernhill.example", role="agent", name="Ana Lopez")
    with session_scope(runtime.engine) as session:
        save_canned(
            session,
            shortcut="refund",
            title="Refund on its way",
            text="Hi {first_name}, your refund is on its way. {agent_name}",
            staff_id=ana,
        )
    first = complaint_from(server_url, "Mia Jensen")
    log_in(page, server_url)
    assert queue_row(page, first["conversation_id"]).count() == 1

    second = complaint_from(
        server_url, "Tom Berg", "my order is late again and nobody answers, awful service"
    )
    queue_row(page, second["conversation_id"]).wait_for(timeout=LIVE_UPDATE_MS)  # no reload
    # A function, not an expression: Playwright runs a bare expression through eval(), which the CSP forbids.
    page.wait_for_function("() => document.title.startsWith('(2)')", timeout=LIVE_UPDATE_MS)

    page.keyboard.press("j")
    selected = page.locator("table.queue tr.is-selected")
    assert selected.get_attribute("data-id") in {
        str(first["conversation_id"]),
        str(second["conversation_id"]),
    }
    opened = selected.get_attribute("data-id")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf".*/console/conversations/{opened}(\?.*)?$"))
    customer = "Mia" if opened == str(first["conversation_id"]) else "Tom"

    page.keyboard.press("r")
    reply = page.locator("#reply-text")
    assert page.evaluate("document.activeElement.id") == "reply-text"
    reply.press_sequentially("/ref")
    page.locator("#canned[open]").wait_for()
    reply.press("Enter")
    assert reply.input_value() == f"Hi {customer}, your refund is on its way. Ana Lopez"
    reply.press("Control+Enter")
    page.wait_for_url(re.compile(r".*\?notice=Reply.*"))
    session_id = first["session_id"] if customer == "Mia" else second["session_id"]
    assert f"Hi {customer}, your refund is on its way. Ana Lopez" in [
        m["text"] for m in customer_sees(server_url, session_id) if m["author"] == "staff"
    ]

    page.keyboard.press("e")  # answered, so it resolves without asking
    page.wait_for_url(re.compile(r".*\?notice=Resolved.*"))
    assert state_of(runtime, int(opened)) == "resolved"

    page.keyboard.press("?")
    assert page.locator("#shortcuts").is_visible()
    page.keyboard.press("Escape")
    assert page.locator("#shortcuts").is_hidden()


def test_resolving_an_unanswered_customer_asks_and_a_snooze_comes_back_live(server_url, runtime, page):
    page.set_viewport_size({"width": 1280, "height": 900})
    add_agent(runtime)
    said = complaint_from(server_url, "Mia Jensen")
    conversation_id = said["conversation_id"]
    log_in(page, server_url)
    page.goto(f"{server_url}/console/conversations/{conversation_id}")

    page.locator("#resolve").click()
    warning = page.locator("#unanswered")
    warning.wait_for()
    assert "has no answer yet" in warning.inner_text() and "fell apart" in warning.inner_text()
    assert state_of(runtime, conversation_id) == "human"

    page.locator("#snooze summary").click()
    page.get_by_role("button", name="1 hour").click()
    page.wait_for_url(f"{server_url}/console")
    assert queue_row(page, conversation_id).count() == 0
    assert wake_due_snoozes(runtime.engine, now=utcnow() + timedelta(minutes=61)) == [conversation_id]
    queue_row(page, conversation_id).wait_for(timeout=LIVE_UPDATE_MS)  # back, without a reload

    page.goto(f"{server_url}/console/conversations/{conversation_id}")
    message = page.locator(f'#log .msg[data-id="{said["message_id"]}"]')
    message.locator("summary", has_text="Correct the reading").click()
    message.get_by_label("Intent").select_option("question")
    message.get_by_role("button", name="Save correction").click()
    page.wait_for_url(re.compile(r".*\?notice=Correction.*"))
    with Session(runtime.engine) as session:
        stored = session.exec(select(Correction)).one()
    assert (stored.message_id, stored.aspect, stored.value, stored.source) == (
        said["message_id"],
        "intent",
        "question",
        "console",
    )

    page.get_by_role("button", name="Resolve").click()
    page.get_by_role("button", name="Resolve anyway").click()
    page.wait_for_url(re.compile(r".*\?notice=Resolved.*"))
    assert state_of(runtime, conversation_id) == "resolved"


def test_not_abuse_from_the_moderation_queue_is_stored_and_answered(server_url, runtime, page):
    page.set_viewport_size({"width": 1280, "height": 900})
    add_agent(runtime)
    session_id = new_session()
    flagged = customer_says(server_url, session_id, ABUSE)
    assert flagged["replies"] == []
    log_in(page, server_url)
    page.goto(server_url + "/console/moderation")
    item = page.locator(".moditem").first
    marks = item.locator(".moditem__text mark").all_inner_texts()
    assert marks and all(word.lower() in ABUSE.lower() for word in marks)
    assert re.search(r"\babuse score\s+[01]\.\d\d\b", item.locator(".moditem__why").inner_text())  # 1.00 here
    item.locator("[data-reveal]").first.click()
    assert "revealed" in item.get_attribute("class")
    item.get_by_role("button", name="Not abuse").click()
    page.wait_for_url(re.compile(r".*/console/moderation\?notice=.*"))
    with Session(runtime.engine) as session:
        correction = session.exec(select(Correction)).one()
        assert session.exec(select(ModerationItem)).one().status == "fine"
    assert (correction.aspect, correction.value, correction.source) == ("abusive", "false", "moderation")


def test_admin_pages_fit_1280_px_and_a_phone_with_visible_buttons(server_url, runtime, page):
    add_staff(runtime, "root@fernhill.example", role="admin", name="Root")
    with session_scope(runtime.engine) as session:
        session.add(
            WebhookEndpoint(url="https://hooks.example.com/in", secret="s" * 32, events=["message.received"])
        )
    said = complaint_from(server_url, "Mia Jensen")
    customer_says(server_url, new_session(), ABUSE)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, server_url, "root@fernhill.example")

    nav = page.locator(".topbar__nav")
    assert nav.evaluate("n => n.scrollWidth <= n.clientWidth"), "the admin navigation overflows at 1280 px"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280

    page.goto(server_url + "/console/webhooks")
    for name in ("Disable", "Remove"):
        button = page.get_by_role("button", name=name)
        colour, background = button.evaluate(
            "b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]"
        )
        assert colour != background, f"{name}: {colour} on {background}"
        assert button.is_visible()

    missing = page.goto(server_url + "/console/conversations/999999")
    assert missing.status == 404 and page.locator(".topbar__nav").is_visible()

    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size(PHONE)
    page.goto(server_url + "/console")
    items = page.locator(".topbar__nav > a, .topbar__nav .menu > summary")
    for index in range(items.count()):
        box = items.nth(index).bounding_box()
        label = items.nth(index).inner_text().strip()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], f"{label!r} is off the screen"
    page.locator(".topbar__nav .menu > summary").click()
    for link in page.locator(".topbar__nav .menu__items a").all():
        on_top = link.evaluate(
            "a => { const r = a.getBoundingClientRect();"
            " return a.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2)); }"
        )
        assert on_top, f"the Admin menu's {link.inner_text()!r} is hidden on a phone"
    page.screenshot(path=str(ARTIFACTS / "console-admin-menu-phone.png"))
    page.keyboard.press("Escape")
    for name, path in (
        ("queue", "/console"),
        ("conversation", f"/console/conversations/{said['conversation_id']}"),
        ("moderation", "/console/moderation"),
        ("audit", "/console/audit"),
    ):
        page.goto(server_url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width} px wide on a phone"
        page.screenshot(path=str(ARTIFACTS / f"console-{name}-phone.png"), full_page=True)
