"""Server-rendered pages: the Jinja2 templates (autoescaped: customer text is shown as text) and `render`,
which gives every page the brand, the staff member and the CSRF token its forms carry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from bot.crm.models import Staff
from bot.web.auth import csrf_token

__all__ = ["STATIC_DIR", "render", "templates"]

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))


def render(
    request: Request, name: str, staff: Staff | None = None, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """The template `name` filled with `context`, the brand, `staff` (None on public pages) and the CSRF
    token."""
    return templates.TemplateResponse(
        request,
        name,
        {
            "brand": request.app.state.runtime.settings.brand,
            "staff": staff,
            "csrf": csrf_token(request),
            **context,
        },
        status_code=status_code,
    )
