"""Admins' pages and API (permission `staff.manage`): customers' data requests, a contact's export (JSON) and
erasure, and the audit log viewer with filters and a CSV export (cells that would start a spreadsheet formula
are neutralised by `bot.insights.response_log.csv_lines`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import Engine
from sqlmodel import select

from bot.crm.audit import audit, describe_event
from bot.crm.data_rights import erase_for_staff, export_for_staff, list_requests
from bot.crm.db import session_scope
from bot.crm.models import AuditEvent, Staff
from bot.insights.response_log import csv_lines
from bot.runtime.container import Runtime
from bot.web.auth import api_staff, console_form, console_staff
from bot.web.dependencies import RuntimeDep
from bot.web.pages import render

__all__ = ["audit_query", "router"]

PERMISSION = "staff.manage"
AUDIT_COLUMNS = (
    "id",
    "at",
    "actor_kind",
    "actor_id",
    "actor_email",
    "action",
    "subject_type",
    "subject_id",
    "details",
)
AUDIT_PAGE = 500


def _day(value: str | None, name: str, *, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None
    moment = datetime.combine(day, time.min, tzinfo=UTC)
    return moment + timedelta(days=1) if end else moment


def audit_query(*, action: str | None, actor: str | None, since: str | None, until: str | None) -> Any:
    """The audit events matching the filters, newest first.

    Args:
        action: an action name or its prefix ending in "." ("contact." = every contact action).
        actor: a staff id, a staff e-mail, or an actor kind (system, bot, customer, staff).
        since, until: days (YYYY-MM-DD), inclusive.

    Raises:
        HTTPException: 422 naming the filter that is malformed.
    """
    query = select(AuditEvent, Staff.email).outerjoin(Staff, Staff.id == AuditEvent.actor_id)
    if action:
        query = query.where(
            AuditEvent.action.startswith(action) if action.endswith(".") else AuditEvent.action == action
        )
    if actor:
        if actor.isdigit():
            query = query.where(AuditEvent.actor_id == int(actor))
        elif "@" in actor:
            query = query.where(Staff.email == actor.lower())
        elif actor in ("system", "bot", "customer", "staff"):
            query = query.where(AuditEvent.actor_kind == actor)
        else:
            raise HTTPException(
                422, f"actor: {actor!r} is not a staff id, e-mail or system|bot|customer|staff"
            )
    start, stop = _day(since, "since"), _day(until, "until", end=True)
    if start is not None:
        query = query.where(AuditEvent.at >= start)
    if stop is not None:
        query = query.where(AuditEvent.at < stop)
    return query.order_by(AuditEvent.id.desc())


def _audit_filters(
    action: Annotated[str | None, Query(max_length=60)] = None,
    actor: Annotated[str | None, Query(max_length=320)] = None,
    since: Annotated[str | None, Query(max_length=10)] = None,
    until: Annotated[str | None, Query(max_length=10)] = None,
) -> dict[str, str | None]:
    """The audit log's filters from the query string (`audit_query`'s arguments)."""
    return {"action": action, "actor": actor, "since": since, "until": until}


AuditFilters = Annotated[dict[str, str | None], Depends(_audit_filters)]


def _audit_row(event: AuditEvent, email: str | None) -> list[Any]:
    return [
        event.id,
        event.at.isoformat(),
        event.actor_kind,
        event.actor_id if event.actor_id is not None else "",
        email or "",
        event.action,
        event.subject_type,
        event.subject_id if event.subject_id is not None else "",
        json.dumps(event.details, sort_keys=True) if event.details else "",
    ]


router = APIRouter()
Admin = Annotated[Staff, Depends(console_staff(PERMISSION))]
AdminForm = Annotated[Staff, Depends(console_form(PERMISSION))]
ApiAdmin = Annotated[Staff, Depends(api_staff(PERMISSION))]


def _export(runtime: Runtime, contact_id: int, staff: Staff, via: str) -> Response:
    data = export_for_staff(runtime.engine, contact_id, staff_id=staff.id, via=via)
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="contact-{contact_id}.json"'},
    )


def _erase(runtime: Runtime, contact_id: int, staff: Staff, via: str) -> dict[str, Any]:
    report = erase_for_staff(runtime.engine, contact_id, staff_id=staff.id, via=via)
    return {
        "contact_id": report.contact_id,
        "messages_erased": report.messages,
        "follow_ups_cancelled": report.follow_ups_cancelled,
        "replies_cancelled": report.outbox_cancelled,
    }


# Data requests, export and erasure


@router.get("/console/data-requests", response_class=HTMLResponse, include_in_schema=False)
def requests_page(
    request: Request,
    runtime: RuntimeDep,
    staff: Admin,
    status: Annotated[str | None, Query(pattern="^(open|unverified|fulfilled|rejected)$")] = None,
) -> HTMLResponse:
    with session_scope(runtime.engine, read_only=True) as session:
        rows = list_requests(session, status=status)
    return render(
        request,
        "console_data_requests.html",
        staff,
        requests=rows,
        status=status,
        notice=request.query_params.get("notice"),
    )


@router.post("/console/contacts/export.json", include_in_schema=False)
def console_export(
    runtime: RuntimeDep,
    staff: AdminForm,
    contact: Annotated[int, Form(ge=1)],
) -> Response:
    """A contact's data as a JSON download (a POST with the CSRF token: the export is audited)."""
    return _export(runtime, contact, staff, "console")


