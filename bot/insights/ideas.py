"""The ideas board: customers' suggestions grouped into ideas (recorded by bot/crm/ideas.py wherever they
arrive), most voted first, moved through their statuses by marketers; every customer behind an idea hears
when its status changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import select

from bot.crm.audit import audit
from bot.crm.db import session_scope
from bot.crm.models import Contact, Idea, IdeaMention, Message
from bot.engagement.followups import schedule_idea_followup
from bot.insights.response_log import FilterError

__all__ = ["IDEA_STATUSES", "IdeaNotFound", "IdeaView", "list_ideas", "set_idea_status"]

#: The ideas board's columns, in the order an idea moves through them.
IDEA_STATUSES = ("new", "under review", "planned", "done", "declined")


class IdeaNotFound(LookupError):
    """No idea has this id."""


@dataclass(frozen=True, slots=True)
class IdeaView:
    """An idea on the board: its first words, votes (distinct customers) and every suggestion of it."""

    id: int
    text: str
    status: str
    votes: int
    contact_id: int
    contact_name: str | None
    message_id: int
    conversation_id: int
    created_at: datetime
    #: The other suggestions grouped into it, newest first.
    also_said: tuple[str, ...] = ()
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
        others: dict[int, list[str]] = {}
        for idea_id, message_id, text in session.exec(
            select(IdeaMention.idea_id, IdeaMention.message_id, Message.text)
            .join(Message, Message.id == IdeaMention.message_id)
            .where(IdeaMention.idea_id.in_([idea.id for idea, _, _ in found]))
            .order_by(IdeaMention.id.desc())
        ).all():
            first = next(idea.message_id for idea, _, _ in found if idea.id == idea_id)
            if message_id != first:
                others.setdefault(idea_id, []).append(text)
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
                also_said=tuple(others.get(idea.id, ())),
            )
            for idea, name, conversation_id in found
        ]


def set_idea_status(engine: Engine, idea_id: int, status: str, *, staff_id: int | None) -> str:
    """Move an idea to `status`, tell every customer behind it (a follow-up each, quoting their own words),
    and audit who did it; returns the previous status.

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
            latest: dict[int, int] = {}  # contact -> their newest suggestion of it
            for contact_id, message_id in session.exec(
                select(IdeaMention.contact_id, IdeaMention.message_id)
                .where(IdeaMention.idea_id == idea.id)
                .order_by(IdeaMention.id)
            ).all():
                latest[contact_id] = message_id
            for message_id in latest.values():
                schedule_idea_followup(session, idea, message_id=message_id)
            audit(
                session,
                "idea.status_changed",
                "idea",
                idea_id,
                actor_kind="staff" if staff_id is not None else "operator",
                actor_id=staff_id,
                details={"from": previous, "to": status, "customers_told": len(latest)},
            )
    return previous
