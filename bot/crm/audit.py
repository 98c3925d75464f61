"""The audit trail: who did what, when and why. Every state change, staff action, export, merge and erasure
is one `AuditEvent`, written by `audit` in the transaction of the change it records (so the two commit or
roll back together)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from bot.crm.models import AuditEvent

__all__ = ["audit"]


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
