"""The web chat's people side, through its HTTP API: who has the conversation (bot, waiting for a person,
with a named person, resolved) read from the CRM at any time (so a reload shows it), typing both ways, the
embedded page's framing policy and its validated colour and greeting, and the widget script."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from sqlmodel import Session

from bot.crm.models import Contact, Conversation, WebchatSession
from bot.runtime.settings import SettingsError, load_settings
from bot.support.webchat_status import conversation_typing
from bot.web.chat_sessions import thread_of
from tests.test_staff_console import add_staff, csrf_of, customer_says, log_in

COMPLAINT = "My jacket fell apart after two days and nobody answers my emails!!"


def status_of(client, session_id: str) -> dict:
    response = client.get(f"/api/v1/chat/{session_id}/status")
    assert response.status_code == 200, response.text
    return response.json()


def as_staff(client, token: str, path: str, **json) -> None:
    response = client.post(f"/api/v1{path}", json=json or None, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


def console_csrf(client, conversation_id: int) -> str:
    return csrf_of(client.get(f"/console/conversations/{conversation_id}").text)


def test_the_status_follows_the_conversation_from_bot_to_a_named_person_to_resolved(client, runtime):
    ana_id, token = add_staff(runtime, "ana@fernhill.example", name="Ana Lopez")
    session_id = f"web-{uuid.uuid4().hex}"

    customer_says(client, session_id, "how much does delivery cost?")
    assert status_of(client, session_id) == {
        "status": "bot",
        "agent": None,
        "label": "Chatting with our assistant",
        "agent_typing": False,
    }

    conversation_id = customer_says(client, session_id, COMPLAINT)["conversation_id"]
    waiting = status_of(client, session_id)
    assert (waiting["status"], waiting["label"]) == ("waiting", "Waiting for a person from our team")

    as_staff(client, token, f"/conversations/{conversation_id}/assign", staff_id=ana_id)
    taken = status_of(client, session_id)
    assert (taken["status"], taken["agent"], taken["label"]) == ("person", "Ana", "With Ana")

    as_staff(client, token, f"/conversations/{conversation_id}/resolve")
    resolved = status_of(client, session_id)
    assert resolved["status"] == "resolved"
    assert "waiting" not in resolved["label"].lower()


def test_staff_replies_carry_their_author_and_a_utc_timestamp(client, runtime):
    ana_id, token = add_staff(runtime, "ana@fernhill.example", name="Ana Lopez")
    session_id = f"web-{uuid.uuid4().hex}"
    conversation_id = customer_says(client, session_id, COMPLAINT)["conversation_id"]
    response = client.post(
        f"/api/v1/conversations/{conversation_id}/reply",
        json={"text": "So sorry, Ana here: sending a new one today."},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202, response.text

    deadline = time.monotonic() + 20  # the outbox delivers it in the background
    while not (
        staff := [
            m for m in client.get(f"/api/v1/chat/{session_id}/messages").json() if m["author"] == "staff"
        ]
    ):
        assert time.monotonic() < deadline, "the staff reply never reached the chat"
        time.sleep(0.2)
    assert staff[0]["agent"] == "Ana"
    messages = client.get(f"/api/v1/chat/{session_id}/messages").json()
    for message in messages:
        assert message["created_at"].endswith("+00:00"), message["created_at"]


def test_the_status_needs_the_session_token(client):
    session_id = f"web-{uuid.uuid4().hex}"
    customer_says(client, session_id, "hello")
    client.cookies.clear()
    assert client.get(f"/api/v1/chat/{session_id}/status").status_code == 401
    assert client.post(f"/api/v1/chat/{session_id}/typing", json={"typing": True}).status_code == 401
    assert client.get(f"/api/v1/chat/{session_id}/events").status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert client.get(f"/api/v1/chat/{session_id}/status", headers=wrong).status_code == 403


def test_typing_is_seen_both_ways_and_ends_with_the_message(client, runtime):
    add_staff(runtime, "ana@fernhill.example", name="Ana Lopez")
    session_id = f"web-{uuid.uuid4().hex}"
    conversation_id = customer_says(client, session_id, COMPLAINT)["conversation_id"]
    assert log_in(client, "ana@fernhill.example").status_code == 303
    typing_url = f"/console/conversations/{conversation_id}/typing"

    assert client.get(typing_url).json() == {"customer_typing": False, "staff_typing": None}
    assert client.post(f"/api/v1/chat/{session_id}/typing", json={"typing": True}).status_code == 204
    assert client.get(typing_url).json()["customer_typing"] is True
    customer_says(client, session_id, "are you there?")
    assert client.get(typing_url).json()["customer_typing"] is False

    csrf = console_csrf(client, conversation_id)
    refused = client.post(typing_url, json={"typing": True}, headers={"X-CSRF-Token": "guess"})
    assert refused.status_code == 403
    said = client.post(typing_url, json={"typing": True}, headers={"X-CSRF-Token": csrf})
    assert said.status_code == 204, said.text
    assert status_of(client, session_id)["agent_typing"] is True
    assert client.get(typing_url).json()["staff_typing"] == "Ana Lopez"
    client.post(typing_url, json={"typing": False}, headers={"X-CSRF-Token": csrf})
    assert status_of(client, session_id)["agent_typing"] is False


def test_a_typing_signal_goes_stale(client, runtime):
    session_id = f"web-{uuid.uuid4().hex}"
    conversation_id = customer_says(client, session_id, "hello")["conversation_id"]
    client.post(f"/api/v1/chat/{session_id}/typing", json={"typing": True})
    with Session(runtime.engine) as session:
        chat = session.get(WebchatSession, thread_of(session_id))
        chat.customer_typing_at -= timedelta(seconds=30)
        session.add(chat)
        session.commit()
    assert conversation_typing(runtime.engine, conversation_id).customer_typing is False


def test_typing_in_a_conversation_on_another_channel_is_refused_with_a_reason(client, runtime):
    add_staff(runtime, "ana@fernhill.example")
    conversation_id = customer_says(client, f"web-{uuid.uuid4().hex}", COMPLAINT)["conversation_id"]
    with Session(runtime.engine) as session:
        contact = Contact(display_name="Tom")
        session.add(contact)
        session.flush()
        telegram = Conversation(contact_id=contact.id, channel="telegram", thread_id="chat-1")
        session.add(telegram)
        session.commit()
        telegram_id = telegram.id
    assert log_in(client, "ana@fernhill.example").status_code == 303
    csrf = {"X-CSRF-Token": console_csrf(client, conversation_id)}

    other = client.post(f"/console/conversations/{telegram_id}/typing", json={"typing": True}, headers=csrf)
    assert other.status_code == 409 and "not a web chat" in other.json()["error"]
    assert client.get(f"/console/conversations/{telegram_id}/typing").json()["customer_typing"] is False
    missing = client.post("/console/conversations/999999/typing", json={"typing": True}, headers=csrf)
    assert missing.status_code == 404
    assert client.get("/console/conversations/999999/typing").status_code == 404


def test_the_embedded_page_may_be_framed_only_by_the_configured_sites(make_settings, models):
    from fastapi.testclient import TestClient

    from bot.web.app import create_app
    from bot.worker.build import build_runtime

    runtime = build_runtime(
        make_settings(webchat={"allowed_origins": ["https://www.fernhill.example", "http://127.0.0.1:9/"]}),
        models=models,
    )
    try:
        with TestClient(create_app(runtime)) as client:
            page = client.get("/chat/embed", params={"color": "#c0392b", "greeting": "Hello from the shop!"})
            assert page.status_code == 200
            policy = page.headers["content-security-policy"]
            assert "frame-ancestors 'self' https://www.fernhill.example http://127.0.0.1:9" in policy
            assert "default-src 'self'" in policy and "'unsafe-inline'" not in policy
            assert 'data-color="#c0392b"' in page.text and "Hello from the shop!" in page.text
            assert 'class="embedded"' in page.text
            assert "x-frame-options" not in page.headers
            assert client.get("/").headers["x-frame-options"] == "DENY"  # the chat's own page: never framed
            assert "frame-ancestors 'none'" in client.get("/").headers["content-security-policy"]
    finally:
        runtime.close()


def test_by_default_only_socialbot_itself_may_frame_the_chat(client):
    policy = client.get("/chat/embed").headers["content-security-policy"]
    assert policy.endswith("frame-ancestors 'self'")


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"color": "red"}, "color: String should match pattern"),
        ({"color": "#12345"}, "color: String should match pattern"),
        ({"color": "#fff;background:url(x)"}, "color: String should match pattern"),
        ({"greeting": "x" * 201}, "greeting: String should have at most 200 characters"),
    ],
)
def test_a_bad_colour_or_greeting_is_refused_with_one_line(client, params, says):
    response = client.get("/chat/embed", params=params)
    assert response.status_code == 422
    assert says in response.json()["error"]


def test_the_greeting_is_text_not_markup(client):
    page = client.get("/chat/embed", params={"greeting": "<img src=x onerror=alert(1)>"})
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text


def test_the_widget_script_is_served_from_the_root(client):
    response = client.get("/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "/chat/embed" in response.text


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"color": "green"}, "webchat.color"),
        ({"greeting": "y" * 201}, "webchat.greeting"),
        ({"allowed_origins": ["https://shop.example/path"]}, "webchat.allowed_origins"),
        ({"allowed_origins": ["javascript:alert(1)"]}, "webchat.allowed_origins"),
    ],
)
def test_bad_webchat_settings_are_refused_naming_the_setting(tmp_path, section, named):
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        load_settings(data={"dir": tmp_path}, webchat=section)
