"""The language a customer writes in, as the CRM knows it: the language detected on their messages
(bot/runtime/languages.py), kept on each message."""

from __future__ import annotations

from sqlmodel import Session, select

from bot.crm.models import Direction, Message

__all__ = ["customer_language", "reply_language"]


def customer_language(session: Session, conversation_id: int) -> str | None:
    """The language of the customer's latest message in the conversation that had one detected, or None.

    A code, a rating or an e-mail address says nothing about the language; the customer's earlier words do.
    """
    return session.exec(
        select(Message.language)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.INBOUND.value,
            Message.language.is_not(None),
        )
        .order_by(Message.id.desc())
    ).first()


def reply_language(session: Session, conversation_id: int, detected: str | None) -> str | None:
    """The language to answer a customer's message in: the one `detected` on it, else the one they wrote in
    last in the conversation; None for the brand's default."""
    return detected or customer_language(session, conversation_id)
