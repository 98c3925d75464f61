"""The ideas board: customers' suggestions, most voted first, moved through their statuses by marketers
(the customer hears about each move through a follow-up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import select

from bot.crm.audit import audit
from bot.crm.db import session_scope
from bot.crm.models import (
    Contact,
    Idea,
    Message,
)
from bot.engagement.followups import schedule_idea_followup
from bot.insights.response_log import FilterError

__all__ = ["IDEA_STATUSES", "IdeaNotFound", "IdeaView", "list_ideas", "set_idea_status"]

#: The ideas board's columns, in the order an idea moves through them.
IDEA_STATUSES = ("new", "under review", "planned", "done", "declined")


class IdeaNotFound(LookupError):
    """No idea has this id."""


@dataclass(frozen=True, slots=True)
class IdeaView:
    id: int
    text: str
    status: str
    votes: int
    contact_id: int
    contact_name: str | None
    message_id: int
    conversation_id: int
    created_at: datetime
    statuses: tuple[str, ...] = field(default=IDEA_STATUSES)


def list_ideas(engine: Engine, *, status: str | None = None, limit: int = 200) -> list[IdeaView]:
    """The ideas board: most votes first, then newest."""
    query = (
        select(Idea, Contact.display_name, Message.conversation_id)
        .join(Contact, Contact.id == Idea.contact_id)
        .join(Message, Message.id == Idea.message_id)
    )
    if status:
        query = query.where(Idea.status == status)
    with session_scope(engine, read_only=True) as session:
        found = session.exec(query.order_by(Idea.votes.desc(), Idea.id.desc()).limit(limit)).all()
        return [
            IdeaView(
                id=idea.id,
                text=idea.text,
                status=idea.status,
                votes=idea.votes,
                contact_id=idea.contact_id,
                contact_name=name,
                message_id=idea.message_id,
                conversation_id=conversation_id,
                created_at=idea.created_at,
            )
            for idea, name, conversation_id in found
        ]


def set_idea_status(engine: Engine, idea_id: int, status: str, *, staff_id: int) -> str:
    """Move an idea to `status` and audit who did it; returns the previous status.

    Raises:
        FilterError: `status` is not one of IDEA_STATUSES.
        IdeaNotFound: no idea has this id.
    """
    if status not in IDEA_STATUSES:
        raise FilterError(f"status: expected one of {', '.join(IDEA_STATUSES)}, got {status!r}")
    with session_scope(engine) as session:
        idea = session.get(Idea, idea_id)
        if idea is None:
            raise IdeaNotFound(f"there is no idea #{idea_id}")
        previous = idea.status
        if previous != status:
            idea.status = status
            session.add(idea)
            schedule_idea_followup(session, idea)  # the customer hears about it (bot/engagement/followups.py)
            audit(
                session,
                "idea.status_changed",
                "idea",
                idea_id,
                actor_kind="staff",
                actor_id=staff_id,
                details={"from": previous, "to": status},
            )
    return previous
