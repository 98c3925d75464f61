"""Who speaks in a conversation. One field, `Conversation.state`, decides; every change is audited.

    bot --escalate / staff reply / assign--> human --resolve--> resolved --customer writes--> bot | human
    human --hand back--> bot
    human --snooze until T--> snoozed --T passes / customer writes / staff act--> human

The bot replies only while the state is `bot` (`bot_may_reply`), checked in the same transaction that queues a
bot reply, with the conversation row locked on PostgreSQL: once staff own a thread, no bot reply can be
queued in it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from bot.crm.audit import audit
from bot.crm.models import (
    AuthorKind,
    Conversation,
    ConversationState,
    Direction,
    Message,
    Note,
    Staff,
    utcnow,
)
from bot.delivery.outbox import (
    enqueue,  # the outbox imports nothing from here; kept local to show the direction
)
from bot.support.slack_posts import record_support_post, support_posts_changed

__all__ = [
    "ConversationNotFound",
    "add_note",
    "assign_conversation",
    "bot_may_reply",
    "collision_warning",
    "escalate_conversation",
    "hand_back_to_bot",
    "lock_conversation",
    "reopen_conversation",
    "resolve_conversation",
    "snooze_conversation",
    "staff_reply",
    "wake_conversation",
]


class ConversationNotFound(LookupError):
    """No conversation has that id."""


def load_conversation(session: Session, conversation_id: int) -> Conversation:
    """The conversation with this id, for reading.

    Raises:
        ConversationNotFound: there is no such conversation.
    """
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise ConversationNotFound(f"conversation {conversation_id} does not exist")
    return conversation


def lock_conversation(session: Session, conversation_id: int) -> Conversation:
    """Load a conversation for a state change, locking its row on PostgreSQL (SQLite locks on write).

    Raises:
        ConversationNotFound: there is no such conversation.
    """
    query = select(Conversation).where(Conversation.id == conversation_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    conversation = session.exec(query).first()
    if conversation is None:
        raise ConversationNotFound(f"conversation {conversation_id} does not exist")
    return conversation


def _actor(actor: Staff | None) -> dict[str, Any]:
    """Who changed hands, as the audit trail names them: a staff member, or the system."""
    return {"actor_kind": "staff", "actor_id": actor.id} if actor is not None else {"actor_kind": "system"}


def _transition(previous: str, conversation: Conversation, **details: Any) -> dict[str, Any]:
    """What an audit event of a change of hands says: the state before and after, and `details`."""
    return {"from": previous, "to": conversation.state, **details}


def bot_may_reply(conversation: Conversation) -> bool:
    """The bot speaks only in conversations it owns."""
    return conversation.state == ConversationState.BOT


def escalate_conversation(
    session: Session,
    conversation: Conversation,
    *,
    reason: str,
    priority: int = 0,
    message_id: int | None = None,
    support_channel: str = "",
) -> None:
    """Hand `conversation` to staff: from now on the bot stays silent in it.

    Args:
        support_channel: the Slack channel to post the escalation to ("" for none); the post is recorded
            in this transaction and sent by bot/support/slack_posts.py.
    """
    previous = conversation.state
    conversation.state = ConversationState.HUMAN.value
    conversation.escalation_reason = reason
    conversation.escalation_message_id = message_id
    conversation.snoozed_until = None
    conversation.escalated_at = utcnow()
    conversation.priority = max(conversation.priority, priority)
    session.add(conversation)
    audit(
        session,
        "conversation.escalated",
        "conversation",
        conversation.id,
        actor_kind="bot",
        details=_transition(previous, conversation, reason=reason, message_id=message_id),
    )
    support_posts_changed(session, conversation.id)
    if support_channel:
        record_support_post(session, conversation, support_channel=support_channel, message_id=message_id)


def reopen_conversation(
    session: Session,
    conversation: Conversation,
    *,
    message_id: int | None = None,
    to_assignee: bool = False,
) -> None:
    """A customer wrote again in a resolved conversation: the bot owns it again, or (`to_assignee`, when it
    had one) the person who had it, and the bot stays silent."""
    previous = conversation.state
    back_to_person = to_assignee and conversation.assignee_id is not None
    conversation.state = (ConversationState.HUMAN if back_to_person else ConversationState.BOT).value
    conversation.resolved_at = None
    session.add(conversation)
    audit(
        session,
        "conversation.reopened",
        "conversation",
        conversation.id,
        actor_kind="customer",
        details=_transition(previous, conversation, message_id=message_id),
    )
    support_posts_changed(session, conversation.id)


def assign_conversation(
    session: Session, conversation: Conversation, *, assignee: Staff | None, actor: Staff
) -> None:
    """Give the conversation to `assignee` (None: unassigned but still with staff); the bot falls silent."""
    previous = conversation.state
    previous_assignee = conversation.assignee_id
    conversation.state = ConversationState.HUMAN.value
    conversation.snoozed_until = None
    conversation.assignee_id = assignee.id if assignee is not None else None
    if conversation.escalated_at is None:
        conversation.escalated_at = utcnow()
    session.add(conversation)
    audit(
        session,
        "conversation.assigned",
        "conversation",
        conversation.id,
        **_actor(actor),
        details=_transition(
            previous, conversation, assignee_from=previous_assignee, assignee_to=conversation.assignee_id
        ),
    )
    support_posts_changed(session, conversation.id)


def resolve_conversation(session: Session, conversation: Conversation, *, actor: Staff | None) -> None:
    """Close the conversation; a later customer message reopens it (see `reopen_conversation`)."""
    previous = conversation.state
    conversation.state = ConversationState.RESOLVED.value
    conversation.snoozed_until = None
    conversation.resolved_at = utcnow()
    session.add(conversation)
    audit(
        session,
        "conversation.resolved",
        "conversation",
        conversation.id,
        **_actor(actor),
        details=_transition(previous, conversation),
    )
    support_posts_changed(session, conversation.id)


def hand_back_to_bot(session: Session, conversation: Conversation, *, actor: Staff) -> None:
    """Staff give the conversation back: the bot answers the customer's next message."""
    previous = conversation.state
    conversation.state = ConversationState.BOT.value
    conversation.snoozed_until = None
    conversation.assignee_id = None
    session.add(conversation)
    audit(
        session,
        "conversation.handed_back",
        "conversation",
        conversation.id,
        **_actor(actor),
        details=_transition(previous, conversation),
    )
    support_posts_changed(session, conversation.id)


