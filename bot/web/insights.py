"""Marketers' pages: the response log, the insights dashboard (charts fed by a JSON endpoint), the ideas
board, and CSV exports for the console (session) and the API (bearer token). Every export is audited."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.templating import Jinja2Templates

from bot.crm.models import ConversationState, Staff
from bot.insights.dashboard import dashboard_data
from bot.insights.ideas import IDEA_STATUSES, IdeaNotFound, list_ideas, set_idea_status
from bot.insights.response_log import (
    AUTHORS,
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    FilterError,
    LogFilters,
    csv_lines,
    iter_conversation_rows,
    iter_message_rows,
    record_export,
    response_log,
)
from bot.runtime.container import Runtime
from bot.support.staff import may
from bot.web.auth import api_staff, console_staff, csrf_token, verify_csrf

__all__ = ["insights_router"]

log = logging.getLogger("socialbot.insights")
CHANNELS = ("webchat", "slack", "telegram", "twitter", "email", "cli")
INTENTS = ("complaint", "question", "recommendation", "praise", "other")
SENTIMENTS = ("negative", "neutral", "positive")
EXPORTS = {
    "messages": (MESSAGE_COLUMNS, iter_message_rows),
    "conversations": (CONVERSATION_COLUMNS, iter_conversation_rows),
}


def _filters(
    since: Annotated[str | None, Query(max_length=40, description="from this day or time (UTC)")] = None,
    until: Annotated[str | None, Query(max_length=40, description="to this day (inclusive) or time")] = None,
    channel: Annotated[str | None, Query(max_length=20)] = None,
    intent: Annotated[str | None, Query(max_length=20)] = None,
    sentiment: Annotated[str | None, Query(max_length=20)] = None,
    state: Annotated[str | None, Query(max_length=20)] = None,
    author: Annotated[str | None, Query(max_length=20, description="customer | bot | staff")] = None,
    q: Annotated[str | None, Query(max_length=200, description="text contains (case-insensitive)")] = None,
    conversation: Annotated[int | None, Query(ge=1)] = None,
) -> LogFilters:
    try:
        return LogFilters.parse(
            since=since,
            until=until,
            channel=channel,
            intent=intent,
            sentiment=sentiment,
            state=state,
            author=author,
            text=q,
            conversation_id=conversation,
        )
    except FilterError as error:
        raise HTTPException(422, str(error)) from None


FiltersDep = Annotated[LogFilters, Depends(_filters)]


def _query_string(request: Request, **changes: Any) -> str:
    params = {k: v for k, v in request.query_params.items() if v}
    params.update({k: v for k, v in changes.items() if v is not None})
    for key in [k for k, v in changes.items() if v is None]:
        params.pop(key, None)
    return urlencode(params)


def insights_router(runtime: Runtime, templates: Jinja2Templates, *, batch_size: int = 1000) -> APIRouter:
    """The log, dashboard and ideas pages under /console, and the CSV exports under /api/v1/export.

    Args:
        runtime: the running application (its engine is read).
        templates: the console's Jinja2 templates.
        batch_size: rows read per query while an export streams.
    """
    router = APIRouter()
    engine = runtime.engine
    log_reader = Depends(console_staff("log.read"))
    dashboard_reader = Depends(console_staff("dashboards.read"))
    idea_writer = Depends(console_staff("ideas.write"))
    api_log_reader = Depends(api_staff("log.read"))

    def render(request: Request, name: str, staff: Staff, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            name,
            {"brand": runtime.settings.brand, "staff": staff, "csrf": csrf_token(request), **context},
        )

    def stream(kind: str, filters: LogFilters, staff: Staff, via: str) -> StreamingResponse:
        header, rows = EXPORTS[kind]
        record_export(engine, kind=kind, filters=filters, staff_id=staff.id, via=via)
        log.info("staff %s exports %s via %s", staff.id, kind, via)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        chunks: Iterator[str] = csv_lines(header, rows(engine, filters, batch_size=batch_size))
        return StreamingResponse(
            (chunk.encode("utf-8") for chunk in chunks),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{kind}-{stamp}.csv"'},
        )

    @router.get("/console/log", response_class=HTMLResponse, include_in_schema=False)
    def log_page(
        request: Request,
        filters: FiltersDep,
        before: Annotated[int | None, Query(ge=1)] = None,
        staff: Staff = log_reader,
    ) -> HTMLResponse:
        page = response_log(engine, filters, before=before)
        return render(
            request,
            "console_log.html",
            staff,
            page=page,
            filters=filters,
            form=dict(request.query_params),
            next_link=_query_string(request, before=page.next_before) if page.next_before else None,
            first_link=_query_string(request, before=None) if before else None,
            export_query=_query_string(request, before=None),
            channels=CHANNELS,
            intents=INTENTS,
            sentiments=SENTIMENTS,
            states=[s.value for s in ConversationState],
            authors=AUTHORS,
            can_open_conversations=may(staff, "conversations.read"),
        )

    @router.get("/console/insights", response_class=HTMLResponse, include_in_schema=False)
    def dashboard_page(
        request: Request,
        days: Annotated[int, Query(ge=1, le=365)] = 30,
        staff: Staff = dashboard_reader,
        notice: Annotated[str | None, Query(max_length=200)] = None,
    ) -> HTMLResponse:
        return render(
            request,
            "console_insights.html",
            staff,
            days=days,
            ideas=list_ideas(engine),
            statuses=IDEA_STATUSES,
            can_edit_ideas=may(staff, "ideas.write"),
            notice=notice,
        )

    @router.get("/console/insights/data", include_in_schema=False)
    def dashboard_json(
        days: Annotated[int, Query(ge=1, le=365)] = 30, staff: Staff = dashboard_reader
    ) -> JSONResponse:
        return JSONResponse(dashboard_data(engine, days=days))

    @router.post("/console/ideas/{idea_id}/status", include_in_schema=False)
    def change_idea_status(
        request: Request,
        idea_id: int,
        status: Annotated[str, Form(max_length=40)],
        csrf: Annotated[str, Form()] = "",
        staff: Staff = idea_writer,
    ) -> RedirectResponse:
        verify_csrf(request, csrf)
        try:
            previous = set_idea_status(engine, idea_id, status, staff_id=staff.id)
        except FilterError as error:
            raise HTTPException(422, str(error)) from None
        except IdeaNotFound as error:
            raise HTTPException(404, str(error)) from None
        notice = f"Idea #{idea_id}: {previous} -> {status}."
        return RedirectResponse(f"/console/insights?{urlencode({'notice': notice})}#ideas", status_code=303)

    @router.get("/console/export/{kind}.csv", include_in_schema=False)
    def console_export(kind: str, filters: FiltersDep, staff: Staff = log_reader) -> StreamingResponse:
        if kind not in EXPORTS:
            raise HTTPException(404, f"no export named {kind!r}; choose messages or conversations")
        return stream(kind, filters, staff, "console")

    def api_export(kind: str) -> Callable[..., StreamingResponse]:
        def export(filters: FiltersDep, staff: Staff = api_log_reader) -> StreamingResponse:
            return stream(kind, filters, staff, "api")

        export.__doc__ = (
            f"The {kind} matching the filters as CSV, streamed oldest first "
            "(cells that a spreadsheet would run as a formula start with a quote)."
        )
        return export

    for kind in EXPORTS:
        router.add_api_route(
            f"/api/v1/export/{kind}.csv",
            api_export(kind),
            methods=["GET"],
            tags=["export"],
            summary=f"Export {kind} as CSV",
            response_class=StreamingResponse,
        )

    return router
