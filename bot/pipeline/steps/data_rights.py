"""The data-rights step: a customer asks what is stored about them or to delete it (recognised by
`bot.crm.data_rights.classify_data_request`). The request is recorded for staff, or fulfilled at once when
`[data_rights] auto_fulfil` is on and the requester's identity is verified, and the bot says what happens
next. In a conversation a person owns the request is recorded and that person answers.

An e-mail whose sender nobody vouched for gets a code mailed to its address instead; the request goes ahead
(`confirm`) when the code comes back, proving the mailbox is the requester's. A data summary is mailed only to
the requester's own address, never into a thread the sender chose by replying to another mail.
"""

from __future__ import annotations

from typing import Any

from bot.crm.audit import audit
from bot.crm.data_rights import (
    DataRequestKind,
    classify_data_request,
    erase_contact,
    export_contact,
    record_request,
)
from bot.crm.models import DataRequest, Direction, Identity, utcnow
from bot.engagement.identity import mail_request_code
from bot.pipeline.turn import Turn
from bot.policy.routing import Action, Decision
from channels.base import InboundKind

__all__ = ["confirm", "data_rights"]


def data_rights(turn: Turn) -> Decision | None:
    """Record a customer's data request and decide the bot's answer; None for any other message, and in a
    conversation a person owns (they answer; the request waits on the data-requests page)."""
    message, session = turn.message, turn.session
    if message.kind != InboundKind.MESSAGE or message.direction != Direction.INBOUND.value:
        return None
    kind = classify_data_request(message.text)
    if kind is None:
        return None
    request = record_request(session, message, kind)
    why = f"data request {request.id} ({kind.value})"
    if not turn.bot_may_reply:
        return None
    if request.status == "unverified":
        identity = session.get(Identity, request.identity_id) if request.identity_id else None
        own_thread = identity is not None and turn.conversation.thread_id == identity.external_user_id
        if message.channel == "email" and "email" in turn.runtime.channels and own_thread:
            refused = mail_request_code(
                turn.runtime,
                session,
                message,
                turn.conversation,
                request,
                identity.external_user_id,
                turn.language,
            )
            return refused or _answer(
                turn,
                f"{why}: sender not authenticated, a code mailed to confirm",
                "data_unverified_email",
                id=request.id,
            )
        return _answer(turn, f"{why}: identity not verified", "data_unverified")
    return _go_ahead(turn, request)


def confirm(turn: Turn, request: DataRequest) -> Decision:
    """The code mailed for `request` came back in this turn's message: the mailbox is the requester's, so the
    request goes ahead as a verified one does."""
    request.status = "open"
    turn.session.add(request)
    audit(
        turn.session,
        "data_request.confirmed",
        "contact",
        request.contact_id,
        actor_kind="customer",
        details={"request_id": request.id, "via": "e-mail code"},
    )
    return _go_ahead(turn, request)


def _go_ahead(turn: Turn, request: DataRequest) -> Decision:
    """A verified requester's request: recorded for staff, or fulfilled with `auto_fulfil`."""
    message, session = turn.message, turn.session
    kind = DataRequestKind(request.kind)
    why = f"data request {request.id} ({kind.value})"
    if not turn.runtime.settings.data_rights.auto_fulfil:
        return _answer(turn, f"{why}: recorded for staff", f"data_{kind.value}", id=request.id)
    if kind == DataRequestKind.ERASURE:
        request.status, request.completed_at = "fulfilled", utcnow()
        answer = _answer(turn, f"{why}: erased automatically", "data_erasure_done", id=request.id)
        erase_contact(session, request.contact_id, actor_kind="customer", request_id=request.id)
        return answer
    if message.public:
        return _answer(turn, f"{why}: public thread, left for staff", "data_access_public", id=request.id)
    identity = session.get(Identity, request.identity_id) if request.identity_id else None
    if message.channel == "email" and (
        identity is None or turn.conversation.thread_id != identity.external_user_id
    ):
        # The reply goes to the thread's address, which the sender chose by answering another person's mail.
        return _answer(
            turn,
            f"{why}: not the requester's own address, left for staff",
            "data_access_elsewhere",
            id=request.id,
        )
    export = export_contact(session, request.contact_id)
    request.status, request.completed_at = "fulfilled", utcnow()
    audit(
        session,
        "contact.exported",
        "contact",
        request.contact_id,
        actor_kind="customer",
        details={"via": "chat"},
    )
    return _answer(
        turn,
        f"{why}: summary sent automatically",
        "data_access_done",
        id=request.id,
        channels=sorted({identity["channel"] for identity in export["identities"]}),
        **{part: len(export[part]) for part in ("messages", "conversations", "ideas", "follow_ups")},
    )


def _answer(turn: Turn, reason: str, template: str, **variables: Any) -> Decision:
    """The bot's answer to a data request: `template` in the customer's language."""
    return Decision(
        Action.DATA_REQUEST, reason, template=template, language=turn.language, variables=variables
    )
