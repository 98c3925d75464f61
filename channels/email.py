"""E-mail: SMTP out (stdlib `smtplib`), replies in through an inbound webhook the mail provider calls.

A conversation's thread id on this channel is the customer's address (lower-case), like a direct message.
Every mail we send carries a `Message-ID` that names its thread, so a customer's reply is linked back by its
`In-Reply-To` header even when it comes from another address of theirs. Mails are plain text with an HTML
alternative (the text escaped) and an unsubscribe link in the body and in `List-Unsubscribe` (RFC 2369,
one-click per RFC 8058); the link itself is made by the application (`unsubscribe_url`).

Inbound: `POST /email/inbound` with the header `X-Socialbot-Secret: <inbound secret>` and a JSON body
`{"from", "to", "subject", "text", "message_id", "in_reply_to"}` (what a provider's inbound-parse hook gives,
mapped once in its configuration). A wrong secret gets 401, a malformed body 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import logging
import re
import smtplib
import ssl
from collections.abc import Callable, Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, parseaddr

from channels.base import (
    Author,
    ChannelError,
    InboundMessage,
    InboundSink,
    OutboundMessage,
    PermanentSendError,
    TemporarySendError,
    WebhookChannel,
    WebhookResponse,
)

__all__ = ["SECRET_HEADER", "EmailChannel", "message_id_for", "thread_of_message_id"]

log = logging.getLogger("socialbot.channels.email")

SECRET_HEADER = "x-socialbot-secret"
SMTP_TIMEOUT_SECONDS = 15.0
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
# Where a customer's reply quotes our mail; what follows is not theirs.
_QUOTE_START = re.compile(r"^(On .{1,200} wrote:|-{2,} ?Original Message ?-{2,}|>)", re.MULTILINE)


def _json(status: int, payload: dict) -> WebhookResponse:
    return WebhookResponse(status, json.dumps(payload), {"content-type": "application/json"})


def message_id_for(idempotency_key: str, thread_id: str, domain: str) -> str:
    """The `Message-ID` of the mail sent for an outbox row: stable for the row (a retry reuses it, so the
    customer's client shows one mail) and naming the thread it belongs to."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
    thread = base64.b32encode(thread_id.encode()).decode().rstrip("=").lower()
    return f"<{digest}.{thread}@{domain}>"


def thread_of_message_id(message_id: str, domain: str) -> str | None:
    """The thread named by one of our own `Message-ID`s, or None for anyone else's."""
    match = re.fullmatch(r"<?[0-9a-f]{24}\.([a-z2-7]+)@([^>]+)>?", message_id.strip())
    if match is None or match.group(2).lower() != domain.lower():
        return None
    token = match.group(1).upper()
    try:
        return base64.b32decode(token + "=" * (-len(token) % 8)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _reply_part(text: str) -> str:
    """The customer's own words: everything before the quoted mail they reply to."""
    match = _QUOTE_START.search(text)
    own = text[: match.start()] if match else text
    return own.strip() or text.strip()


class EmailChannel(WebhookChannel):
    """Sends mail over SMTP and takes replies from the provider's inbound webhook.

    Args:
        smtp_host, smtp_port: the SMTP server (submission port 587 with STARTTLS usually).
        username, password: SMTP login; empty username = no login (a local relay).
        from_address: the brand's address mails come from.
        use_tls: STARTTLS after connecting (refused by the server -> the send fails, never falls back).
        inbound_secret: the shared secret the provider sends in `X-Socialbot-Secret`.
        brand_name: shown as the sender's name and in the subject.
        unsubscribe_url: address -> the signed link that opts that address out.
        sink: where inbound replies go.
    """

    name = "email"
    webhook_path = "/email/inbound"

    def __init__(
        self,
        *,
        smtp_host: str,
        smtp_port: int,
        username: str,
        password: str | None,
        from_address: str,
        use_tls: bool,
        inbound_secret: str,
        brand_name: str,
        unsubscribe_url: Callable[[str], str],
        sink: InboundSink,
        timeout: float = SMTP_TIMEOUT_SECONDS,
    ) -> None:
        self.smtp_host, self.smtp_port = smtp_host, smtp_port
        self.username, self.password = username, password
        self.from_address, self.use_tls = from_address, use_tls
        self.domain = from_address.rpartition("@")[2] or "localhost"
        self.inbound_secret = inbound_secret
        self.brand_name = brand_name
        self.unsubscribe_url = unsubscribe_url
        self.sink = sink
        self.timeout = timeout

    # Out

    def build(self, message: OutboundMessage) -> EmailMessage:
        """The mail for `message`: to the thread's address, threaded, text + HTML, with unsubscribe.

        Raises:
            PermanentSendError: the thread is not an e-mail address.
        """
        recipient = message.thread_id
        if not _ADDRESS.match(recipient):
            raise PermanentSendError(f"e-mail thread {recipient!r} is not an address")
        unsubscribe = self.unsubscribe_url(recipient)
        mail = EmailMessage()
        mail["From"] = Address(display_name=self.brand_name, addr_spec=self.from_address)
        mail["To"] = recipient
        mail["Subject"] = f"A message from {self.brand_name}"
        mail["Message-ID"] = message_id_for(message.idempotency_key or message.text, recipient, self.domain)
        if message.reply_to_external_id:
            mail["In-Reply-To"] = message.reply_to_external_id
            mail["References"] = message.reply_to_external_id
            mail.replace_header("Subject", f"Re: {mail['Subject']}")
        mail["List-Unsubscribe"] = f"<{unsubscribe}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail.set_content(f"{message.text}\n\n-- \nTo stop these e-mails: {unsubscribe}\n")
        body = html.escape(message.text).replace("\n", "<br>\n")
        mail.add_alternative(
            f"<!doctype html><html><body><p>{body}</p>"
            f'<hr><p style="font-size:small"><a href="{html.escape(unsubscribe)}">Unsubscribe</a></p>'
            "</body></html>",
            subtype="html",
        )
        return mail

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout)
        try:
            if self.use_tls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, message: OutboundMessage) -> str:
        """Send the mail; return its `Message-ID`.

        Raises:
            TemporarySendError: the server is unreachable or answered 4xx.
            PermanentSendError: the server refused for good (5xx: bad recipient, auth refused).
        """
        mail = self.build(message)
        try:
            with self._connect() as smtp:
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            if all(code >= 500 for code in codes):
                raise PermanentSendError(f"SMTP refused the recipient: {codes}") from None
            raise TemporarySendError(f"SMTP refused the recipient for now: {codes}") from None
        except smtplib.SMTPResponseException as error:
            detail = f"SMTP {error.smtp_code}: {error.smtp_error!r}"
            if error.smtp_code >= 500:
                raise PermanentSendError(detail) from None
            raise TemporarySendError(detail) from None
        except (smtplib.SMTPException, OSError) as error:
            raise TemporarySendError(
                f"SMTP server {self.smtp_host}:{self.smtp_port} unreachable: {error}"
            ) from None
        return mail["Message-ID"]

    def check(self) -> str:
        try:
            with self._connect() as smtp:
                smtp.noop()
        except (smtplib.SMTPException, OSError) as error:
            raise ChannelError(f"email: SMTP {self.smtp_host}:{self.smtp_port}: {error}") from None
        return f"email: SMTP {self.smtp_host}:{self.smtp_port} ready, sending as {self.from_address}"

    # In

    def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookResponse:
        """Check the shared secret, parse the reply and hand it to the sink.

        401 for a wrong or missing secret, 400 for a body that is not the expected JSON object, 200 after
        the reply is stored (`"new": false` for a redelivery of the same `message_id`).
        """
        given = headers.get(SECRET_HEADER, "")
        if not self.inbound_secret or not hmac.compare_digest(given.encode(), self.inbound_secret.encode()):
            log.warning("email inbound: delivery with a %s secret refused", "wrong" if given else "no")
            return _json(401, {"error": f"wrong or missing {SECRET_HEADER} header"})
        try:
            data = json.loads(body)
        except ValueError as error:
            return _json(400, {"error": f"body is not JSON: {error}"})
        if not isinstance(data, dict):
            return _json(400, {"error": "a JSON object {from, to, subject, text, message_id} expected"})
        for field in ("from", "text", "message_id"):
            if not isinstance(data.get(field), str) or not data[field].strip():
                return _json(400, {"error": f"field {field!r} is required (a non-empty string)"})
        for field in ("to", "subject", "in_reply_to"):
            if data.get(field) is not None and not isinstance(data[field], str):
                return _json(400, {"error": f"field {field!r} must be a string"})
        name, address = parseaddr(data["from"])
        if not _ADDRESS.match(address):
            return _json(400, {"error": "field 'from' is not an e-mail address"})
        address = address.lower()
        in_reply_to = (data.get("in_reply_to") or "").strip()
        thread = thread_of_message_id(in_reply_to, self.domain) if in_reply_to else None
        inbound = InboundMessage(
            channel=self.name,
            external_id=data["message_id"].strip()[:300],
            thread_id=thread or address,
            author=Author(external_id=address, handle=address, display_name=name or None),
            text=_reply_part(data["text"]),
            public=False,
            raw={
                "subject": data.get("subject"),
                "to": data.get("to"),
                "in_reply_to": in_reply_to or None,
                "from": formataddr((name, address)),
            },
        )
        return _json(200, {"ok": True, "new": self.sink(inbound)})
