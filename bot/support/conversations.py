"""What staff see and do with conversations: shared by the console, the JSON API and the Slack support
channel.

Reads build plain dataclasses (no ORM objects leave a session); actions run one transaction each with the
conversation row locked (`lock_conversation`), so two agents acting at once are serialised, not lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import (
    Contact,
    Conversation,
    ConversationState,
    Direction,
    Identity,
    Message,
    Note,
    Staff,
    utcnow,
)
from bot.engagement.followups import schedule_resolution_followup
from bot.runtime.settings import FollowupSettings
from bot.support.handoff import (
    ConversationNotFound,
    add_note,
    assign_conversation,
    collision_warning,
    hand_back_to_bot,
    lock_conversation,
    resolve_conversation,
    staff_reply,
)

__all__ = [
    "ConversationDetail",
    "ConversationSummary",
    "HistoryItem",
    "NoteView",
    "StaffView",
    "apply_action",
    "conversation_detail",
    "list_conversations",
    "list_staff",
    "messages_after",
    "reply_as_staff",
]

ACTIONS = ("take", "assign", "resolve", "hand_back")


@dataclass(frozen=True, slots=True)
class StaffView:
    id: int
    email: str
    name: str | None
    role: str

    @property
    def label(self) -> str:
        return self.name or self.email


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    id: int
    channel: str
    state: str
    contact_id: int
    contact_name: str | None
    assignee: str | None
    assignee_id: int | None
    reason: str | None
    priority: int
    escalated_at: datetime | None
    last_message_at: datetime
    last_text: str | None
    last_sentiment: str | None

    @property
    def waiting_seconds(self) -> float:
        since = self.escalated_at or self.last_message_at
        return max(0.0, (utcnow() - since).total_seconds())


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One message in a contact's history, from any of their conversations."""

    id: int
    conversation_id: int
    channel: str
    direction: str
    author_kind: str
    author: str | None
    text: str
    created_at: datetime
    status: str
    intent: str | None
    intent_confidence: float | None
    sentiment: str | None
    abusive: bool | None
    kb_article_id: str | None
    kb_score: float | None
    action: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class NoteView:
    id: int
    author: str
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ConversationDetail:
    conversation: ConversationSummary
    thread_id: str
    contact_email: str | None
    ladder_stage: str
    identities: list[tuple[str, str]]  # (channel, handle or id)
    history: list[HistoryItem]
    notes: list[NoteView]
    last_message_id: int


def _staff_label(staff: Staff | None) -> str | None:
    return (staff.name or staff.email) if staff is not None else None


def _summary(session: Session, conversation: Conversation) -> ConversationSummary:
    contact = session.get(Contact, conversation.contact_id)
    last_inbound = session.exec(
        select(Message)
        .where(Message.conversation_id == conversation.id, Message.direction == Direction.INBOUND.value)
        .order_by(Message.id.desc())
    ).first()
    assignee = session.get(Staff, conversation.assignee_id) if conversation.assignee_id else None
    return ConversationSummary(
        id=conversation.id,
        channel=conversation.channel,
        state=conversation.state,
        contact_id=conversation.contact_id,
        contact_name=contact.display_name if contact else None,
        assignee=_staff_label(assignee),
        assignee_id=conversation.assignee_id,
        reason=conversation.escalation_reason,
        priority=conversation.priority,
        escalated_at=conversation.escalated_at,
        last_message_at=conversation.last_message_at,
        last_text=last_inbound.text if last_inbound else None,
        last_sentiment=last_inbound.sentiment if last_inbound else None,
    )


def list_conversations(
    engine: Engine,
    *,
    state: str | None = ConversationState.HUMAN,
    channel: str | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
    limit: int = 100,
) -> list[ConversationSummary]:
    """Conversations, the escalated ones oldest-waiting first (higher priority before equal waits)."""
    with session_scope(engine, read_only=True) as session:
        query = select(Conversation)
        if state:
            query = query.where(Conversation.state == state)
        if channel:
            query = query.where(Conversation.channel == channel)
        if assignee_id is not None:
            query = query.where(Conversation.assignee_id == assignee_id)
        if unassigned:
            query = query.where(Conversation.assignee_id.is_(None))
        if state == ConversationState.HUMAN:
            query = query.order_by(
                Conversation.priority.desc(),
                func.coalesce(Conversation.escalated_at, Conversation.last_message_at),
                Conversation.id,
            )
        else:
            query = query.order_by(Conversation.last_message_at.desc())
        return [_summary(session, c) for c in session.exec(query.limit(limit)).all()]


def _history_item(message: Message, staff_names: dict[int, str]) -> HistoryItem:
    if message.author_kind == "staff":
        author = staff_names.get(message.staff_id, "staff")
    else:
        author = message.author_kind
    return HistoryItem(
        id=message.id,
        conversation_id=message.conversation_id,
        channel=message.channel,
        direction=message.direction,
        author_kind=message.author_kind,
        author=author,
        text=message.text,
        created_at=message.created_at,
        status=message.status,
        intent=message.intent,
        intent_confidence=message.intent_confidence,
        sentiment=message.sentiment,
        abusive=message.abusive,
        kb_article_id=message.kb_article_id,
        kb_score=message.kb_score,
        action=message.action,
        reason=message.reason,
    )


