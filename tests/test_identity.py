"""One customer across channels: a customer gives their e-mail address in the web chat, gets a one-time code
by e-mail (a real SMTP server on loopback) and sends it back, and the address is linked to them; wrong codes
link nothing and are limited; an invalid address is asked for again; when the address belongs to another
contact the two are merged, audited, and staff can undo it; contacts whose verified accounts conflict are
never merged."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.crm.models import AuditEvent, Contact, ContactMerge, Conversation, Identity, Message, Outbox
from bot.delivery.outbox import deliver_due
from bot.engagement.csat import parse_rating
from bot.engagement.identity import MAX_CODE_ATTEMPTS
from bot.support.staff import create_staff, issue_api_token
from bot.web.app import create_app
from bot.worker.build import build_runtime
from tests.fakes.smtp import LocalSMTP

EMAIL = "jane@customer.example"


@pytest.fixture
def smtp() -> Iterator[LocalSMTP]:
    with LocalSMTP() as server:
        yield server


@pytest.fixture
def bot(make_settings, models, smtp) -> Iterator[Any]:
    settings = make_settings(
        email=smtp.email_settings(), secret_key="test-secret-key-of-thirty-two-characters"
    )
    runtime = build_runtime(settings, models=models)
    yield runtime
    runtime.close()


@pytest.fixture
def client(bot) -> Iterator[TestClient]:
    with TestClient(create_app(bot)) as test_client:
        yield test_client


def say(client: TestClient, text: str, session_id: str = "chat-session-jane") -> str:
    response = client.post("/api/v1/chat", json={"session_id": session_id, "text": text})
    assert response.status_code == 200, response.text
    replies = response.json()["replies"]
    assert len(replies) == 1, replies
    return replies[0]["text"]


def mailed_code(bot, smtp: LocalSMTP, address: str = EMAIL) -> str:
    deliver_due(bot.engine, bot.channels)
    body = smtp.to(address)[-1].get_body(("plain",)).get_content()
    return re.search(r"\b(\d{6})\b", body).group(1)


def identities(bot, channel: str = "email") -> list[Identity]:
    with Session(bot.engine) as session:
        return list(session.exec(select(Identity).where(Identity.channel == channel)).all())


def audits(bot, action: str) -> list[AuditEvent]:
    with Session(bot.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def token_for(bot, role: str = "agent") -> dict[str, str]:
    with Session(bot.engine) as session:
        staff = create_staff(session, f"{role}@fernhill.example", role=role, password="a long password!")
        token = issue_api_token(session, staff)
        session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_an_address_confirmed_with_the_mailed_code_is_linked_to_the_customer(bot, client, smtp):
    assert "sent a 6-digit code to jane@customer.example" in say(client, "my email is Jane@Customer.example")
    code = mailed_code(bot, smtp)
    assert smtp.to(EMAIL)[0]["To"] == EMAIL
    assert identities(bot) == []  # nothing is linked before the code comes back

    assert "is confirmed" in say(client, code)
    [identity] = identities(bot)
    with Session(bot.engine) as session:
        webchat = session.exec(select(Identity).where(Identity.channel == "webchat")).one()
        assert identity.contact_id == webchat.contact_id and identity.verified
        assert session.get(Contact, webchat.contact_id).email == EMAIL
        mail = session.exec(select(Outbox).where(Outbox.idempotency_key.like("verify:%"))).one()
        assert code not in mail.text and code not in session.get(Message, mail.message_id).text
    assert len(audits(bot, "identity.verified")) == 1


def test_a_customer_writing_french_gets_the_brands_french_words_and_code(make_settings, models, smtp):
    """Given a brand that wrote French words for the verification flow, when a customer who asked in French
    gives their e-mail address (which alone says nothing about a language), the replies and the mailed code
    are in French."""
    french = {
        "code_sent": "Je vous ai envoyé un code à 6 chiffres à {{ address }}.",
        "code_mail": "Votre code de confirmation {{ brand }} est {{ code }}.",
        "email_verified": "Merci, {{ address }} est confirmée.",
    }
    settings = make_settings(
        email=smtp.email_settings(),
        secret_key="test-secret-key-of-thirty-two-characters",
        policy={"templates_by_language": {"fr": french}},
    )
    runtime = build_runtime(settings, models=models)
    try:
        with TestClient(create_app(runtime)) as client:
            assert "60 jours" in say(client, "Comment retourner un article ?")
            assert say(client, EMAIL) == f"Je vous ai envoyé un code à 6 chiffres à {EMAIL}."
            deliver_due(runtime.engine, runtime.channels)
            body = smtp.to(EMAIL)[-1].get_body(("plain",)).get_content()
            assert "Votre code de confirmation Fernhill Outdoor est " in body
            code = re.search(r"\b(\d{6})\b", body).group(1)
            assert say(client, code) == f"Merci, {EMAIL} est confirmée."
    finally:
        runtime.close()


def test_wrong_codes_link_nothing_and_are_limited(bot, client, smtp):
    say(client, "you can reach me at jane@customer.example")
    code = mailed_code(bot, smtp)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for attempt in range(1, MAX_CODE_ATTEMPTS):
        reply = say(client, wrong)
        assert "doesn't match" in reply and f"{MAX_CODE_ATTEMPTS - attempt} more" in reply
    assert "wrong too many times" in say(client, wrong)
    say(client, code)  # the right code, too late: no pending verification any more
    assert identities(bot) == []
    assert len(audits(bot, "identity.verification_failed")) == 1


def test_an_invalid_address_is_asked_for_again(bot, client, smtp):
    reply = say(client, "my email is jane@customer")
    assert "doesn't look like a valid e-mail address" in reply and "send it again" in reply
    reply = say(client, "jane@@customer.example")
    assert "send it again" in reply
    assert "sent a 6-digit code" in say(client, EMAIL)
    deliver_due(bot.engine, bot.channels)
    assert len(smtp.mails) == 1


def test_a_rating_word_or_fraction_is_read_as_csat_only_when_it_is_one():
    assert [parse_rating(t) for t in ("4", "4/5", "five", "3 out of 5", "2 stars", "5!")] == [
        4,
        4,
        5,
        3,
        2,
        5,
    ]
    assert [parse_rating(t) for t in ("6", "0", "4 tents please", "45")] == [None] * 4


def test_proving_an_address_another_contact_owns_merges_the_two_and_staff_can_undo_it(bot, client, smtp):
    # Jane wrote by e-mail before: a contact with that address exists.
    headers = {"X-Socialbot-Secret": "inbound-secret"}
    mail = {"from": EMAIL, "text": "Hello, is my order shipped?", "message_id": "<m1@customer.example>"}
    assert client.post("/email/inbound", json=mail, headers=headers).status_code == 200
    assert bot.wait_idle()
    [by_mail] = identities(bot)

    say(client, f"my email is {EMAIL}")
    say(client, mailed_code(bot, smtp))
    with Session(bot.engine) as session:
        webchat = session.exec(select(Identity).where(Identity.channel == "webchat")).one()
        assert session.get(Identity, by_mail.id).contact_id == webchat.contact_id
        kept = webchat.contact_id
        conversations = session.exec(select(Conversation).where(Conversation.contact_id == kept)).all()
        assert {c.channel for c in conversations} == {"webchat", "email"}
        merge = session.exec(select(ContactMerge)).one()
    assert [a.details["merge_id"] for a in audits(bot, "contact.merged")] == [merge.id]

    auth = token_for(bot)
    assert client.post(f"/api/v1/merges/{merge.id}/undo").status_code == 401
    marketer = token_for(bot, "marketer")
    assert client.post(f"/api/v1/merges/{merge.id}/undo", headers=marketer).status_code == 403
    undone = client.post(f"/api/v1/merges/{merge.id}/undo", headers=auth)
    assert undone.status_code == 200 and undone.json()["undone_at"]
    assert client.post(f"/api/v1/merges/{merge.id}/undo", headers=auth).status_code == 409
    one = client.get(f"/api/v1/contacts/{merge.into_contact_id}", headers=auth).json()
    other = client.get(f"/api/v1/contacts/{merge.from_contact_id}", headers=auth).json()
    assert {c["channel"] for c in one["conversations"]} | {c["channel"] for c in other["conversations"]} == {
        "webchat",
        "email",
    }
    assert len(one["conversations"]) == 1 and len(other["conversations"]) == 1
    assert len(audits(bot, "contact.unmerged")) == 1

    again = client.post(
        f"/api/v1/contacts/{merge.into_contact_id}/merge",
        json={"other_contact_id": merge.from_contact_id, "reason": "same person, checked by phone"},
        headers=auth,
    )
    assert again.status_code == 200
    merged = client.get(f"/api/v1/contacts/{merge.into_contact_id}", headers=auth).json()
    assert {i["channel"] for i in merged["identities"]} == {"webchat", "email"}
    assert len(audits(bot, "contact.merged")) == 2


def test_contacts_whose_verified_accounts_conflict_are_never_merged(bot, client, smtp):
    with Session(bot.engine) as session:
        ana, bea = Contact(display_name="Ana"), Contact(display_name="Bea")
        session.add_all([ana, bea])
        session.flush()
        session.add_all(
            [
                Identity(contact_id=ana.id, channel="twitter", external_user_id="111", verified=True),
                Identity(contact_id=bea.id, channel="twitter", external_user_id="222", verified=True),
            ]
        )
        session.commit()
        ana_id, bea_id = ana.id, bea.id
    auth = token_for(bot)
    refused = client.post(
        f"/api/v1/contacts/{ana_id}/merge",
        json={"other_contact_id": bea_id, "reason": "looks alike"},
        headers=auth,
    )
    assert refused.status_code == 409 and "twitter" in refused.json()["error"]
    same = client.post(
        f"/api/v1/contacts/{ana_id}/merge", json={"other_contact_id": ana_id, "reason": "oops"}, headers=auth
    )
    assert same.status_code == 409
    missing = client.post(
        f"/api/v1/contacts/{ana_id}/merge", json={"other_contact_id": 999, "reason": "nobody"}, headers=auth
    )
    assert missing.status_code == 404
    with Session(bot.engine) as session:
        assert session.exec(select(ContactMerge)).all() == []
