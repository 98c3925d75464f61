"""Raw mail -> what the customer said: MIME and charsets by the standard `email` package (modern policy), an
HTML-only mail made text by inscriptis, attachments listed (never stored), and the reply stripped of quoted
history and signature by mail-parser-reply.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig
from mailparser_reply.parser import EmailMessage as ReplyParser

__all__ = [
    "REPLY_LANGUAGES",
    "Attachment",
    "MalformedMail",
    "ParsedMail",
    "html_to_text",
    "parse_mail",
    "strip_reply",
    "subject_topic",
]

#: Languages whose reply headers ("On ... wrote:", "Le ... a écrit :", "Am ... schrieb ...:") and sign-offs
#: are recognised (mail-parser-reply's codes).
REPLY_LANGUAGES = ("en", "fr", "de", "es", "it", "nl")
#: The customer's words are cut here: a mail body longer than this is a pasted log, not a message.
MAX_TEXT_CHARS = 20_000

_HTML_CONFIG = ParserConfig(css=CSS_PROFILES["strict"])
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_SUBJECT_PREFIX = re.compile(r"^\s*(?:(?:re|aw|wg|fw|fwd|tr|réf|antw)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_NO_BREAK_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2007": " "})
_BLANK_RUNS = re.compile(r"\n{3,}")
# Senders that say a mail was written by a machine (RFC 3834 and the headers mail systems use for it).
_BULK_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}


class MalformedMail(ValueError):
    """The bytes are not a mail we can read (no headers, no sender); the message says what is missing."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with a mail: listed for staff, never stored.

    Args:
        filename: the name the sender gave it, if any.
        content_type: its MIME type (`image/jpeg`).
        size: its decoded size in bytes.
    """

    filename: str | None
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class ParsedMail:
    """One mail, read.

    Args:
        message: the parsed message (modern policy), for sender authentication and bounce reading.
        message_id: its `Message-ID` (`<...>`), None when it has none.
        from_address: the sender's address, lower-case; None unless `From` holds exactly one valid address.
        from_name: the sender's display name, if given.
        to: the addresses in `To` and `Cc`, lower-case.
        subject: the subject, decoded ("" when absent).
        in_reply_to: the ids in `In-Reply-To` (normally one).
        references: the ids in `References`, oldest first.
        text: the whole body as text (the plain part, else the HTML part made text).
        reply: the sender's own words: `text` without quoted history and signature.
        attachments: every part that is not the body.
        automatic: written by a machine (auto-reply, out-of-office, mailing list, newsletter): never answered.
    """

    message: EmailMessage
    message_id: str | None
    from_address: str | None
    from_name: str | None
    to: tuple[str, ...]
    subject: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str
    reply: str
    attachments: tuple[Attachment, ...] = field(default=())
    automatic: bool = False

    @property
    def topic(self) -> str:
        """The subject without its `Re:` / `AW:` / `Fwd:` prefixes."""
        return subject_topic(self.subject)


def subject_topic(subject: str) -> str:
    """A subject without its reply and forward prefixes (`Re:`, `AW:`, `Fwd:`, `TR:`...)."""
    return _SUBJECT_PREFIX.sub("", subject).strip()


def html_to_text(html: str) -> str:
    """An HTML body as the text a reader sees (layout kept: paragraphs, line breaks, list bullets)."""
    return get_text(html, _HTML_CONFIG).strip("\n")


def strip_reply(text: str, languages: Sequence[str] = REPLY_LANGUAGES) -> str:
    """The newest reply in a mail body, without the history it quotes, its signature or disclaimer.

    Two steps around mail-parser-reply: no-break spaces become spaces first (French clients write
    "a écrit :" with one, which its patterns don't expect), and lines still quoted with ">" afterwards are
    dropped (a reply written below the quote, or between its lines). Falls back to the whole text when
    stripping would leave nothing (a mail that is only a quote), so a message is never lost to stripping.
    """
    text = text.translate(_NO_BREAK_SPACES)
    parsed = ReplyParser(text=text, languages=list(languages), keep_hyphen_lists=True).read()
    if parsed.replies:
        own = "\n".join(line for line in parsed.replies[0].body.split("\n") if not line.startswith(">"))
        own = _BLANK_RUNS.sub("\n\n", own).strip()
        if own:
            return own
    return text.strip()


def _unflow(text: str, delsp: bool) -> str:
    """A `format=flowed` body (RFC 3676) with its soft line breaks joined back into paragraphs."""
    lines: list[str] = []
    joining, lines_depth = False, 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:]
        if body.startswith(" "):
            body = body[1:]  # space-stuffing
        if joining and lines and depth == lines_depth:
            lines[-1] += body
        else:
            lines.append(">" * depth + (" " if depth and body else "") + body)
            lines_depth = depth
        joining = body.endswith(" ") and body != "-- "
        if joining and delsp:
            lines[-1] = lines[-1][:-1]
    return "\n".join(lines)


def _part_text(part: EmailMessage) -> str:
    """A text part decoded to str whatever its charset claims (an unknown charset is read as UTF-8)."""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, AssertionError):
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", errors="replace")
    if not isinstance(content, str):
        return ""
    content = content.replace("\r\n", "\n")
    if part.get_content_subtype() == "plain" and part.get_param("format", "").lower() == "flowed":
        content = _unflow(content, str(part.get_param("delsp", "no")).lower() == "yes")
    return content


def _body_text(message: EmailMessage) -> tuple[str, set[int]]:
    """The body as text and the ids of the parts it came from (plain preferred, else HTML made text)."""
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    used = {id(part) for part in (plain, html) if part is not None}
    if plain is not None:
        text = _part_text(plain)
        if text.strip() or html is None:
            return text, used
    if html is not None:
        return html_to_text(_part_text(html)), used
    return "", used


def _attachments(part: EmailMessage, body_parts: set[int]) -> Iterator[Attachment]:
    if id(part) in body_parts:
        return
    if part.get_content_maintype() == "multipart":
        for sub in part.iter_parts():
            yield from _attachments(sub, body_parts)
        return
    payload = part.get_payload(decode=True)
    size = len(payload) if isinstance(payload, bytes) else len(part.as_bytes(policy=email.policy.SMTP))
    yield Attachment(filename=part.get_filename(), content_type=part.get_content_type(), size=size)


def _ids(message: EmailMessage, header: str) -> tuple[str, ...]:
    return tuple(_MESSAGE_ID.findall(" ".join(str(value) for value in message.get_all(header) or [])))


def _addresses(message: EmailMessage, *headers: str) -> list[tuple[str, str]]:
    """(display name, lower-case address) of every valid address in `headers`."""
    found = []
    for header in headers:
        for value in message.get_all(header) or []:
            try:
                addresses = value.addresses
            except (AttributeError, IndexError, ValueError):
                continue
            found += [
                (address.display_name, address.addr_spec.lower())
                for address in addresses
                if address.username and address.domain and "." in address.domain
            ]
    return found


def _is_automatic(message: EmailMessage) -> bool:
    auto_submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    suppress = str(message.get("X-Auto-Response-Suppress", "")).lower()
    return (
        not auto_submitted.startswith("no")
        or str(message.get("Precedence", "")).strip().lower() in _BULK_PRECEDENCE
        or any(message.get(header) is not None for header in ("X-Autoreply", "X-Autorespond", "List-Id"))
        or message.get("List-Unsubscribe") is not None
        or any(word in suppress for word in ("all", "oof", "autoreply"))
        or message.get_content_type() == "multipart/report"
        or str(message.get("Return-Path", "")).strip() == "<>"
    )


def parse_mail(raw: bytes, languages: Sequence[str] = REPLY_LANGUAGES) -> ParsedMail:
    """Read one raw mail (RFC 5322 bytes, as IMAP or a provider's raw forward gives it).

    Args:
        raw: the mail exactly as received.
        languages: the languages whose reply headers and sign-offs are stripped (see `REPLY_LANGUAGES`).

    Raises:
        MalformedMail: the bytes have no header section or no `From` address, or can't be read at all.
    """
    try:
        return _parse(raw, languages)
    except MalformedMail:
        raise
    except _UNREADABLE as error:  # hostile bytes can trip the parser; one bad mail must not stop the rest
        raise MalformedMail(f"unreadable mail ({type(error).__name__}: {error})") from None


#: What the standard parser may raise on a malformed mail (its header parser has known edge cases).
_UNREADABLE = (ValueError, IndexError, LookupError, TypeError, AttributeError, AssertionError)


def _parse(raw: bytes, languages: Sequence[str]) -> ParsedMail:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    if not message.keys():
        raise MalformedMail("not a mail: no header section")
    senders = _addresses(message, "From")
    if not senders:
        raise MalformedMail("the mail has no valid From address")
    name, address = senders[0] if len(senders) == 1 else ("", None)
    text, body_parts = _body_text(message)
    text = text[:MAX_TEXT_CHARS]
    ids = _MESSAGE_ID.findall(str(message.get("Message-ID", "")))
    return ParsedMail(
        message=message,
        message_id=ids[0][:300] if ids else None,
        from_address=address,
        from_name=name or None,
        to=tuple(address for _, address in _addresses(message, "To", "Cc")),
        subject=str(message.get("Subject", "")).strip(),
        in_reply_to=_ids(message, "In-Reply-To"),
        references=_ids(message, "References"),
        text=text.strip(),
        reply=strip_reply(text, languages) if text.strip() else "",
        attachments=tuple(_attachments(message, body_parts)),
        automatic=_is_automatic(message),
    )
