"""The staff queue: conversations as staff see them in a list, with filters, what each is waiting for, and
what each staff member has not read yet.

A row shows the message that made the bot escalate (its words, sentiment and the bot's reason) beside the
customer's latest message, how long the customer has been waiting for a person (since their first message
after the last staff reply, counting from the escalation), the conversation's tags and priority, and how many
customer messages the viewer has not seen (`ConversationRead`, moved by `mark_read` when they open it or the
console shows them new messages live). Rows are built in a fixed handful of queries, however long the list.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, func, or_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from bot.crm.contacts import contact_names
from bot.crm.db import session_scope
from bot.crm.models import (
    AuthorKind,
    Conversation,
    ConversationRead,
    ConversationState,
    ConversationTag,
    Direction,
    Message,
    ModerationItem,
    Staff,
    utcnow,
)

__all__ = [
    "PRIORITIES",
    "ConversationSummary",
    "QueueCounts",
    "QueueFilter",
    "conversation_summary",
    "list_conversations",
    "mark_read",
    "queue_counts",
    "summarise",
]

#: A conversation's priority, as staff name it (escalations of angry customers start high; a conversation
#: nobody answered for `[followups] staff_reminder_hours` becomes urgent).
PRIORITIES: dict[int, str] = {0: "normal", 1: "high", 2: "urgent"}
STATES = tuple(state.value for state in ConversationState)
ASSIGNEE_CHOICES = ("all", "mine", "unassigned")
#: How many rows one page of the queue holds.
QUEUE_LIMIT = 100


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """Which conversations a queue shows.

    Args:
        state: bot | human | resolved | snoozed.
        channel: only this channel (None: all).
        assignee: "all", "mine", "unassigned", or a staff id (as text).
        tag: only conversations with this tag.
        priority: only this priority or higher (0 = any).
        waiting_minutes: only conversations whose customer has waited at least this long for a person.
    """

    state: str = ConversationState.HUMAN.value
    channel: str | None = None
    assignee: str = "all"
    tag: str | None = None
    priority: int = 0
    waiting_minutes: int = 0

    def query_string(self) -> str:
        """The filter as the console's query string (only what differs from the defaults)."""
        from urllib.parse import urlencode

        default = QueueFilter()
        pairs = [
            (name, value)
            for name, value in (
                ("state", self.state),
                ("channel", self.channel or ""),
                ("assignee", self.assignee),
                ("tag", self.tag or ""),
                ("priority", self.priority),
                ("waiting", self.waiting_minutes),
            )
            if value not in ("", None) and value != _default_of(default, name)
        ]
        return urlencode(pairs)


def _default_of(default: QueueFilter, name: str) -> object:
    return {
        "state": default.state,
        "assignee": default.assignee,
        "priority": default.priority,
        "waiting": default.waiting_minutes,
    }.get(name, "")


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """One conversation as a queue row shows it."""

    id: int
    channel: str
    state: str
    contact_id: int
    contact_name: str
    assignee: str | None
    assignee_id: int | None
    reason: str | None
    priority: int
    escalated_at: datetime | None
    last_message_at: datetime
    # The customer's latest message.
    last_text: str | None
    last_sentiment: str | None
    # The message that made the bot escalate, and its reading (None when staff took it over unasked).
    escalation_message_id: int | None
    escalation_text: str | None
    escalation_sentiment: str | None
    # When the customer started waiting for a person (None: nobody is waiting, staff answered last).
    waiting_since: datetime | None
    snoozed_until: datetime | None
    tags: tuple[str, ...]
    # Customer messages the viewing staff member has not seen (0 without a viewer).
    unread: int

    @property
    def waiting_seconds(self) -> float:
        """How long the customer has waited for a person (0 when staff answered last)."""
        if self.waiting_since is None:
            return 0.0
        return max(0.0, (utcnow() - self.waiting_since).total_seconds())

    @property
    def priority_label(self) -> str:
        return PRIORITIES.get(self.priority, str(self.priority))


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """What the console's navigation and tab title show, for one staff member.

    Args:
        waiting: conversations with staff (state human).
        mine: of those, assigned to the viewer.
        unread: of those assigned to the viewer or to nobody, how many have customer messages they haven't
            seen.
        moderation: messages waiting in the moderation queue.
        newest_unread: the newest unseen customer message among `unread`'s conversations, as
            (conversation id, customer name, text), for a desktop notification.
    """

    waiting: int
    mine: int
    unread: int
    moderation: int
    newest_unread: tuple[int, str, str] | None


