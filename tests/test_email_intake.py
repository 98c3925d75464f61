"""Mail in, through the channel: from the provider's webhook (raw MIME or the older JSON) and from a Dovecot
mailbox, a customer's mail reaches the sink with its sender's verdict and the thread it may join; bounces of
mails we sent reach `on_bounce`, forged ones and machines' mails go nowhere."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from channels.base import InboundMessage, OutboundMessage
from channels.email import (
    Bounce,
    EmailChannel,
    ImapAccount,
    ImapSecurity,
    SenderAuthenticator,
    SmtpSender,
)
from tests.test_email_imap import MemoryPositions

SECRET = "inbound-shared-secret"
CUSTOMER = "jane@customer.example"
TRUSTED = "mx.fernhill.example"


class Recorder:
    """The sink and `on_bounce` of a channel under test: keeps what it gets; a repeated id is not new."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.bounces: list[Bounce] = []
        self.arrived = threading.Event()

    def sink(self, message: InboundMessage) -> bool:
        if any(seen.external_id == message.external_id for seen in self.messages):
            return False
        self.messages.append(message)
        self.arrived.set()
        return True


def make_channel(recorder: Recorder, **extra) -> EmailChannel:
    return EmailChannel(
        smtp=SmtpSender(host="127.0.0.1", port=1),
        from_address="care@fernhill.example",
        inbound_secret=SECRET,
        thread_secret="thread-secret-key-for-tests-0123456789abcdef",
        brand_name="Fernhill Outdoor",
        unsubscribe_url=lambda address: f"https://fernhill.example/u?{address}",
        sink=recorder.sink,
        on_bounce=recorder.bounces.append,
        authenticator=SenderAuthenticator(trusted_authserv_ids=[TRUSTED]),
        **extra,
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def channel(recorder) -> EmailChannel:
    return make_channel(recorder)


def customer_mail(
    *headers: str, sender: str = f"Jane Doe <{CUSTOMER}>", message_id: str = "<r1@customer.example>"
) -> bytes:
    lines = [
        *headers,
        f"From: {sender}",
        "To: Fernhill Outdoor <care@fernhill.example>",
        "Subject: Re: Your order 4821",
        f"Message-ID: {message_id}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "It's a size M.",
        "",
        "On Mon, 3 Jun 2024 at 10:00, Fernhill Outdoor <care@fernhill.example> wrote:",
        "> Which size is it?",
        "",
    ]
    return "\r\n".join(lines).encode()


PASS = (
    f"Authentication-Results: {TRUSTED}; dkim=pass header.d=customer.example;"
    " dmarc=pass header.from=customer.example"
)


def post(channel: EmailChannel, body: bytes, content_type: str = "message/rfc822", secret: str = SECRET):
    headers = {"content-type": content_type}
    if secret:
        headers["x-socialbot-secret"] = secret
    response = channel.handle_webhook(body, headers)
    return response.status, json.loads(response.body)


def test_a_raw_mail_from_an_authenticated_sender_arrives_stripped_and_verified(channel, recorder):
    status, answer = post(channel, customer_mail(PASS))
    assert (status, answer) == (200, {"ok": True, "new": True, "handled": "new"})
    (message,) = recorder.messages
    assert message.text == "It's a size M."
    assert message.author.external_id == CUSTOMER and message.author.display_name == "Jane Doe"
    assert message.author.verified and message.raw["authentication"]["method"] == "dkim"
    assert message.thread_id == CUSTOMER and message.external_id == "<r1@customer.example>"
    assert message.raw["subject"] == "Re: Your order 4821" and message.raw["source"] == "webhook"
    assert post(channel, customer_mail(PASS))[1] == {"ok": True, "new": False, "handled": "duplicate"}


def test_a_forged_sender_is_read_but_not_verified(channel, recorder):
    forged = f"Authentication-Results: {TRUSTED}; dkim=fail header.d=customer.example; dmarc=fail"
    post(channel, customer_mail(forged))
    post(channel, customer_mail(message_id="<r2@customer.example>"))
    assert [m.author.verified for m in recorder.messages] == [False, False]


def test_a_reply_to_our_mail_joins_its_thread_and_a_forged_in_reply_to_does_not(channel, recorder):
    ours = channel.message_id_for(
        OutboundMessage("email", CUSTOMER, "Which size?", idempotency_key="reply:1")
    )
    other_address = "Jane <jane.work@office.example>"
    post(channel, customer_mail(f"In-Reply-To: {ours}", f"References: {ours}", sender=other_address))
    victim = ours.replace(ours.split(".")[1], "nbswy3dpeb3w64tmmq")  # another thread with our tag
    post(channel, customer_mail(f"In-Reply-To: {victim}", sender="eve@attacker.example", message_id="<x@a>"))
    joined, forged = recorder.messages
    assert joined.thread_id == CUSTOMER and joined.author.external_id == "jane.work@office.example"
    assert forged.thread_id == "eve@attacker.example"


def test_the_json_form_still_works_and_its_senders_are_unverified(channel, recorder):
    body = {
        "from": f"Jane <{CUSTOMER}>",
        "text": "Size M.\n\n> Which size?",
        "message_id": "<j1@customer.example>",
    }
    status, answer = post(channel, json.dumps(body).encode(), "application/json")
    assert status == 200 and answer["new"] is True
    (message,) = recorder.messages
    assert message.text == "Size M." and not message.author.verified
    assert message.raw["source"] == "json"


@pytest.mark.parametrize(
    ("body", "content_type", "secret", "status", "error"),
    [
        (b"x", "message/rfc822", "wrong", 401, "x-socialbot-secret"),
        (b"x", "message/rfc822", "", 401, "x-socialbot-secret"),
        (b"", "message/rfc822", SECRET, 400, "no header section"),
        (b"Subject: hi\r\n\r\nno sender", "message/rfc822", SECRET, 400, "From"),
        (b"From: a@b.example, c@d.example\r\n\r\ntwo", "message/rfc822", SECRET, 400, "more than one"),
        (b"{not json", "application/json", SECRET, 400, "not JSON"),
        (b'{"from": "x"}', "application/json", SECRET, 400, "'text'"),
    ],
)
def test_bad_deliveries_get_one_clear_line(channel, recorder, body, content_type, secret, status, error):
    got_status, answer = post(channel, body, content_type, secret)
    assert got_status == status and error in answer["error"]
    assert recorder.messages == []


def dsn(recipient: str, original_id: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.fernhill.example\r\nTo: care@fernhill.example\r\nSubject: Undelivered\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.fernhill.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"To: {recipient}\r\nMessage-ID: {original_id}\r\n\r\n"
        "--B--\r\n"
    ).encode()


def test_a_bounce_of_our_mail_is_reported_and_a_forged_one_is_not(channel, recorder):
    ours = channel.message_id_for(
        OutboundMessage("email", CUSTOMER, "Did that fix it?", idempotency_key="f:1")
    )
    assert post(channel, dsn(CUSTOMER, ours))[1]["handled"] == "bounce"
    (bounce,) = recorder.bounces
    assert bounce.recipients == (CUSTOMER,) and bounce.status == "5.1.1"
    # Someone else's address in a bounce of our mail to Jane, or a made-up mail id: ignored.
    assert post(channel, dsn("victim@customer.example", ours))[1]["handled"] == "ignored"
    assert post(channel, dsn(CUSTOMER, "<made.up.id@fernhill.example>"))[1]["handled"] == "ignored"
    assert len(recorder.bounces) == 1 and recorder.messages == []


def test_auto_replies_and_our_own_mails_are_not_answered(channel, recorder):
    assert post(channel, customer_mail("Auto-Submitted: auto-replied"))[1]["handled"] == "ignored"
    own = customer_mail(
        sender="Fernhill Outdoor <care@fernhill.example>", message_id="<own@fernhill.example>"
    )
    assert post(channel, own)[1]["handled"] == "ignored"
    assert recorder.messages == []


@pytest.fixture
def polling_channel(mailbox, recorder) -> Iterator[tuple[EmailChannel, object, str]]:
    server, user = mailbox
    account = ImapAccount(
        host="127.0.0.1",
        port=server.port,
        username=user,
        password=server.password,
        security=ImapSecurity.NONE,
    )
    channel = make_channel(recorder, imap=account, positions=MemoryPositions())
    channel.start()
    yield channel, server, user
    channel.stop()


def test_mail_delivered_to_the_mailbox_reaches_the_sink_and_junk_never_stops_the_poller(
    polling_channel, recorder
):
    channel, server, user = polling_channel
    server.deliver(user, b"this is not a mail at all")
    server.deliver(user, customer_mail("Auto-Submitted: auto-replied", message_id="<ooo@customer.example>"))
    server.deliver(user, customer_mail(PASS))
    assert recorder.arrived.wait(15)
    (message,) = recorder.messages
    assert message.author.verified and message.raw["source"] == "imap"
    assert "INBOX" in channel.poller.account.check()
