"""Customers' data rights: recognising "what do you know about me" / "delete my data", data requests,
exporting everything stored about one contact, erasing it, and purging old message text (retention).

Recognition is a rule (`classify_data_request`), not a model head: the requests are rare, phrased in a few
recognisable ways, and a miss costs a customer a legal right, so the rule is explicit and measured
(tests/test_data_rights.py: precision and recall on a labelled set with near-misses). "Delete my account" is
deliberately *not* an erasure request: it is an account question the knowledge base answers (closing an
account on the shop), and erasing the CRM record on that phrase would destroy support history the customer
did not ask to lose. An erasure request names data, information, details or "forget me".

Verification: the request is tied to the channel identity it came from. The platform vouches for its own
account ids (those identities are `verified`); an e-mail address is verified by the one-time code flow of
bot/engagement/identity.py. A request from an identity that is not verified, or in a message whose sender
nobody vouched for (an e-mail that failed authentication: its `From` proves nothing), is recorded as
`unverified` and exposes and erases nothing; from e-mail it goes ahead once the code mailed to the address
comes back (bot/pipeline/steps/data_rights.py). Export and erasure cover the whole contact, i.e. every
identity linked to it (linking itself needed proof or staff).

Shared threads (a Telegram group, a Slack channel): a conversation belongs to whoever wrote first, but other
customers write in it too. Export and erasure take a contact's own messages, the replies to them, and the rest
of a conversation only when nobody else wrote in it; never another customer's words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, delete, update
from sqlmodel import Session, select

from bot.crm.audit import audit
from bot.crm.db import session_scope
from bot.crm.models import (
    Contact,
    ContactBlock,
    Conversation,
    DataRequest,
    Direction,
    FollowUp,
    FollowUpStatus,
    Idea,
    Identity,
    IdentityVerification,
    LadderChange,
    Message,
    MessageVector,
    ModerationItem,
    Note,
    Outbox,
    OutboxStatus,
    utcnow,
)

__all__ = [
    "ERASED",
    "ContactNotFound",
    "ErasureReport",
    "DataRequestKind",
    "classify_data_request",
    "erase_contact",
    "erase_for_staff",
    "export_contact",
    "export_for_staff",
    "list_requests",
    "purge_old_text",
    "record_request",
]

#: What an erased message's text becomes (the row, its understanding and its counts stay).
ERASED = "[erased at the customer's request]"
#: What message text older than `[data_rights] retention_days` becomes.
EXPIRED = "[removed: older than the retention period]"


class ContactNotFound(LookupError):
    """No contact with that id."""


class DataRequestKind(StrEnum):
    ACCESS = "access"
    ERASURE = "erasure"


_DATA = r"(?:personal\s+)?(?:data|information|info|details|records?)"
_ERASURE = re.compile(
    rf"\b(?:delete|erase|remove|wipe|destroy|purge)\s+(?:all\s+(?:of\s+)?)?(?:my|the)\s+{_DATA}\b"
    rf"|\b(?:delete|erase|remove|wipe)\s+(?:all\s+)?(?:the\s+)?{_DATA}\s+(?:you\s+(?:have|hold|keep|store)\s+)?"
    r"(?:about|on|of)\s+me\b"
    r"|(?<!don't\s)(?<!do\snot\s)(?<!never\s)\bforget\s+(?:about\s+)?me\b|\bright\s+to\s+(?:be\s+forgotten|erasure)\b",
    re.IGNORECASE,
)
_ACCESS = re.compile(
    r"\bwhat\s+(?:do|did)\s+you\s+(?:know|have|keep|store|hold)\s+(?:about|on)\s+me\b"
    rf"|\bwhat\s+(?:personal\s+)?(?:data|information|info|details)\s+(?:do\s+you|you)\s+"
    r"(?:have|hold|keep|store|collect)\b"
    rf"|\b(?:send|give|show|tell|email|e-mail)\s+me\s+(?:a\s+copy\s+of\s+)?(?:all\s+)?(?:my|the)\s+{_DATA}"
    r"\s+(?:you\s+(?:have|hold|keep|store)|about\s+me)"
    rf"|\b(?:copy|export)\s+of\s+(?:all\s+)?my\s+{_DATA}\b"
    r"|\b(?:subject\s+access\s+request|data\s+access\s+request|DSAR)\b",
    re.IGNORECASE,
)


def classify_data_request(text: str) -> DataRequestKind | None:
    """Whether `text` asks what is stored about the writer (access) or to delete it (erasure); else None."""
    if _ERASURE.search(text):
        return DataRequestKind.ERASURE
    if _ACCESS.search(text):
        return DataRequestKind.ACCESS
    return None


def record_request(session: Session, message: Message, kind: DataRequestKind) -> DataRequest:
    """Record the data request `message` makes, tied to the channel identity it came from: "open" for staff
    when the platform or a code verified that identity and the channel vouched for this message's sender (an
    e-mail that failed authentication proves nothing), else "unverified" (it exposes nothing). Audited."""
    identity = session.exec(
        select(Identity)
        .where(Identity.contact_id == message.contact_id, Identity.channel == message.channel)
        .order_by(Identity.verified.desc(), Identity.id)
    ).first()
    verified = identity is not None and identity.verified and message.sender_verified
    request = DataRequest(
        contact_id=message.contact_id,
        identity_id=identity.id if identity is not None else None,
        message_id=message.id,
        kind=kind.value,
        status="open" if verified else "unverified",
    )
    session.add(request)
    session.flush()
    audit(
        session,
        f"data_request.{kind.value}",
        "contact",
        message.contact_id,
        actor_kind="customer",
        details={"request_id": request.id},
    )
    return request


# Export and erasure


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _row(row: Any, *columns: str) -> dict[str, Any]:
    return {
        column: _iso(value) if isinstance(value, datetime) else value
        for column in columns
        for value in [getattr(row, column)]
    }


def _contact(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise ContactNotFound(f"contact {contact_id} does not exist")
    return contact


def _scope(session: Session, contact_id: int) -> tuple[list[Message], set[int], set[int]]:
    """The contact's messages (their own, the replies to them, and everything in threads nobody else wrote
    in), the conversations those are in, and the conversations that are theirs alone."""
    own = session.exec(
        select(Message).where(Message.contact_id == contact_id, Message.direction == Direction.INBOUND.value)
    ).all()
    own_ids = {message.id for message in own}
    conversation_ids = {message.conversation_id for message in own} | set(
        session.exec(select(Conversation.id).where(Conversation.contact_id == contact_id)).all()
    )
    shared = set(
        session.exec(
            select(Message.conversation_id).where(
                Message.conversation_id.in_(conversation_ids),
                Message.direction == Direction.INBOUND.value,
                Message.contact_id != contact_id,
            )
        ).all()
    )
    alone = conversation_ids - shared
    others = session.exec(
        select(Message).where(
            Message.conversation_id.in_(conversation_ids), Message.direction == Direction.OUTBOUND.value
        )
    ).all()
    replies = [
        message
        for message in others
        if message.reply_to_id in own_ids
        or (message.reply_to_id is None and message.conversation_id in alone)
    ]
    messages = sorted([*own, *replies], key=lambda message: message.id)
    return messages, conversation_ids, alone


MESSAGE_FIELDS = (
    "id",
    "conversation_id",
    "channel",
    "external_id",
    "direction",
    "author_kind",
    "text",
    "public",
    "created_at",
    "reply_to_id",
    "intent",
    "sentiment",
    "action",
    "reason",
)


def export_contact(session: Session, contact_id: int) -> dict[str, Any]:
    """Everything stored about one contact, across their identities, as JSON-ready data.

    Holds no other customer's words: in a shared thread only the contact's own messages and the replies to
    them are included.

    Raises:
        ContactNotFound: no such contact.
    """
    contact = _contact(session, contact_id)
    messages, conversation_ids, alone = _scope(session, contact_id)
    conversations = session.exec(
        select(Conversation).where(Conversation.id.in_(conversation_ids)).order_by(Conversation.id)
    ).all()

    def rows(model: Any, *columns: str, where: Any) -> list[dict[str, Any]]:
        return [
            _row(row, *columns) for row in session.exec(select(model).where(where).order_by(model.id)).all()
        ]

    return {
        "exported_at": utcnow().isoformat(),
        "contact": _row(
            contact, "id", "display_name", "email", "ladder_stage", "opted_out", "created_at", "last_seen_at"
        ),
        "identities": rows(
            Identity,
            "id",
            "channel",
            "external_user_id",
            "handle",
            "display_name",
            "verified",
            "created_at",
            where=Identity.contact_id == contact_id,
        ),
        "conversations": [
            {
                **_row(conversation, "id", "channel", "thread_id", "opened_at", "resolved_at", "csat"),
                "state": conversation.state,
                "shared_with_others": conversation.id not in alone,
            }
            for conversation in conversations
        ],
        "messages": [_row(message, *MESSAGE_FIELDS) for message in messages],
        "follow_ups": rows(
            FollowUp,
            "id",
            "conversation_id",
            "channel",
            "template",
            "text",
            "due_at",
            "status",
            "sent_at",
            where=FollowUp.contact_id == contact_id,
        ),
        "ideas": rows(
            Idea, "id", "message_id", "text", "status", "created_at", where=Idea.contact_id == contact_id
        ),
        "ladder_history": rows(
            LadderChange,
            "id",
            "from_stage",
            "to_stage",
            "reason",
            "changed_at",
            where=LadderChange.contact_id == contact_id,
        ),
        "notes": rows(
            Note, "id", "conversation_id", "text", "created_at", where=Note.conversation_id.in_(alone)
        ),
        "data_requests": rows(
            DataRequest,
            "id",
            "kind",
            "status",
            "created_at",
            "completed_at",
            where=DataRequest.contact_id == contact_id,
        ),
        "blocks": rows(
            ContactBlock, "id", "until", "reason", "created_at", where=ContactBlock.contact_id == contact_id
        ),
        "moderation": rows(
            ModerationItem,
            "id",
            "message_id",
            "reason",
            "status",
            where=ModerationItem.contact_id == contact_id,
        ),
    }


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What one erasure changed (all zero when the contact had been erased before)."""

    contact_id: int
    messages: int
    identities: int
    follow_ups_cancelled: int
    outbox_cancelled: int


