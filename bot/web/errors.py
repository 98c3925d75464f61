"""How errors are answered: one JSON line `{"error": ...}` for the APIs, a short page for the console, a
redirect to the login page for a console page asked for without a session, and 503 with Retry-After when
the database is busy or down (nothing was stored; the caller retries)."""

from __future__ import annotations

import html
import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.crm.db import DatabaseUnavailable
from bot.web.auth import LoginRequired

__all__ = ["install_error_handlers"]

log = logging.getLogger("socialbot.web")


def install_error_handlers(app: FastAPI) -> None:
    """Answer `app`'s errors as described above."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    app.add_exception_handler(LoginRequired, _login_required)


def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    problems = []
    status = 422
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"] if part != "body") or "body"
        if item["type"] == "json_invalid":
            status = 400
            problems.append(
                f"the request body is not valid JSON ({item.get('ctx', {}).get('error', 'parse error')})"
            )
        elif item["type"] == "extra_forbidden":
            problems.append(f"{location}: unknown field")
        elif item["type"] == "missing":
            problems.append(f"{location}: required")
        else:
            problems.append(f"{location}: {item['msg']}")
    return JSONResponse({"error": "; ".join(problems)}, status_code=status)


def _http_error(request: Request, error: StarletteHTTPException) -> Response:
    detail = error.detail
    if error.status_code == 400 and detail == "There was an error parsing the body":
        detail = "the request body is not valid JSON in UTF-8"
    elif error.status_code == 413 and detail == "Content Too Large":
        detail = f"the request body is over {request.app.max_body_size} bytes"
    if request.url.path.startswith("/console") and not request.url.path.endswith("/updates"):
        page = (
            f"<!doctype html><title>{error.status_code}</title><p>{html.escape(str(detail))}</p>"
            '<p><a href="/console">Back to the console</a></p>'
        )
        return HTMLResponse(page, status_code=error.status_code, headers=error.headers)
    return JSONResponse({"error": detail}, status_code=error.status_code, headers=error.headers)


def _login_required(_request: Request, error: LoginRequired) -> RedirectResponse:
    return RedirectResponse(f"/console/login?next={quote(error.next_path)}", status_code=303)


def _database_unavailable(_request: Request, error: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", type(error).__name__)
    return JSONResponse(
        {
            "error": "the database is busy or unreachable; nothing was stored, retry the request",
            "retry": True,
        },
        status_code=503,
        headers={"Retry-After": "2"},
    )
