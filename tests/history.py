"""A scripted history for insights tests: customers, conversations, messages, replies, handovers and
resolutions written as rows at times a test chooses, so every figure can be checked by hand.

The rows are the ones the services write (bot/support/handoff.py audits handovers and resolutions as
`conversation.*` events; bot/delivery/outbox.py gives every reply an `Outbox` row with `sent_at`); a test in
tests/test_response_times.py checks that the real path produces the same shape."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from bot.crm.db import session_scope
from bot.crm.models import (
    AuditEvent,
    Contact,
    Conversation,
    Message,
    Outbox,
    Staff,
)
from bot.crm.vectors import store_vector

_ids = itertools.count(1)


class ScriptedHistory:
    """Writes rows at `start + minutes`; each method commits at once and returns the row's id."""

    def __init__(self, engine: Engine, start: datetime, *, encoder: Any = None) -> None:
        """`encoder`: when given, each customer message's vector is kept as the pipeline keeps it."""
        self.engine = engine
        self.start = start
        self.encoder = encoder

    def at(self, minutes: float) -> datetime:
        return self.start + timedelta(minutes=minutes)

    def _add(self, row: Any) -> int:
        with session_scope(self.engine) as session:
            session.add(row)
            session.flush()
            return row.id

    def staff(self, name: str, role: str = "agent") -> int:
        return self._add(Staff(email=f"{name.lower()}@fernhill.example", name=name, role=role))

    def customer(self, name: str) -> int:
        return self._add(Contact(display_name=name))

    def conversation(self, contact_id: int, channel: str, minutes: float, **fields: Any) -> int:
        return self._add(
            Conversation(
                contact_id=contact_id,
                channel=channel,
                thread_id=f"thread-{next(_ids)}",
                opened_at=self.at(minutes),
                last_message_at=self.at(minutes),
                **fields,
            )
        )

    def says(self, conversation_id: int, text: str, minutes: float, **understanding: Any) -> int:
        """An inbound customer message (intent, sentiment, action ... as keyword arguments)."""
        with session_scope(self.engine) as session:
            conversation = session.get(Conversation, conversation_id)
            message = Message(
                conversation_id=conversation_id,
                contact_id=understanding.pop("contact_id", conversation.contact_id),
                channel=conversation.channel,
                external_id=f"in-{next(_ids)}",
                direction="in",
                author_kind="customer",
                text=text,
                created_at=self.at(minutes),
                status="processed",
                **understanding,
            )
            session.add(message)
            session.flush()
            if self.encoder is not None:
                store_vector(session, message.id, self.encoder.encode([text])[0], encoder=self.encoder.name)
            return message.id

    def replies(
        self,
        conversation_id: int,
        minutes: float,
        *,
        to: int | None = None,
        staff_id: int | None = None,
        sent_minutes: float | None = None,
        text: str = "reply",
    ) -> int:
        """An outbound reply by the bot (no `staff_id`) or a person, written at `minutes` and sent at
        `sent_minutes` (default: at once; None sent time with `sent_minutes=-1` means not sent yet)."""
        with session_scope(self.engine) as session:
            conversation = session.get(Conversation, conversation_id)
            sent = sent_minutes is None or sent_minutes >= 0
            message = Message(
                conversation_id=conversation_id,
                contact_id=conversation.contact_id,
                channel=conversation.channel,
                direction="out",
                author_kind="staff" if staff_id is not None else "bot",
                staff_id=staff_id,
                text=text,
                reply_to_id=to,
                created_at=self.at(minutes),
                status="sent" if sent else "pending",
            )
            session.add(message)
            session.flush()
            sent_at = self.at(minutes if sent_minutes is None else sent_minutes) if sent else None
            session.add(
                Outbox(
                    idempotency_key=f"out-{message.id}",
                    message_id=message.id,
                    channel=conversation.channel,
                    thread_id=conversation.thread_id,
                    text=text,
                    status="sent" if sent else "pending",
                    sent_at=sent_at,
                    created_at=self.at(minutes),
                )
            )
            if sent and conversation.first_response_at is None:
                conversation.first_response_at = sent_at
                session.add(conversation)
            return message.id

    def _event(self, conversation_id: int, action: str, minutes: float, **fields: Any) -> None:
        self._add(
            AuditEvent(
                at=self.at(minutes),
                subject_type="conversation",
                subject_id=conversation_id,
                action=action,
                **fields,
            )
        )

    def escalates(self, conversation_id: int, minutes: float) -> None:
        """The bot hands the conversation to staff."""
        with session_scope(self.engine) as session:
            conversation = session.get(Conversation, conversation_id)
            conversation.state, conversation.escalated_at = "human", self.at(minutes)
            session.add(conversation)
        self._event(
            conversation_id,
            "conversation.escalated",
            minutes,
            actor_kind="bot",
            details={"from": "bot", "to": "human"},
        )

    def assigns(self, conversation_id: int, staff_id: int) -> None:
        with session_scope(self.engine) as session:
            conversation = session.get(Conversation, conversation_id)
            conversation.assignee_id = staff_id
            session.add(conversation)

    def hands_back(self, conversation_id: int, staff_id: int, minutes: float) -> None:
        with session_scope(self.engine) as session:
            conversation = session.get(Conversation, conversation_id)
            conversation.state, conversation.assignee_id = "bot", None
            session.add(conversation)
        self._event(
            conversation_id,
            "conversation.handed_back",
            minutes,
            actor_kind="staff",
            actor_id=staff_id,
            details={"from": "human", "to": "bot"},
        )

    def reopens(self, conversation_id: int, minutes: float, *, to: str) -> None:
        with session_scope(self.engine) as session:
            conversation = session.get(Conversation, conversation_id)
            conversation.state, conversation.resolved_at = to, None
            session.add(conversation)
        self._event(
            conversation_id,
            "conversation.reopened",
            minutes,
            actor_kind="customer",
            details={"from": "resolved", "to": to},
        )

    def resolves(self, conversation_id: int, minutes: float, *, staff_id: int | None = None) -> None:
        with session_scope(self.engine) as session:
            conversation = session.get(Conversation, conversation_id)
            conversation.state, conversation.resolved_at = "resolved", self.at(minutes)
            session.add(conversation)
        self._event(
            conversation_id,
            "conversation.resolved",
            minutes,
            actor_kind="staff" if staff_id is not None else "system",
            actor_id=staff_id,
            details={"from": "human", "to": "resolved"},
        )
