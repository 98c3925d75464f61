"""Slack scenarios: slack-bolt and slack_sdk run unmodified against a fake Slack on loopback, events arrive
signed at the real web app's `/slack/events`, and replies come out through the outbox.

Given a customer who mentions the bot, they get one answer in their thread, however many times Slack
delivers the event; forged or stale deliveries store nothing; rate limits and 5xx are waited out; a reply
posted just before a worker died is found on Slack instead of being posted twice."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import timedelta
from itertools import count

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.crm.models import Contact, Direction, Identity, Message, Outbox, OutboxStatus, utcnow
from bot.delivery.outbox import deliver_due
from bot.runtime.container import Runtime
from bot.web.app import create_app
from bot.worker.build import build_runtime
from channels.base import ChannelError, OutboundMessage
from channels.slack import REPLY_EVENT_TYPE, SlackChannel
from tests.fakes.server import FakeResponse
from tests.fakes.slack import BOT_ID, BOT_USER_ID, FakeSlack, event_callback, signed_headers

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
GENERAL = "C0GENERAL"
CUSTOMER = "U0CUSTOMER"
QUESTION = "how long does delivery take?"

_ts = count(100)


def new_ts() -> str:
    return f"{int(time.time())}.{next(_ts):06d}"


@dataclass
class SlackBot:
    runtime: Runtime
    client: TestClient
    fake: FakeSlack

    @property
    def channel(self) -> SlackChannel:
        return self.runtime.channels["slack"]

    def deliver(
        self,
        payload: dict | bytes,
        *,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
        retry_num: int | None = None,
    ):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = signed_headers(body, secret, timestamp=timestamp)
        if retry_num is not None:
            headers |= {"x-slack-retry-num": str(retry_num), "x-slack-retry-reason": "http_timeout"}
        response = self.client.post("/slack/events", content=body, headers=headers)
        assert self.runtime.wait_idle()
        return response

    def inbound(self) -> list[Message]:
        with Session(self.runtime.engine) as session:
            query = select(Message).where(Message.direction == Direction.INBOUND.value).order_by(Message.id)
            return list(session.exec(query).all())

    def outbox(self) -> list[Outbox]:
        with Session(self.runtime.engine) as session:
            return list(session.exec(select(Outbox).order_by(Outbox.id)).all())

    def deliver_due_in(self, seconds: float):
        return deliver_due(
            self.runtime.engine, self.runtime.channels, now=utcnow() + timedelta(seconds=seconds)
        )


@pytest.fixture
def fake_slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def slack_bot(make_settings, models, fake_slack):
    settings = make_settings(
        slack={
            "enabled": True,
            "bot_token": fake_slack.bot_token,
            "signing_secret": SIGNING_SECRET,
            "api_base_url": fake_slack.api_base_url,
        }
    )
    runtime = build_runtime(settings, models=models)
    try:
        with TestClient(create_app(runtime)) as client:
            yield SlackBot(runtime, client, fake_slack)
    finally:
        runtime.close()


def mention(text: str = QUESTION, *, ts: str | None = None, channel: str = GENERAL, **extra) -> dict:
    ts = ts or new_ts()
    event = {
        "type": "app_mention",
        "user": CUSTOMER,
        "text": f"<@{BOT_USER_ID}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }
    return event | extra


def channel_message(text: str, *, ts: str | None = None, channel: str = GENERAL, **extra) -> dict:
    ts = ts or new_ts()
    event = {
        "type": "message",
        "channel_type": "channel",
        "user": CUSTOMER,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }
    return event | extra


# A mention is answered once, in its thread


def test_a_mention_gets_one_answer_from_the_knowledge_base_in_its_thread(slack_bot):
    event = mention(ts="1700000000.000100")

    response = slack_bot.deliver(event_callback(event))

    assert response.status_code == 200
    [stored] = slack_bot.inbound()
    assert stored.external_id == f"{GENERAL}:1700000000.000100"
    assert stored.text == QUESTION  # the bot's own mention is not part of the question
    assert (stored.action, stored.kb_article_id) == ("answer", "delivery-times")
    [posted] = slack_bot.fake.posted()
    assert posted.params["channel"] == GENERAL
    assert posted.params["thread_ts"] == "1700000000.000100"
    assert "3–5 working days" in posted.params["text"]
    [row] = slack_bot.outbox()
    assert row.status == OutboxStatus.SENT.value
    assert posted.params["metadata"] == {
        "event_type": REPLY_EVENT_TYPE,
        "event_payload": {"idempotency_key": row.idempotency_key},
    }
    assert row.external_id == f"{GENERAL}:{slack_bot.fake.bot_replies()[0].ts}"


def test_a_retried_delivery_is_acknowledged_and_not_answered_again(slack_bot):
    payload = event_callback(mention())

    assert slack_bot.deliver(payload).status_code == 200
    assert slack_bot.deliver(payload, retry_num=1).status_code == 200
    assert slack_bot.deliver(payload, retry_num=2).status_code == 200

    assert len(slack_bot.inbound()) == 1
    assert len(slack_bot.fake.posted()) == 1


def test_the_same_message_as_a_mention_and_as_a_channel_message_is_answered_once(slack_bot):
    ts = new_ts()
    text = f"<@{BOT_USER_ID}> how long does Fernhill delivery take?"
    as_mention = mention(ts=ts) | {"text": text}
    as_message = channel_message(text, ts=ts)

    slack_bot.deliver(event_callback(as_message, event_id="Ev0002"))
    slack_bot.deliver(event_callback(as_mention, event_id="Ev0001"))

    assert len(slack_bot.inbound()) == 1
    assert len(slack_bot.fake.posted()) == 1
    assert len(slack_bot.fake.server.calls("/api/auth.test")) == 1  # the bot's identity is asked once


def test_a_delivery_that_arrives_while_slack_auth_is_down_is_refused_so_slack_delivers_it_again(slack_bot):
    slack_bot.fake.server.fail_next("/api/auth.test", FakeResponse(503, {"ok": False}))
    payload = event_callback(mention())

    assert slack_bot.deliver(payload).status_code == 500
    assert slack_bot.inbound() == []

    assert slack_bot.deliver(payload, retry_num=1).status_code == 200
    assert len(slack_bot.inbound()) == 1
    assert len(slack_bot.fake.bot_replies()) == 1


def test_a_reply_in_a_thread_is_answered_in_that_thread(slack_bot):
    parent = "1700000000.000200"
    slack_bot.deliver(event_callback(mention(thread_ts=parent)))

    [stored] = slack_bot.inbound()
    [posted] = slack_bot.fake.posted()
    assert posted.params["thread_ts"] == parent
    assert stored.public is True


def test_a_direct_message_is_answered_in_the_conversation(slack_bot):
    profile = {"name": "jane.doe", "display_name": "Jane", "real_name": "Jane Doe"}
    dm = channel_message(QUESTION, channel="D0CUSTOMER") | {"channel_type": "im", "user_profile": profile}

    slack_bot.deliver(event_callback(dm))

    [stored] = slack_bot.inbound()
    assert stored.public is False
    with Session(slack_bot.runtime.engine) as session:
        identity = session.exec(select(Identity).where(Identity.channel == "slack")).one()
        assert (identity.external_user_id, identity.handle) == (CUSTOMER, "jane.doe")
        assert session.get(Contact, identity.contact_id).display_name == "Jane"
    [posted] = slack_bot.fake.posted()
    assert posted.params["channel"] == "D0CUSTOMER"
    assert "thread_ts" not in posted.params
    assert "3–5 working days" in posted.params["text"]


# What the bot does not take


def test_a_channel_message_is_taken_only_when_it_names_the_brand(slack_bot):
    slack_bot.deliver(event_callback(channel_message("how long does delivery take?")))
    slack_bot.deliver(event_callback(channel_message("does the fernhillish shop deliver?")))
    assert slack_bot.inbound() == []

    slack_bot.deliver(event_callback(channel_message("how long does FERNHILL delivery take?")))
    assert [m.text for m in slack_bot.inbound()] == ["how long does FERNHILL delivery take?"]


def test_the_bots_own_messages_other_bots_and_message_subtypes_are_acknowledged_and_ignored(slack_bot):
    own = channel_message("Fernhill: delivery takes 3-5 days", user=BOT_USER_ID, bot_id=BOT_ID)
    other_bot = channel_message("fernhill", subtype="bot_message", bot_id="B0OTHER") | {"user": None}
    edit = channel_message(
        "fernhill delivery?",
        subtype="message_changed",
        message={"type": "message", "user": CUSTOMER, "text": "fernhill delivery?", "ts": "1.1"},
    )
    join = channel_message("<@U0NEW> has joined the channel about fernhill", subtype="channel_join")

    for event in (own, other_bot, edit, join):
        assert slack_bot.deliver(event_callback(event)).status_code == 200, event

    assert slack_bot.inbound() == []
    assert slack_bot.fake.posted() == []


def test_a_forged_or_stale_signature_is_refused_and_nothing_is_stored(slack_bot):
    payload = event_callback(mention())

    assert slack_bot.deliver(payload, secret="not-the-signing-secret").status_code == 401
    assert slack_bot.deliver(payload, timestamp=int(time.time()) - 600).status_code == 401
    unsigned = slack_bot.client.post("/slack/events", content=json.dumps(payload).encode())
    assert unsigned.status_code == 401

    assert slack_bot.inbound() == []
    assert slack_bot.fake.posted() == []


def test_url_verification_is_answered_with_the_challenge(slack_bot):
    payload = {
        "token": "legacy",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    }

    response = slack_bot.deliver(payload)

    assert response.status_code == 200
    assert response.json() == {"challenge": payload["challenge"]}


def test_bad_deliveries_get_a_4xx_or_are_acknowledged_and_ignored_never_answered(slack_bot):
    refused = {
        "malformed JSON": b"{not json",
        "a JSON array": b"[1, 2, 3]",
        "not UTF-8": b"\xff\xfe{}",
        "an event_callback without an event": json.dumps({"type": "event_callback"}).encode(),
        "an event that is not an object": json.dumps({"type": "event_callback", "event": "x"}).encode(),
    }
    acknowledged = {
        "an event without channel, ts or user": event_callback({"type": "app_mention", "text": "hi"}),
        "an unknown event type": event_callback({"type": "reaction_added", "user": CUSTOMER}),
    }

    for what, body in refused.items():
        assert slack_bot.deliver(body).status_code == 400, what
    for what, payload in acknowledged.items():
        assert slack_bot.deliver(payload).status_code == 200, what
    huge = json.dumps(event_callback(mention("x" * 1_100_000))).encode()
    assert slack_bot.deliver(huge).status_code == 413

    assert slack_bot.inbound() == []
    assert slack_bot.fake.posted() == []


# Delivery failures are retried by the outbox


def test_a_rate_limited_reply_waits_for_retry_after_and_then_goes_once(slack_bot):
    slack_bot.fake.server.fail_next(
        "/api/chat.postMessage",
        FakeResponse(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"}),
    )

    slack_bot.deliver(event_callback(mention()))

    [row] = slack_bot.outbox()
    assert (row.status, row.attempts) == (OutboxStatus.PENDING.value, 1)
    assert slack_bot.fake.bot_replies() == []
    assert slack_bot.deliver_due_in(10).sent == []  # still inside Slack's Retry-After
    assert len(slack_bot.deliver_due_in(31).sent) == 1
    assert slack_bot.deliver_due_in(120).sent == []
    assert len(slack_bot.fake.bot_replies()) == 1
    assert len(slack_bot.fake.posted()) == 2


def test_a_server_error_from_slack_is_retried(slack_bot):
    slack_bot.fake.server.fail_next(
        "/api/chat.postMessage",
        FakeResponse(500, "<html>internal error</html>", {"content-type": "text/html"}),
    )

    slack_bot.deliver(event_callback(mention()))
    assert slack_bot.outbox()[0].status == OutboxStatus.PENDING.value

    assert len(slack_bot.deliver_due_in(60).sent) == 1
    [reply] = slack_bot.fake.bot_replies()
    assert "3–5 working days" in reply.text


def test_a_channel_the_bot_cannot_post_in_fails_the_reply_without_retrying(slack_bot):
    slack_bot.fake.refused_channels["C0ARCHIVED"] = "is_archived"

    slack_bot.deliver(event_callback(mention(channel="C0ARCHIVED")))

    [row] = slack_bot.outbox()
    assert row.status == OutboxStatus.FAILED.value
    assert "is_archived" in row.last_error
    assert slack_bot.deliver_due_in(3600).sent == []
    assert len(slack_bot.fake.posted()) == 1


class WorkerDied(BaseException):
    """The process stopped (not an error the outbox handles)."""


class DiesAfterPosting:
    """The Slack adapter in a worker that stops right after Slack accepted the message."""

    name = "slack"

    def __init__(self, channel: SlackChannel) -> None:
        self.channel = channel

    def find_sent(self, message: OutboundMessage) -> str | None:
        return self.channel.find_sent(message)

    def send(self, message: OutboundMessage) -> str:
        self.channel.send(message)
        raise WorkerDied


@pytest.mark.parametrize(
    "event",
    [pytest.param(mention(), id="in a thread"), pytest.param(None, id="in a direct message")],
)
def test_a_reply_posted_before_the_worker_died_is_found_and_not_posted_again(slack_bot, event):
    event = event or channel_message(QUESTION, channel="D0CUSTOMER") | {"channel_type": "im"}
    slack_bot.fake.server.fail_next("/api/chat.postMessage", FakeResponse(503, {"ok": False}))
    slack_bot.deliver(event_callback(event))
    assert slack_bot.fake.bot_replies() == []

    later = utcnow() + timedelta(seconds=30)
    with pytest.raises(WorkerDied):
        deliver_due(slack_bot.runtime.engine, {"slack": DiesAfterPosting(slack_bot.channel)}, now=later)
    [posted] = slack_bot.fake.bot_replies()

    report = deliver_due(
        slack_bot.runtime.engine, slack_bot.runtime.channels, now=later + timedelta(minutes=5)
    )

    assert len(report.sent) == 1
    assert len(slack_bot.fake.bot_replies()) == 1
    [row] = slack_bot.outbox()
    assert (row.status, row.external_id) == (OutboxStatus.SENT.value, f"{posted.channel}:{posted.ts}")


# Identity and Socket Mode


def test_check_says_which_workspace_and_bot_user(slack_bot, fake_slack):
    assert slack_bot.channel.check() == "slack: team Fernhill Outdoor as @socialbot (U0SOCIALBOT)"

    wrong = SlackChannel(
        bot_token="xoxb-revoked",
        signing_secret=SIGNING_SECRET,
        api_base_url=fake_slack.api_base_url,
        sink=lambda inbound: True,
    )
    with pytest.raises(ChannelError, match="invalid_auth"):
        wrong.check()


def test_socket_mode_with_a_refused_app_token_fails_to_start_with_slacks_error(fake_slack):
    channel = SlackChannel(
        bot_token=fake_slack.bot_token,
        signing_secret=None,
        app_token="xapp-wrong",
        socket_mode=True,
        api_base_url=fake_slack.api_base_url,
        sink=lambda inbound: True,
    )
    with pytest.raises(ChannelError, match="invalid_auth"):
        channel.start()
    assert channel.handle_webhook(b"{}", {}).status == 404


def test_when_slack_cannot_say_whether_the_reply_went_out_the_outbox_waits_instead_of_posting_blindly(
    slack_bot,
):
    slack_bot.fake.server.fail_next("/api/chat.postMessage", FakeResponse(503, {"ok": False}))
    slack_bot.deliver(event_callback(mention()))
    later = utcnow() + timedelta(seconds=30)
    with pytest.raises(WorkerDied):
        deliver_due(slack_bot.runtime.engine, {"slack": DiesAfterPosting(slack_bot.channel)}, now=later)
    slack_bot.fake.server.fail_next(
        "/api/conversations.replies",
        FakeResponse(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "20"}),
    )

    asked_while_limited = deliver_due(
        slack_bot.runtime.engine, slack_bot.runtime.channels, now=later + timedelta(minutes=5)
    )
    assert asked_while_limited.retried and not asked_while_limited.sent
    recovered = deliver_due(
        slack_bot.runtime.engine, slack_bot.runtime.channels, now=later + timedelta(minutes=10)
    )

    assert len(recovered.sent) == 1
    assert len(slack_bot.fake.bot_replies()) == 1
