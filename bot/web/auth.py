"""Who is asking: staff sessions for the console (signed cookie + CSRF token) and bearer tokens for the API.

Every console page and API route declares the permission it needs (`bot.support.staff.PERMISSIONS`); a
logged-out browser is sent to the login page, a logged-out API call gets 401, and a role without the
permission 403.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bot.crm.db import session_scope
from bot.crm.models import Staff
from bot.support.staff import authenticate_token, may

__all__ = [
    "LoginRequired",
    "api_staff",
    "console_form",
    "console_staff",
    "csrf_token",
    "require_csrf",
    "session_secret",
    "verify_csrf",
]

log = logging.getLogger("socialbot.web")
_bearer = HTTPBearer(auto_error=False)


class LoginRequired(Exception):
    """A console page was asked for without a valid session; the app redirects to the login page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def session_secret(configured: str | None) -> str:
    """The key that signs session cookies: SOCIALBOT_SECRET_KEY, else a random one for this process."""
    if configured:
        return configured
    log.warning(
        "SOCIALBOT_SECRET_KEY is not set: staff sessions are signed with a random key and end at restart"
    )
    return secrets.token_urlsafe(32)


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use); every console form carries it."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


def verify_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a form post whose CSRF token is missing or not this session's.

    Raises:
        HTTPException: 403.
    """
    expected = request.session.get("csrf")
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise HTTPException(403, "the form has expired or did not come from the console; reload and retry")


async def require_csrf(request: Request) -> None:
    """A dependency for a console post: its CSRF token, in the `X-CSRF-Token` header (the console's own
    `fetch` calls) or the form's `csrf` field, must be this session's (403 otherwise)."""
    submitted = request.headers.get("x-csrf-token")
    if submitted is None:
        # The form is parsed once per request: FastAPI's own form fields read the same cached copy.
        field = (await request.form()).get("csrf")
        submitted = field if isinstance(field, str) else None
    verify_csrf(request, submitted)


def _load(request: Request, staff_id: int) -> Staff | None:
    engine = request.app.state.runtime.engine
    with session_scope(engine, read_only=True) as session:
        staff = session.get(Staff, staff_id)
        if staff is not None:
            session.expunge(staff)
        return staff


def console_staff(permission: str) -> Callable[[Request], Staff]:
    """A dependency: the logged-in staff member, who must have `permission`."""

    def dependency(request: Request) -> Staff:
        staff_id = request.session.get("staff_id")
        staff = _load(request, staff_id) if isinstance(staff_id, int) else None
        if (
            staff is None
            or not staff.active
            or request.session.get("session_version") != staff.session_version
        ):
            request.session.clear()
            raise LoginRequired(request.url.path)
        if not may(staff, permission):
            raise HTTPException(403, f"your role ({staff.role}) may not do this")
        return staff

    return dependency


def console_form(permission: str) -> Callable[..., Staff]:
    """A dependency for a console post: the logged-in staff member, who must have `permission` (checked
    first: a logged-out browser goes to the login page), and the post's CSRF token (`require_csrf`)."""

    def dependency(
        staff: Staff = Depends(console_staff(permission)), _csrf: None = Depends(require_csrf)
    ) -> Staff:
        return staff

    return dependency


def api_staff(permission: str) -> Callable[..., Staff]:
    """A dependency: the staff member owning the bearer token, who must have `permission`."""

    def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> Staff:
        if credentials is None:
            raise HTTPException(
                401, "an API token is required (socialbot staff token EMAIL)", {"WWW-Authenticate": "Bearer"}
            )
        with session_scope(request.app.state.runtime.engine, read_only=True) as session:
            staff = authenticate_token(session, credentials.credentials)
            if staff is not None:
                session.expunge(staff)
        if staff is None:
            raise HTTPException(401, "the API token is not valid", {"WWW-Authenticate": "Bearer"})
        if not may(staff, permission):
            raise HTTPException(403, f"your role ({staff.role}) may not do this")
        return staff

    return dependency
