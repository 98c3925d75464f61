"""How errors are answered: one JSON line `{"error": ...}` for the APIs, a page with the console's navigation
for the console (whose way back leads to a page the staff member may see: a marketer's to the dashboard, never
into another 403), a redirect to the login page for a console page asked for without a session, and 503 with
Retry-After when the database is busy or down (nothing was stored; the caller retries). An unexpected error
is logged with its traceback and answered with a 500 that says nothing about it."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.crm.data_rights import ContactNotFound
from bot.crm.db import DatabaseUnavailable, session_scope
from bot.crm.models import Staff
from bot.insights.ideas import IdeaNotFound
from bot.support.handoff import ConversationNotFound
from bot.support.webchat_status import NotAWebChat
from bot.web.auth import LoginRequired
from bot.web.pages import render

__all__ = ["install_error_handlers"]

log = logging.getLogger("socialbot.web")


#: The services' errors about what a request names, and the status they are answered with (their message is
#: the answer's), so a handler states only its action.
DOMAIN_ERRORS: dict[type[Exception], int] = {
    ConversationNotFound: 404,
    ContactNotFound: 404,
    IdeaNotFound: 404,
    NotAWebChat: 409,
}

#: Console paths that answer JSON to the console's scripts: their errors are JSON too.
_CONSOLE_JSON_SUFFIXES = ("/events", "/typing")


def install_error_handlers(app: FastAPI) -> None:
    """Answer `app`'s errors as described above."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for error_type in DOMAIN_ERRORS:
        app.add_exception_handler(error_type, _domain_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(Exception, _unexpected)


TITLES = {
    400: "That request can't be read",
    403: "Not for your role",
    404: "Not found",
    405: "Not allowed here",
    409: "Changed meanwhile",
    413: "Too large",
    422: "Something in the form needs fixing",
    429: "Too many tries",
    500: "Something went wrong on our side",
    503: "Busy for a moment",
}


def _is_console_page(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/console") and not path.endswith(_CONSOLE_JSON_SUFFIXES)


def _session_staff(request: Request) -> Staff | None:
    """The logged-in staff member, if any (for the error page's navigation); never raises."""
    try:
        staff_id = request.session.get("staff_id")
    except AssertionError:  # no session middleware on this path
        return None
    if not isinstance(staff_id, int):
        return None
    try:
        with session_scope(request.app.state.runtime.engine, read_only=True) as session:
            staff = session.get(Staff, staff_id)
            if staff is not None:
                session.expunge(staff)
    except Exception:  # noqa: BLE001 - an error page must render even when the database is the problem
        return None
    return staff if staff is not None and staff.active else None


def _error_page(request: Request, status: int, detail: str, headers: dict | None = None) -> Response:
    try:
        response = render(
            request,
            "console_error.html",
            _session_staff(request),
            status_code=status,
            status=status,
            title=TITLES.get(status, "Error"),
            detail=detail,
        )
    except Exception:  # noqa: BLE001 - the navigation needs the database; without it, a bare page
        log.exception("could not render the error page")
        response = HTMLResponse(
            f"<!doctype html><title>{status}</title><h1>{status}</h1>", status_code=status
        )
    if headers:
        response.headers.update(headers)
    return response


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
    if _is_console_page(request):
        return _error_page(request, error.status_code, str(detail), error.headers)
    return JSONResponse({"error": detail}, status_code=error.status_code, headers=error.headers)


def _domain_error(request: Request, error: Exception) -> Response:
    status = next(code for kind, code in DOMAIN_ERRORS.items() if isinstance(error, kind))
    return _http_error(request, StarletteHTTPException(status, str(error)))


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


def _unexpected(request: Request, error: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    detail = "The error was logged. Try again; if it keeps happening, tell your admin what you were doing."
    if _is_console_page(request):
        return _error_page(request, 500, detail)
    return JSONResponse({"error": "internal error; it was logged"}, status_code=500)
