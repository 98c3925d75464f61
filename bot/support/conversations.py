"""What staff see and do with conversations: shared by the console, the JSON API and the Slack support
channel.

Reads build plain dataclasses (no ORM objects leave a session); actions run one transaction each with the
conversation row locked (`lock_conversation`), so two agents acting at once are serialised, not lost. Every
action is audited, which is also how the console's live updates notice it (bot/web/live.py).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, delete, func
from sqlmodel import Session, select

from bot.crm.audit import audit
from bot.crm.db import session_scope
from bot.crm.models import (
    AuthorKind,
    ConversationTag,
    Correction,
    Direction,
    Message,
    Note,
    Staff,
)
from bot.engagement.followups import schedule_resolution_followup
from bot.runtime.settings import FollowupSettings
from bot.support.customer import CustomerProfile, customer_profile
from bot.support.handoff import (
    add_note,
    assign_conversation,
    collision_warning,
    hand_back_to_bot,
    load_conversation,
    lock_conversation,
    resolve_conversation,
    staff_reply,
)
from bot.support.queue import PRIORITIES, ConversationSummary, summarise
from bot.support.staff import may

__all__ = [
    "ACTIONS",
    "ConversationDetail",
    "HistoryItem",
    "NoteView",
    "StaffView",
    "TagError",
    "add_tag",
    "apply_action",
    "conversation_detail",
    "known_tags",
    "list_staff",
    "messages_after",
    "note_on",
    "remove_tag",
    "reply_as_staff",
    "set_priority",
    "unanswered_message",
]

ACTIONS = ("take", "assign", "resolve", "hand_back")
#: A tag: lower-case letters, digits and dashes, as staff type them ("Late delivery" becomes "late-delivery").
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,29}$")


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
    abusive_score: float | None
    kb_article_id: str | None
    kb_score: float | None
    action: str | None
    reason: str | None
    # What staff corrected in the bot's reading: aspect -> the right value (bot/insights/corrections.py).
    corrections: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NoteView:
    id: int
    author: str
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ConversationDetail:
    """One conversation as the console shows it.

    Args:
        history: the contact's messages on every channel, oldest first.
        escalation: the message that made the bot hand the conversation over (pinned above the history).
        unanswered: the customer's message that nobody answered since (resolving warns about it), or None.
    """

    conversation: ConversationSummary
    thread_id: str
    customer: CustomerProfile
    history: list[HistoryItem]
    escalation: HistoryItem | None
    unanswered: HistoryItem | None
    notes: list[NoteView]
    last_message_id: int


class TagError(ValueError):
    """A tag that is not one; the message says what a tag may hold."""


def _history_item(
    message: Message, staff_names: dict[int, str], corrections: dict[str, str] | None = None
) -> HistoryItem:
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
        abusive_score=message.abusive_score,
        kb_article_id=message.kb_article_id,
        kb_score=message.kb_score,
        action=message.action,
        reason=message.reason,
        corrections=corrections or {},
    )


def _staff_names(session: Session) -> dict[int, str]:
    return {s.id: s.name or s.email for s in session.exec(select(Staff)).all()}


def _history(session: Session, messages: list[Message]) -> list[HistoryItem]:
    """History items of `messages` (in their order), with staff's corrections of each."""
    names = _staff_names(session)
    corrections: dict[int, dict[str, str]] = defaultdict(dict)
    inbound = [m.id for m in messages if m.direction == Direction.INBOUND]
    if inbound:
        for message_id, aspect, value in session.exec(
            select(Correction.message_id, Correction.aspect, Correction.value).where(
                Correction.message_id.in_(inbound)
            )
        ).all():
            corrections[message_id][aspect] = value
    return [_history_item(m, names, corrections.get(m.id)) for m in messages]


def _unanswered(history: list[HistoryItem], conversation_id: int, *, escalated: bool) -> HistoryItem | None:
    """The customer's latest message in the conversation if nobody answered it since. Once a person was
    asked in (`escalated`), only staff's messages answer: the bot's hand-over notice does not."""
    own = [item for item in history if item.conversation_id == conversation_id]
    asked = [i for i, item in enumerate(own) if item.author_kind == AuthorKind.CUSTOMER]
    if not asked:
        return None
    answers = {AuthorKind.STAFF} if escalated else {AuthorKind.STAFF, AuthorKind.BOT}
    if any(item.author_kind in answers for item in own[asked[-1] + 1 :]):
        return None
    return own[asked[-1]]


def conversation_detail(
    engine: Engine, conversation_id: int, *, staff_id: int | None = None, history_limit: int = 500
) -> ConversationDetail:
    """One conversation with its contact's whole history across every channel, the customer panel and the
    staff notes (`staff_id`: the viewer, for the unread count).

    Raises:
        ConversationNotFound: there is no such conversation.
    """
    with session_scope(engine, read_only=True) as session:
        conversation = load_conversation(session, conversation_id)
        messages = session.exec(
            select(Message)
            .where(Message.contact_id == conversation.contact_id)
            .order_by(Message.id.desc())
            .limit(history_limit)
        ).all()
        history = _history(session, list(reversed(messages)))
        summary = summarise(session, [conversation], staff_id=staff_id)[0]
        escalation = next((m for m in history if m.id == summary.escalation_message_id), None)
        names = _staff_names(session)
        notes = session.exec(
            select(Note).where(Note.conversation_id == conversation_id).order_by(Note.id)
        ).all()
        last_id = session.exec(
            select(func.max(Message.id)).where(Message.conversation_id == conversation_id)
        ).one()
        return ConversationDetail(
            conversation=summary,
            thread_id=conversation.thread_id,
            customer=customer_profile(session, conversation.contact_id),
            history=history,
            escalation=escalation,
            unanswered=_unanswered(history, conversation_id, escalated=conversation.escalated_at is not None),
            notes=[NoteView(n.id, names.get(n.staff_id, "staff"), n.text, n.created_at) for n in notes],
            last_message_id=last_id or 0,
        )


