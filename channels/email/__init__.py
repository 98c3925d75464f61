"""E-mail: mail in from an IMAP mailbox or the provider's webhook, mail out over SMTP.

- `EmailChannel` — the adapter the bot runs (`_channel.py`).
- Reading: `parse_mail` (MIME, charsets, HTML-only mails, attachments listed, reply stripped) and
  `parse_bounce` (delivery status notifications).
- Trust: `SenderAuthenticator` (is `From` vouched for?) and `ThreadSigner` (thread ids in our
  `Message-ID`s that a sender can't forge).
- Transport: `ImapPoller` over an `ImapAccount` (IDLE or polling, position kept by the caller) and
  `SmtpSender` (STARTTLS or implicit TLS) with `compose_mail`.
"""

from channels.email._authentication import DnsTxtLookup, SenderAuthenticator, SenderVerdict, aligned
from channels.email._bounces import Bounce, parse_bounce
from channels.email._channel import SECRET_HEADER, EmailChannel, Intake
from channels.email._imap import (
    ImapAccount,
    ImapPoller,
    ImapSecurity,
    MailboxPosition,
    MailboxPositionStore,
    MailHandler,
)
from channels.email._parsing import (
    REPLY_LANGUAGES,
    Attachment,
    MalformedMail,
    ParsedMail,
    html_to_text,
    parse_mail,
    strip_reply,
)
from channels.email._sending import SmtpSecurity, SmtpSender, compose_mail
from channels.email._threads import ThreadSigner

__all__ = [
    "REPLY_LANGUAGES",
    "SECRET_HEADER",
    "Attachment",
    "Bounce",
    "DnsTxtLookup",
    "EmailChannel",
    "ImapAccount",
    "ImapPoller",
    "ImapSecurity",
    "Intake",
    "MailHandler",
    "MailboxPosition",
    "MailboxPositionStore",
    "MalformedMail",
    "ParsedMail",
    "SenderAuthenticator",
    "SenderVerdict",
    "SmtpSecurity",
    "SmtpSender",
    "ThreadSigner",
    "aligned",
    "compose_mail",
    "html_to_text",
    "parse_bounce",
    "parse_mail",
    "strip_reply",
]
