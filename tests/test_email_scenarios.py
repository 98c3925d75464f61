"""E-mail end to end against a real mailbox: Dovecot (IMAP) in, aiosmtpd (SMTP) out, the whole bot between.

Given a brand whose help@ mailbox is read by socialbot, when a customer mails it, then they get an answer in
the same thread; their reply arrives without the quoted history; a person who takes over answers by mail in
that thread. A forged sender gets nothing verified and no one's data; a bounce stops follow-ups to the
address; a restart mid-mailbox repeats nothing; two workers on PostgreSQL read the mailbox once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.crm.db import session_scope
from bot.crm.models import (
    Contact,
    Conversation,
    DataRequest,
    Direction,
    FollowUp,
    Identity,
    MailboxPosition,
    Message,
)
from bot.delivery.outbox import deliver_due
from bot.engagement.followups import schedule_followup
from bot.support.staff import create_staff, issue_api_token
from bot.web.app import create_app
from bot.worker.build import build_runtime
from tests.conftest import wait_for
from tests.fakes.smtp import LocalSMTP

JANE = "jane@customer.example"
TRUSTED = "mx.fernhill.example"
SECRET_KEY = "scenario-secret-key-of-at-least-thirty-two-characters"


def customer_mail(
    text: str,
    *,
    message_id: str,
    sender: str = f"Jane Doe <{JANE}>",
    subject: str = "Broken zip on my Trailhead jacket",
    in_reply_to: str | None = None,
    references: str | None = None,
    authenticated: bool = True,
) -> bytes:
    mail = EmailMessage()
    domain = sender.rpartition("@")[2].rstrip(">")
    if authenticated:
        mail["Authentication-Results"] = (
            f"{TRUSTED}; dkim=pass header.d={domain}; dmarc=pass header.from={domain}"
        )
    else:
        mail["Authentication-Results"] = f"{TRUSTED}; dkim=none; dmarc=fail header.from={domain}"
    mail["From"] = sender
    mail["To"] = "Fernhill Outdoor <help@fernhill.example>"
    mail["Subject"] = subject
    mail["Message-ID"] = message_id
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
        mail["References"] = references or in_reply_to
    mail.set_content(text)
    return mail.as_bytes()


@pytest.fixture
def smtp(mailbox) -> Iterator[LocalSMTP]:
    """The brand's outgoing server: it takes the mailbox's own login, like a provider's submission port."""
    server, user = mailbox
    with LocalSMTP(login=(user, server.password)) as outgoing:
        yield outgoing


def mailbox_settings(make_settings, mailbox, smtp: LocalSMTP, **extra):
    server, user = mailbox
    return make_settings(
        email={
            "enabled": True,
            "username": user,
            "imap_host": "127.0.0.1",
            "imap_port": server.port,
            "imap_security": "none",
            "password": server.password,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_security": "none",
            "trusted_authserv_id": TRUSTED,
            "imap_poll_seconds": 0.5,
        },
        secret_key=SECRET_KEY,
        **extra,
    )


@pytest.fixture
def start_worker(make_settings, models, mailbox, smtp) -> Iterator[Callable[..., Any]]:
    """Start a worker reading the mailbox (more than one share a database when given the same settings)."""
    started = []

    def start(settings=None, **extra):
        runtime = build_runtime(
            settings or mailbox_settings(make_settings, mailbox, smtp, **extra), models=models
        )
        runtime.start_channels()
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.close()


def inbound(runtime) -> list[Message]:
    with session_scope(runtime.engine, read_only=True) as session:
        return list(
            session.exec(
                select(Message).where(Message.direction == Direction.INBOUND.value).order_by(Message.id)
            ).all()
        )


def settle(runtime, count: int) -> list[Message]:
    """Wait until `count` mails are stored and processed, then send what the bot queued."""
    wait_for(lambda: len(inbound(runtime)) >= count, what=f"{count} stored mails")
    wait_for(lambda: all(m.status == "processed" for m in inbound(runtime)), what="processing")
    assert runtime.wait_idle()
    deliver_due(runtime.engine, runtime.channels)
    return inbound(runtime)


