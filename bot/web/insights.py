"""Marketers' pages: the response log, the insights dashboard (charts fed by a JSON endpoint), the ideas
board, a knowledge gap's draft article (admins finish and save it into the knowledge base), and exports as
CSV or Parquet for the console (session) and the API (bearer token). Every export is audited."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from bot.crm.db import session_scope
from bot.crm.models import ConversationState, Staff
from bot.insights.dashboard import DRAFT_IDS, dashboard_data
from bot.insights.ideas import IDEA_STATUSES, list_ideas, set_idea_status
from bot.insights.knowledge_gaps import ArticleRefused, draft_article, save_article
from bot.insights.response_log import (
    AUTHORS,
    CONVERSATION_COLUMNS,
    CONVERSATION_TYPES,
    MESSAGE_COLUMNS,
    MESSAGE_TYPES,
    FilterError,
    LogFilters,
    csv_lines,
    csv_row,
    iter_conversation_records,
    iter_message_records,
    parquet_chunks,
    record_export,
    response_log,
)
from bot.runtime.analysis import sample_knowledge_dir
from bot.runtime.container import Runtime
from bot.support.staff import may
from bot.web.auth import api_staff, console_form, console_staff
from bot.web.dependencies import RuntimeDep
from bot.web.pages import render

__all__ = ["router"]

log = logging.getLogger("socialbot.insights")
CHANNELS = ("webchat", "slack", "telegram", "twitter", "email", "cli")
INTENTS = ("complaint", "question", "recommendation", "praise", "other")
SENTIMENTS = ("negative", "neutral", "positive")
EXPORTS = {
    "messages": (MESSAGE_COLUMNS, MESSAGE_TYPES, iter_message_records),
    "conversations": (CONVERSATION_COLUMNS, CONVERSATION_TYPES, iter_conversation_records),
}
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


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


router = APIRouter()
LogReader = Annotated[Staff, Depends(console_staff("log.read"))]
DashboardReader = Annotated[Staff, Depends(console_staff("dashboards.read"))]
IdeaWriter = Annotated[Staff, Depends(console_form("ideas.write"))]
LogExporter = Annotated[Staff, Depends(console_form("log.read"))]
ApiLogReader = Annotated[Staff, Depends(api_staff("log.read"))]
KnowledgeReader = Annotated[Staff, Depends(console_staff("knowledge.write"))]
KnowledgeWriter = Annotated[Staff, Depends(console_form("knowledge.write"))]
#: Rows read per query while an export streams.
EXPORT_BATCH_ROWS = 1000


def _stream(
    runtime: Runtime, kind: str, filters: LogFilters, staff: Staff, via: str, file_format: str = "csv"
) -> StreamingResponse:
    if kind not in EXPORTS:
        raise HTTPException(404, f"no export named {kind!r}; choose messages or conversations")
    header, types, records = EXPORTS[kind]
    record_export(
        runtime.engine, kind=kind, filters=filters, staff_id=staff.id, via=via, file_format=file_format
    )
    log.info("staff %s exports %s as %s via %s", staff.id, kind, file_format, via)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    batches = records(runtime.engine, filters, batch_size=EXPORT_BATCH_ROWS)
    disposition = {"Content-Disposition": f'attachment; filename="{kind}-{stamp}.{file_format}"'}
    if file_format == "parquet":
        return StreamingResponse(
            parquet_chunks(header, types, batches), media_type=PARQUET_MEDIA_TYPE, headers=disposition
        )
    chunks: Iterator[str] = csv_lines(header, ([csv_row(r) for r in batch] for batch in batches))
    return StreamingResponse(
        (chunk.encode("utf-8") for chunk in chunks), media_type="text/csv; charset=utf-8", headers=disposition
    )


@router.get("/console/log", response_class=HTMLResponse, include_in_schema=False)
def log_page(
    request: Request,
    runtime: RuntimeDep,
    staff: LogReader,
    filters: FiltersDep,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    page = response_log(runtime.engine, filters, before=before)
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
    runtime: RuntimeDep,
    staff: DashboardReader,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    notice: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    return render(
        request,
        "console_insights.html",
        staff,
        days=days,
        ideas=list_ideas(runtime.engine),
        statuses=IDEA_STATUSES,
        can_edit_ideas=may(staff, "ideas.write"),
        can_draft=may(staff, "knowledge.write"),
        notice=notice,
    )


@router.get("/console/insights/data", include_in_schema=False)
def dashboard_json(
    runtime: RuntimeDep, staff: DashboardReader, days: Annotated[int, Query(ge=1, le=365)] = 30
) -> JSONResponse:
    return JSONResponse(
        dashboard_data(
            runtime.engine,
            days=days,
            first_response_target=runtime.settings.support.first_response_target,
            encoder=runtime.models.encoder.name,
            article_titles={article.id: article.title for article in runtime.models.knowledge.articles},
        )
    )


def _ids(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or len(parts) > DRAFT_IDS or not all(part.isdigit() for part in parts):
        raise HTTPException(422, f"ids: expected 1 to {DRAFT_IDS} message ids separated by commas")
    return [int(part) for part in parts]


def _article_page(
    request: Request, runtime: Runtime, staff: Staff, markdown: str, error: str | None = None
) -> HTMLResponse:
    directory = runtime.models.knowledge.directory
    return render(
        request,
        "console_article_draft.html",
        staff,
        status_code=422 if error else 200,
        markdown=markdown,
        error=error,
        directory=directory,
        sample=directory.resolve() == sample_knowledge_dir().resolve(),
    )


@router.get("/console/knowledge/draft", include_in_schema=False)
def article_draft(
    request: Request,
    runtime: RuntimeDep,
    staff: KnowledgeReader,
    ids: Annotated[str, Query(max_length=1000, description="the gap's message ids, comma-separated")],
    words: Annotated[str | None, Query(max_length=200, description="the gap's words, for the id")] = None,
) -> HTMLResponse:
    """A draft article prefilled from a knowledge gap's questions, for an admin to finish and save."""
    message_ids = _ids(ids)
    with session_scope(runtime.engine, read_only=True) as session:
        try:
            markdown = draft_article(
                session, message_ids, words=[w for w in (words or "").split(",") if w.strip()] or None
            )
        except ArticleRefused as error:
            raise HTTPException(404, str(error)) from None
    return _article_page(request, runtime, staff, markdown)


