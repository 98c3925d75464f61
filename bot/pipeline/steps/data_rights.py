"""The data-rights step: a customer asks what is stored about them or to delete it (recognised by
`bot.crm.data_rights.classify_data_request`). The request is recorded for staff, or fulfilled at once when
`[data_rights] auto_fulfil` is on and the requester's identity is verified, and the bot says what happens
next. In a conversation a person owns the request is recorded and that person answers.
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
from bot.crm.models import Direction, utcnow
from bot.pipeline.turn import Turn
from bot.policy.routing import Action, Decision
from channels.base import InboundKind

__all__ = ["data_rights"]

#: What the bot says (format fields: brand, id).
TEXTS = {
    "access": (
        "You can see everything we store about you. I've recorded your request (number {id}); our team "
        "will send you a copy of your data within 30 days."
    ),
    "erasure": (
        "I've recorded your request (number {id}) to delete your data; our team will confirm within 30 days "
        "once it is done."
    ),
    "unverified": (
        "To protect your data I can't act on this from an account we haven't confirmed is yours. Send us "
        "your e-mail address here to confirm it with a code, or ask from the account you usually use."
    ),
    "access_done": (
        "Here is what we store about you: {summary}. Ask our team for the full copy (request {id})."
    ),
    "access_public": (
        "I've recorded your request (number {id}); as this is a public thread, our team will send your data "
        "to you privately."
    ),
    "erasure_done": "Done: your data has been deleted (request {id}). We won't contact you again.",
}


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
        return _answer(f"{why}: identity not verified", TEXTS["unverified"])
    if not turn.runtime.settings.data_rights.auto_fulfil:
        return _answer(f"{why}: recorded for staff", TEXTS[kind.value].format(id=request.id))
    if kind == DataRequestKind.ERASURE:
        request.status, request.completed_at = "fulfilled", utcnow()
        reply = TEXTS["erasure_done"].format(id=request.id)
        erase_contact(session, message.contact_id, actor_kind="customer", request_id=request.id)
        return _answer(f"{why}: erased automatically", reply)
    if message.public:
        return _answer(f"{why}: public thread, left for staff", TEXTS["access_public"])
    summary = _summary(export_contact(session, message.contact_id))
    request.status, request.completed_at = "fulfilled", utcnow()
    audit(
        session,
        "contact.exported",
        "contact",
        message.contact_id,
        actor_kind="customer",
        details={"via": "chat"},
    )
    return _answer(
        f"{why}: summary sent automatically", TEXTS["access_done"].format(summary=summary, id=request.id)
    )


def _answer(reason: str, reply: str) -> Decision:
    return Decision(Action.DATA_REQUEST, reason, reply=reply)


def _summary(export: dict[str, Any]) -> str:
    channels = sorted({identity["channel"] for identity in export["identities"]})
    return (
        f"your accounts on {', '.join(channels) or 'no channel'}, {len(export['messages'])} messages in "
        f"{len(export['conversations'])} conversations, {len(export['ideas'])} ideas and "
        f"{len(export['follow_ups'])} follow-ups"
    )
