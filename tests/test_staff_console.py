"""Support staff take over escalated conversations: the console (login, queue, take, reply, resolve, hand
back, notes, collision guard), the staff JSON API and its roles, and the bot's silence while a person owns
a thread. The customer side is the web chat API; replies reach it through the outbox."""

from __future__ import annotations

import json
import re
import uuid
from contextlib import closing

import httpx
import pytest
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import AuditEvent, Conversation, Message
from bot.support.staff import create_staff, issue_api_token

PASSWORD = "correct horse battery staple"


def add_staff(runtime, email: str, role: str = "agent", name: str | None = None) -> tuple[int, str]:
    with session_scope(runtime.engine) as session:
        staff = create_staff(session, email, role=role, password=PASSWORD, name=name)
        return staff.id, issue_api_token(session, staff)


def customer_says(client, session_id: str, text: str) -> dict:
    response = client.post("/api/v1/chat", json={"session_id": session_id, "text": text})
    assert response.status_code == 200, response.text
    return response.json()


def customer_sees(client, session_id: str) -> list[dict]:
    return client.get(f"/api/v1/chat/{session_id}/messages").json()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def log_in(client, email: str, password: str = PASSWORD):
    page = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf": csrf_of(page.text), "next": "/console"},
        follow_redirects=False,
    )


def conversation_form(client, conversation_id: int) -> dict:
    html = client.get(f"/console/conversations/{conversation_id}").text
    return {
        "csrf": csrf_of(html),
        "reply_token": re.search(r'name="reply_token" value="([0-9a-f]{32})"', html).group(1),
        "seen_message_id": re.search(r'name="seen_message_id" value="(\d+)"', html).group(1),
        "seen_assignee_id": re.search(r'name="seen_assignee_id" value="(\d*)"', html).group(1),
    }


def state_of(runtime, conversation_id: int) -> Conversation:
    with Session(runtime.engine) as session:
        return session.get(Conversation, conversation_id)


@pytest.fixture
def complaint(client):
    session_id = f"web-{uuid.uuid4().hex}"
    body = customer_says(
        client, session_id, "My jacket fell apart after two days and nobody answers my emails!!"
    )
    assert body["state"] == "human"
    return session_id, body["conversation_id"]


