"""A real SMTP server on loopback (aiosmtpd) that keeps every mail it receives, for e-mail tests; optionally
behind STARTTLS or implicit TLS (a self-signed certificate the test trusts) and with a required login."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


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
            self.inbox.raw.append(envelope.original_content)
            self.inbox.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class LocalSMTP:
    """`with LocalSMTP() as smtp:` a server on 127.0.0.1:`smtp.port`; `smtp.mails` are the parsed mails.

    `stop()` takes it down (connections are refused) and `start()` brings it back on the same port;
    `refuse_with = "451 ..."` makes it answer DATA with that reply.

    Args:
        tls: None (plain), "starttls" (STARTTLS required before anything else) or "implicit" (TLS from the
            first byte, like port 465).
        certificate_folder: where `cert.pem` and `key.pem` are (needed with `tls`).
        login: (user, password) the client must log in with, else no login.
    """

    def __init__(
        self,
        *,
        tls: str | None = None,
        certificate_folder: Path | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.port = _free_port()
        self.mails: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        self.refuse_with: str | None = None
        self.tls = tls
        self.login = login
        self.logins: list[str] = []
        self._server_context: ssl.SSLContext | None = None
        if tls is not None:
            assert certificate_folder is not None, "TLS needs a certificate"
            self._server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._server_context.load_cert_chain(
                certificate_folder / "cert.pem", certificate_folder / "key.pem"
            )
        self._controller: Controller | None = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.login is not None:
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if (user, password) == self.login:
                self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> None:
        options: dict = {}
        if self.tls == "starttls":
            options.update(tls_context=self._server_context, require_starttls=True)
        elif self.tls == "implicit":
            options.update(ssl_context=self._server_context)
        if self.login is not None:
            options.update(authenticator=self._authenticate, auth_required=True)
            options.setdefault("auth_require_tls", self.tls is not None)
        self._controller = Controller(_Keeper(self), hostname="127.0.0.1", port=self.port, **options)
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
            "smtp_security": "none",
            "from_address": "care@fernhill.example",
            "inbound_secret": "inbound-secret",
        }

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.mails if m["To"] == address]
