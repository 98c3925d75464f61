"""Staff accounts: passwords (Argon2id), API tokens, roles, and a login rate limit.

A password is stored only as its Argon2id hash; an API token only as its SHA-256 (tokens are long random
strings, so a fast hash is enough and lets a request be authenticated with one indexed lookup).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import deque

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlmodel import Session, select

from bot.crm.audit import audit
from bot.crm.models import Staff, StaffRole

__all__ = [
    "LoginRateLimiter",
    "StaffError",
    "authenticate_password",
    "authenticate_token",
    "create_staff",
    "issue_api_token",
    "may",
    "set_team",
]

_hasher = PasswordHasher()
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TEAM_PATTERN = re.compile(r"^[a-z0-9][a-z0-9 _-]{0,39}$")
MIN_PASSWORD_LENGTH = 10
# Verified against when the e-mail is unknown, so a login takes as long whether or not the account exists.
_DUMMY_HASH = _hasher.hash("socialbot-no-such-account")

#: What each role may do. Agents work conversations; marketers read the log and dashboards and move ideas
#: through the ideas board; admins do all.
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


class LoginRateLimiter:
    """Failed logins per key (e-mail, client address) in a sliding window, in this process.

    Several workers each keep their own count, so the effective limit is per worker; that still turns an
    online guessing attack from thousands of tries a minute into a handful.
    """

    def __init__(self, attempts: int, window_seconds: float) -> None:
        self.attempts = attempts
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, *keys: str) -> float:
        """Seconds until another try is allowed for every key (0: allowed now)."""
        now = time.monotonic()
        with self._lock:
            waits = [
                failures[0] + self.window - now
                for key in keys
                if len(failures := self._recent(key, now)) >= self.attempts
            ]
        return max(waits, default=0.0)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
