"""The customer's web chat in a real browser (Playwright driving Debian's chromium) against a real server:
who has the conversation (shown live, and again after a reload), timestamps in the browser's time zone,
typing both ways (the agent side through the console's typing endpoint from a logged-in console page; the
customer typing in the widget shown live in the agent's conversation view, the agent's reply box shown in the
widget), the phone layout, and the widget: one <script> tag on a page of another origin (another loopback
port) opens the chat in a frame from socialbot's origin, sends, and gets the answer."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from bot.crm.db import session_scope
from bot.support.staff import create_staff, issue_api_token
from tests.conftest import CHROMIUM, free_port
from tests.parts import missing_part

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PASSWORD = "correct horse battery staple"
COMPLAINT = "My jacket fell apart after two days and nobody answers my emails!!"
LIVE_MS = 15_000  # the event stream looks every second
WIDGET_COLOR = "#c0392b"
WIDGET_GREETING = "Hi from the Fernhill shop! Ask us anything."

pytestmark = pytest.mark.browser


class BrandSite:
    """The brand's own site on another loopback port: one page holding the widget's <script> tag."""

    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.html = b""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(site.html)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def embed(self, socialbot_url: str) -> None:
        self.html = (
            "<!doctype html><html><head><title>Fernhill Outdoor shop</title></head><body>"
            "<h1>Fernhill Outdoor</h1><p>Jackets, tents and boots for every weather.</p>"
            f'<script src="{socialbot_url}/widget.js" data-color="{WIDGET_COLOR}" '
            f'data-greeting="{WIDGET_GREETING}" async></script></body></html>'
        ).encode()


@pytest.fixture
def brand_site() -> Iterator[BrandSite]:
    site = BrandSite()
    yield site
    site.server.shutdown()


@pytest.fixture
def runtime(make_settings, models, brand_site) -> Iterator:
    """The server's runtime, letting the brand's site (and only it) frame the chat."""
    from bot.worker.build import build_runtime

    built = build_runtime(make_settings(webchat={"allowed_origins": [brand_site.origin]}), models=models)
    yield built
    built.close()


@pytest.fixture
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        missing_part("chromium", "Debian's chromium is not installed (scripts/test installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-background-networking"]
        )
        yield launched
        launched.close()


@pytest.fixture
def agent(runtime) -> tuple[int, str]:
    """Ana, an agent: her staff id and API token."""
    with session_scope(runtime.engine) as session:
        staff = create_staff(
            session, "ana@fernhill.example", role="agent", password=PASSWORD, name="Ana Lopez"
        )
        return staff.id, issue_api_token(session, staff)


def staff_api(server_url: str, token: str, path: str, **json) -> httpx.Response:
    response = httpx.post(
        f"{server_url}/api/v1{path}",
        json=json or None,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code in (200, 202), response.text
    return response


def send(page, text: str) -> None:
    before = page.locator(".bubble--customer").count()
    page.fill("#text", text)
    page.press("#text", "Enter")
    page.locator(".bubble--customer").nth(before).wait_for(timeout=60_000)


def presence(page) -> str:
    return page.locator("#presence-label").inner_text()


def wait_for_presence(page, label: str) -> None:
    page.wait_for_function(
        "label => document.getElementById('presence-label').textContent === label", arg=label, timeout=LIVE_MS
    )


def conversation_of(runtime) -> int:
    from sqlmodel import select

    from bot.crm.models import Conversation

    with session_scope(runtime.engine, read_only=True) as session:
        return session.exec(select(Conversation.id).where(Conversation.channel == "webchat")).one()


def console_page(browser, server_url: str, conversation_id: int):
    """Ana's console, logged in through its form, on the conversation."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server_url + "/console")
    page.get_by_label("E-mail").fill("ana@fernhill.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server_url + "/console")
    page.goto(f"{server_url}/console/conversations/{conversation_id}")
    return page


def console_typing(console, conversation_id: int, typing: bool | None = None) -> dict:
    """What the console's typing endpoint says (after telling it the agent types, when `typing` is given)."""
    return console.evaluate(
        """async ([id, typing]) => {
            const url = `/console/conversations/${id}/typing`;
            if (typing !== null) {
                const csrf = document.querySelector("input[name=csrf]").value;
                const said = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json",
                    "X-CSRF-Token": csrf}, body: JSON.stringify({typing})});
                if (said.status !== 204) throw new Error("typing refused: " + said.status);
            }
            return await (await fetch(url)).json();
        }""",
        [conversation_id, typing],
    )


def test_the_status_survives_a_reload_and_follows_the_agent_with_typing_both_ways(
    server_url, runtime, agent, browser
):
    ana_id, token = agent
    customer = browser.new_page(viewport={"width": 1280, "height": 800})
    customer.goto(server_url + "/")
    assert presence(customer) == "Chatting with our assistant"
    send(customer, COMPLAINT)
    wait_for_presence(customer, "Waiting for a person from our team")

    customer.reload()
    wait_for_presence(customer, "Waiting for a person from our team")
    assert customer.locator(".bubble--customer .bubble__text").inner_text() == COMPLAINT

    conversation_id = conversation_of(runtime)
    customer.evaluate("window.__noReload = 'still here'")
    staff_api(server_url, token, f"/conversations/{conversation_id}/assign", staff_id=ana_id)
    wait_for_presence(customer, "With Ana")

    console = console_page(browser, server_url, conversation_id)
    customer.fill("#text", "Also the zip is broken")  # typing, not sent
    deadline = time.monotonic() + 10
    while not console_typing(console, conversation_id)["customer_typing"]:
        assert time.monotonic() < deadline, "the console never saw the customer typing"
        time.sleep(0.2)

    console_typing(console, conversation_id, typing=True)
    customer.locator("#typing").wait_for(state="visible", timeout=LIVE_MS)
    assert customer.locator("#typing-label").inner_text() == "Ana is typing..."
    ARTIFACTS.mkdir(exist_ok=True)
    customer.screenshot(path=str(ARTIFACTS / "webchat-desktop-typing.png"))

    staff_api(
        server_url,
        token,
        f"/conversations/{conversation_id}/reply",
        text="So sorry! Ana here, a new jacket ships today.",
    )
    staff_bubble = customer.locator(".bubble--staff")
    staff_bubble.wait_for(timeout=LIVE_MS)
    assert staff_bubble.locator(".bubble__who").inner_text() == "Ana"
    customer.locator("#typing").wait_for(state="hidden", timeout=LIVE_MS)  # the reply ends her typing
    customer.set_viewport_size({"width": 390, "height": 844})
    customer.screenshot(path=str(ARTIFACTS / "webchat-phone-with-agent.png"))
    customer.set_viewport_size({"width": 1280, "height": 800})

    staff_api(server_url, token, f"/conversations/{conversation_id}/resolve")
    wait_for_presence(customer, "Resolved - write again any time")
    assert customer.evaluate("window.__noReload") == "still here", "the status changed only by reloading"
    customer.reload()
    wait_for_presence(customer, "Resolved - write again any time")
    assert "waiting" not in customer.locator("#presence").inner_text().lower()
    customer.screenshot(path=str(ARTIFACTS / "webchat-desktop-resolved.png"))


def test_the_agents_conversation_view_shows_the_customer_typing_in_the_widget_live(
    server_url, runtime, agent, brand_site, browser
):
    """Customer typing reaches the console over its one event stream (no polling of the typing endpoint):
    shown while they type in the widget on the brand's site, gone when they stop (the signal runs out) and
    when they send; the agent typing in the reply box shows in the widget."""
    ana_id, token = agent
    brand_site.embed(server_url)
    shop = browser.new_page(viewport={"width": 1280, "height": 800})
    shop.goto(brand_site.origin + "/")
    shop.locator("#socialbot-launcher").click()
    widget = shop.frame_locator("iframe#socialbot-chat")
    text = widget.locator("#text")
    text.fill(COMPLAINT)
    text.press("Enter")
    widget.locator(".bubble--customer").wait_for(timeout=60_000)
    conversation_id = conversation_of(runtime)
    staff_api(server_url, token, f"/conversations/{conversation_id}/assign", staff_id=ana_id)

    console = console_page(browser, server_url, conversation_id)
    requests: list[str] = []
    console.on("request", lambda request: requests.append(request.url))
    note = console.locator("#customer-typing")
    assert note.is_hidden()

    text.press_sequentially("Also the zip is bro", delay=30)
    note.wait_for(state="visible", timeout=LIVE_MS)
    assert note.inner_text() == console.locator(".conv__who h1").inner_text() + " is typing\u2026"
    ARTIFACTS.mkdir(exist_ok=True)
    console.screenshot(path=str(ARTIFACTS / "console-customer-typing.png"))
    console.set_viewport_size({"width": 390, "height": 844})
    note.scroll_into_view_if_needed()
    console.screenshot(path=str(ARTIFACTS / "console-customer-typing-phone.png"))
    console.set_viewport_size({"width": 1280, "height": 900})

    started = time.monotonic()
    note.wait_for(state="hidden", timeout=LIVE_MS)  # she stopped: the signal runs out
    assert time.monotonic() - started > 2, "hidden before the typing signal could have run out"

    text.press_sequentially("ken", delay=30)
    note.wait_for(state="visible", timeout=LIVE_MS)
    text.press("Enter")
    console.locator("#log .msg--in .msg__text", has_text="Also the zip is broken").wait_for(timeout=LIVE_MS)
    note.wait_for(state="hidden", timeout=LIVE_MS)  # sending ends it at once, not when the signal runs out
    assert not [url for url in requests if url.endswith("/typing")], "the console polled for typing"

    reply = console.locator("#reply-text")
    reply.press_sequentially("Sorry about that, ", delay=30)
    widget.locator("#typing").wait_for(state="visible", timeout=LIVE_MS)
    assert widget.locator("#typing-label").inner_text() == "Ana is typing..."
    reply.fill("")
    widget.locator("#typing").wait_for(state="hidden", timeout=LIVE_MS)


def test_messages_show_their_time_in_the_browsers_time_zone(server_url, browser):
    context = browser.new_context(timezone_id="America/New_York", locale="en-US")
    page = context.new_page()
    page.goto(server_url + "/")
    send(page, "how much does delivery cost?")
    page.locator(".bubble--bot").nth(1).wait_for(timeout=60_000)
    page.reload()  # now every bubble comes from the server, with its stored time
    page.locator(".bubble--bot").nth(1).wait_for(timeout=LIVE_MS)

    for bubble in (page.locator(".bubble--customer").first, page.locator(".bubble--bot").nth(1)):
        stamp = bubble.locator("time")
        stored = datetime.fromisoformat(stamp.get_attribute("datetime").replace("Z", "+00:00"))
        local = stored.astimezone(ZoneInfo("America/New_York"))
        shown = stamp.inner_text().replace("\u202f", " ")
        assert re.fullmatch(r"\d{2}:\d{2} [AP]M", shown), shown
        assert shown == local.strftime("%I:%M %p"), (shown, local)


def test_on_a_phone_the_chat_fills_the_screen_and_the_input_stays_in_view(server_url, browser):
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.goto(server_url + "/")
    send(page, "how much does delivery cost?")
    page.locator(".bubble--bot").nth(1).wait_for(timeout=60_000)
    send(page, "and can I return boots I wore once?")
    page.locator(".bubble--bot").nth(2).wait_for(timeout=60_000)

    chat = page.locator("#chat").bounding_box()
    assert (chat["x"], chat["y"], chat["width"], chat["height"]) == (0, 0, 390, 844)
    logo = page.locator(".chat__avatar").bounding_box()
    assert logo["width"] == logo["height"] == 40, logo
    form = page.locator("#form").bounding_box()
    assert form["y"] + form["height"] == pytest.approx(844, abs=1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "webchat-phone.png"))

    # The on-screen keyboard: with interactive-widget=resizes-content the page's viewport shrinks to what is
    # left above it, and the chat with it.
    page.set_viewport_size({"width": 390, "height": 470})
    page.focus("#text")
    form = page.locator("#form").bounding_box()
    assert form["y"] + form["height"] <= 470 + 1
    last = page.locator(".bubble").last.bounding_box()
    assert 0 < last["y"] + last["height"] <= form["y"] + 1, "the newest message is scrolled into view"