@router.post("/console/contacts/{contact_id}/erase", include_in_schema=False)
def console_erase(
    contact_id: int,
    runtime: RuntimeDep,
    staff: AdminForm,
    confirm: Annotated[str, Form(max_length=20)] = "",
) -> RedirectResponse:
    if confirm != str(contact_id):
        raise HTTPException(422, f"confirm: type the contact's id ({contact_id}) to erase it")
    result = _erase(runtime, contact_id, staff, "console")
    return RedirectResponse(
        f"/console/data-requests?notice=contact+{contact_id}+erased+({result['messages_erased']}+messages)",
        status_code=303,
    )


@router.post("/api/v1/contacts/{contact_id}/export", tags=["data rights"])
def api_export(contact_id: int, runtime: RuntimeDep, staff: ApiAdmin) -> Response:
    """Everything stored about the contact, as JSON (audited)."""
    return _export(runtime, contact_id, staff, "api")


@router.post("/api/v1/contacts/{contact_id}/erase", tags=["data rights"])
def api_erase(contact_id: int, runtime: RuntimeDep, staff: ApiAdmin) -> dict[str, Any]:
    """Erase the contact's personal data and message text (idempotent, audited)."""
    return _erase(runtime, contact_id, staff, "api")


@router.get("/api/v1/data-requests", tags=["data rights"])
def api_requests(runtime: RuntimeDep, staff: ApiAdmin, status: str | None = None) -> list[dict[str, Any]]:
    """Customers' data requests, newest first."""
    with session_scope(runtime.engine, read_only=True) as session:
        return [row.model_dump(mode="json") for row in list_requests(session, status=status)]


# The audit log


@dataclass(frozen=True, slots=True)
class AuditLine:
    """One audit event as the console shows it: when, who, what in a sentence, and the raw details."""

    id: int
    at: datetime
    who: str
    action: str
    sentence: str
    details: str | None


def _audit_line(event: AuditEvent, staff_names: dict[int, str]) -> AuditLine:
    if event.actor_kind == "staff":
        who = staff_names.get(event.actor_id, f"staff #{event.actor_id}")
    else:
        who = {"bot": "bot", "customer": "customer", "system": "socialbot", "operator": "operator"}.get(
            event.actor_kind, event.actor_kind
        )
    sentence = describe_event(
        action=event.action,
        actor_kind=event.actor_kind,
        actor_id=event.actor_id,
        subject_type=event.subject_type,
        subject_id=event.subject_id,
        details=event.details,
        staff_names=staff_names,
    )
    details = (
        json.dumps(event.details, indent=2, sort_keys=True, ensure_ascii=False) if event.details else None
    )
    return AuditLine(event.id, event.at, who, event.action, sentence, details)


@router.get("/console/audit", response_class=HTMLResponse, include_in_schema=False)
def audit_page(request: Request, runtime: RuntimeDep, staff: Admin, filters: AuditFilters) -> HTMLResponse:
    query = audit_query(**filters).limit(AUDIT_PAGE)
    with session_scope(runtime.engine, read_only=True) as session:
        staff_names = {s.id: s.name or s.email for s in session.exec(select(Staff)).all()}
        rows = [_audit_line(event, staff_names) for event, _email in session.exec(query).all()]
    return render(
        request,
        "console_audit.html",
        staff,
        rows=rows,
        filters={name: value or "" for name, value in filters.items()},
        export_query=request.url.query,
        page=AUDIT_PAGE,
    )


@router.post("/console/audit.csv", include_in_schema=False)
def audit_csv(
    runtime: RuntimeDep,
    staff: AdminForm,
    filters: AuditFilters,
) -> StreamingResponse:
    """The audit events matching the filters (query string) as CSV; a POST with the CSRF token, since the
    export is itself audited."""
    query = audit_query(**filters)
    with session_scope(runtime.engine) as session:
        audit(
            session,
            "audit.exported",
            "audit",
            actor_kind="staff",
            actor_id=staff.id,
            details=filters,
        )
    return StreamingResponse(
        csv_lines(AUDIT_COLUMNS, _audit_batches(runtime.engine, query)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )


def _audit_batches(engine: Engine, query: Any) -> Iterator[list[list[Any]]]:
    """The audit rows of `query` in batches of 1000, read in one read-only session while the CSV streams."""
    with session_scope(engine, read_only=True) as session:
        batch = []
        for event, email in session.exec(query):
            batch.append(_audit_row(event, email))
            if len(batch) == 1000:
                yield batch
                batch = []
        if batch:
            yield batch
