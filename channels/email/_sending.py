"""Sending: one text becomes a threaded mail (plain text and HTML rendered from the same paragraphs, the
brand's signature, one-click unsubscribe per RFC 8058) and goes out over SMTP with STARTTLS or implicit TLS.
"""

from __future__ import annotations

import email.policy
import re
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum

from jinja2 import Environment
from markupsafe import Markup, escape

from channels.base import ChannelError, PermanentSendError, TemporarySendError

__all__ = ["SmtpSecurity", "SmtpSender", "compose_mail"]

SMTP_TIMEOUT_SECONDS = 15.0
#: The footer line of every mail that can be unsubscribed from (text part; the HTML part links it).
UNSUBSCRIBE_TEXT = "To stop these e-mails: {url}"

# Header lines up to RFC 5322's limit: a long List-Unsubscribe link stays on one line instead of being folded.
_POLICY = email.policy.default.clone(max_line_length=998)
_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)]")
_MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_HTML = Environment(autoescape=True, keep_trailing_newline=True).from_string(
    """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="margin:0;padding:16px;max-width:640px;font-family:Arial,Helvetica,sans-serif;font-size:15px;\
line-height:1.5;color:#1f2328">
{% for paragraph in paragraphs %}<p style="margin:0 0 12px">{{ paragraph }}</p>
{% endfor %}{% if signature %}<p style="margin:20px 0 0;color:#57606a">{{ signature }}</p>
{% endif %}{% if unsubscribe_url %}<hr style="border:none;border-top:1px solid #d0d7de;margin:20px 0 8px">
<p style="margin:0;font-size:12px;color:#57606a"><a href="{{ unsubscribe_url }}" style="color:#57606a">\
Unsubscribe</a></p>
{% endif %}</body></html>
"""
)


class SmtpSecurity(StrEnum):
    """How the SMTP connection is protected."""

    STARTTLS = "starttls"  # connect in clear, then STARTTLS (submission port 587); refused -> the send fails
    TLS = "tls"  # TLS from the first byte (port 465)
    NONE = "none"  # no TLS: a relay on the same host or network only


def _paragraphs(text: str) -> list[str]:
    return [block.strip("\n") for block in re.split(r"\n\s*\n", text.strip()) if block.strip()]


def _html_lines(block: str) -> Markup:
    """One paragraph as HTML: escaped, links made clickable, line breaks kept."""
    lines = []
    for line in block.split("\n"):
        pieces, last = [], 0
        for match in _URL.finditer(line):
            url = escape(match.group())
            pieces += [escape(line[last : match.start()]), Markup(f'<a href="{url}">{url}</a>')]
            last = match.end()
        pieces.append(escape(line[last:]))
        lines.append(Markup("").join(pieces))
    return Markup("<br>\n").join(lines)


def compose_mail(
    *,
    sender: Address,
    recipient: str,
    subject: str,
    text: str,
    message_id: str,
    signature: str = "",
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    unsubscribe_url: str | None = None,
) -> EmailMessage:
    """A mail with a plain-text part and an HTML alternative rendered from the same `text`.

    Args:
        sender: the brand's address and display name.
        recipient: the one address it goes to.
        subject: the subject line.
        text: what the brand says (paragraphs separated by blank lines); escaped in the HTML part.
        message_id: the mail's `Message-ID` (`<...@...>`).
        signature: the brand's signature, below "-- " in the text part.
        in_reply_to: the `Message-ID` of the mail this answers; ignored unless it is one.
        references: earlier ids of the thread, oldest first (`in_reply_to` is added last).
        unsubscribe_url: the one-click unsubscribe link; adds `List-Unsubscribe` and `List-Unsubscribe-Post`.
    """
    mail = EmailMessage(policy=_POLICY)
    mail["From"] = sender
    mail["To"] = recipient
    mail["Subject"] = subject
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = message_id
    thread = [ref for ref in references if _MESSAGE_ID.fullmatch(ref)]
    if in_reply_to and _MESSAGE_ID.fullmatch(in_reply_to):
        mail["In-Reply-To"] = in_reply_to
        thread = [ref for ref in thread if ref != in_reply_to] + [in_reply_to]
    if thread:
        mail["References"] = " ".join(thread)
    if unsubscribe_url:
        mail["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    paragraphs = _paragraphs(text)
    plain = "\n\n".join(paragraphs)
    if signature.strip():
        plain += f"\n\n-- \n{signature.strip()}"
    if unsubscribe_url:
        plain += "\n\n" + UNSUBSCRIBE_TEXT.format(url=unsubscribe_url)
    mail.set_content(plain + "\n")
    mail.add_alternative(
        _HTML.render(
            paragraphs=[_html_lines(block) for block in paragraphs],
            signature=_html_lines(signature.strip()) if signature.strip() else None,
            unsubscribe_url=unsubscribe_url,
        ),
        subtype="html",
    )
    return mail


@dataclass(frozen=True, slots=True)
class SmtpSender:
    """Sends mails through one SMTP server.

    Args:
        host, port: the server (587 with STARTTLS, 465 with implicit TLS, usually).
        security: how the connection is protected (`SmtpSecurity`).
        username, password: the login; an empty username sends without logging in (a local relay).
        timeout: seconds a connection or command may take.
        ssl_context: certificate checks for TLS; None = the system's trusted CAs and host-name checks.
    """

    host: str
    port: int
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str = ""
    password: str | None = None
    timeout: float = SMTP_TIMEOUT_SECONDS
    ssl_context: ssl.SSLContext | None = None

    def _context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        if self.security == SmtpSecurity.TLS:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == SmtpSecurity.STARTTLS:
                smtp.starttls(context=self._context())
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, mail: EmailMessage) -> None:
        """Hand `mail` to the server.

        Raises:
            TemporarySendError: the server is unreachable, refused TLS or the login, or answered 4xx.
            PermanentSendError: the server refused the mail for good (5xx: a bad recipient, the message).
        """
        try:
            with self._connect() as smtp:
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            if all(code >= 500 for code in codes):
                raise PermanentSendError(f"SMTP refused the recipient: {codes}") from None
            raise TemporarySendError(f"SMTP refused the recipient for now: {codes}") from None
        except smtplib.SMTPAuthenticationError as error:
            # Our credentials, not the mail: retrying after the operator fixes them will work.
            raise TemporarySendError(f"SMTP login refused ({error.smtp_code})") from None
        except smtplib.SMTPResponseException as error:
            detail = f"SMTP {error.smtp_code}: {error.smtp_error!r}"
            if error.smtp_code >= 500:
                raise PermanentSendError(detail) from None
            raise TemporarySendError(detail) from None
        except (smtplib.SMTPException, ssl.SSLError, OSError) as error:
            raise TemporarySendError(f"SMTP server {self.host}:{self.port} unreachable: {error}") from None

    def check(self) -> str:
        """Connect, protect and log in as for a send, and say so.

        Raises:
            ChannelError: the server can't be reached, refused TLS or the login.
        """
        try:
            with self._connect() as smtp:
                smtp.noop()
        except (smtplib.SMTPException, ssl.SSLError, OSError) as error:
            raise ChannelError(f"SMTP {self.host}:{self.port}: {error}") from None
        return f"SMTP {self.host}:{self.port} ({self.security.value}) ready"
