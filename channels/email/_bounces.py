"""Bounces: a delivery status notification (RFC 3464, `multipart/report; report-type=delivery-status`) read
into the addresses that failed for good and the id of the mail that failed.

Only `Action: failed` counts (`delayed` is a warning: the server keeps trying). The failed mail's
`Message-ID` comes from the report's returned message or headers part, so the caller can check that the
bounce is about a mail we sent (a forged bounce otherwise stops another customer's mail).
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message

__all__ = ["Bounce", "parse_bounce"]

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True, slots=True)
class Bounce:
    """A delivery failure reported back to us.

    Args:
        recipients: the addresses (lower-case) delivery failed to for good.
        status: the first failed recipient's status code (`5.1.1`), "" when not given.
        diagnostic: the remote server's words, for staff ("550 5.1.1 User unknown").
        original_message_id: the `Message-ID` of the mail that failed, when the report returns it.
    """

    recipients: tuple[str, ...]
    status: str
    diagnostic: str
    original_message_id: str | None


def _address(field: str) -> str | None:
    """The address of a `Final-Recipient: rfc822; a@b` field."""
    kind, _, value = field.partition(";")
    if kind.strip().lower() != "rfc822" or "@" not in value:
        return None
    return value.strip().strip("<>").lower()


def _original_message_id(report: EmailMessage) -> str | None:
    for part in report.iter_parts():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            returned = part.get_payload(0)
        elif content_type == "text/rfc822-headers":
            text = part.get_content() if isinstance(part, EmailMessage) else str(part.get_payload())
            returned = email.message_from_string(text, policy=email.policy.default)
        else:
            continue
        found = _MESSAGE_ID.findall(str(returned.get("Message-ID", "")))
        if found:
            return found[0]
    return None


def parse_bounce(message: EmailMessage) -> Bounce | None:
    """The permanent failures a delivery status notification reports; None for any other mail, for a report
    with only delays or successes, and for one too malformed to read."""
    try:
        return _read_report(message)
    except (ValueError, IndexError, LookupError, TypeError, AttributeError):
        return None


def _read_report(message: EmailMessage) -> Bounce | None:
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "")).lower() != "delivery-status":
        return None
    recipients: list[str] = []
    status = diagnostic = ""
    for part in message.iter_parts():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        for block in blocks[1:] if isinstance(blocks, list) else []:
            if not isinstance(block, Message) or str(block.get("Action", "")).strip().lower() != "failed":
                continue
            address = _address(str(block.get("Final-Recipient", "")))
            if address is None or address in recipients:
                continue
            recipients.append(address)
            if not status:
                status = str(block.get("Status", "")).strip()
                diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).partition(";")[2].split())
    if not recipients:
        return None
    return Bounce(tuple(recipients), status, diagnostic, _original_message_id(message))