def test_a_customer_mails_help_gets_a_threaded_answer_replies_and_a_person_answers_by_mail(
    mailbox, smtp, start_worker
):
    server, user = mailbox
    runtime = start_worker()
    server.deliver(
        user,
        customer_mail(
            "Hi, the zip on my Trailhead jacket broke after a week. What can I do?",
            message_id="<q1@customer.example>",
        ),
    )
    (question,) = settle(runtime, 1)
    assert question.sender_verified and question.text.startswith("Hi, the zip")
    (answer,) = smtp.to(JANE)
    assert answer["In-Reply-To"] == "<q1@customer.example>"
    assert answer["Subject"] == "Re: Broken zip on my Trailhead jacket"
    assert answer["From"].addresses[0].addr_spec == user and answer["List-Unsubscribe"]

    # She replies from her mail client, quoting our answer.
    reply = (
        "Thanks. It's a size M, bought in March.\n\n"
        f"On Mon, 3 Jun 2024 at 10:00, Fernhill Outdoor <{user}> wrote:\n> {answer.get_body().get_content()}"
    )
    server.deliver(
        user,
        customer_mail(
            reply,
            message_id="<q2@customer.example>",
            in_reply_to=answer["Message-ID"],
            references=f"<q1@customer.example> {answer['Message-ID']}",
            subject="Re: Broken zip on my Trailhead jacket",
        ),
    )
    first, second = settle(runtime, 2)
    assert second.text == "Thanks. It's a size M, bought in March."
    assert second.conversation_id == first.conversation_id

    # A person takes the conversation over in the console and answers; the answer goes out by mail.
    with session_scope(runtime.engine) as session:
        agent = create_staff(session, "agent@fernhill.example", role="agent", password="a-long-password-1")
        token = issue_api_token(session, agent)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(runtime)) as client:
        conversation_id = first.conversation_id
        taken = client.post(
            f"/api/v1/conversations/{conversation_id}/assign", json={"staff_id": agent.id}, headers=headers
        )
        assert taken.status_code == 200, taken.text
        sent = client.post(
            f"/api/v1/conversations/{conversation_id}/reply",
            json={"text": "Hello Jane, a new zip is on its way to you today."},
            headers=headers,
        )
        assert sent.status_code == 202, sent.text
        assert runtime.wait_idle()
    deliver_due(runtime.engine, runtime.channels)
    staff_mail = wait_for(
        lambda: [m for m in smtp.to(JANE) if "new zip" in m.get_body().get_content()],
        what="the staff reply by mail",
    )[0]
    assert staff_mail["In-Reply-To"] == "<q2@customer.example>"
    # The whole thread, oldest first, so every mail client files it under her first mail.
    assert staff_mail["References"].split() == [
        "<q1@customer.example>",
        answer["Message-ID"],
        "<q2@customer.example>",
    ]
    assert runtime.channels["email"].threads.thread_of(staff_mail["Message-ID"]) == JANE


def test_a_forged_sender_gets_nothing_verified_and_no_ones_data(mailbox, smtp, start_worker):
    server, user = mailbox
    runtime = start_worker(data_rights={"auto_fulfil": True})
    server.deliver(user, customer_mail("Where is my order 4821?", message_id="<real@customer.example>"))
    (real,) = settle(runtime, 1)
    ours = smtp.to(JANE)[0]["Message-ID"]

    # Mallory writes as Jane (no DKIM, DMARC fail) and asks to delete "her" data.
    server.deliver(
        user,
        customer_mail(
            "Please delete all my data.", message_id="<forged@attacker.example>", authenticated=False
        ),
    )
    # Eve, authenticated as herself, replies to Jane's thread by a made-up id, and to Jane's real one.
    forged_id = ours.replace(ours.split(".")[1], "mfrgg")  # another thread under our tag
    server.deliver(
        user,
        customer_mail(
            "What do you know about me?",
            message_id="<e1@eve.example>",
            sender="Eve <eve@eve.example>",
            in_reply_to=forged_id,
        ),
    )
    server.deliver(
        user,
        customer_mail(
            "What data do you hold about me?",
            message_id="<e2@eve.example>",
            sender="Eve <eve@eve.example>",
            in_reply_to=ours,
        ),
    )
    messages = settle(runtime, 4)
    forged, eve_made_up, eve_real_thread = messages[1:]
    with session_scope(runtime.engine, read_only=True) as session:
        jane = session.get(Contact, real.contact_id)
        assert jane.display_name == "Jane Doe"  # not erased
        requests = {r.message_id: r for r in session.exec(select(DataRequest)).all()}
        assert requests[forged.id].status == "unverified" and not forged.sender_verified
        assert session.get(Message, real.id).text == "Where is my order 4821?"
        made_up_thread = session.get(Conversation, eve_made_up.conversation_id)
        assert made_up_thread.thread_id == "eve@eve.example"  # a forged In-Reply-To starts her own thread
        assert eve_real_thread.conversation_id == real.conversation_id  # a genuine id joins the thread...
        assert requests[eve_real_thread.id].status == "open"  # ...but her data is not mailed into it
    to_jane = [m.get_body(("plain",)).get_content() for m in smtp.to(JANE)]
    assert not any("Here is what we store" in text for text in to_jane)
    assert any("6-digit code" in text and "request" in text for text in to_jane)
    assert any("delete the data stored about you" in text for text in to_jane)  # the code mail: only Jane's
    assert all("@attacker.example" not in " ".join(to) for _, to in smtp.envelopes)
    eve_texts = [m.get_body(("plain",)).get_content() for m in smtp.to("eve@eve.example")]
    assert any("Here is what we store about you" in text for text in eve_texts)  # her own thread: fine

    # Only Jane can confirm: the code went to her mailbox, and her reply with it lets the request go ahead.
    code_mail = next(
        m for m in smtp.to(JANE) if "delete the data stored about you" in m.get_body().get_content()
    )
    code = next(
        word.strip(".")
        for word in code_mail.get_body().get_content().split()
        if word.strip(".").isdigit() and len(word.strip(".")) == 6
    )
    server.deliver(
        user,
        customer_mail(
            code,
            message_id="<code@customer.example>",
            authenticated=False,
            in_reply_to=code_mail["Message-ID"],
        ),
    )
    settle(runtime, 5)
    with session_scope(runtime.engine, read_only=True) as session:
        request = session.exec(select(DataRequest).where(DataRequest.message_id == forged.id)).one()
        assert request.status == "fulfilled"  # it was her mailbox after all: auto_fulfil erases