def _filtered(query, filters: QueueFilter, staff_id: int | None, now: datetime):
    if filters.state:
        query = query.where(Conversation.state == filters.state)
    if filters.channel:
        query = query.where(Conversation.channel == filters.channel)
    if filters.assignee == "mine":
        query = query.where(Conversation.assignee_id == (staff_id if staff_id is not None else -1))
    elif filters.assignee == "unassigned":
        query = query.where(Conversation.assignee_id.is_(None))
    elif filters.assignee.isdigit():
        query = query.where(Conversation.assignee_id == int(filters.assignee))
    if filters.tag:
        tagged = select(ConversationTag.conversation_id).where(ConversationTag.tag == filters.tag)
        query = query.where(Conversation.id.in_(tagged))
    if filters.priority:
        query = query.where(Conversation.priority >= filters.priority)
    if filters.waiting_minutes:
        # A customer waits since a message after the escalation, so an escalation younger than the wait
        # can't qualify; the exact wait is checked on the rows.
        cutoff = now - timedelta(minutes=filters.waiting_minutes)
        query = query.where(func.coalesce(Conversation.escalated_at, Conversation.last_message_at) <= cutoff)
    return query


def list_conversations(
    engine: Engine,
    filters: QueueFilter | None = None,
    *,
    staff_id: int | None = None,
    limit: int = QUEUE_LIMIT,
) -> list[ConversationSummary]:
    """The conversations `filters` select: with staff, the highest priority first and then the longest
    waiting; otherwise the most recently active first.

    Args:
        staff_id: the viewer ("mine", and the unread counts).
    """
    filters = filters or QueueFilter()
    now = utcnow()
    with session_scope(engine, read_only=True) as session:
        query = _filtered(select(Conversation), filters, staff_id, now)
        if filters.state == ConversationState.HUMAN:
            query = query.order_by(
                Conversation.priority.desc(),
                func.coalesce(Conversation.escalated_at, Conversation.last_message_at),
                Conversation.id,
            )
        elif filters.state == ConversationState.SNOOZED:
            query = query.order_by(Conversation.snoozed_until, Conversation.id)
        else:
            query = query.order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
        fetch = limit * 5 if filters.waiting_minutes else limit
        rows = summarise(session, session.exec(query.limit(fetch)).all(), staff_id=staff_id)
    if filters.waiting_minutes:
        wait = filters.waiting_minutes * 60
        rows = [row for row in rows if row.waiting_seconds >= wait]
    if filters.state == ConversationState.HUMAN:
        # Most urgent first, then whoever has waited longest; answered conversations after the waiting ones.
        rows.sort(key=lambda row: (-row.priority, row.waiting_since is None, row.waiting_since or now))
    return rows[:limit]


def conversation_summary(
    engine: Engine, conversation_id: int, *, staff_id: int | None = None
) -> ConversationSummary | None:
    """One conversation's queue row, or None if there is no such conversation."""
    with session_scope(engine, read_only=True) as session:
        conversation = session.get(Conversation, conversation_id)
        return summarise(session, [conversation], staff_id=staff_id)[0] if conversation else None


