"""Outgoing webhooks: an integration registers an endpoint and hears what happens, signed, retried, at least
once; a failing receiver is disabled; a slow one never delays the customer's answer."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from ipaddress import ip_address

import pytest
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import ComplaintSpike, Conversation, WebhookDelivery, WebhookEndpoint, utcnow
from bot.delivery.webhooks import (
    EVENT_TYPES,
    WebhookError,
    add_endpoint,
    deliver_webhooks,
    list_deliveries,
    verify_signature,
)
from channels.base import Author, InboundMessage
from tests.fakes.server import FakeResponse, FakeServer

#: The receivers here are on loopback, which deliveries refuse unless an operator allows it.
LOOPBACK_ALLOWED = {"allowed_networks": ["127.0.0.0/8"]}


@pytest.fixture
def runtime(make_settings, models):
    from bot.worker.build import build_runtime

    built = build_runtime(make_settings(webhooks=LOOPBACK_ALLOWED), models=models)
    yield built
    built.close()


@pytest.fixture
def receiver():
    server = FakeServer()
    server.route("POST", "/hooks", lambda request: FakeResponse(200, {"ok": True}))
    with server:
        yield server


def public_resolver(host: str, port: int) -> list:
    """Every name resolves to one public address (no DNS query leaves the machine in these tests)."""
    return [ip_address("93.184.215.14")]


def _register(runtime, url: str, events=("*",), secret: str = "s3cret-signing-key-0123") -> int:
    with session_scope(runtime.engine) as session:
        endpoint, _ = add_endpoint(session, url, list(events), settings=runtime.settings, secret=secret)
        return endpoint.id


def _say(runtime, text: str, *, session_id: str = "web-1", n: int = 0):
    from bot.pipeline.inbound import handle_inbound

    return handle_inbound(
        runtime,
        InboundMessage(
            channel="webchat",
            external_id=f"{session_id}-{n}",
            thread_id=session_id,
            author=Author(session_id),
            text=text,
        ),
    )


def _deliver_all(runtime, *, rounds: int = 5):
    for _ in range(rounds):
        report = deliver_webhooks(runtime.engine, runtime.settings.webhooks)
        if not (report.delivered or report.retried or report.failed):
            break


def test_each_event_type_arrives_once_per_event_id_with_a_valid_signature(runtime, receiver):
    from bot.delivery.outbox import deliver_due
    from bot.engagement.followups import CUSTOM, schedule_followup, send_due_followups, sync_followup_delivery
    from bot.support.handoff import resolve_conversation

    secret = "s3cret-signing-key-0123"
    _register(runtime, receiver.base_url + "/hooks", secret=secret)

    _say(runtime, "what payment methods do you accept?", n=1)  # received, sent, ladder
    _say(runtime, "You should sell waterproof dog coats, that would be great", n=2)  # idea
    complaint = _say(runtime, "My parcel arrived broken and nobody answers my emails. Terrible.", n=3)
    assert complaint.state == "human"
    with session_scope(runtime.engine) as session:
        conversation = session.get(Conversation, complaint.conversation_id)
        resolve_conversation(session, conversation, actor=None)
        schedule_followup(session, conversation, template=CUSTOM, text="Did that fix it?", due_at=utcnow())
    send_due_followups(runtime, now=utcnow() + timedelta(seconds=1))
    deliver_due(runtime.engine, runtime.channels)
    sync_followup_delivery(runtime.engine)
    with session_scope(runtime.engine) as session:  # as bot/insights/topics.py records one (test_topics.py)
        session.add(
            ComplaintSpike(
                day="2026-03-25",
                label="Lost, late or missing parcel",
                today=8,
                daily_average=0.5,
                message_ids=[complaint.message_id],
                text="Complaint spike: ...",
            )
        )

    _deliver_all(runtime)
    _deliver_all(runtime)  # nothing is sent twice by a second run

    calls = receiver.calls("/hooks")
    types = [call.json["type"] for call in calls]
    assert set(types) == set(EVENT_TYPES), types
    ids = [call.headers["x-socialbot-event-id"] for call in calls]
    assert len(ids) == len(set(ids)), "an event arrived twice"
    for call in calls:
        body = call.json
        assert body["id"] == call.headers["x-socialbot-event-id"]
        assert set(body) == {"id", "type", "created_at", "data"}
        timestamp, signature = call.headers["x-socialbot-timestamp"], call.headers["x-socialbot-signature"]
        assert verify_signature(secret, timestamp, call.body, signature)
        assert not verify_signature("another-secret-0123456", timestamp, call.body, signature)
        assert not verify_signature(secret, timestamp, call.body.replace(b"}", b" }", 1), signature)
    received = [c.json["data"] for c in calls if c.json["type"] == "message.received"]
    assert received[0]["text"] == "what payment methods do you accept?"
    sent = [c.json["data"] for c in calls if c.json["type"] == "message.sent"]
    assert any("Did that fix it?" in data["text"] for data in sent)
    escalated = next(c.json["data"] for c in calls if c.json["type"] == "conversation.escalated")
    assert escalated["conversation_id"] == complaint.conversation_id and escalated["reason"]
    with Session(runtime.engine) as session:
        log = list_deliveries(session)
    assert log and all(entry.status == "delivered" and entry.attempts == 1 for entry in log)


def test_only_the_subscribed_event_types_are_sent(runtime, receiver):
    _register(runtime, receiver.base_url + "/hooks", events=["idea.created"])
    _say(runtime, "what payment methods do you accept?", n=1)
    _say(runtime, "You should sell waterproof dog coats, that would be great", n=2)
    _deliver_all(runtime)
    assert [c.json["type"] for c in receiver.calls("/hooks")] == ["idea.created"]


def test_a_500_is_retried_with_backoff_and_then_delivered_once(runtime, receiver):
    endpoint_id = _register(runtime, receiver.base_url + "/hooks", events=["message.received"])
    receiver.fail_next("/hooks", FakeResponse(500, "oops"), FakeResponse(503, "busy"))
    _say(runtime, "hello there", n=1)

    first = deliver_webhooks(runtime.engine, runtime.settings.webhooks)
    assert first.retried and not first.delivered
    assert not deliver_webhooks(runtime.engine, runtime.settings.webhooks).retried  # waits for its backoff
    with Session(runtime.engine) as session:
        delivery = session.exec(select(WebhookDelivery)).one()
        assert delivery.last_status_code == 500 and delivery.last_error == "HTTP 500"
        wait = (delivery.next_attempt_at - utcnow()).total_seconds()
        assert 5 < wait <= runtime.settings.webhooks.backoff_base_seconds
    later = utcnow() + timedelta(hours=1)
    assert deliver_webhooks(runtime.engine, runtime.settings.webhooks, now=later).retried
    assert deliver_webhooks(
        runtime.engine, runtime.settings.webhooks, now=later + timedelta(hours=1)
    ).delivered
    calls = receiver.calls("/hooks")
    assert len(calls) == 3 and len({c.headers["x-socialbot-event-id"] for c in calls}) == 1
    with Session(runtime.engine) as session:
        assert session.get(WebhookEndpoint, endpoint_id).consecutive_failures == 0
        entry = list_deliveries(session)[0]
        assert (entry.status, entry.attempts, entry.last_status_code) == ("delivered", 3, 200)


def test_an_endpoint_failing_n_times_in_a_row_is_disabled(make_settings, models, receiver):
    from bot.worker.build import build_runtime

    runtime = build_runtime(
        make_settings(webhooks={"disable_after_failures": 3, "backoff_base_seconds": 1, **LOOPBACK_ALLOWED}),
        models=models,
    )
    try:
        endpoint_id = _register(runtime, receiver.base_url + "/hooks", events=["message.received"])
        receiver.fail_next("/hooks", *[FakeResponse(500, "down")] * 10)
        for n in range(3):
            _say(runtime, f"hello {n}", n=n)
        now = utcnow()
        for step in range(3):
            deliver_webhooks(runtime.engine, runtime.settings.webhooks, now=now + timedelta(hours=step))
        with Session(runtime.engine) as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            assert not endpoint.active
            assert "3 failures in a row" in endpoint.disabled_reason
        before = len(receiver.calls("/hooks"))
        _say(runtime, "one more", n=9)
        deliver_webhooks(runtime.engine, runtime.settings.webhooks, now=now + timedelta(days=1))
        assert len(receiver.calls("/hooks")) == before, "a disabled endpoint was called"
    finally:
        runtime.close()


def test_a_slow_receiver_does_not_delay_the_chat_api(make_settings, models):
    from fastapi.testclient import TestClient

    from bot.web.app import create_app
    from bot.worker.build import build_runtime

    slow = FakeServer()
    slow.route("POST", "/hooks", lambda request: (time.sleep(3), FakeResponse(200, {}))[1])
    runtime = build_runtime(make_settings(webhooks={"timeout_seconds": 1, **LOOPBACK_ALLOWED}), models=models)
    try:
        with slow, TestClient(create_app(runtime)) as client:
            _register(runtime, slow.base_url + "/hooks", events=["message.received", "message.sent"])
            delivering = threading.Thread(
                target=lambda: [deliver_webhooks(runtime.engine, runtime.settings.webhooks) for _ in range(4)]
            )
            started = time.perf_counter()
            response = client.post(
                "/api/v1/chat", json={"session_id": "slow-session-1", "text": "do you ship abroad?"}
            )
            delivering.start()
            response2 = client.post(
                "/api/v1/chat", json={"session_id": "slow-session-1", "text": "and to France?"}
            )
            elapsed = time.perf_counter() - started
            assert response.status_code == 200 and response2.status_code == 200
            assert elapsed < 2.5, f"the chat API took {elapsed:.1f}s"
            delivering.join(timeout=30)
        with Session(runtime.engine) as session:
            entries = list_deliveries(session)
        assert entries and any(e.last_error == "timed out" for e in entries)
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "not an http"),
        ("javascript:alert(1)", "not an http"),
        ("https:///nohost", "has no host"),
        ("http://127.0.0.1:8000/slack/events", "this server itself"),
        ("http://localhost:8000/x", "this server itself"),
        ("http://user:pw@example.com/x", "user or password"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(runtime, url, reason):
    with pytest.raises(WebhookError, match=reason), session_scope(runtime.engine) as session:
        add_endpoint(session, url, ["*"], settings=runtime.settings)


def test_the_public_url_is_refused(make_settings):
    from bot.delivery.webhooks import validate_url

    settings = make_settings(server={"public_url": "https://bot.fernhill.example"}, webhooks=LOOPBACK_ALLOWED)
    with pytest.raises(WebhookError, match="public_url"):
        validate_url("https://BOT.fernhill.example:443/anything", settings, resolve=public_resolver)
    url = "https://hooks.example.com/in"
    assert validate_url(url, settings, resolve=public_resolver) == url
    assert validate_url("http://127.0.0.1:9999/in", settings)  # another local service, allowed here


def test_unknown_event_types_are_refused(runtime):
    with pytest.raises(WebhookError, match="unknown event type"), session_scope(runtime.engine) as session:
        add_endpoint(
            session,
            "https://hooks.example.com/in",
            ["message.deleted"],
            settings=runtime.settings,
            resolve=public_resolver,
        )


def test_no_endpoint_no_event_rows(runtime):
    from bot.crm.models import WebhookEvent

    _say(runtime, "what payment methods do you accept?", n=1)
    with Session(runtime.engine) as session:
        assert session.exec(select(WebhookEvent)).all() == []


def test_payload_is_json_with_the_documented_fields(runtime, receiver):
    _register(runtime, receiver.base_url + "/hooks", events=["message.received"])
    _say(runtime, 'quote " and <b>html</b> and émoji 🙂', n=1)
    _deliver_all(runtime)
    (call,) = receiver.calls("/hooks")
    assert call.headers["content-type"] == "application/json"
    data = json.loads(call.body)["data"]
    assert data["text"] == 'quote " and <b>html</b> and émoji 🙂'
    assert {"message_id", "conversation_id", "contact_id", "channel"} <= set(data)


def test_admins_manage_endpoints_in_the_console_and_see_the_delivery_log(client, runtime, receiver):
    from tests.test_staff_console import add_staff, csrf_of, log_in

    add_staff(runtime, "agent@fernhill.example", role="agent")
    log_in(client, "agent@fernhill.example")
    assert client.get("/console/webhooks").status_code == 403  # agents may not manage integrations
    assert 'href="/console/webhooks"' not in client.get("/console").text  # nor see the link
    client.cookies.clear()
    assert client.get("/console/webhooks", follow_redirects=False).status_code == 303  # logged out: to login

    add_staff(runtime, "admin@fernhill.example", role="admin")
    log_in(client, "admin@fernhill.example")
    assert 'href="/console/webhooks"' in client.get("/console").text  # the admin's nav leads there
    page = client.get("/console/webhooks")
    assert page.status_code == 200 and "No endpoints yet" in page.text
    csrf = csrf_of(page.text)
    refused = client.post(
        "/console/webhooks", data={"url": "ftp://x/y", "events": ["idea.created"], "csrf": csrf}
    )
    assert refused.status_code == 422 and "is not an http:// or https:// URL" in refused.text
    forged = client.post("/console/webhooks", data={"url": receiver.base_url + "/hooks", "csrf": "nope"})
    assert forged.status_code == 403
    added = client.post(
        "/console/webhooks",
        data={"url": receiver.base_url + "/hooks?<b>x</b>", "events": ["message.received"], "csrf": csrf},
    )
    assert added.status_code == 200 and "whsec_" in added.text and "<b>x</b>" not in added.text
    assert "whsec_" not in client.get("/console/webhooks").text  # the secret is shown once

    _say(runtime, "hello from the console test", n=1)
    _deliver_all(runtime)
    log_page = client.get("/console/webhooks").text
    assert "message.received" in log_page and "delivered" in log_page

    with Session(runtime.engine) as session:
        endpoint_id = session.exec(select(WebhookEndpoint.id)).one()
    disabled = client.post(f"/console/webhooks/{endpoint_id}/disable", data={"csrf": csrf})
    assert disabled.status_code == 200 and "disabled by an admin" in disabled.text
    removed = client.post(f"/console/webhooks/{endpoint_id}/remove", data={"csrf": csrf})
    assert removed.status_code == 200 and "No endpoints yet" in removed.text
    assert client.post("/console/webhooks/999/remove", data={"csrf": csrf}).status_code == 404


def test_the_cli_adds_lists_and_removes_endpoints(runtime, receiver, tmp_path):
    from typer.testing import CliRunner

    from bot.cli.main import app

    env = {
        "SOCIALBOT_DATA__DIR": str(runtime.settings.data.dir),
        "SOCIALBOT_WEBHOOKS__ALLOWED_NETWORKS": json.dumps(LOOPBACK_ALLOWED["allowed_networks"]),
    }
    cli = CliRunner()
    refused = cli.invoke(app, ["webhooks", "add", "http://localhost:8000/x"], env=env)
    assert refused.exit_code == 2 and "points at this server itself" in refused.output
    added = cli.invoke(
        app, ["webhooks", "add", receiver.base_url + "/hooks", "--events", "idea.created"], env=env
    )
    assert added.exit_code == 0 and "signing secret" in added.output, added.output
    piped = cli.invoke(
        app, ["webhooks", "add", receiver.base_url + "/b", "--secret-stdin"], input="x" * 20 + "\n", env=env
    )
    assert piped.exit_code == 0 and "x" * 20 not in piped.output
    listed = cli.invoke(app, ["webhooks", "list"], env=env).output
    assert receiver.base_url + "/hooks" in listed and "idea.created" in listed
    assert cli.invoke(app, ["webhooks", "remove", "1"], env=env).exit_code == 0
    assert cli.invoke(app, ["webhooks", "remove", "1"], env=env).exit_code == 2
    assert cli.invoke(app, ["webhooks", "deliveries"], env=env).exit_code == 0