def test_a_bounce_marks_the_address_failing_and_stops_follow_ups_to_it(mailbox, smtp, start_worker):
    server, user = mailbox
    runtime = start_worker()
    server.deliver(user, customer_mail("Do you ship to Ireland?", message_id="<b1@customer.example>"))
    (question,) = settle(runtime, 1)
    ours = smtp.to(JANE)[0]["Message-ID"]
    with session_scope(runtime.engine) as session:
        conversation = session.get(Conversation, question.conversation_id)
        (followup,) = schedule_followup(
            session, conversation, template="resolution_check", due_at=question.created_at.replace(year=2999)
        )
        followup_id = followup.id
    dsn = (
        f"From: MAILER-DAEMON@{TRUSTED}\r\nTo: {user}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\nMessage-ID: <dsn1@mx.fernhill.example>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        f"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {TRUSTED}\r\n\r\n"
        f"Final-Recipient: rfc822; {JANE}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: {JANE}\r\nMessage-ID: {ours}\r\n\r\n--B--\r\n"
    ).encode()
    server.deliver(user, dsn)

    def bounced():
        with session_scope(runtime.engine, read_only=True) as session:
            identity = session.exec(select(Identity).where(Identity.external_user_id == JANE)).one()
            return identity.bounced_at is not None and session.get(FollowUp, followup_id)

    followup = wait_for(bounced, what="the bounce")
    assert followup.status == "cancelled" and "bounced" in followup.last_error
    assert len(inbound(runtime)) == 1  # the bounce is no customer message


def test_a_restart_mid_mailbox_repeats_nothing(make_settings, mailbox, smtp, start_worker):
    server, user = mailbox
    settings = mailbox_settings(make_settings, mailbox, smtp)
    first = start_worker(settings)
    for number in range(3):
        server.deliver(
            user,
            customer_mail(
                f"Question {number}: do you ship to Ireland?", message_id=f"<r{number}@customer.example>"
            ),
        )
    settle(first, 3)
    first.close()
    for number in range(3, 5):
        server.deliver(
            user,
            customer_mail(
                f"Question {number}: do you ship to Ireland?", message_id=f"<r{number}@customer.example>"
            ),
        )
    second = start_worker(settings)  # the same database: a restarted worker
    messages = settle(second, 5)
    time.sleep(1)
    assert [m.external_id for m in inbound(second)] == [f"<r{n}@customer.example>" for n in range(5)]
    assert len(messages) == 5
    answers = [mail["In-Reply-To"] for mail in smtp.to(JANE)]
    assert sorted(answers) == sorted(f"<r{n}@customer.example>" for n in range(5))  # each answered once


def test_two_workers_on_postgresql_read_the_mailbox_once(make_settings, mailbox, smtp, start_worker, pg_url):
    server, user = mailbox
    settings = mailbox_settings(make_settings, mailbox, smtp, database={"url": pg_url})
    workers = [start_worker(settings), start_worker(settings)]
    wait_for(
        lambda: sum(len(w.leaderships) and w.leaderships[0].leading.is_set() for w in workers) == 1,
        what="one worker to lead the mailbox",
    )
    for number in range(6):
        server.deliver(
            user,
            customer_mail(
                f"Question {number}: is the Trailhead waterproof?", message_id=f"<p{number}@customer.example>"
            ),
        )
    wait_for(lambda: len(inbound(workers[0])) >= 6, what="six stored mails")
    time.sleep(2)
    stored = inbound(workers[0])
    assert sorted(m.external_id for m in stored) == sorted(f"<p{n}@customer.example>" for n in range(6))
    with session_scope(workers[0].engine, read_only=True) as session:
        (position,) = session.exec(select(MailboxPosition)).all()
        assert position.last_uid == 6