def test_an_agent_takes_a_complaint_replies_and_resolves_while_the_bot_stays_silent(
    client, runtime, complaint
):
    session_id, conversation_id = complaint
    add_staff(runtime, "ana@fernhill.example", name="Ana")

    assert log_in(client, "ana@fernhill.example").status_code == 303
    queue = client.get("/console")
    assert queue.status_code == 200
    assert f"/console/conversations/{conversation_id}" in queue.text
    assert "fell apart" in queue.text

    form = conversation_form(client, conversation_id)
    taken = client.post(
        f"/console/conversations/{conversation_id}/action",
        data={"action": "take", "csrf": form["csrf"]},
        follow_redirects=False,
    )
    assert taken.status_code == 303
    assert state_of(runtime, conversation_id).assignee_id is not None

    again = customer_says(client, session_id, "hello?? anyone?")
    assert again["replies"] == [] and again["state"] == "human"
    assert "anyone?" in client.get(f"/console/conversations/{conversation_id}").text

    form = conversation_form(client, conversation_id)
    sent = client.post(
        f"/console/conversations/{conversation_id}/reply",
        data={**form, "text": "Hi, Ana here - I've sent you a replacement jacket today."},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    assert runtime.wait_idle()
    seen = [m for m in customer_sees(client, session_id) if m["author"] == "staff"]
    assert [m["text"] for m in seen] == ["Hi, Ana here - I've sent you a replacement jacket today."]

    resolved = client.post(
        f"/console/conversations/{conversation_id}/action",
        data={"action": "resolve", "csrf": form["csrf"]},
        follow_redirects=False,
    )
    assert resolved.status_code == 303
    assert state_of(runtime, conversation_id).state == "resolved"
    with Session(runtime.engine) as session:
        actions = [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()]
    assert actions[-3:] == ["conversation.assigned", "conversation.staff_replied", "conversation.resolved"]

    after = customer_says(client, session_id, "how long does delivery take?")
    assert after["state"] == "bot" and len(after["replies"]) == 1


def test_a_resolved_conversation_can_reopen_to_its_assignee(make_settings, models):
    from fastapi.testclient import TestClient

    from bot.web.app import create_app
    from bot.worker.build import build_runtime

    runtime = build_runtime(make_settings(handoff={"reopen_to": "assignee"}), models=models)
    try:
        with TestClient(create_app(runtime)) as client:
            session_id = f"web-{uuid.uuid4().hex}"
            conversation_id = customer_says(client, session_id, "my order is late again, this is awful")[
                "conversation_id"
            ]
            _, token = add_staff(runtime, "ana@fernhill.example")
            auth = {"Authorization": f"Bearer {token}"}
            client.post(
                f"/api/v1/conversations/{conversation_id}/reply", json={"text": "On it!"}, headers=auth
            )
            client.post(f"/api/v1/conversations/{conversation_id}/resolve", headers=auth)

            later = customer_says(client, session_id, "how long does delivery take?")
            assert later["state"] == "human" and later["replies"] == []
        from sqlmodel import Session, select

        from bot.crm.models import AuditEvent

        with Session(runtime.engine) as session:
            reopened = session.exec(
                select(AuditEvent).where(AuditEvent.action == "conversation.reopened")
            ).one()
        assert reopened.subject_id == conversation_id
        assert reopened.details == {"from": "resolved", "to": "human", "message_id": later["message_id"]}
    finally:
        runtime.close()


def test_a_logged_out_browser_is_sent_to_the_login_page_and_a_forged_cookie_does_not_help(client, complaint):
    _, conversation_id = complaint
    page = client.get(f"/console/conversations/{conversation_id}", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/console/login")

    client.cookies.set("socialbot_session", "eyJzdGFmZl9pZCI6IDF9.forged.signature")
    forged = client.get("/console", follow_redirects=False)
    assert forged.status_code == 303 and "/console/login" in forged.headers["location"]


def test_the_session_cookie_is_signed_httponly_and_samesite(client, runtime):
    add_staff(runtime, "ana@fernhill.example")
    response = log_in(client, "ana@fernhill.example")
    cookie = response.headers["set-cookie"].lower()
    assert "socialbot_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def test_a_wrong_password_is_refused_and_repeated_failures_are_rate_limited(client, runtime):
    add_staff(runtime, "ana@fernhill.example")
    attempts = [log_in(client, "ana@fernhill.example", "wrong password!").status_code for _ in range(6)]
    assert attempts[:5] == [401] * 5 and attempts[5] == 429
    # even the right password waits out the window
    assert log_in(client, "ana@fernhill.example").status_code == 429


def test_a_form_without_the_csrf_token_is_refused(client, runtime, complaint):
    _, conversation_id = complaint
    add_staff(runtime, "ana@fernhill.example")
    log_in(client, "ana@fernhill.example")
    refused = client.post(
        f"/console/conversations/{conversation_id}/action", data={"action": "take", "csrf": "guess"}
    )
    assert refused.status_code == 403
    assert state_of(runtime, conversation_id).assignee_id is None


def test_customer_html_is_shown_as_text_in_the_console(client, runtime):
    session_id = f"web-{uuid.uuid4().hex}"
    hostile = '<script>alert("x")</script><img src=x onerror="alert(1)"> I want to talk to a human'
    conversation_id = customer_says(client, session_id, hostile)["conversation_id"]
    add_staff(runtime, "ana@fernhill.example")
    log_in(client, "ana@fernhill.example")

    for page in (client.get("/console"), client.get(f"/console/conversations/{conversation_id}")):
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;" in page.text


def test_the_collision_guard_warns_before_sending_when_a_colleague_answered_meanwhile(
    client, runtime, complaint
):
    _, conversation_id = complaint
    add_staff(runtime, "ana@fernhill.example", name="Ana")
    _, ben_token = add_staff(runtime, "ben@fernhill.example", name="Ben")
    log_in(client, "ana@fernhill.example")
    stale_form = conversation_form(client, conversation_id)

    ben = client.post(
        f"/api/v1/conversations/{conversation_id}/reply",
        json={"text": "Ben here, looking into it."},
        headers={"Authorization": f"Bearer {ben_token}"},
    )
    assert ben.status_code == 202

    warned = client.post(
        f"/console/conversations/{conversation_id}/reply", data={**stale_form, "text": "Ana here!"}
    )
    assert warned.status_code == 409
    assert "Ben" in warned.text and "Send anyway" in warned.text
    with Session(runtime.engine) as session:
        texts = [m.text for m in session.exec(select(Message).where(Message.author_kind == "staff")).all()]
    assert texts == ["Ben here, looking into it."]

    confirmed = client.post(
        f"/console/conversations/{conversation_id}/reply",
        data={**stale_form, "text": "Ana here!", "force": "true"},
        follow_redirects=False,
    )
    assert confirmed.status_code == 303
    assert runtime.wait_idle()
    with Session(runtime.engine) as session:
        staff_messages = session.exec(
            select(Message).where(Message.author_kind == "staff").order_by(Message.id)
        ).all()
    assert [(m.text, m.status) for m in staff_messages] == [
        ("Ben here, looking into it.", "sent"),
        ("Ana here!", "sent"),
    ]


def test_the_staff_api_needs_a_token_and_the_right_role(client, runtime, complaint):
    _, conversation_id = complaint
    _, agent_token = add_staff(runtime, "ana@fernhill.example")
    _, marketer_token = add_staff(runtime, "mia@fernhill.example", role="marketer")

    assert client.get("/api/v1/conversations").status_code == 401
    assert (
        client.get("/api/v1/conversations", headers={"Authorization": "Bearer sbt_nope"}).status_code == 401
    )
    marketer = {"Authorization": f"Bearer {marketer_token}"}
    assert (
        client.post(
            f"/api/v1/conversations/{conversation_id}/reply", json={"text": "hi"}, headers=marketer
        ).status_code
        == 403
    )

    agent = {"Authorization": f"Bearer {agent_token}"}
    listed = client.get("/api/v1/conversations?state=human", headers=agent).json()
    assert [c["id"] for c in listed] == [conversation_id]
    detail = client.get(f"/api/v1/conversations/{conversation_id}", headers=agent).json()
    assert detail["messages"][0]["intent"] == "complaint"
    assert (
        client.post("/api/v1/conversations/999999/reply", json={"text": "hi"}, headers=agent).status_code
        == 404
    )
    assert (
        client.post(
            f"/api/v1/conversations/{conversation_id}/reply", json={"text": "  "}, headers=agent
        ).status_code
        == 422
    )
    handed = client.post(f"/api/v1/conversations/{conversation_id}/hand-back", headers=agent)
    assert handed.json()["state"] == "bot"


def test_a_reply_retried_with_the_same_idempotency_key_is_sent_once(client, runtime, complaint):
    _, conversation_id = complaint
    _, token = add_staff(runtime, "ana@fernhill.example")
    auth = {"Authorization": f"Bearer {token}"}
    for _ in range(2):
        client.post(
            f"/api/v1/conversations/{conversation_id}/reply",
            json={"text": "Sorry about that!", "idempotency_key": "ticket-42"},
            headers=auth,
        )
    with Session(runtime.engine) as session:
        assert len(session.exec(select(Message).where(Message.author_kind == "staff")).all()) == 1


def test_a_marketer_cannot_open_the_conversation_console(client, runtime, complaint):
    _, conversation_id = complaint
    add_staff(runtime, "mia@fernhill.example", role="marketer")
    log_in(client, "mia@fernhill.example")
    assert client.get(f"/console/conversations/{conversation_id}").status_code == 403


def test_notes_stay_internal(client, runtime, complaint):
    session_id, conversation_id = complaint
    add_staff(runtime, "ana@fernhill.example")
    log_in(client, "ana@fernhill.example")
    form = conversation_form(client, conversation_id)
    client.post(
        f"/console/conversations/{conversation_id}/notes",
        data={"csrf": form["csrf"], "text": "VIP customer, offer a refund"},
    )
    assert "VIP customer" in client.get(f"/console/conversations/{conversation_id}").text
    assert all("VIP" not in m["text"] for m in customer_sees(client, session_id))


def read_events(client: httpx.Client, url: str, wanted: set[str]) -> dict[str, dict]:
    """The first event of each name in `wanted` from the console's event stream at `url`."""
    found: dict[str, dict] = {}
    with client.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and name in wanted and name not in found:
                found[name] = json.loads(line.removeprefix("data: "))
            if set(found) == wanted:
                break
    return found


def browser_login(server_url: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=server_url, timeout=30)
    form = client.get("/console/login")
    client.post(
        "/console/login",
        data={"email": email, "password": PASSWORD, "csrf": csrf_of(form.text), "next": "/console"},
    )
    return client


def test_live_updates_say_who_wrote_each_message_and_count_them_read(server_url, runtime):
    with httpx.Client(base_url=server_url, timeout=60) as customer:
        body = customer.post(
            "/api/v1/chat",
            json={"session_id": f"web-{uuid.uuid4().hex}", "text": "My jacket fell apart, nobody answers!!"},
        ).json()
    conversation_id = body["conversation_id"]
    _, token = add_staff(runtime, "ana@fernhill.example", name="Ana")
    httpx.post(
        f"{server_url}/api/v1/conversations/{conversation_id}/reply",
        json={"text": "Ana here."},
        headers={"Authorization": f"Bearer {token}"},
    )
    with closing(browser_login(server_url, "ana@fernhill.example")) as staff:
        events = read_events(
            staff,
            f"/console/events?view=conversation&conversation={conversation_id}&after=0",
            {"counts", "messages", "status"},
        )
    html = events["messages"]["html"]
    assert html.count("msg--customer") == 1 and html.count("msg--bot") == 1 and html.count("msg--staff") == 1
    assert "Ana here." in html and "fell apart" in html
    assert 'id="state">human<' in events["status"]["html"]
    assert events["counts"]["waiting"] == 1
    # the messages were on screen, so nothing in the conversation is unread for Ana any more
    with closing(browser_login(server_url, "ana@fernhill.example")) as staff:
        assert read_events(staff, "/console/events", {"counts"})["counts"]["unread"] == 0