def erase_contact(
    session: Session,
    contact_id: int,
    *,
    staff_id: int | None = None,
    actor_kind: str = "staff",
    request_id: int | None = None,
    via: str = "chat",
) -> ErasureReport:
    """Remove a contact's personal data and message text; keep anonymised rows so counts stay right.

    Message text (theirs, the replies to them, whole threads only they wrote in) becomes `ERASED` and the
    raw platform payloads go; identities lose their handles and account ids; the contact loses name and
    address and is opted out; pending follow-ups and unsent replies are cancelled; ideas and notes lose
    their text. Intents, sentiment, timestamps and the rows themselves stay. Idempotent; audited.

    Raises:
        ContactNotFound: no such contact.
    """
    contact = _contact(session, contact_id)
    messages, _conversations, alone = _scope(session, contact_id)
    erased = [message for message in messages if message.text != ERASED]
    ids = [message.id for message in messages]
    for message in erased:
        message.text, message.raw, message.ladder_signs = (
            ERASED,
            None,
            None,
        )  # the signs were read in the text
        session.add(message)
    if ids:
        session.exec(delete(MessageVector).where(MessageVector.message_id.in_(ids)))
    outbox_cancelled = 0
    if ids:
        session.exec(update(Outbox).where(Outbox.message_id.in_(ids)).values(text=ERASED))
        outbox_cancelled = session.exec(
            update(Outbox)
            .where(Outbox.message_id.in_(ids), Outbox.status == OutboxStatus.PENDING.value)
            .values(status=OutboxStatus.FAILED.value, last_error="cancelled: the customer's data was erased")
        ).rowcount
    cancelled = session.exec(
        update(FollowUp)
        .where(FollowUp.contact_id == contact_id, FollowUp.status == FollowUpStatus.PENDING.value)
        .values(status=FollowUpStatus.CANCELLED.value, last_error="the customer's data was erased")
    ).rowcount
    session.exec(update(FollowUp).where(FollowUp.contact_id == contact_id).values(text=None))
    session.exec(update(Idea).where(Idea.contact_id == contact_id).values(text=ERASED))
    if alone:
        session.exec(update(Note).where(Note.conversation_id.in_(alone)).values(text=ERASED))
    session.exec(
        update(IdentityVerification)
        .where(IdentityVerification.contact_id == contact_id)
        .values(email=None, code_hash=None)
    )
    identities = session.exec(
        select(Identity).where(Identity.contact_id == contact_id, Identity.handle.is_not(None))
    ).all()
    for identity in session.exec(select(Identity).where(Identity.contact_id == contact_id)).all():
        if not identity.external_user_id.startswith("erased:"):
            identity.external_user_id = f"erased:{identity.id}"
        identity.handle = identity.display_name = None
        session.add(identity)
    contact.display_name, contact.email, contact.opted_out = None, None, True
    session.add(contact)
    report = ErasureReport(contact_id, len(erased), len(identities), cancelled, outbox_cancelled)
    audit(
        session,
        "contact.erased",
        "contact",
        contact_id,
        actor_kind=actor_kind,
        actor_id=staff_id,
        details={
            "request_id": request_id,
            "via": via,
            "messages": report.messages,
            "follow_ups_cancelled": report.follow_ups_cancelled,
        },
    )
    return report