def _staff_names(session: Session) -> dict[int, str]:
    return {s.id: s.name or s.email for s in session.exec(select(Staff)).all()}


def conversation_detail(
    engine: Engine, conversation_id: int, *, history_limit: int = 500
) -> ConversationDetail:
    """One conversation with its contact's whole history across every channel, and the staff notes.

    Raises:
        ConversationNotFound: there is no such conversation.
    """
    with session_scope(engine, read_only=True) as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None:
            raise ConversationNotFound(f"conversation {conversation_id} does not exist")
        contact = session.get(Contact, conversation.contact_id)
        identities = session.exec(select(Identity).where(Identity.contact_id == contact.id)).all()
        names = _staff_names(session)
        messages = session.exec(
            select(Message)
            .where(Message.contact_id == contact.id)
            .order_by(Message.id.desc())
            .limit(history_limit)
        ).all()
        notes = session.exec(
            select(Note).where(Note.conversation_id == conversation_id).order_by(Note.id)
        ).all()
        last_id = session.exec(
            select(func.max(Message.id)).where(Message.conversation_id == conversation_id)
        ).one()
        return ConversationDetail(
            conversation=_summary(session, conversation),
            thread_id=conversation.thread_id,
            contact_email=contact.email,
            ladder_stage=contact.ladder_stage,
            identities=[(i.channel, i.handle or i.display_name or i.external_user_id) for i in identities],
            history=[_history_item(m, names) for m in reversed(messages)],
            notes=[NoteView(n.id, names.get(n.staff_id, "staff"), n.text, n.created_at) for n in notes],
            last_message_id=last_id or 0,
        )


def messages_after(engine: Engine, conversation_id: int, after_id: int) -> tuple[str, list[HistoryItem]]:
    """The conversation's state and its contact's messages newer than `after_id` (for live updates).

    Raises:
        ConversationNotFound: there is no such conversation.
    """
    with session_scope(engine, read_only=True) as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None:
            raise ConversationNotFound(f"conversation {conversation_id} does not exist")
        names = _staff_names(session)
        rows = session.exec(
            select(Message)
            .where(Message.contact_id == conversation.contact_id, Message.id > after_id)
            .order_by(Message.id)
            .limit(200)
        ).all()
        return conversation.state, [_history_item(m, names) for m in rows]


def list_staff(engine: Engine) -> list[StaffView]:
    """Active staff, for "assign to"."""
    with session_scope(engine, read_only=True) as session:
        rows = session.exec(select(Staff).where(Staff.active).order_by(Staff.email)).all()
        return [StaffView(s.id, s.email, s.name, s.role) for s in rows]


def reply_as_staff(
    engine: Engine,
    conversation_id: int,
    *,
    staff_id: int,
    text: str,
    idempotency_key: str,
    seen_message_id: int | None = None,
    seen_assignee_id: int | None = None,
    force: bool = False,
) -> tuple[int | None, str | None]:
    """Queue a staff reply; returns (message id, None), or (None, warning) when something changed since the
    agent loaded the conversation (`seen_*`) and `force` is not set: the reply is then not queued.

    Raises:
        ConversationNotFound: there is no such conversation.
    """
    with session_scope(engine) as session:
        conversation = lock_conversation(session, conversation_id)
        staff = session.get(Staff, staff_id)
        if seen_message_id is not None and not force:
            warning = collision_warning(
                session,
                conversation,
                staff=staff,
                seen_message_id=seen_message_id,
                seen_assignee_id=seen_assignee_id,
            )
            if warning:
                return None, warning
        message = staff_reply(session, conversation, staff=staff, text=text, idempotency_key=idempotency_key)
        return message.id, None


def apply_action(
    engine: Engine,
    conversation_id: int,
    action: str,
    *,
    staff_id: int,
    assignee_id: int | None = None,
    followup_settings: FollowupSettings | None = None,
) -> str:
    """Take, assign, resolve or hand back a conversation; returns its new state. Resolving a complaint
    schedules its "did that fix it?" follow-up (`followup_settings`: the delays; default settings if None).

    Raises:
        ConversationNotFound: there is no such conversation.
        ValueError: an unknown action or assignee.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    with session_scope(engine) as session:
        conversation = lock_conversation(session, conversation_id)
        actor = session.get(Staff, staff_id)
        if action == "take":
            assign_conversation(session, conversation, assignee=actor, actor=actor)
        elif action == "assign":
            assignee = session.get(Staff, assignee_id) if assignee_id is not None else None
            if assignee_id is not None and (assignee is None or not assignee.active):
                raise ValueError(f"no active staff member has id {assignee_id}")
            assign_conversation(session, conversation, assignee=assignee, actor=actor)
        elif action == "resolve":
            resolve_conversation(session, conversation, actor=actor)
            schedule_resolution_followup(session, conversation, settings=followup_settings)
        else:
            hand_back_to_bot(session, conversation, actor=actor)
        return conversation.state


def note_on(engine: Engine, conversation_id: int, *, staff_id: int, text: str) -> None:
    """Add an internal note.

    Raises:
        ConversationNotFound: there is no such conversation.
    """
    with session_scope(engine) as session:
        conversation = lock_conversation(session, conversation_id)
        add_note(session, conversation, staff=session.get(Staff, staff_id), text=text)