def summarise(
    session: Session, conversations: Sequence[Conversation], *, staff_id: int | None = None
) -> list[ConversationSummary]:
    """Queue rows for `conversations` (in their order), read in a fixed number of queries."""
    if not conversations:
        return []
    ids = [c.id for c in conversations]
    names = contact_names(session, [c.contact_id for c in conversations])
    assignee_ids = {c.assignee_id for c in conversations if c.assignee_id is not None}
    staff = (
        {s.id: s.name or s.email for s in session.exec(select(Staff).where(Staff.id.in_(assignee_ids))).all()}
        if assignee_ids
        else {}
    )
    latest = _latest_inbound(session, ids)
    escalating = _escalating_messages(session, conversations)
    waiting = _waiting_since(session, conversations, escalating)
    tags: dict[int, list[str]] = defaultdict(list)
    for conversation_id, tag in session.exec(
        select(ConversationTag.conversation_id, ConversationTag.tag)
        .where(ConversationTag.conversation_id.in_(ids))
        .order_by(ConversationTag.tag)
    ).all():
        tags[conversation_id].append(tag)
    unread = _unread(session, ids, staff_id) if staff_id is not None else {}
    rows = []
    for c in conversations:
        last, first = latest.get(c.id), escalating.get(c.id)
        rows.append(
            ConversationSummary(
                id=c.id,
                channel=c.channel,
                state=c.state,
                contact_id=c.contact_id,
                contact_name=names[c.contact_id],
                assignee=staff.get(c.assignee_id),
                assignee_id=c.assignee_id,
                reason=c.escalation_reason,
                priority=c.priority,
                escalated_at=c.escalated_at,
                last_message_at=c.last_message_at,
                last_text=last.text if last else None,
                last_sentiment=last.sentiment if last else None,
                escalation_message_id=first.id if first else None,
                escalation_text=first.text if first else None,
                escalation_sentiment=first.sentiment if first else None,
                waiting_since=waiting.get(c.id),
                snoozed_until=c.snoozed_until,
                tags=tuple(tags[c.id]),
                unread=unread.get(c.id, 0),
            )
        )
    return rows


def _latest_inbound(session: Session, ids: list[int]) -> dict[int, Message]:
    newest = (
        select(func.max(Message.id))
        .where(Message.conversation_id.in_(ids), Message.direction == Direction.INBOUND.value)
        .group_by(Message.conversation_id)
    )
    return {m.conversation_id: m for m in session.exec(select(Message).where(Message.id.in_(newest))).all()}


def _escalating_messages(session: Session, conversations: Sequence[Conversation]) -> dict[int, Message]:
    """The message that made the bot escalate each conversation; for conversations escalated before that
    was recorded, the last customer message before the escalation."""
    known = {c.id: c.escalation_message_id for c in conversations if c.escalation_message_id}
    found = {}
    if known:
        found = {
            m.conversation_id: m
            for m in session.exec(select(Message).where(Message.id.in_(known.values()))).all()
        }
    for c in conversations:
        if c.id in known or c.escalated_at is None or not c.escalation_reason:
            continue
        message = session.exec(
            select(Message)
            .where(
                Message.conversation_id == c.id,
                Message.direction == Direction.INBOUND.value,
                Message.created_at <= c.escalated_at,
            )
            .order_by(Message.id.desc())
        ).first()
        if message is not None:
            found[c.id] = message
    return found


def _waiting_since(
    session: Session, conversations: Sequence[Conversation], escalating: dict[int, Message]
) -> dict[int, datetime]:
    """Per conversation with staff: when its customer started waiting for a person, i.e. the first customer
    message after the last staff reply; before any staff reply, the escalating message; without one, the
    first customer message after the bot's last reply (the bot's acknowledgement of an escalation is not an
    answer). None: nobody is waiting."""
    waiting = [c for c in conversations if c.state in (ConversationState.HUMAN, ConversationState.SNOOZED)]
    if not waiting:
        return {}
    ids = [c.id for c in waiting]
    last_by_author: dict[tuple[int, str], int] = {
        (conversation_id, author): message_id
        for conversation_id, author, message_id in session.exec(
            select(Message.conversation_id, Message.author_kind, func.max(Message.id))
            .where(Message.conversation_id.in_(ids), Message.direction == Direction.OUTBOUND.value)
            .group_by(Message.conversation_id, Message.author_kind)
        ).all()
    }
    floors = {}
    for c in waiting:
        staff_reply = last_by_author.get((c.id, AuthorKind.STAFF.value))
        if staff_reply:
            floors[c.id] = staff_reply
        elif c.id in escalating:
            floors[c.id] = escalating[c.id].id - 1
        else:
            floors[c.id] = last_by_author.get((c.id, AuthorKind.BOT.value), 0)
    since: dict[int, datetime] = {}
    for conversation_id, message_id, created_at in session.exec(
        select(Message.conversation_id, Message.id, Message.created_at)
        .where(
            Message.conversation_id.in_(ids),
            Message.direction == Direction.INBOUND.value,
            Message.id > min(floors.values()),
        )
        .order_by(Message.id)
    ).all():
        if message_id > floors[conversation_id] and conversation_id not in since:
            since[conversation_id] = created_at
    return since


