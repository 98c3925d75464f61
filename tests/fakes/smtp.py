"""A real SMTP server on loopback (aiosmtpd) that keeps every mail it receives, for e-mail tests."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Keeper:
    def __init__(self, inbox: LocalSMTP) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        if self.inbox.refuse_with:
            return self.inbox.refuse_with
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.inbox.lock:
            self.inbox.mails.append(parsed)
            self.inbox.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class LocalSMTP:
    """`with LocalSMTP() as smtp:` a server on 127.0.0.1:`smtp.port`; `smtp.mails` are the parsed mails.

    `stop()` takes it down (connections are refused) and `start()` brings it back on the same port;
    `refuse_with = "451 ..."` makes it answer DATA with that reply.
    """

    def __init__(self) -> None:
        self.port = _free_port()
        self.mails: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        self.refuse_with: str | None = None
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(_Keeper(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> LocalSMTP:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def email_settings(self) -> dict[str, object]:
        """The `[email]` settings of a brand that mails through this server (no TLS, inbound secret set)."""
        return {
            "enabled": True,
            "smtp_host": "127.0.0.1",
            "smtp_port": self.port,
            "use_tls": False,
            "from_address": "care@fernhill.example",
            "inbound_secret": "inbound-secret",
        }

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.mails if m["To"] == address]
