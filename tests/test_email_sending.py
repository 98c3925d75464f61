"""Sending mail: through a real SMTP server on loopback (aiosmtpd) with STARTTLS or implicit TLS and a login,
a mail threaded under the customer's, plain text and HTML from the same text, the brand's signature, and
one-click unsubscribe (RFC 8058); refusals are told apart as worth retrying or not."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.base import OutboundMessage, PermanentSendError, TemporarySendError
from channels.email import EmailChannel, SmtpSecurity, SmtpSender
from tests.dovecot import self_signed_certificate
from tests.fakes.smtp import LocalSMTP

CUSTOMER = "jane@customer.example"
LOGIN = ("care@fernhill.example", "smtp-password")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("smtp-tls")
    self_signed_certificate(folder)
    return folder


def make_channel(
    smtp: LocalSMTP, security: SmtpSecurity, certificate: Path | None = None, **extra
) -> EmailChannel:
    import ssl

    context = ssl.create_default_context(cafile=str(certificate / "cert.pem")) if certificate else None
    return EmailChannel(
        smtp=SmtpSender(
            host="127.0.0.1",
            port=smtp.port,
            security=security,
            username=extra.pop("username", LOGIN[0] if smtp.login else ""),
            password=extra.pop("password", LOGIN[1]),
            timeout=5,
            ssl_context=context,
        ),
        from_address="care@fernhill.example",
        inbound_secret="inbound-secret",
        thread_secret="thread-secret-key-for-tests-0123456789abcdef",
        brand_name="Fernhill Outdoor",
        signature="Fernhill Outdoor customer care\nhttps://fernhill.example/help",
        unsubscribe_url=lambda address: f"https://fernhill.example/email/unsubscribe?token=t-{address}",
        sink=lambda message: True,
        **extra,
    )


REPLY = OutboundMessage(
    channel="email",
    thread_id=CUSTOMER,
    text="Sorry about the zip!\nWe'll send a new one.\n\n"
    'Track it at https://fernhill.example/t/4821 <b>"now"</b>',
    reply_to_external_id="<CAK7x123@mail.gmail.com>",
    idempotency_key="reply:17",
    subject="Your order 4821",
)


@pytest.fixture
def starttls_smtp(certificate) -> Iterator[LocalSMTP]:
    with LocalSMTP(tls="starttls", certificate_folder=certificate, login=LOGIN) as server:
        yield server


def test_a_reply_goes_out_over_starttls_with_login_threaded_in_text_and_html(starttls_smtp, certificate):
    channel = make_channel(starttls_smtp, SmtpSecurity.STARTTLS, certificate)
    message_id = channel.send(REPLY)
    assert starttls_smtp.logins == [LOGIN[0]]
    (mail,) = starttls_smtp.mails
    assert mail["Message-ID"] == message_id == channel.message_id_for(REPLY)
    assert channel.threads.thread_of(message_id) == CUSTOMER
    assert mail["In-Reply-To"] == mail["References"] == "<CAK7x123@mail.gmail.com>"
    assert mail["Subject"] == "Re: Your order 4821" and mail["To"] == CUSTOMER and mail["Date"] is not None
    assert mail["List-Unsubscribe"] == f"<https://fernhill.example/email/unsubscribe?token=t-{CUSTOMER}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")
    page = mail.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert text.startswith("Sorry about the zip!\nWe'll send a new one.\n\nTrack it at")
    assert "\n-- \nFernhill Outdoor customer care\n" in text and "To stop these e-mails: https://" in text
    # The same paragraphs in HTML: escaped, links clickable, line breaks kept.
    assert "Sorry about the zip!<br>\nWe&#39;ll send a new one." in page
    assert '<a href="https://fernhill.example/t/4821">https://fernhill.example/t/4821</a>' in page
    assert "&lt;b&gt;&#34;now&#34;&lt;/b&gt;" in page and "<b>" not in page
    assert "Fernhill Outdoor customer care<br>" in page and ">Unsubscribe</a>" in page
    assert channel.check().startswith("email: SMTP 127.0.0.1")


def test_a_reply_in_a_long_thread_carries_the_threads_references(starttls_smtp, certificate):
    earlier = ("<first@mail.gmail.com>", "<ours-1@fernhill.example>")
    channel = make_channel(starttls_smtp, SmtpSecurity.STARTTLS, certificate)
    channel.send(dataclasses.replace(REPLY, references=earlier))
    (mail,) = starttls_smtp.mails
    assert mail["In-Reply-To"] == "<CAK7x123@mail.gmail.com>"
    assert mail["References"].split() == [*earlier, "<CAK7x123@mail.gmail.com>"]


def test_implicit_tls_works_and_a_certificate_we_dont_trust_is_refused(certificate):
    with LocalSMTP(tls="implicit", certificate_folder=certificate) as server:
        make_channel(server, SmtpSecurity.TLS, certificate).send(REPLY)
        assert len(server.mails) == 1
        untrusted = make_channel(server, SmtpSecurity.TLS)  # the system's CAs don't know our test certificate
        with pytest.raises(TemporarySendError, match="unreachable"):
            untrusted.send(REPLY)
        assert len(server.mails) == 1


def test_a_server_without_starttls_is_not_used_in_clear(certificate):
    with LocalSMTP() as plain:
        with pytest.raises(TemporarySendError):
            make_channel(plain, SmtpSecurity.STARTTLS, certificate).send(REPLY)
        assert plain.mails == []


def test_a_wrong_password_is_worth_retrying_and_a_refused_recipient_is_not(starttls_smtp, certificate):
    with pytest.raises(TemporarySendError, match="login refused"):
        make_channel(starttls_smtp, SmtpSecurity.STARTTLS, certificate, password="wrong").send(REPLY)
    starttls_smtp.refuse_with = "550 5.1.1 mailbox unavailable"
    with pytest.raises(PermanentSendError, match="550"):
        make_channel(starttls_smtp, SmtpSecurity.STARTTLS, certificate).send(REPLY)
    starttls_smtp.refuse_with = "451 4.3.0 try later"
    with pytest.raises(TemporarySendError, match="451"):
        make_channel(starttls_smtp, SmtpSecurity.STARTTLS, certificate).send(REPLY)


def test_a_first_mail_has_the_brands_subject_and_no_thread_headers():
    with LocalSMTP() as server:
        channel = make_channel(server, SmtpSecurity.NONE)
        channel.send(
            OutboundMessage(
                channel="email", thread_id=CUSTOMER, text="Did that fix it?", idempotency_key="f:1"
            )
        )
        (mail,) = server.mails
        assert mail["Subject"] == "A message from Fernhill Outdoor"
        assert mail["In-Reply-To"] is None and mail["References"] is None
        with pytest.raises(PermanentSendError, match="not an address"):
            channel.send(OutboundMessage(channel="email", thread_id="C123/1700.1", text="hi"))


def test_smtp_sender_checks_the_connection_like_a_send():
    with LocalSMTP() as server:
        assert "ready" in SmtpSender("127.0.0.1", server.port, SmtpSecurity.NONE).check()