def purge_old_text(session: Session, retention_days: int, *, now: datetime | None = None) -> int:
    """Replace the text of messages older than `retention_days` with a marker (0 = keep; nothing done).

    Rows, understanding and timestamps stay, so counts and dashboards are unchanged. Returns how many
    messages lost their text.
    """
    if retention_days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    old = Message.created_at < cutoff
    purged = session.exec(
        update(Message)
        .where(old, Message.text.not_in((EXPIRED, ERASED)))
        .values(text=EXPIRED, raw=None, ladder_signs=None)
    ).rowcount
    session.exec(delete(MessageVector).where(MessageVector.message_id.in_(select(Message.id).where(old))))
    session.exec(
        update(Outbox)
        .where(Outbox.created_at < cutoff, Outbox.status != OutboxStatus.PENDING.value)
        .values(text=EXPIRED)
    )
    if purged:
        audit(
            session,
            "retention.purged",
            "contact",
            None,
            actor_kind="system",
            details={"messages": purged, "days": retention_days},
        )
    return purged


def _complete_requests(
    session: Session, contact_id: int, kind: DataRequestKind, staff_id: int | None
) -> None:
    session.exec(
        update(DataRequest)
        .where(
            DataRequest.contact_id == contact_id,
            DataRequest.kind == kind.value,
            DataRequest.status == "open",
        )
        .values(status="fulfilled", completed_at=utcnow(), staff_id=staff_id)
    )