def _unread(session: Session, ids: list[int], staff_id: int) -> dict[int, int]:
    read = and_(
        ConversationRead.conversation_id == Message.conversation_id, ConversationRead.staff_id == staff_id
    )
    return dict(
        session.exec(
            select(Message.conversation_id, func.count(Message.id))
            .join(ConversationRead, read, isouter=True)
            .where(
                Message.conversation_id.in_(ids),
                Message.direction == Direction.INBOUND.value,
                Message.id > func.coalesce(ConversationRead.last_read_message_id, 0),
            )
            .group_by(Message.conversation_id)
        ).all()
    )


def queue_counts(engine: Engine, staff_id: int) -> QueueCounts:
    """The counts the console shows in its navigation and tab title for `staff_id` (see `QueueCounts`)."""
    human = Conversation.state == ConversationState.HUMAN.value
    with session_scope(engine, read_only=True) as session:
        waiting = session.exec(select(func.count(Conversation.id)).where(human)).one()
        mine = session.exec(
            select(func.count(Conversation.id)).where(human, Conversation.assignee_id == staff_id)
        ).one()
        moderation = session.exec(
            select(func.count(ModerationItem.id)).where(ModerationItem.status == "open")
        ).one()
        read = and_(
            ConversationRead.conversation_id == Conversation.id, ConversationRead.staff_id == staff_id
        )
        unread_rows = session.exec(
            select(Conversation.id, Conversation.contact_id, func.max(Message.id))
            .join(Message, Message.conversation_id == Conversation.id)
            .join(ConversationRead, read, isouter=True)
            .where(
                human,
                or_(Conversation.assignee_id.is_(None), Conversation.assignee_id == staff_id),
                Message.direction == Direction.INBOUND.value,
                Message.id > func.coalesce(ConversationRead.last_read_message_id, 0),
            )
            .group_by(Conversation.id, Conversation.contact_id)
        ).all()
        newest = None
        if unread_rows:
            conversation_id, contact_id, message_id = max(unread_rows, key=lambda row: row[2])
            text = session.get(Message, message_id).text
            newest = (conversation_id, contact_names(session, [contact_id])[contact_id], text)
    return QueueCounts(
        waiting=waiting, mine=mine, unread=len(unread_rows), moderation=moderation, newest_unread=newest
    )


def mark_read(engine: Engine, *, staff_id: int, conversation_id: int, message_id: int) -> None:
    """`staff_id` has seen `conversation_id` up to `message_id` (a marker only ever moves forward)."""
    insert = postgresql_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(ConversationRead).values(
        staff_id=staff_id, conversation_id=conversation_id, last_read_message_id=message_id, read_at=utcnow()
    )
    statement = statement.on_conflict_do_update(
        index_elements=["staff_id", "conversation_id"],
        set_={
            "last_read_message_id": statement.excluded.last_read_message_id,
            "read_at": statement.excluded.read_at,
        },
        where=ConversationRead.last_read_message_id < statement.excluded.last_read_message_id,
    )
    with session_scope(engine) as session:
        session.exec(statement)