def test_the_widget_on_another_sites_page_opens_the_chat_sends_and_gets_the_answer(
    server_url, brand_site, browser
):
    brand_site.embed(server_url)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(brand_site.origin + "/")
    launcher = page.locator("#socialbot-launcher")
    launcher.click()

    frame_element = page.locator("iframe#socialbot-chat")
    frame_element.wait_for()
    assert frame_element.get_attribute("src").startswith(server_url + "/chat/embed?")
    frame = page.frame_locator("iframe#socialbot-chat")
    assert frame.locator(".bubble--greeting").inner_text(timeout=LIVE_MS) == WIDGET_GREETING
    header = frame.locator(".chat__header").evaluate("e => getComputedStyle(e).backgroundColor")
    assert header == "rgb(192, 57, 43)"

    frame.locator("#text").fill("how much does delivery cost?")
    frame.locator("#text").press("Enter")
    answer = frame.locator(".bubble--bot").nth(1)
    answer.wait_for(timeout=60_000)
    assert "deliver" in answer.inner_text().lower()
    assert frame.locator(".bubble--customer time").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "webchat-widget.png"))

    frame.locator("#close").click()
    frame_element.wait_for(state="hidden")
    launcher.click()
    frame_element.wait_for(state="visible")
    assert frame.locator(".bubble--bot").count() == 2, "reopening keeps the conversation"


def test_a_site_not_allowed_cannot_frame_the_chat(server_url, browser):
    other = BrandSite()  # not in allowed_origins
    try:
        other.embed(server_url)
        page = browser.new_page()
        page.goto(other.origin + "/")
        page.locator("#socialbot-launcher").click()
        page.locator("iframe#socialbot-chat").wait_for()
        page.wait_for_timeout(1500)
        chat_frames = [f for f in page.frames if f.url.startswith(server_url)]
        loaded = [f for f in chat_frames if f.query_selector("#text") is not None]
        assert not loaded, "the chat loaded inside a site that is not allowed to frame it"
    finally:
        other.server.shutdown()
