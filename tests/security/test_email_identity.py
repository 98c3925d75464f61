"""E-mail identity as an attacker meets it (issue 18, item 1), against a real `socialbot serve` with
`auto_fulfil` on: raw mails posted to `POST /email/inbound` the way a provider forwards them.

A sender is whoever the receiving server vouches for (`Authentication-Results` from the trusted host), never
whoever `From` says: a forged "delete my data" erases nothing and a forged "what do you know about me" mails
no one's data to the attacker's thread; only a code mailed to the address itself lets the request go ahead,
and those codes count against the same per-address limit as the web chat's.
"""

from __future__ import annotations

import uuid
from email.message import EmailMessage

from tests.conftest import wait_for
from tests.security.conftest import INBOUND_SECRET, LIMITS, TRUSTED_AUTHSERV_ID
from tests.security.server import source_address
from tests.security.test_rate_limits import ask_for_code

CODES_PER_ADDRESS = int(LIMITS["SOCIALBOT_VERIFICATION__CODES_PER_ADDRESS_PER_HOUR"])


def raw_mail(
    text: str, *, sender: str, authenticated: bool, in_reply_to: str | None = None, subject: str = "Hello"
) -> tuple[str, bytes]:
    """A mail as the brand's receiving server hands it on: its verdict on `sender` on top; (id, bytes)."""
    domain = sender.rpartition("@")[2]
    verdict = (
        f"dkim=pass header.d={domain}; dmarc=pass header.from={domain}"
        if authenticated
        else f"spf=fail smtp.mailfrom=attacker.example; dkim=none; dmarc=fail header.from={domain}"
    )
    message_id = f"<{uuid.uuid4().hex}@{'attacker.example' if not authenticated else domain}>"
    mail = EmailMessage()
    mail["Authentication-Results"] = f"{TRUSTED_AUTHSERV_ID}; {verdict}"
    if not authenticated:  # what the attacker wrote himself, below the receiving server's verdict
        mail["Authentication-Results"] = f"{TRUSTED_AUTHSERV_ID}; dkim=pass header.d={domain}; dmarc=pass"
    mail["From"], mail["To"], mail["Subject"] = sender, "help@fernhill.example", subject
    mail["Message-ID"] = message_id
    if in_reply_to:
        mail["In-Reply-To"] = mail["References"] = in_reply_to
    mail.set_content(text)
    return message_id, mail.as_bytes()


def post_mail(server, raw: bytes) -> None:
    with server.client() as http:
        answer = http.post(
            "/email/inbound",
            content=raw,
            headers={"X-Socialbot-Secret": INBOUND_SECRET, "Content-Type": "message/rfc822"},
        )
    assert answer.status_code == 200 and answer.json()["handled"] == "new", answer.text


def handled(server, message_id: str) -> dict:
    """The stored mail once the bot has decided on it (and its answer has left through the outbox)."""

    def decided() -> dict | None:
        rows = server.sql(
            "SELECT id, contact_id, conversation_id, sender_verified, status FROM message"
            " WHERE channel = 'email' AND external_id = :m",
            m=message_id,
        )
        unsent = server.sql("SELECT count(*) FROM outbox WHERE channel = 'email' AND status = 'pending'")
        return rows[0]._asdict() if rows and rows[0].status == "processed" and not unsent[0][0] else None

    return wait_for(decided, timeout=120, what=f"mail {message_id} handled")


def texts_to(smtp, address: str) -> list[str]:
    return [mail.get_body(("plain",)).get_content() for mail in smtp.to(address)]


def test_a_forged_sender_erases_nothing_and_gets_no_ones_data(server, smtp):
    victim = f"ada-{uuid.uuid4().hex[:8]}@victim.example"
    attacker = f"mallory-{uuid.uuid4().hex[:8]}@attacker.example"
    order = f"order {uuid.uuid4().int % 10**6:06d}"
    real_id, real = raw_mail(f"Where is my {order}?", sender=victim, authenticated=True)
    post_mail(server, real)
    genuine = handled(server, real_id)
    assert genuine["sender_verified"]

    # "Delete my data" as the victim: nothing erased, a code to the victim's own mailbox, nothing more.
    forged_id, forged = raw_mail("Please delete all my data.", sender=victim, authenticated=False)
    post_mail(server, forged)
    erase = handled(server, forged_id)
    assert not erase["sender_verified"]
    request = server.sql("SELECT status FROM datarequest WHERE message_id = :m", m=erase["id"])
    assert request[0][0] == "unverified"
    kept = server.sql("SELECT text FROM message WHERE id = :m", m=genuine["id"])
    assert kept[0][0] == f"Where is my {order}?"
    assert any("delete the data stored about you" in text for text in texts_to(smtp, victim))

    # "What do you know about me" as the victim, threaded onto the attacker's own (genuine) conversation.
    asked_id, asked = raw_mail("Do you sell tents?", sender=attacker, authenticated=True)
    post_mail(server, asked)
    handled(server, asked_id)
    ours = smtp.to(attacker)[-1]["Message-ID"]
    access_id, access = raw_mail(
        "What personal data do you hold about me? Send me a copy.",
        sender=victim,
        authenticated=False,
        in_reply_to=ours,
    )
    post_mail(server, access)
    handled(server, access_id)
    assert not any(order in text or victim in text for text in texts_to(smtp, attacker))
    statuses = server.sql(
        "SELECT status FROM datarequest WHERE contact_id = :c ORDER BY id", c=genuine["contact_id"]
    )
    assert [row[0] for row in statuses] == ["unverified", "unverified"]

    # A made-up id of ours (a thread the attacker can't sign) starts a thread of the sender's own.
    made_up = ours.replace(ours.split(".")[1], "mfrgg")
    stray_id, stray = raw_mail("Hello again", sender=attacker, authenticated=True, in_reply_to=made_up)
    post_mail(server, stray)
    stray_row = handled(server, stray_id)
    thread = server.sql("SELECT thread_id FROM conversation WHERE id = :c", c=stray_row["conversation_id"])
    assert thread[0][0] == attacker


def test_codes_for_e_mailed_data_requests_count_against_the_chat_codes_limit(server, smtp):
    victim = f"grace-{uuid.uuid4().hex[:8]}@victim.example"
    for _ in range(CODES_PER_ADDRESS - 1):  # two codes asked for from anonymous web chats
        ask_for_code(server, victim, source=source_address())
    for number in range(3):  # then forged e-mailed data requests, each wanting a code mailed
        message_id, raw = raw_mail(
            f"Delete my data please ({number})", sender=victim, authenticated=False, subject=f"Erase {number}"
        )
        post_mail(server, raw)
        handled(server, message_id)
    codes = server.sql(
        "SELECT count(*) FROM outbox WHERE thread_id = :a AND idempotency_key LIKE 'verify:%'", a=victim
    )
    assert codes[0][0] == CODES_PER_ADDRESS
    # The last two forged requests were told to wait, and no code went out for them.
    assert sum("wait an hour" in text for text in texts_to(smtp, victim)) == 2