def unanswered_message(engine: Engine, conversation_id: int) -> HistoryItem | None:
    """The customer's latest message in the conversation if nobody answered it (resolving then warns).

    Raises:
        ConversationNotFound: there is no such conversation.
    """
    with session_scope(engine, read_only=True) as session:
        conversation = load_conversation(session, conversation_id)
        last_asked = session.exec(
            select(func.max(Message.id)).where(
                Message.conversation_id == conversation_id,
                Message.author_kind == AuthorKind.CUSTOMER,
            )
        ).one()
        if last_asked is None:
            return None
        since = session.exec(
            select(Message).where(Message.conversation_id == conversation_id, Message.id >= last_asked)
        ).all()
        return _unanswered(
            _history(session, sorted(since, key=lambda m: m.id)),
            conversation_id,
            escalated=conversation.escalated_at is not None,
        )


def messages_after(engine: Engine, conversation_id: int, after_id: int) -> tuple[str, list[HistoryItem]]:
    """The conversation's state and its contact's messages newer than `after_id` (for live updates).

    Raises:
        ConversationNotFound: there is no such conversation.
    """
    with session_scope(engine, read_only=True) as session:
        conversation = load_conversation(session, conversation_id)
        rows = session.exec(
            select(Message)
            .where(Message.contact_id == conversation.contact_id, Message.id > after_id)
            .order_by(Message.id)
            .limit(200)
        ).all()
        return conversation.state, _history(session, list(rows))


def list_staff(engine: Engine) -> list[StaffView]:
    """Active staff whose role works conversations: who a conversation can be assigned to."""
    with session_scope(engine, read_only=True) as session:
        rows = session.exec(select(Staff).where(Staff.active).order_by(Staff.name, Staff.email)).all()
        return [StaffView(s.id, s.email, s.name, s.role) for s in rows if may(s, "conversations.write")]


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
        ValueError: an unknown action, or an assignee who is not an active agent or admin.
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
            if assignee is not None and not may(assignee, "conversations.write"):
                raise ValueError(
                    f"{assignee.name or assignee.email} is a {assignee.role}, whose role does not work "
                    "conversations; assign it to an agent or an admin"
                )
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


def _tag(text: str) -> str:
    tag = re.sub(r"\s+", "-", text.strip().lower())
    if not TAG_PATTERN.match(tag):
        raise TagError(
            f"tag {text.strip()[:40]!r}: up to 30 letters, digits, '-' or '_', starting with a letter"
            " or digit"
        )
    return tag


def add_tag(engine: Engine, conversation_id: int, tag: str, *, staff_id: int) -> str:
    """Put `tag` on the conversation (normalised: "Late delivery" -> "late-delivery"); returns the tag.

    Raises:
        ConversationNotFound: there is no such conversation.
        TagError: not a tag.
    """
    tag = _tag(tag)
    with session_scope(engine) as session:
        conversation = lock_conversation(session, conversation_id)
        exists = session.exec(
            select(ConversationTag).where(
                ConversationTag.conversation_id == conversation.id, ConversationTag.tag == tag
            )
        ).first()
        if exists is None:
            session.add(ConversationTag(conversation_id=conversation.id, tag=tag, staff_id=staff_id))
            audit(
                session,
                "conversation.tagged",
                "conversation",
                conversation.id,
                actor_kind="staff",
                actor_id=staff_id,
                details={"tag": tag},
            )
    return tag


def remove_tag(engine: Engine, conversation_id: int, tag: str, *, staff_id: int) -> None:
    """Take `tag` off the conversation (nothing happens if it wasn't there).

    Raises:
        ConversationNotFound: there is no such conversation.
    """
    with session_scope(engine) as session:
        conversation = lock_conversation(session, conversation_id)
        removed = session.exec(
            delete(ConversationTag).where(
                ConversationTag.conversation_id == conversation.id, ConversationTag.tag == tag
            )
        )
        if removed.rowcount:
            audit(
                session,
                "conversation.untagged",
                "conversation",
                conversation.id,
                actor_kind="staff",
                actor_id=staff_id,
                details={"tag": tag},
            )


def known_tags(engine: Engine, limit: int = 200) -> list[str]:
    """The tags in use, most used first (the console suggests them)."""
    with session_scope(engine, read_only=True) as session:
        return list(
            session.exec(
                select(ConversationTag.tag)
                .group_by(ConversationTag.tag)
                .order_by(func.count().desc(), ConversationTag.tag)
                .limit(limit)
            ).all()
        )


def set_priority(engine: Engine, conversation_id: int, priority: int, *, staff_id: int) -> None:
    """Set the conversation's priority (`bot.support.queue.PRIORITIES`).

    Raises:
        ConversationNotFound: there is no such conversation.
        ValueError: not a priority.
    """
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(map(str, PRIORITIES))} ({priority!r} is not)")
    with session_scope(engine) as session:
        conversation = lock_conversation(session, conversation_id)
        if conversation.priority == priority:
            return
        previous, conversation.priority = conversation.priority, priority
        session.add(conversation)
        audit(
            session,
            "conversation.priority_set",
            "conversation",
            conversation.id,
            actor_kind="staff",
            actor_id=staff_id,
            details={"from": PRIORITIES.get(previous, previous), "to": PRIORITIES[priority]},
        )