def export_for_staff(engine: Engine, contact_id: int, *, staff_id: int | None, via: str) -> dict[str, Any]:
    """`export_contact` for an admin (console, API or CLI): audited, and the contact's open access requests
    are marked fulfilled.

    Raises:
        ContactNotFound: no such contact.
    """
    with session_scope(engine) as session:
        data = export_contact(session, contact_id)
        _complete_requests(session, contact_id, DataRequestKind.ACCESS, staff_id)
        audit(
            session,
            "contact.exported",
            "contact",
            contact_id,
            actor_kind="staff",
            actor_id=staff_id,
            details={"via": via},
        )
    return data


def erase_for_staff(engine: Engine, contact_id: int, *, staff_id: int | None, via: str) -> ErasureReport:
    """`erase_contact` for an admin: audited (with `via`), the contact's open erasure requests fulfilled.

    Raises:
        ContactNotFound: no such contact.
    """
    with session_scope(engine) as session:
        report = erase_contact(session, contact_id, staff_id=staff_id, via=via)
        _complete_requests(session, contact_id, DataRequestKind.ERASURE, staff_id)
    return report


def list_requests(session: Session, *, status: str | None = None, limit: int = 200) -> list[DataRequest]:
    """Data requests, newest first, optionally only those with `status`."""
    query = select(DataRequest).order_by(DataRequest.id.desc()).limit(limit)
    if status:
        query = query.where(DataRequest.status == status)
    return list(session.exec(query).all())
