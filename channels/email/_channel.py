"""The e-mail channel: mail in (IMAP, or the provider's webhook as raw MIME or JSON), mail out over SMTP.

A conversation's thread id on this channel is the customer's address (lower-case), like a direct message.
Every mail we send carries a signed `Message-ID` naming its thread (`ThreadSigner`), so a reply that quotes
it joins that thread even from another address, and a made-up one starts a thread of its own. Every mail in
gets a sender verdict (`SenderAuthenticator`); `Author.verified` carries it to the bot.

Inbound over HTTP: `POST /email/inbound` with `X-Socialbot-Secret: <inbound secret>` and either
- `Content-Type: message/rfc822` and the raw mail (a provider's "forward the raw message" hook), or
- a JSON body `{"from", "to", "subject", "text", "message_id", "in_reply_to"}` (kept for existing setups; it
  carries no authentication, so its senders are unverified).
A wrong secret gets 401, a malformed body 400.

Mails written by machines (auto-replies, lists) are not answered; bounces (DSNs) about a mail we sent go to
`on_bounce`; mails from our own address are ignored (no loops).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from enum import StrEnum
from typing import Any

from channels.base import (
    Author,
    InboundMessage,
    InboundSink,
    OutboundMessage,
    PermanentSendError,
    WebhookChannel,
    WebhookResponse,
)
from channels.email._authentication import SenderAuthenticator, SenderVerdict
from channels.email._bounces import Bounce, parse_bounce
from channels.email._imap import ImapAccount, ImapPoller, MailboxPositionStore
from channels.email._parsing import REPLY_LANGUAGES, MalformedMail, parse_mail, strip_reply, subject_topic
from channels.email._sending import SmtpSender, compose_mail
from channels.email._threads import ThreadSigner

__all__ = ["SECRET_HEADER", "EmailChannel", "Intake"]

log = logging.getLogger("socialbot.channels.email")

SECRET_HEADER = "x-socialbot-secret"
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_JSON_FIELDS_REQUIRED = ("from", "text", "message_id")
_JSON_FIELDS_OPTIONAL = ("to", "subject", "in_reply_to")
_UNAUTHENTICATED_JSON = SenderVerdict(False, None, "JSON delivery: no authentication results")


class Intake(StrEnum):
    """What became of one mail handed to `EmailChannel.accept_mail`."""

    NEW = "new"  # stored as a new inbound message
    DUPLICATE = "duplicate"  # received before (same Message-ID): nothing more done
    BOUNCE = "bounce"  # a delivery failure of a mail we sent, handed to on_bounce
    IGNORED = "ignored"  # written by a machine, sent by ourselves, empty, or a bounce we didn't send


def _json(status: int, payload: dict) -> WebhookResponse:
    return WebhookResponse(status, json.dumps(payload), {"content-type": "application/json"})


class EmailChannel(WebhookChannel):
    """Sends mail over SMTP; takes mail from an IMAP mailbox and from the provider's inbound webhook.

    Args:
        smtp: the SMTP server mails go out through (its address, security, login and timeout).
        from_address: the brand's address mails come from (its domain names our `Message-ID`s).
        inbound_secret: the shared secret the provider sends in `X-Socialbot-Secret` ("" refuses every
            webhook delivery).
        brand_name: shown as the sender's name and in the subject.
        unsubscribe_url: address -> the signed link that opts that address out.
        sink: where inbound mails go.
        thread_secret: the key of the thread ids in our `Message-ID`s (the application's secret key).
        signature: the brand's signature under every mail.
        authenticator: decides whether a sender is who `From` says; None trusts no one (all unverified).
        imap: the mailbox to read; None takes mail only from the webhook.
        imap_poll_seconds: the pause between reads of a mailbox whose server has no IDLE.
        positions: where the IMAP position is kept (needed with `imap`).
        on_bounce: called with each bounce of a mail we sent (the failed address is the one we mailed).
        reply_languages: the languages whose quote headers and sign-offs are stripped from replies.
    """

    name = "email"
    webhook_path = "/email/inbound"

    def __init__(
        self,
        *,
        smtp: SmtpSender,
        from_address: str,
        inbound_secret: str,
        brand_name: str,
        unsubscribe_url: Callable[[str], str],
        sink: InboundSink,
        thread_secret: str,
        signature: str = "",
        authenticator: SenderAuthenticator | None = None,
        imap: ImapAccount | None = None,
        imap_poll_seconds: float = 60.0,
        positions: MailboxPositionStore | None = None,
        on_bounce: Callable[[Bounce], None] | None = None,
        reply_languages: Sequence[str] = REPLY_LANGUAGES,
    ) -> None:
        self.sender = smtp
        self.from_address = from_address.lower()
        self.domain = from_address.rpartition("@")[2].lower() or "localhost"
        self.threads = ThreadSigner(thread_secret, self.domain)
        self.inbound_secret = inbound_secret
        self.brand_name = brand_name
        self.signature = signature
        self.unsubscribe_url = unsubscribe_url
        self.sink = sink
        self.authenticator = authenticator or SenderAuthenticator()
        self.on_bounce = on_bounce
        self.reply_languages = tuple(reply_languages)
        self.poller: ImapPoller | None = None
        if imap is not None:
            if positions is None:
                raise ValueError("an IMAP mailbox needs a position store")
            self.poller = ImapPoller(
                imap, handle=self._handle_polled, positions=positions, poll_interval_seconds=imap_poll_seconds
            )

    # Out

    def message_id_for(self, message: OutboundMessage) -> str:
        """The `Message-ID` the mail for `message` gets (the same on every attempt)."""
        return self.threads.message_id(message.idempotency_key or message.text, message.thread_id)

    def build(self, message: OutboundMessage) -> EmailMessage:
        """The mail for `message`: to the thread's address, threaded, text + HTML, signed off, unsubscribable.

        Raises:
            PermanentSendError: the thread is not an e-mail address.
        """
        recipient = message.thread_id
        if not _ADDRESS.match(recipient):
            raise PermanentSendError(f"e-mail thread {recipient!r} is not an address")
        topic = subject_topic(message.subject or "") or f"A message from {self.brand_name}"
        return compose_mail(
            sender=Address(display_name=self.brand_name, addr_spec=self.from_address),
            recipient=recipient,
            subject=f"Re: {topic}" if message.reply_to_external_id else topic,
            text=message.text,
            message_id=self.message_id_for(message),
            signature=self.signature,
            in_reply_to=message.reply_to_external_id,
            references=message.references,
            unsubscribe_url=self.unsubscribe_url(recipient),
        )

    def send(self, message: OutboundMessage) -> str:
        """Send the mail; return its `Message-ID`.

        Raises:
            TemporarySendError: the server is unreachable, refused the login, or answered 4xx.
            PermanentSendError: the server refused for good (5xx), or the thread is not an address.
        """
        mail = self.build(message)
        self.sender.send(mail)
        return mail["Message-ID"]

    def check(self) -> str:
        lines = [self.sender.check() + f", sending as {self.from_address}"]
        if self.poller is not None:
            lines.append(self.poller.account.check())
        return "email: " + "; ".join(lines)

    # In: IMAP

    def start(self) -> None:
        """Start reading the IMAP mailbox (when one is configured)."""
        if self.poller is not None:
            self.poller.start()

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stop()

    def _handle_polled(self, raw: bytes, fallback_id: str) -> None:
        try:
            outcome = self.accept_mail(raw, fallback_id=fallback_id, source="imap")
        except MalformedMail as error:
            log.warning("email: mail %s skipped: %s", fallback_id, error)
            return
        log.info("email: mail %s from the mailbox: %s", fallback_id, outcome.value)

    # In: any raw mail

    def accept_mail(self, raw: bytes, *, fallback_id: str, source: str) -> Intake:
        """Read one raw mail and hand it on: a customer's mail to the sink, a bounce to `on_bounce`.

        Args:
            raw: the mail exactly as received.
            fallback_id: its id when it has no `Message-ID` (the IMAP UID, a digest of the bytes).
            source: where it came from ("imap", "webhook"), kept with the message.

        Raises:
            MalformedMail: the bytes are not a mail with a sender.
        """
        parsed = parse_mail(raw, self.reply_languages)
        bounce = parse_bounce(parsed.message)
        if bounce is not None:
            return self._bounced(bounce)
        if parsed.from_address == self.from_address:
            return Intake.IGNORED
        if parsed.automatic:
            log.info(
                "email: %s from %s is automatic (auto-reply, list); not answered",
                parsed.message_id,
                parsed.from_address,
            )
            return Intake.IGNORED
        if parsed.from_address is None:
            raise MalformedMail("the mail has more than one From address")
        text = parsed.reply or parsed.topic
        if not text:
            log.info("email: %s from %s has no text; not answered", parsed.message_id, parsed.from_address)
            return Intake.IGNORED
        verdict = self.authenticator.check(raw, parsed.message, parsed.from_address)
        if not verdict.verified:
            log.info("email: sender %s not verified: %s", parsed.from_address, verdict.detail)
        inbound = self._inbound(
            external_id=parsed.message_id or fallback_id,
            address=parsed.from_address,
            name=parsed.from_name,
            text=text,
            in_reply_to=parsed.in_reply_to[0] if parsed.in_reply_to else None,
            references=parsed.references,
            verdict=verdict,
            details={
                "subject": parsed.subject,
                "to": list(parsed.to),
                "attachments": [
                    {"name": a.filename, "type": a.content_type, "size": a.size} for a in parsed.attachments
                ],
                "source": source,
            },
        )
        return Intake.NEW if self.sink(inbound) else Intake.DUPLICATE

    def _bounced(self, bounce: Bounce) -> Intake:
        """A bounce counts only for a mail we sent to the address that failed (else anyone could stop
        another customer's mail with a forged one)."""
        thread = self.threads.thread_of(bounce.original_message_id) if bounce.original_message_id else None
        ours = tuple(
            address for address in bounce.recipients if thread is not None and address == thread.lower()
        )
        if not ours:
            log.warning(
                "email: a bounce for %s not about a mail we sent; ignored", ", ".join(bounce.recipients)
            )
            return Intake.IGNORED
        log.info("email: delivery to %s failed for good (%s)", ", ".join(ours), bounce.status or "no status")
        if self.on_bounce is not None:
            self.on_bounce(Bounce(ours, bounce.status, bounce.diagnostic, bounce.original_message_id))
        return Intake.BOUNCE

    def _inbound(
        self,
        *,
        external_id: str,
        address: str,
        name: str | None,
        text: str,
        in_reply_to: str | None,
        references: Sequence[str],
        verdict: SenderVerdict,
        details: dict[str, Any],
    ) -> InboundMessage:
        thread = self.threads.thread_of_reply(in_reply_to, references)
        return InboundMessage(
            channel=self.name,
            external_id=external_id[:300],
            thread_id=thread or address,
            author=Author(
                external_id=address, handle=address, display_name=name or None, verified=verdict.verified
            ),
            text=text,
            public=False,
            raw={
                **details,
                "from": formataddr((name or "", address)),
                "in_reply_to": in_reply_to,
                "references": list(references),
                "authentication": verdict.as_dict(),
            },
        )

    # In: webhook

    def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookResponse:
        """Check the shared secret, read the mail (raw MIME or JSON) and hand it on.

        401 for a wrong or missing secret, 400 for a body that is not a mail or not the expected JSON, 200
        once handled (`"new": false` for a redelivery of the same message id, `"handled"` says what became of
        it: new, duplicate, bounce, ignored).
        """
        given = headers.get(SECRET_HEADER, "")
        if not self.inbound_secret or not hmac.compare_digest(given.encode(), self.inbound_secret.encode()):
            log.warning("email inbound: delivery with a %s secret refused", "wrong" if given else "no")
            return _json(401, {"error": f"wrong or missing {SECRET_HEADER} header"})
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "message/rfc822":
            try:
                outcome = self.accept_mail(
                    body, fallback_id="sha256:" + hashlib.sha256(body).hexdigest(), source="webhook"
                )
            except MalformedMail as error:
                return _json(400, {"error": str(error)})
            return _json(200, {"ok": True, "new": outcome == Intake.NEW, "handled": outcome.value})
        return self._handle_json(body)

    def _handle_json(self, body: bytes) -> WebhookResponse:
        try:
            data = json.loads(body)
        except ValueError as error:
            return _json(400, {"error": f"body is not JSON (or send Content-Type: message/rfc822): {error}"})
        if not isinstance(data, dict):
            return _json(400, {"error": "a JSON object {from, to, subject, text, message_id} expected"})
        for field in _JSON_FIELDS_REQUIRED:
            if not isinstance(data.get(field), str) or not data[field].strip():
                return _json(400, {"error": f"field {field!r} is required (a non-empty string)"})
        for field in _JSON_FIELDS_OPTIONAL:
            if data.get(field) is not None and not isinstance(data[field], str):
                return _json(400, {"error": f"field {field!r} must be a string"})
        name, address = parseaddr(data["from"])
        if not _ADDRESS.match(address):
            return _json(400, {"error": "field 'from' is not an e-mail address"})
        if address.lower() == self.from_address:
            return _json(200, {"ok": True, "new": False, "handled": Intake.IGNORED.value})
        inbound = self._inbound(
            external_id=data["message_id"].strip(),
            address=address.lower(),
            name=name,
            text=strip_reply(data["text"], self.reply_languages),
            in_reply_to=(data.get("in_reply_to") or "").strip() or None,
            references=(),
            verdict=_UNAUTHENTICATED_JSON,
            details={"subject": data.get("subject"), "to": data.get("to"), "source": "json"},
        )
        new = self.sink(inbound)
        outcome = Intake.NEW if new else Intake.DUPLICATE
        return _json(200, {"ok": True, "new": new, "handled": outcome.value})
