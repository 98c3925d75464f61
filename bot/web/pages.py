"""Server-rendered pages: the Jinja2 templates (autoescaped: customer text is shown as text) and `render`,
which gives every page the brand, the staff member, what their role may do, the queue's counts for the
navigation and the CSRF token its forms carry. Pages carry no inline script or style (the Content Security
Policy allows neither): behaviour lives in static/console.js, driven by data-* attributes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from bot.crm.models import Staff
from bot.support.queue import queue_counts
from bot.support.search import highlight
from bot.support.staff import PERMISSIONS
from bot.web.auth import csrf_token

__all__ = ["STATIC_DIR", "home_of", "render", "render_fragment", "templates"]

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))


def duration(seconds: float | None) -> str:
    """A wait as staff read it: "45 s", "12 min", "3 h 05 min", "2 d 4 h"."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


templates.env.filters["duration"] = duration
templates.env.filters["highlight"] = highlight


def home_of(staff: Staff | None) -> str:
    """Where a staff member's console starts: the queue for those who work conversations, else the
    dashboard (a marketer's "back to the console" must not lead to a page they may not see)."""
    if staff is None:
        return "/console/login"
    if "conversations.read" in PERMISSIONS.get(staff.role, frozenset()):
        return "/console"
    return "/console/insights"


def render(
    request: Request, name: str, staff: Staff | None = None, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """The template `name` filled with `context`, the brand, `staff` (None on public pages), their
    permissions, the queue's counts (for staff who work conversations) and the CSRF token."""
    permissions = (
        PERMISSIONS.get(staff.role, frozenset()) if staff is not None and staff.active else frozenset()
    )
    counts = (
        queue_counts(request.app.state.runtime.engine, staff.id)
        if "conversations.read" in permissions
        else None
    )
    return templates.TemplateResponse(
        request,
        name,
        {
            "brand": request.app.state.runtime.settings.brand,
            "staff": staff,
            "perms": permissions,
            "counts": counts,
            "home": home_of(staff),
            "csrf": csrf_token(request),
            **context,
        },
        status_code=status_code,
    )


def render_fragment(name: str, **context: Any) -> str:
    """A partial template (rows, messages) as HTML, for the live updates to send."""
    return templates.get_template(name).render(**context)
