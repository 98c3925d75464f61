"""Canned replies: answers staff give again and again, saved by admins per team and inserted with their
shortcut ("/refund") while replying. Placeholders in braces are filled for the conversation at hand:
{customer_name}, {first_name}, {agent_name}, {brand}. Every change is audited."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session, or_, select

from bot.crm.audit import audit
from bot.crm.models import CannedReply, utcnow
from bot.support.staff import TEAM_PATTERN

__all__ = [
    "PLACEHOLDERS",
    "CannedError",
    "CannedView",
    "delete_canned",
    "fill_placeholders",
    "list_canned",
    "save_canned",
]

#: What a canned reply may say in braces, and what each becomes.
PLACEHOLDERS: dict[str, str] = {
    "customer_name": "the customer's name",
    "first_name": "the customer's first name",
    "agent_name": "your name",
    "brand": "the brand's name",
}
SHORTCUT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,29}$")
_BRACES = re.compile(r"\{([^{}]*)\}")
MAX_TEXT = 5000


class CannedError(ValueError):
    """A canned reply can't be saved as given; the message says what to change."""


@dataclass(frozen=True, slots=True)
class CannedView:
    id: int
    shortcut: str
    title: str
    text: str
    team: str


def _view(row: CannedReply) -> CannedView:
    return CannedView(row.id, row.shortcut, row.title, row.text, row.team)


def list_canned(session: Session, *, team: str | None = None, every_team: bool = False) -> list[CannedView]:
    """Canned replies by shortcut: `team`'s and everyone's (`every_team`: all of them, for admins)."""
    query = select(CannedReply).order_by(CannedReply.shortcut, CannedReply.team)
    if not every_team:
        query = query.where(or_(CannedReply.team == "", CannedReply.team == (team or "")))
    return [_view(row) for row in session.exec(query).all()]


def _checked(shortcut: str, title: str, text: str, team: str) -> tuple[str, str, str, str]:
    shortcut = shortcut.strip().lstrip("/").lower()
    if not SHORTCUT_PATTERN.match(shortcut):
        raise CannedError(
            "shortcut: up to 30 lower-case letters, digits, '-' or '_' (what staff type after '/')"
        )
    title, text, team = title.strip(), text.strip(), team.strip().lower()
    if not title or len(title) > 100:
        raise CannedError("title: 1 to 100 characters")
    if not text or len(text) > MAX_TEXT:
        raise CannedError(f"text: 1 to {MAX_TEXT} characters")
    unknown = sorted({name for name in _BRACES.findall(text) if name not in PLACEHOLDERS})
    if unknown:
        raise CannedError(
            f"text: unknown placeholder {{{unknown[0]}}}; use "
            + ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
        )
    if team and not TEAM_PATTERN.match(team):
        raise CannedError("team: up to 40 lower-case letters, digits, spaces, '-' or '_' (empty: everyone)")
    return shortcut, title, text, team


def save_canned(
    session: Session,
    *,
    shortcut: str,
    title: str,
    text: str,
    team: str = "",
    staff_id: int,
    canned_id: int | None = None,
) -> CannedView:
    """Add a canned reply, or change `canned_id`.

    Raises:
        CannedError: a malformed field, an unknown placeholder, a shortcut the team already uses, or no such
            reply.
    """
    shortcut, title, text, team = _checked(shortcut, title, text, team)
    clash = session.exec(
        select(CannedReply).where(CannedReply.team == team, CannedReply.shortcut == shortcut)
    ).first()
    if clash is not None and clash.id != canned_id:
        raise CannedError(f"shortcut: /{shortcut} is taken for {team or 'everyone'} ({clash.title!r})")
    if canned_id is None:
        row = CannedReply(shortcut=shortcut, title=title, text=text, team=team, created_by=staff_id)
    else:
        row = session.get(CannedReply, canned_id)
        if row is None:
            raise CannedError(f"canned reply {canned_id} does not exist")
        row.shortcut, row.title, row.text, row.team, row.updated_at = shortcut, title, text, team, utcnow()
    session.add(row)
    session.flush()
    audit(
        session,
        "canned.saved",
        "canned_reply",
        row.id,
        actor_kind="staff",
        actor_id=staff_id,
        details={"shortcut": shortcut, "team": team, "new": canned_id is None},
    )
    return _view(row)


def delete_canned(session: Session, canned_id: int, *, staff_id: int) -> None:
    """Remove a canned reply.

    Raises:
        CannedError: no such reply.
    """
    row = session.get(CannedReply, canned_id)
    if row is None:
        raise CannedError(f"canned reply {canned_id} does not exist")
    session.delete(row)
    audit(
        session,
        "canned.deleted",
        "canned_reply",
        canned_id,
        actor_kind="staff",
        actor_id=staff_id,
        details={"shortcut": row.shortcut, "team": row.team},
    )


#: How a canned reply addresses a customer whose name nobody knows ("Hi {first_name}" -> "Hi there").
UNKNOWN_NAME = "there"


def fill_placeholders(text: str, *, customer_name: str | None, agent_name: str, brand: str) -> str:
    """`text` with its placeholders filled (the values are inserted as they are, never read as placeholders).

    Args:
        customer_name: the name the customer goes by, None when unknown (then "there").
    """
    name = (customer_name or "").strip() or UNKNOWN_NAME
    values = {
        "customer_name": name,
        "first_name": name.split()[0],
        "agent_name": agent_name,
        "brand": brand,
    }
    return _BRACES.sub(lambda match: values.get(match.group(1), match.group(0)), text)