@router.post("/console/knowledge/articles", include_in_schema=False)
def add_article(
    request: Request,
    runtime: RuntimeDep,
    staff: KnowledgeWriter,
    markdown: Annotated[str, Form(max_length=50_000)],
) -> Response:
    """Save a finished article into the knowledge base (reloaded at once), or show the draft again with
    what to change."""
    try:
        article = save_article(
            runtime.engine,
            runtime.models.knowledge,
            markdown,
            staff_id=staff.id,
            sample_dir=sample_knowledge_dir(),
        )
    except ArticleRefused as error:
        return _article_page(request, runtime, staff, markdown, str(error))
    notice = f"Article {article.id!r} saved: the bot answers from it now."
    return RedirectResponse(f"/console/insights?{urlencode({'notice': notice})}#gaps", status_code=303)


@router.post("/console/ideas/{idea_id}/status", include_in_schema=False)
def change_idea_status(
    idea_id: int,
    runtime: RuntimeDep,
    staff: IdeaWriter,
    status: Annotated[str, Form(max_length=40)],
) -> RedirectResponse:
    try:
        previous = set_idea_status(runtime.engine, idea_id, status, staff_id=staff.id)
    except FilterError as error:
        raise HTTPException(422, str(error)) from None
    notice = f"Idea #{idea_id}: {previous} -> {status}."
    return RedirectResponse(f"/console/insights?{urlencode({'notice': notice})}#ideas", status_code=303)


@router.post("/console/export/{kind}.csv", include_in_schema=False)
def console_export(
    kind: str,
    runtime: RuntimeDep,
    staff: LogExporter,
    filters: FiltersDep,
) -> StreamingResponse:
    """The log as CSV (filters in the query string); a POST with the CSRF token: exports are audited."""
    return _stream(runtime, kind, filters, staff, "console")


@router.post(
    "/api/v1/export/{kind}.csv",
    tags=["export"],
    summary="Export messages or conversations as CSV",
    response_class=StreamingResponse,
)
def api_export(kind: str, runtime: RuntimeDep, staff: ApiLogReader, filters: FiltersDep) -> StreamingResponse:
    """The messages or conversations (`kind`) matching the filters as CSV, streamed oldest first (cells
    that a spreadsheet would run as a formula start with a quote)."""
    return _stream(runtime, kind, filters, staff, "api")


@router.post("/console/export/{kind}.parquet", include_in_schema=False)
def console_export_parquet(
    kind: str,
    runtime: RuntimeDep,
    staff: LogExporter,
    filters: FiltersDep,
) -> StreamingResponse:
    """The log as Parquet (typed columns), like the CSV export: a POST with the CSRF token, audited."""
    return _stream(runtime, kind, filters, staff, "console", "parquet")


@router.post(
    "/api/v1/export/{kind}.parquet",
    tags=["export"],
    summary="Export messages or conversations as Parquet",
    response_class=StreamingResponse,
)
def api_export_parquet(
    kind: str, runtime: RuntimeDep, staff: ApiLogReader, filters: FiltersDep
) -> StreamingResponse:
    """The messages or conversations (`kind`) matching the filters as one Parquet file for a warehouse: the
    CSV export's columns and filters, typed (`created_at`/`opened_at` UTC timestamps, numbers, booleans, nulls
    for no value; text as written, no formula guard)."""
    return _stream(runtime, kind, filters, staff, "api", "parquet")
