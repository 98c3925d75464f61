"""Snoozing a conversation: staff put it aside until a time; it comes back to the queue when the time comes
(`wake_due_snoozes`, a scheduler job) or when the customer writes (the pipeline wakes it on arrival).

The job is safe in any number of workers: it locks the due rows with `FOR UPDATE SKIP LOCKED` on PostgreSQL
(a second worker skips them, then finds them awake) and runs under SQLite's single writer lock.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import select

from bot.crm.db import session_scope
from bot.crm.models import Conversation, ConversationState, Staff, utcnow
from bot.support.handoff import lock_conversation, snooze_conversation, wake_conversation

__all__ = ["snooze", "wake_due_snoozes"]


def snooze(engine: Engine, conversation_id: int, *, until: datetime, staff_id: int) -> None:
    """Snooze the conversation until `until` (timezone-aware).

    Raises:
        ConversationNotFound: there is no such conversation.
        ValueError: `until` is naive or not in the future, or the conversation is not with staff.
    """
    if until.tzinfo is None:
        raise ValueError("the snooze time needs a time zone")
    with session_scope(engine) as session:
        conversation = lock_conversation(session, conversation_id)
        snooze_conversation(session, conversation, until=until, actor=session.get(Staff, staff_id))


def wake_due_snoozes(engine: Engine, *, now: datetime | None = None, limit: int = 100) -> list[int]:
    """Bring back to the queue every snoozed conversation whose time has come; returns their ids."""
    now = now or utcnow()
    with session_scope(engine) as session:
        query = (
            select(Conversation)
            .where(
                Conversation.state == ConversationState.SNOOZED.value,
                Conversation.snoozed_until <= now,
            )
            .order_by(Conversation.snoozed_until, Conversation.id)
            .limit(limit)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        woken = []
        for conversation in session.exec(query).all():
            wake_conversation(session, conversation, why="the snooze ended")
            woken.append(conversation.id)
    return woken