def snooze_conversation(
    session: Session, conversation: Conversation, *, until: datetime, actor: Staff
) -> None:
    """Put the conversation aside until `until`: it leaves the queue, the bot stays silent, and it comes
    back to staff when `until` passes (bot/support/snooze.py) or the customer writes (`wake_conversation`).

    Raises:
        ValueError: `until` is not in the future, or the conversation is not with staff.
    """
    if until <= utcnow():
        raise ValueError("snooze until a time in the future")
    if conversation.state not in (ConversationState.HUMAN, ConversationState.SNOOZED):
        raise ValueError(f"only a conversation with staff can be snoozed (this one is {conversation.state})")
    previous = conversation.state
    conversation.state = ConversationState.SNOOZED.value
    conversation.snoozed_until = until
    session.add(conversation)
    audit(
        session,
        "conversation.snoozed",
        "conversation",
        conversation.id,
        **_actor(actor),
        details=_transition(previous, conversation, until=until.isoformat()),
    )
    support_posts_changed(session, conversation.id)


def wake_conversation(
    session: Session, conversation: Conversation, *, why: str, message_id: int | None = None
) -> None:
    """A snoozed conversation comes back to staff (state `human`, same assignee); `why` says what woke it
    ("the snooze ended", "the customer wrote")."""
    previous = conversation.state
    conversation.state = ConversationState.HUMAN.value
    conversation.snoozed_until = None
    session.add(conversation)
    audit(
        session,
        "conversation.woken",
        "conversation",
        conversation.id,
        actor_kind="customer" if message_id is not None else "system",
        details=_transition(previous, conversation, why=why, message_id=message_id),
    )
    support_posts_changed(session, conversation.id)


def staff_reply(
    session: Session, conversation: Conversation, *, staff: Staff, text: str, idempotency_key: str
) -> Message:
    """Queue a staff member's reply on the customer's channel and thread; the conversation becomes theirs
    if nobody had it. The same `idempotency_key` (a double-clicked form) queues one message."""
    previous, previous_assignee = conversation.state, conversation.assignee_id
    conversation.state = ConversationState.HUMAN.value
    conversation.snoozed_until = None
    if conversation.assignee_id is None:
        conversation.assignee_id = staff.id
    if (previous, previous_assignee) != (conversation.state, conversation.assignee_id):
        support_posts_changed(session, conversation.id)
    if conversation.escalated_at is None:
        conversation.escalated_at = utcnow()
    last_inbound = session.exec(
        select(Message)
        .where(Message.conversation_id == conversation.id, Message.direction == Direction.INBOUND.value)
        .order_by(Message.id.desc())
    ).first()
    message = enqueue(
        session,
        conversation=conversation,
        text=text,
        idempotency_key=idempotency_key,
        reply_to=last_inbound,
        author_kind=AuthorKind.STAFF,
        staff_id=staff.id,
    )
    session.add(conversation)
    audit(
        session,
        "conversation.staff_replied",
        "conversation",
        conversation.id,
        **_actor(staff),
        details=_transition(previous, conversation, message_id=message.id),
    )
    return message


def add_note(session: Session, conversation: Conversation, *, staff: Staff, text: str) -> Note:
    """An internal note on the conversation, for colleagues only."""
    note = Note(conversation_id=conversation.id, staff_id=staff.id, text=text)
    session.add(note)
    session.flush()
    return note


def collision_warning(
    session: Session,
    conversation: Conversation,
    *,
    staff: Staff,
    seen_message_id: int,
    seen_assignee_id: int | None,
) -> str | None:
    """What changed since `staff` loaded the conversation that they should know before sending, or None.

    Another person took the thread, someone else replied, or the customer wrote again.
    """
    if conversation.assignee_id not in (seen_assignee_id, staff.id):
        other = session.get(Staff, conversation.assignee_id)
        return f"{other.name or other.email if other else 'someone'} took this conversation meanwhile"
    newer = session.exec(
        select(Message)
        .where(Message.conversation_id == conversation.id, Message.id > seen_message_id)
        .order_by(Message.id)
    ).all()
    for message in newer:
        if message.author_kind == AuthorKind.STAFF and message.staff_id != staff.id:
            other = session.get(Staff, message.staff_id)
            return f"{other.name or other.email if other else 'a colleague'} replied meanwhile"
    if any(message.direction == Direction.INBOUND for message in newer):
        return "the customer wrote again meanwhile"
    return None
