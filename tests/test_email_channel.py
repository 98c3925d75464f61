"""E-mail: mails go out over a real SMTP server on loopback (aiosmtpd) threaded, as text + escaped HTML, with
an unsubscribe link that works; replies come in through the authenticated inbound webhook and land in the
conversation they answer; an SMTP server that is down is retried with backoff, then the mail is marked
failed for staff to see."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.crm.models import Contact, Conversation, DataRequest, Direction, Identity, Message, Outbox, utcnow
from bot.delivery.outbox import deliver_due, enqueue
from bot.runtime.settings import SettingsError
from bot.web.app import create_app
from bot.worker.build import build_runtime
from tests.fakes.smtp import LocalSMTP

SECRET = "inbound-shared-secret"
CUSTOMER = "jane@customer.example"


@pytest.fixture
def smtp() -> Iterator[LocalSMTP]:
    with LocalSMTP() as server:
        yield server


def email_settings(make_settings: Callable[..., Any], smtp: LocalSMTP, **extra: Any):
    return make_settings(
        email={
            "enabled": True,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_security": "none",
            "from_address": "care@fernhill.example",
            "inbound_secret": SECRET,
        },
        secret_key="test-secret-key-for-unsubscribe-links",
        followups={"quiet_hours_start": "00:00", "quiet_hours_end": "00:00"},
        **extra,
    )


@pytest.fixture
def email_runtime(make_settings, smtp, models) -> Iterator[Any]:
    runtime = build_runtime(email_settings(make_settings, smtp), models=models)
    yield runtime
    runtime.close()


def queue_mail(runtime, text: str, *, address: str = CUSTOMER, key: str = "test:1") -> int:
    with Session(runtime.engine) as session:
        contact = Contact(display_name="Jane")
        session.add(contact)
        session.flush()
        session.add(Identity(contact_id=contact.id, channel="email", external_user_id=address, verified=True))
        conversation = Conversation(contact_id=contact.id, channel="email", thread_id=address)
        session.add(conversation)
        session.flush()
        message = enqueue(session, conversation=conversation, text=text, idempotency_key=key)
        session.commit()
        return message.id


def test_enabled_email_names_the_one_setting_it_misses(make_settings, smtp):
    key = "a-secret-key-of-thirty-two-characters-or-more"
    mailbox = {"enabled": True, "imap_host": "imap.fernhill.example", "username": "help@fernhill.example"}
    cases = [
        ({"enabled": True}, {}, "email.inbound_secret.*SOCIALBOT_EMAIL__INBOUND_SECRET"),
        ({"enabled": True, "inbound_secret": SECRET}, {}, "secret_key.*SOCIALBOT_SECRET_KEY"),
        ({"enabled": True, "inbound_secret": SECRET}, {"secret_key": key}, "email.from_address"),
        ({**mailbox, "username": ""}, {"secret_key": key}, "email.imap_user"),
        (mailbox, {"secret_key": key}, "email.imap_password.*SOCIALBOT_EMAIL__PASSWORD"),
    ]
    for email, extra, error in cases:
        with pytest.raises(SettingsError, match=error):
            make_settings(email=email, **extra)
    # Four settings and two secrets: a mailbox read over IMAP needs no inbound secret.
    settings = make_settings(
        email={**mailbox, "smtp_host": "smtp.fernhill.example", "password": "pw"}, secret_key=key
    )
    assert settings.email.sender_address == "help@fernhill.example"


def test_a_mail_is_threaded_text_plus_escaped_html_with_a_working_unsubscribe_link(email_runtime, smtp):
    queue_mail(email_runtime, 'Did that fix it? <script>alert("x")</script>', key="followup:42")
    report = deliver_due(email_runtime.engine, email_runtime.channels)
    assert len(report.sent) == 1 and len(smtp.mails) == 1
    mail = smtp.mails[0]
    assert mail["To"] == CUSTOMER and "care@fernhill.example" in mail["From"]
    assert email_runtime.channels["email"].threads.thread_of(mail["Message-ID"]) == CUSTOMER
    assert smtp.envelopes[0] == ("care@fernhill.example", [CUSTOMER])
    text = mail.get_body(("plain",)).get_content()
    page = mail.get_body(("html",)).get_content()
    assert '<script>alert("x")</script>' in text
    assert "<script>" not in page and "&lt;script&gt;" in page
    unsubscribe = mail["List-Unsubscribe"].strip("<>")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe in text and unsubscribe.startswith("http://127.0.0.1:8000/email/unsubscribe?token=")
    with Session(email_runtime.engine) as session:
        assert session.exec(select(Outbox)).one().external_id == mail["Message-ID"]

    path = unsubscribe.removeprefix("http://127.0.0.1:8000")
    with TestClient(create_app(email_runtime)) as client:
        confirm = client.get(path)
        assert confirm.status_code == 200 and "Unsubscribe" in confirm.text
        with Session(email_runtime.engine) as session:
            assert not session.exec(select(Contact)).one().opted_out  # a link scanner's GET changes nothing
        assert client.post(path).status_code == 200
        forged = client.post(path[:-3] + "xyz")
        assert forged.status_code == 400 and "not valid" in forged.text
    with Session(email_runtime.engine) as session:
        assert session.exec(select(Contact)).one().opted_out


def test_inbound_replies_need_the_secret_and_link_to_the_thread_by_in_reply_to(email_runtime, smtp):
    queue_mail(email_runtime, "How did we do?", key="followup:7")
    deliver_due(email_runtime.engine, email_runtime.channels)
    ours = smtp.mails[0]["Message-ID"]
    reply = {
        "from": "Jane Doe <Jane.Other@customer.example>",
        "to": "care@fernhill.example",
        "subject": "Re: A message from Fernhill Outdoor",
        "text": "All fixed now, thanks!\n\nOn Mon, Fernhill Outdoor wrote:\n> How did we do?",
        "message_id": "<reply-1@customer.example>",
        "in_reply_to": ours,
    }
    with TestClient(create_app(email_runtime)) as client:
        wrong = client.post("/email/inbound", content=json.dumps(reply), headers={"X-Socialbot-Secret": "no"})
        assert wrong.status_code == 401
        assert client.post("/email/inbound", content=json.dumps(reply)).status_code == 401
        headers = {"X-Socialbot-Secret": SECRET, "content-type": "application/json"}
        bad = client.post("/email/inbound", content=b"{not json", headers=headers)
        assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
        missing = client.post("/email/inbound", json={"from": CUSTOMER}, headers=headers)
        assert missing.status_code == 400 and "'text'" in missing.json()["error"]
        not_address = client.post("/email/inbound", json={**reply, "from": "nobody"}, headers=headers)
        assert not_address.status_code == 400
        ok = client.post("/email/inbound", json=reply, headers=headers)
        assert ok.status_code == 200 and ok.json()["new"] is True
        again = client.post("/email/inbound", json=reply, headers=headers)
        assert again.status_code == 200 and again.json()["new"] is False
        assert email_runtime.wait_idle()
    with Session(email_runtime.engine) as session:
        inbound = session.exec(select(Message).where(Message.direction == Direction.INBOUND.value)).all()
        assert len(inbound) == 1
        assert inbound[0].text == "All fixed now, thanks!"  # the quoted mail is not the customer's words
        conversation = session.get(Conversation, inbound[0].conversation_id)
        # From another address of hers, yet in the thread of the mail she answered.
        assert conversation.channel == "email" and conversation.thread_id == CUSTOMER


def test_smtp_down_is_retried_with_backoff_then_marked_failed(email_runtime, smtp):
    smtp.stop()
    queue_mail(email_runtime, "Did that fix it?")
    now = utcnow()
    delays = []
    for _ in range(8):
        report = deliver_due(email_runtime.engine, email_runtime.channels, now=now, max_attempts=4)
        with Session(email_runtime.engine) as session:
            row = session.exec(select(Outbox)).one()
        if report.failed:
            break
        assert report.retried and "unreachable" in row.last_error
        delays.append((row.next_attempt_at - now).total_seconds())
        assert deliver_due(email_runtime.engine, email_runtime.channels, now=now).sent == []  # not yet due
        now = row.next_attempt_at + timedelta(seconds=1)
    assert delays == [2.0, 4.0, 8.0]
    with Session(email_runtime.engine) as session:
        row = session.exec(select(Outbox)).one()
        assert row.status == "failed" and row.attempts == 4
        assert session.get(Message, row.message_id).status == "failed"
    smtp.start()
    assert deliver_due(email_runtime.engine, email_runtime.channels, now=now + timedelta(days=1)).sent == []
    assert smtp.mails == []


def test_the_json_webhook_no_longer_lets_a_forged_sender_erase_or_read_a_customers_data(
    make_settings, smtp, models
):
    """The attacks of issue 18 against `POST /email/inbound` (JSON carries no authentication): a forged `from`
    asking to delete Jane's data erases nothing, and a reply naming Jane's thread mails no one's summary into
    it."""
    runtime = build_runtime(
        email_settings(make_settings, smtp, data_rights={"auto_fulfil": True}), models=models
    )
    try:
        queue_mail(runtime, "How did we do?", key="followup:1")
        deliver_due(runtime.engine, runtime.channels)
        ours = smtp.mails[0]["Message-ID"]
        headers = {"X-Socialbot-Secret": SECRET}
        forged = [
            {"from": CUSTOMER, "text": "Please delete all my personal data", "message_id": "<f1@x>"},
            {
                "from": "eve@eve.example",
                "text": "What do you know about me?",
                "message_id": "<f2@x>",
                "in_reply_to": ours,
            },
        ]
        with TestClient(create_app(runtime)) as client:
            for body in forged:
                assert client.post("/email/inbound", json=body, headers=headers).status_code == 200
            assert runtime.wait_idle()
        deliver_due(runtime.engine, runtime.channels)
        with Session(runtime.engine) as session:
            jane = session.exec(select(Contact).where(Contact.display_name == "Jane")).one()
            assert jane.display_name == "Jane" and not jane.opted_out  # nothing erased
            statuses = [r.status for r in session.exec(select(DataRequest).order_by(DataRequest.id)).all()]
            assert statuses == ["unverified", "unverified"]
        sent = [m.get_body(("plain",)).get_content() for m in smtp.mails]
        assert not any("Here is what we store" in text for text in sent)
        assert all(to == [CUSTOMER] or to == ["eve@eve.example"] for _, to in smtp.envelopes)
    finally:
        runtime.close()
