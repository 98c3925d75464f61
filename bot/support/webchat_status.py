"""What a web chat customer sees of the people side: who has their conversation now (the bot, nobody yet, a
named person, nobody because it is resolved), and whether someone is typing, both ways.

The status is read from the conversation's state and assignee (bot/support/handoff.py decides them), so it is
the same after a reload and changes the moment staff take, resolve or hand back. Typing is a timestamp on the
web chat session, set by the customer's page and by the agent's console, shown while it is fresh
(`TYPING_SECONDS`) and newer than that side's last message (sending ends typing without another write).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import (
    AuthorKind,
    Conversation,
    ConversationState,
    Direction,
    Message,
    Staff,
    WebchatSession,
    utcnow,
)
from bot.support.handoff import load_conversation

__all__ = [
    "TYPING_SECONDS",
    "ChatStatus",
    "NotAWebChat",
    "TypingView",
    "chat_status",
    "conversation_typing",
    "first_name",
    "set_customer_typing",
    "set_staff_typing",
]

#: How long a "typing" signal lasts; pages repeat it every few seconds while someone types.
TYPING_SECONDS = 6.0

_REWRITE_AFTER = timedelta(seconds=2)

Status = Literal["bot", "waiting", "person", "resolved"]

_LABELS: dict[str, str] = {
    "bot": "Chatting with our assistant",
    "waiting": "Waiting for a person from our team",
    "resolved": "Resolved - write again any time",
}


class NotAWebChat(LookupError):
    """The conversation is not a web chat (or its session is gone): nobody there sees typing."""


@dataclass(frozen=True, slots=True)
class ChatStatus:
    """Who has a web chat conversation now, as its customer is told."""

    status: Status
    agent: str | None  # the assigned person's first name, while status is "person"
    agent_typing: bool
    state: str  # the conversation's state (ConversationState), "bot" before the first message

    @property
    def label(self) -> str:
        """The status in a few words for the customer ("With Ana")."""
        if self.status == "person":
            return f"With {self.agent}" if self.agent else "With a person from our team"
        return _LABELS[self.status]


@dataclass(frozen=True, slots=True)
class TypingView:
    """Who is typing in a conversation, for the agent's console."""

    customer_typing: bool
    staff_typing: str | None  # the name of the staff member typing, if any


def first_name(name: str | None) -> str | None:
    """How the customer is told who a staff member is: the first word of their name (None without one)."""
    return name.split()[0] if name and name.strip() else None


def _webchat_conversation(session: Session, thread_id: str) -> Conversation | None:
    return session.exec(
        select(Conversation)
        .where(Conversation.channel == "webchat", Conversation.thread_id == thread_id)
        .order_by(Conversation.id.desc())
    ).first()


def _last_message_at(session: Session, conversation_id: int, *, inbound: bool) -> datetime | None:
    query = select(func.max(Message.created_at)).where(Message.conversation_id == conversation_id)
    if inbound:
        query = query.where(Message.direction == Direction.INBOUND.value)
    else:
        query = query.where(
            Message.direction == Direction.OUTBOUND.value, Message.author_kind == AuthorKind.STAFF.value
        )
    return session.exec(query).one()


def _typing(at: datetime | None, last_message_at: datetime | None) -> bool:
    """Whether a typing signal at `at` still holds: fresh, and after that side's last message."""
    if at is None or utcnow() - at > timedelta(seconds=TYPING_SECONDS):
        return False
    return last_message_at is None or at > last_message_at


def chat_status(engine: Engine, thread_id: str) -> ChatStatus:
    """The status of the web chat conversation on `thread_id` ("bot" when there is none yet)."""
    with session_scope(engine, read_only=True) as session:
        conversation = _webchat_conversation(session, thread_id)
        if conversation is None:
            return ChatStatus("bot", None, agent_typing=False, state=ConversationState.BOT.value)
        state = conversation.state
        if state == ConversationState.RESOLVED:
            return ChatStatus("resolved", None, agent_typing=False, state=state)
        if state == ConversationState.BOT:
            status: Status = "bot"
            agent = None
        else:  # human, or snoozed: a person has it and answers later
            assignee = session.get(Staff, conversation.assignee_id) if conversation.assignee_id else None
            status = "person" if assignee is not None else "waiting"
            agent = first_name(assignee.name) if assignee is not None else None
        chat = session.get(WebchatSession, thread_id)
        typing = chat is not None and _typing(
            chat.staff_typing_at, _last_message_at(session, conversation.id, inbound=False)
        )
        return ChatStatus(status, agent, agent_typing=typing, state=state)


def set_customer_typing(engine: Engine, thread_id: str, *, typing: bool) -> None:
    """Record that the customer of the session on `thread_id` is typing (or stopped)."""
    with session_scope(engine) as session:
        chat = session.get(WebchatSession, thread_id)
        if chat is None:
            return
        now = utcnow()
        fresh = chat.customer_typing_at is not None and now - chat.customer_typing_at < _REWRITE_AFTER
        if typing and fresh:
            return  # said a moment ago: no write for every key press
        chat.customer_typing_at = now if typing else None
        session.add(chat)


def _chat_of(session: Session, conversation_id: int) -> WebchatSession:
    conversation = load_conversation(session, conversation_id)
    chat = session.get(WebchatSession, conversation.thread_id) if conversation.channel == "webchat" else None
    if chat is None:
        raise NotAWebChat(f"conversation {conversation_id} is not a web chat")
    return chat


def set_staff_typing(engine: Engine, conversation_id: int, *, staff_id: int, typing: bool) -> None:
    """Record that staff member `staff_id` is typing a reply in the web chat `conversation_id` (or stopped).

    Raises:
        ConversationNotFound: there is no such conversation.
        NotAWebChat: it is on another channel, where the customer sees no typing indicator.
    """
    with session_scope(engine) as session:
        chat = _chat_of(session, conversation_id)
        chat.staff_typing_at = utcnow() if typing else None
        chat.staff_typing_id = staff_id if typing else None
        session.add(chat)


def conversation_typing(engine: Engine, conversation_id: int) -> TypingView:
    """Who is typing in `conversation_id` now (nobody, for conversations on other channels).

    Raises:
        ConversationNotFound: there is no such conversation.
    """
    with session_scope(engine, read_only=True) as session:
        try:
            chat = _chat_of(session, conversation_id)
        except NotAWebChat:
            return TypingView(customer_typing=False, staff_typing=None)
        customer = _typing(chat.customer_typing_at, _last_message_at(session, conversation_id, inbound=True))
        staff = None
        if chat.staff_typing_id is not None and _typing(
            chat.staff_typing_at, _last_message_at(session, conversation_id, inbound=False)
        ):
            member = session.get(Staff, chat.staff_typing_id)
            staff = (member.name or member.email) if member is not None else None
        return TypingView(customer_typing=customer, staff_typing=staff)
