"""The audit trail: who did what, when and why. Every state change, staff action, export, merge and erasure
is one `AuditEvent`, written by `audit` in the transaction of the change it records (so the two commit or
roll back together); `describe_event` says one in a sentence for the admins' audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.crm.models import AuditEvent

__all__ = ["audit", "describe_event"]


def audit(
    session: Session,
    action: str,
    subject_type: str,
    subject_id: int | None = None,
    *,
    actor_kind: str,
    actor_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record, in the caller's transaction, that `actor_kind` (`actor_id`) did `action` to a subject.

    Args:
        action: what happened, as "<subject>.<verb>" (e.g. "conversation.resolved").
        subject_type, subject_id: what it happened to ("conversation", 12); the id may be None for
            actions on no single row (a retention run, an export).
        actor_kind: who did it: "system", "bot", "staff", "customer" or "operator" (the command line).
        actor_id: the staff member's id when staff did it.
        details: what else explains it (JSON-ready); an empty dict is stored as none.
    """
    session.add(
        AuditEvent(
            actor_kind=actor_kind,
            actor_id=actor_id,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            details=details or None,
        )
    )


ACTORS = {
    "bot": "The bot",
    "customer": "The customer",
    "system": "socialbot",
    "operator": "An operator (command line)",
}
# What an action says, with the actor, the subject and the details' values in braces.
SENTENCES = {
    "conversation.escalated": "{actor} handed {subject} to staff: {reason}",
    "conversation.assigned": "{actor} assigned {subject} to {assignee_to}",
    "conversation.resolved": "{actor} resolved {subject}",
    "conversation.reopened": "{actor} wrote again in {subject}, which reopened (now {to})",
    "conversation.handed_back": "{actor} handed {subject} back to the bot",
    "conversation.staff_replied": "{actor} replied in {subject}",
    "conversation.snoozed": "{actor} snoozed {subject} until {until}",
    "conversation.woken": "{subject} came back to the queue: {why}",
    "conversation.tagged": '{actor} tagged {subject} "{tag}"',
    "conversation.untagged": '{actor} removed the tag "{tag}" from {subject}',
    "conversation.priority_set": "{actor} changed the priority of {subject} from {from} to {to}",
    "conversation.rated": "{actor} rated {subject} {csat}/5",
    "moderation.fine": "{actor} marked {subject} as not abuse; the bot answered it",
    "moderation.hidden": "{actor} removed {subject} on its platform",
    "moderation.needs_human": "{actor} asked for {subject} to be removed by hand",
    "contact.blocked": "{actor} blocked {subject} from bot replies until {until}",
    "message.corrected": "{actor} corrected the bot's reading of {subject}: {aspect} {from} -> {to}",
    "canned.saved": "{actor} saved the canned reply /{shortcut}",
    "canned.deleted": "{actor} deleted the canned reply /{shortcut}",
    "staff.created": "{actor} added {email} as {role}",
    "staff.team_set": "{actor} put {subject} in team {team}",
    "audit.exported": "{actor} exported the audit log",
}


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _value(key: str, value: Any, staff_names: dict[int, str]) -> str:
    if key.startswith("assignee") and (value is None or isinstance(value, int)):
        return staff_names.get(value, f"staff #{value}") if value is not None else "nobody (kept with staff)"
    if isinstance(value, str) and len(value) >= 16 and value[4:5] == "-" and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            return value
    return "none" if value is None else str(value)


def describe_event(
    *,
    action: str,
    actor_kind: str,
    actor_id: int | None,
    subject_type: str,
    subject_id: int | None,
    details: dict[str, Any] | None,
    staff_names: dict[int, str],
) -> str:
    """One event as a sentence ("Ana assigned conversation #12 to Ben"); `staff_names` names staff ids."""
    if actor_kind == "staff":
        actor = staff_names.get(actor_id, f"staff #{actor_id}")
    else:
        actor = ACTORS.get(actor_kind, actor_kind)
    if subject_type == "staff" and subject_id in staff_names:
        subject = staff_names[subject_id]
    else:
        subject = subject_type.replace("_", " ") + (f" #{subject_id}" if subject_id is not None else "")
    values = _Blank({key: _value(key, value, staff_names) for key, value in (details or {}).items()})
    values.update(actor=actor, subject=subject)
    sentence = SENTENCES.get(action)
    if sentence is None:
        verb = action.split(".", 1)[-1].replace("_", " ")
        sentence = "{actor}: {subject} " + verb
    return sentence.format_map(values)
