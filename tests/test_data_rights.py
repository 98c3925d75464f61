"""Given two customers in the same Telegram group thread, when one asks what the brand knows about her, then a
data request is recorded, the admin's export holds her messages from Telegram and e-mail and nothing of the
other customer's; erasing her removes her text but keeps the counts, cancels her follow-ups and is audited;
retention purges only old text. The request rule is measured on a labelled set with near-misses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from bot.crm.data_rights import (
    ERASED,
    EXPIRED,
    ContactNotFound,
    DataRequestKind,
    classify_data_request,
    erase_contact,
    purge_old_text,
)
from bot.crm.db import session_scope
from bot.crm.models import (
    AuditEvent,
    Contact,
    DataRequest,
    FollowUp,
    Identity,
    Message,
    utcnow,
)
from bot.engagement.identity import merge_contacts
from bot.pipeline.inbound import handle_inbound
from bot.worker.build import build_runtime
from bot.worker.scheduler import run_retention
from channels.base import Author, InboundMessage
from tests.conftest import REPO
from tests.conftest import TELEGRAM_SECRET as SECRET
from tests.test_staff_console import add_staff, csrf_of, log_in

GROUP = -100555
ANNA, BORIS = 5151, 5252

#: (text, expected kind). Near-misses are labelled None on purpose: see the rule's docstring.
LABELLED: list[tuple[str, DataRequestKind | None]] = [
    ("What do you know about me?", DataRequestKind.ACCESS),
    ("@FernhillBot what do you know about me", DataRequestKind.ACCESS),
    ("what data do you have on me?", DataRequestKind.ACCESS),
    ("What personal information do you store about me?", DataRequestKind.ACCESS),
    ("please send me a copy of my data", DataRequestKind.ACCESS),
    ("Can you give me all the data you have about me", DataRequestKind.ACCESS),
    ("I'd like a copy of all my personal data", DataRequestKind.ACCESS),
    ("This is a subject access request under GDPR", DataRequestKind.ACCESS),
    ("what info do you keep about customers like me", DataRequestKind.ACCESS),
    ("Delete my data", DataRequestKind.ERASURE),
    ("please delete all my personal data", DataRequestKind.ERASURE),
    ("I want you to erase my information", DataRequestKind.ERASURE),
    ("remove my details from your system", DataRequestKind.ERASURE),
    ("Forget me, please", DataRequestKind.ERASURE),
    ("I'm exercising my right to be forgotten", DataRequestKind.ERASURE),
    ("wipe all the data you have about me", DataRequestKind.ERASURE),
    ("delete my account", None),
    ("How do I delete my account?", None),
    ("delete my order please", None),
    ("remove my address from the order, it's wrong", None),
    ("what do you know about tents for winter?", None),
    ("I forgot my password", None),
    ("can you update my details, I moved", None),
    ("my data plan doesn't matter, where is my parcel", None),
    ("Don't forget me when the sale starts!", None),
    ("show me my order history", None),
    ("do you have information about the new stove?", None),
    ("what do you know about the delivery delay?", None),
]


def test_the_request_rule_is_precise_and_finds_the_requests():
    guesses = [(text, truth, classify_data_request(text)) for text, truth in LABELLED]
    true_positive = sum(1 for _, truth, guess in guesses if truth is not None and guess == truth)
    flagged = sum(1 for *_, guess in guesses if guess is not None)
    relevant = sum(1 for _, truth, _ in guesses if truth is not None)
    precision, recall = true_positive / flagged, true_positive / relevant
    print(f"data requests: precision {precision:.2f}, recall {recall:.2f} on {len(LABELLED)} messages")
    wrong = [(text, truth, guess) for text, truth, guess in guesses if guess != truth]
    assert precision == 1.0, wrong  # a false request confuses a customer with a data-rights answer
    assert recall >= 0.9, wrong


def posts_in_group(runtime, client, telegram, user: int, text: str) -> None:
    response = client.post(
        "/telegram/webhook",
        content=json.dumps(telegram.group_message(GROUP, user, text)),
        headers={"content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert response.status_code == 200, response.text
    assert runtime.wait_idle()


def contact_of(runtime, channel: str, external_user_id: str) -> int:
    with Session(runtime.engine) as session:
        return session.exec(
            select(Identity.contact_id).where(
                Identity.channel == channel, Identity.external_user_id == external_user_id
            )
        ).one()


def mails_in(runtime, address: str, text: str, *, authenticated: bool = True) -> None:
    handle_inbound(
        runtime,
        InboundMessage(
            channel="email",
            external_id=f"<{abs(hash(text))}@mail.example>",
            thread_id=address,  # the e-mail channel threads by the address, like a direct message
            author=Author(
                external_id=address, handle=address, display_name="Anna Berg", verified=authenticated
            ),
            text=text,
            public=False,
            received_at=datetime.now(UTC),
        ),
    )


def cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SOCIALBOT_DATA__DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def message_counts(runtime) -> list[tuple]:
    with Session(runtime.engine) as session:
        return session.exec(
            select(Message.channel, Message.direction, Message.intent, func.count())
            .group_by(Message.channel, Message.direction, Message.intent)
            .order_by(Message.channel, Message.direction, Message.intent)
        ).all()


def test_a_customer_asks_for_her_data_gets_an_export_of_hers_only_and_is_erased(telegram_bot, tmp_path):
    runtime, client, telegram = telegram_bot
    _, admin_token = add_staff(runtime, "ada@fernhill.example", role="admin", name="Ada")
    posts_in_group(runtime, client, telegram, ANNA, "@FernhillBot how long does delivery take?")
    posts_in_group(runtime, client, telegram, BORIS, "@FernhillBot Boris here: love my new tent, thanks!")
    mails_in(runtime, "anna@example.org", "Hello, Anna here: can I pay by invoice?")
    anna, boris = contact_of(runtime, "telegram", str(ANNA)), contact_of(runtime, "telegram", str(BORIS))
    with session_scope(runtime.engine) as session:
        # Anna proved she owns the address (bot/engagement/identity.py's code flow ends in this merge).
        merge_contacts(
            session,
            into_contact_id=anna,
            from_contact_id=contact_of(runtime, "email", "anna@example.org"),
            reason="the customer proved they own anna@example.org",
            actor_kind="customer",
        )
        conversation_id = session.exec(
            select(Message.conversation_id).where(Message.contact_id == anna)
        ).first()
        session.add(
            FollowUp(
                conversation_id=conversation_id,
                contact_id=anna,
                channel="telegram",
                template="resolved",
                due_at=utcnow() + timedelta(days=1),
            )
        )
    sent_before = len(telegram.sent)

    posts_in_group(runtime, client, telegram, ANNA, "@FernhillBot what do you know about me?")
    assert len(telegram.sent) == sent_before + 1
    assert "request" in telegram.sent[-1]["request"]["text"]
    with Session(runtime.engine) as session:
        [request] = session.exec(select(DataRequest)).all()
    assert (request.contact_id, request.kind, request.status) == (anna, "access", "open")

    log_in(client, "ada@fernhill.example")
    assert f"#{anna}" in client.get("/console/data-requests").text
    out = tmp_path / "anna.json"
    result = cli(tmp_path, "contacts", "export", str(anna), "--out", str(out))
    assert result.returncode == 0, result.stderr
    export = json.loads(out.read_text())
    texts = [m["text"] for m in export["messages"]]
    assert "@FernhillBot how long does delivery take?" in texts
    assert "Hello, Anna here: can I pay by invoice?" in texts
    assert {i["channel"] for i in export["identities"]} == {"telegram", "email"}
    assert "Boris" not in json.dumps(export) and str(BORIS) not in json.dumps(export)
    assert len(export["follow_ups"]) == 1 and export["ladder_history"] is not None
    api = client.post(f"/api/v1/contacts/{anna}/export", headers={"Authorization": f"Bearer {admin_token}"})
    assert api.status_code == 200 and api.json()["contact"]["id"] == anna
    with Session(runtime.engine) as session:
        assert session.get(DataRequest, request.id).status == "fulfilled"

    counts = message_counts(runtime)
    page = client.get("/console/data-requests")
    erased = client.post(
        f"/console/contacts/{anna}/erase",
        data={"confirm": str(anna), "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert erased.status_code == 303
    assert message_counts(runtime) == counts  # dashboards count the same rows
    with Session(runtime.engine) as session:
        annas = session.exec(select(Message).where(Message.contact_id == anna)).all()
        assert annas and all(m.text == ERASED for m in annas if m.direction == "in")
        assert (
            session.exec(select(Message).where(Message.contact_id == boris))
            .first()
            .text.startswith("@FernhillBot Boris")
        )
        contact = session.get(Contact, anna)
        assert contact.display_name is None and contact.email is None and contact.opted_out
        identities = session.exec(select(Identity).where(Identity.contact_id == anna)).all()
        assert all(i.external_user_id.startswith("erased:") and i.handle is None for i in identities)
        assert {f.status for f in session.exec(select(FollowUp).where(FollowUp.contact_id == anna))} == {
            "cancelled"
        }
        actions = set(session.exec(select(AuditEvent.action)).all())
    assert {"data_request.access", "contact.exported", "contact.erased"} <= actions

    again = cli(tmp_path, "contacts", "erase", str(anna))  # idempotent
    assert again.returncode == 0 and "0 messages" in again.stdout
    unknown = cli(tmp_path, "contacts", "erase", "9999")
    assert unknown.returncode == 2 and "contact 9999 does not exist" in unknown.stderr
    missing = client.post("/api/v1/contacts/9999/erase", headers={"Authorization": f"Bearer {admin_token}"})
    assert missing.status_code == 404 and "does not exist" in missing.text


def test_an_unverified_identity_gets_nothing(runtime):
    mails_in(runtime, "someone@example.org", "Hi there")
    with session_scope(runtime.engine) as session:
        identity = session.exec(select(Identity).where(Identity.channel == "email")).one()
        identity.verified = False
        session.add(identity)
    mails_in(runtime, "someone@example.org", "Please send me a copy of my data", authenticated=False)
    with Session(runtime.engine) as session:
        [request] = session.exec(select(DataRequest)).all()
        reply = session.exec(
            select(Message).where(Message.direction == "out").order_by(Message.id.desc())
        ).first()
    assert request.status == "unverified"
    assert "confirm" in reply.text and "Hi there" not in reply.text


def test_erasing_an_unknown_contact_is_a_clear_error(runtime):
    with (
        session_scope(runtime.engine) as session,
        pytest.raises(ContactNotFound, match="contact 42 does not"),
    ):
        erase_contact(session, 42)


def test_retention_purges_only_old_text(make_settings, models):
    runtime = build_runtime(make_settings(data_rights={"retention_days": 30}), models=models)
    try:
        mails_in(runtime, "old@example.org", "an old question about tents")
        mails_in(runtime, "new@example.org", "a fresh question about stoves")
        with session_scope(runtime.engine) as session:
            old = session.exec(select(Message).where(Message.text == "an old question about tents")).one()
            old.created_at = utcnow() - timedelta(days=31)
            session.add(old)
        counts = message_counts(runtime)
        assert run_retention(runtime) == 1
        assert message_counts(runtime) == counts
        with Session(runtime.engine) as session:
            texts = set(session.exec(select(Message.text)).all())
        assert EXPIRED in texts and "a fresh question about stoves" in texts
        assert "an old question about tents" not in texts
        with session_scope(runtime.engine) as session:
            assert purge_old_text(session, 30) == 0  # nothing left to purge
            assert purge_old_text(session, 0) == 0  # 0 = keep forever
    finally:
        runtime.close()


def test_a_verified_customer_is_answered_and_erased_at_once_when_auto_fulfil_is_on(make_settings, models):
    runtime = build_runtime(make_settings(data_rights={"auto_fulfil": True}), models=models)
    try:
        mails_in(runtime, "cleo@example.org", "How long does delivery take?")
        mails_in(runtime, "cleo@example.org", "What do you know about me?")
        with Session(runtime.engine) as session:
            replies = select(Message.text).where(Message.direction == "out").order_by(Message.id.desc())
            summary = session.exec(replies).first()
        assert summary.startswith("Here is what we store about you: your accounts on email, 3 messages in 1")
        mails_in(runtime, "cleo@example.org", "Please delete all my personal data")
        with Session(runtime.engine) as session:
            requests = session.exec(select(DataRequest).order_by(DataRequest.id)).all()
            texts = session.exec(select(Message.text).where(Message.direction == "in")).all()
        assert [(r.kind, r.status) for r in requests] == [("access", "fulfilled"), ("erasure", "fulfilled")]
        assert set(texts) == {ERASED}
    finally:
        runtime.close()


def test_admins_filter_the_audit_log_and_export_it_as_safe_csv(client, runtime):
    add_staff(runtime, "ada@fernhill.example", role="admin", name="Ada")
    add_staff(runtime, "ana@fernhill.example", name="Ana")
    with session_scope(runtime.engine) as session:
        session.add(
            AuditEvent(actor_kind="customer", action="contact.merged", subject_type="contact", subject_id=1)
        )
        session.add(
            AuditEvent(
                actor_kind="system",
                action="identity.code_sent",
                subject_type="contact",
                subject_id=2,
                details={"email": '=HYPERLINK("http://evil.example")'},
            )
        )
    log_in(client, "ana@fernhill.example")
    assert client.get("/console/audit").status_code == 403  # agents don't read the audit log
    log_in(client, "ada@fernhill.example")
    page = client.get("/console/audit", params={"action": "contact."}).text
    assert "contact.merged" in page and "identity.code_sent" not in page
    assert "identity.code_sent" in client.get("/console/audit", params={"actor": "system"}).text
    assert client.get("/console/audit", params={"since": "yesterday"}).status_code == 422
    today = datetime.now(UTC).date().isoformat()
    assert "contact.merged" in client.get("/console/audit", params={"since": today, "until": today}).text

    with session_scope(runtime.engine) as session:
        # No audited text should ever start a formula; if one does, the export must still be safe.
        session.add(AuditEvent(actor_kind="system", action="=1+2", subject_type="-2+3"))
    csrf = csrf_of(client.get("/console/audit").text)
    csv = client.post("/console/audit.csv", params={"actor": "system"}, data={"csrf": csrf})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    header, *rows = csv.text.strip().splitlines()
    assert header.startswith("id,at,actor_kind")
    assert ",'=1+2,'-2+3," in rows[0]  # newest first, formulas neutralised
    assert any("identity.code_sent" in row for row in rows[1:])
    assert not any(",customer," in row for row in rows)  # only the filtered actor
    with Session(runtime.engine) as session:
        assert session.exec(select(AuditEvent).where(AuditEvent.action == "audit.exported")).one()


def test_a_request_in_a_thread_a_person_owns_is_recorded_and_the_bot_stays_silent(runtime):
    mails_in(runtime, "dora@example.org", "I want to talk to a person please")
    mails_in(runtime, "dora@example.org", "Delete my data")
    with Session(runtime.engine) as session:
        [request] = session.exec(select(DataRequest)).all()
        last = session.exec(select(Message).order_by(Message.id.desc())).first()
    assert (request.kind, request.status) == ("erasure", "open")
    assert last.direction == "in" and last.action == "human_owns"
