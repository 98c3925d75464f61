"""Who speaks in a conversation. One field, `Conversation.state`, decides; every change is audited."""

from __future__ import annotations

from sqlmodel import Session

from bot.crm.models import AuditEvent, Conversation, ConversationState, utcnow

__all__ = ["bot_may_reply", "escalate_conversation", "reopen_conversation"]


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
) -> None:
    """Hand `conversation` to staff: from now on the bot stays silent in it."""
    previous = conversation.state
    conversation.state = ConversationState.HUMAN.value
    conversation.escalation_reason = reason
    conversation.escalated_at = utcnow()
    conversation.priority = max(conversation.priority, priority)
    session.add(conversation)
    session.add(
        AuditEvent(
            actor_kind="bot",
            action="conversation.escalated",
            subject_type="conversation",
            subject_id=conversation.id,
            details={"from": previous, "to": conversation.state, "reason": reason, "message_id": message_id},
        )
    )


def reopen_conversation(
    session: Session, conversation: Conversation, *, message_id: int | None = None
) -> None:
    """A customer wrote again in a resolved conversation: the bot owns it again."""
    previous = conversation.state
    conversation.state = ConversationState.BOT.value
    conversation.resolved_at = None
    session.add(conversation)
    session.add(
        AuditEvent(
            actor_kind="customer",
            action="conversation.reopened",
            subject_type="conversation",
            subject_id=conversation.id,
            details={"from": previous, "to": conversation.state, "message_id": message_id},
        )
    )
