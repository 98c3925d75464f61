"""Staff accounts: passwords (Argon2id), API tokens, roles, logging in (limited and audited) and out.

A password is stored only as its Argon2id hash; an API token only as its SHA-256 (tokens are long random
strings, so a fast hash is enough and lets a request be authenticated with one indexed lookup).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.crm.audit import audit
from bot.crm.db import session_scope
from bot.crm.models import Staff, StaffRole
from bot.crm.rate_limits import Limit, give_back, take
from bot.runtime.settings import ConsoleSettings

__all__ = [
    "LoginOutcome",
    "StaffError",
    "authenticate_password",
    "authenticate_token",
    "create_staff",
    "end_sessions",
    "issue_api_token",
    "log_in",
    "login_limits",
    "may",
    "set_password",
    "set_team",
]

log = logging.getLogger("socialbot.staff")
_hasher = PasswordHasher()
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TEAM_PATTERN = re.compile(r"^[a-z0-9][a-z0-9 _-]{0,39}$")
MIN_PASSWORD_LENGTH = 10
# Verified against when the e-mail is unknown, so a login takes as long whether or not the account exists.
_DUMMY_HASH = _hasher.hash("socialbot-no-such-account")

#: What each role may do. Agents work conversations; marketers read the log and dashboards and move ideas
#: through the ideas board; admins do all, and add articles to the knowledge base.
PERMISSIONS: dict[str, frozenset[str]] = {
    StaffRole.AGENT: frozenset({"conversations.read", "conversations.write"}),
    StaffRole.MARKETER: frozenset({"log.read", "dashboards.read", "ideas.write"}),
    StaffRole.ADMIN: frozenset(
        {
            "conversations.read",
            "conversations.write",
            "log.read",
            "dashboards.read",
            "ideas.write",
            "knowledge.write",
            "staff.manage",
        }
    ),
}


class StaffError(Exception):
    """A staff account can't be created or used as asked; the message says why."""


def may(staff: Staff, permission: str) -> bool:
    """Whether `staff`'s role grants `permission` (e.g. "conversations.write")."""
    return staff.active and permission in PERMISSIONS.get(staff.role, frozenset())


def create_staff(session: Session, email: str, *, role: str, password: str, name: str | None = None) -> Staff:
    """Create a staff account.

    Raises:
        StaffError: the e-mail is malformed or taken, the role unknown, or the password too short.
    """
    email = email.strip().lower()
    if not EMAIL_PATTERN.match(email):
        raise StaffError(f"{email!r} is not an e-mail address")
    if role not in set(StaffRole):
        raise StaffError(f"unknown role {role!r}; choose one of {', '.join(StaffRole)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if session.exec(select(Staff).where(Staff.email == email)).first() is not None:
        raise StaffError(f"there is already a staff account for {email}")
    staff = Staff(email=email, name=name, role=role, password_hash=_hasher.hash(password))
    session.add(staff)
    session.flush()
    audit(
        session,
        "staff.created",
        "staff",
        staff.id,
        actor_kind="system",
        details={"email": email, "role": role},
    )
    return staff


def set_password(session: Session, staff: Staff, password: str) -> None:
    """Give `staff` a new password (audited); their open console sessions end.

    Raises:
        StaffError: the password is too short.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    staff.password_hash = _hasher.hash(password)
    staff.session_version += 1
    session.add(staff)
    audit(
        session, "staff.password_set", "staff", staff.id, actor_kind="system", details={"email": staff.email}
    )


def set_team(session: Session, email: str, team: str) -> Staff:
    """Put the staff member with `email` in `team` ("" for none), audited.

    Raises:
        StaffError: no such account, or a team name that is not one.
    """
    staff = session.exec(select(Staff).where(Staff.email == email.strip().lower())).first()
    if staff is None:
        raise StaffError(f"no staff account for {email}")
    team = team.strip().lower()
    if team and not TEAM_PATTERN.match(team):
        raise StaffError(f"team {team!r}: up to 40 lower-case letters, digits, spaces, '-' or '_'")
    staff.team = team or None
    session.add(staff)
    audit(session, "staff.team_set", "staff", staff.id, actor_kind="operator", details={"team": staff.team})
    return staff


def authenticate_password(session: Session, email: str, password: str) -> Staff | None:
    """The active account with this e-mail and password, or None (same time either way)."""
    staff = session.exec(select(Staff).where(Staff.email == email.strip().lower())).first()
    stored = staff.password_hash if staff is not None and staff.active and staff.password_hash else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if stored is None:
        return None
    if _hasher.check_needs_rehash(stored):
        staff.password_hash = _hasher.hash(password)
        session.add(staff)
    return staff


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(session: Session, staff: Staff) -> str:
    """A new API token for `staff` (the previous one stops working); shown once, stored hashed."""
    token = "sbt_" + secrets.token_urlsafe(32)
    staff.api_token_hash = _token_digest(token)
    session.add(staff)
    audit(session, "staff.token_issued", "staff", staff.id, actor_kind="system")
    return token


def authenticate_token(session: Session, token: str) -> Staff | None:
    """The active account owning this API token, or None."""
    if not token.startswith("sbt_"):
        return None
    staff = session.exec(select(Staff).where(Staff.api_token_hash == _token_digest(token))).first()
    return staff if staff is not None and staff.active else None


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    """What a login attempt came to: the staff member (None when refused) and, when refused for too many
    attempts, the seconds to wait before the next."""

    staff: Staff | None
    retry_after: float = 0.0


def login_limits(settings: ConsoleSettings) -> tuple[Limit, Limit]:
    """The limits on login attempts: per (client address, account) and per client address."""
    return (
        Limit("login:account", settings.login_attempts, settings.login_window_seconds),
        Limit("login:client", settings.login_attempts_per_ip, settings.login_window_seconds),
    )


def log_in(
    engine: Engine, settings: ConsoleSettings, email: str, password: str, *, client: str
) -> LoginOutcome:
    """Check a staff member's password, within the login limits, and audit the attempt.

    The attempt is counted (in the database, so every worker sees it) before the password is checked, so
    parallel guesses can't all get through; a login that succeeds is not counted. The limits are per client
    address and per (client address, account): someone guessing from elsewhere never locks the owner out.

    Args:
        client: the client's address (as the trusted proxies report it).
    """
    email = email.strip().lower()
    per_account, per_client = login_limits(settings)
    with session_scope(engine) as session:
        wait = max(take(session, per_account, client, email), take(session, per_client, client))
    if wait:
        log.warning("login refused: too many attempts from %s", client)
        return LoginOutcome(None, retry_after=wait)
    with session_scope(engine) as session:  # a login may rehash the password
        staff = authenticate_password(session, email, password)
        if staff is None:
            audit(
                session,
                "staff.login_failed",
                "staff",
                actor_kind="system",
                details={"email": email, "client": client},
            )
            return LoginOutcome(None)
        give_back(session, per_account, client, email)
        give_back(session, per_client, client)
        audit(
            session,
            "staff.login",
            "staff",
            staff.id,
            actor_kind="staff",
            actor_id=staff.id,
            details={"email": email, "client": client},
        )
        return LoginOutcome(staff)


def end_sessions(engine: Engine, staff_id: int) -> None:
    """End every console session of this staff member (logging out does: a copied cookie stops working)."""
    with session_scope(engine) as session:
        staff = session.get(Staff, staff_id)
        if staff is not None:
            staff.session_version += 1
            session.add(staff)
            audit(session, "staff.logout", "staff", staff_id, actor_kind="staff", actor_id=staff_id)
