"""The path every platform adapter shares: a webhook delivery is stored before it is acknowledged, processed
in the background, answered once through the outbox, and a retried delivery is acknowledged and ignored.
Posts found by listening are understood and logged but never answered; a greeting gets the greeting."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.crm.models import Message
from bot.pipeline.inbound import accept_inbound
from bot.web.app import create_app
from channels.base import (
    Author,
    InboundKind,
    InboundMessage,
    OutboundMessage,
    WebhookChannel,
    WebhookResponse,
)


class InProcessChannel(WebhookChannel):
    """A minimal platform: JSON deliveries `{"id", "user", "text", "kind"?}` with a shared-secret header."""

    name = "slack"  # any platform name the CRM knows
    webhook_path = "/test/webhook"

    def __init__(self, sink) -> None:
        self.sink = sink
        self.sent: list[OutboundMessage] = []

    def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookResponse:
        if headers.get("x-secret") != "s3cret":
            return WebhookResponse(401, '{"error": "bad secret"}')
        try:
            event = json.loads(body)
            inbound = InboundMessage(
                channel=self.name,
                external_id=event["id"],
                thread_id=f"thread-{event['user']}",
                author=Author(external_id=event["user"]),
                text=event["text"],
                kind=InboundKind(event.get("kind", "message")),
            )
        except (ValueError, KeyError) as error:
            return WebhookResponse(400, json.dumps({"error": f"malformed delivery: {error}"}))
        is_new = self.sink(inbound)
        return WebhookResponse(200, json.dumps({"ok": True, "new": is_new}))

    def send(self, message: OutboundMessage) -> str:
        self.sent.append(message)
        return f"sent-{len(self.sent)}"


@pytest.fixture
def platform(runtime):
    channel = InProcessChannel(lambda inbound: accept_inbound(runtime, inbound))
    runtime.channels[channel.name] = channel
    with TestClient(create_app(runtime)) as client:
        yield client, channel


def deliver(client, event: dict, secret: str = "s3cret"):
    return client.post("/test/webhook", content=json.dumps(event), headers={"x-secret": secret})


def stored(runtime, external_id: str) -> Message:
    with Session(runtime.engine) as session:
        return session.exec(select(Message).where(Message.external_id == external_id)).one()


def test_a_delivery_is_acknowledged_then_answered_once_and_a_retry_is_ignored(platform, runtime):
    client, channel = platform
    event = {"id": "evt-1", "user": "U1", "text": "how long does delivery take?"}

    first = deliver(client, event)
    assert first.status_code == 200 and first.json()["new"] is True
    assert runtime.wait_idle()
    retry = deliver(client, event)
    assert retry.status_code == 200 and retry.json()["new"] is False
    assert runtime.wait_idle()

    assert len(channel.sent) == 1
    assert channel.sent[0].thread_id == "thread-U1"
    assert stored(runtime, "evt-1").action == "answer"


def test_a_wrong_secret_or_a_malformed_delivery_stores_nothing(platform, runtime):
    client, channel = platform
    assert deliver(client, {"id": "evt-2", "user": "U1", "text": "hi"}, secret="forged").status_code == 401
    assert deliver(client, {"user": "U1"}).status_code == 400
    assert (
        client.post("/test/webhook", content=b"x" * 1_100_000, headers={"x-secret": "s3cret"}).status_code
        == 413
    )
    runtime.wait_idle()
    with Session(runtime.engine) as session:
        assert session.exec(select(Message)).all() == []
    assert channel.sent == []


def test_a_post_found_by_listening_is_understood_and_logged_but_never_answered(platform, runtime):
    client, channel = platform
    deliver(client, {"id": "evt-3", "user": "U2", "text": "fernhill tents are the worst", "kind": "listened"})
    assert runtime.wait_idle()

    message = stored(runtime, "evt-3")
    assert (message.kind, message.action) == ("listened", "listen")
    assert message.intent is not None and message.sentiment is not None
    assert channel.sent == []


def test_a_greeting_gets_the_brands_greeting(platform, runtime):
    client, channel = platform
    deliver(client, {"id": "evt-4", "user": "U3", "text": "/start", "kind": "greeting"})
    assert runtime.wait_idle()
    assert stored(runtime, "evt-4").action == "greet"
    assert len(channel.sent) == 1 and runtime.settings.brand.name in channel.sent[0].text
