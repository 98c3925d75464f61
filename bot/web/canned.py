"""Admins' page for canned replies (/console/canned, permission `staff.manage`): add, change and remove the
replies agents insert with "/shortcut", each for one team or for everyone (bot/support/canned.py)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import select

from bot.crm.db import session_scope
from bot.crm.models import Staff
from bot.runtime.container import Runtime
from bot.support.canned import PLACEHOLDERS, CannedError, delete_canned, list_canned, save_canned
from bot.web.auth import console_form, console_staff
from bot.web.dependencies import RuntimeDep
from bot.web.pages import render

__all__ = ["router"]

router = APIRouter(prefix="/console/canned", include_in_schema=False)
Admin = Annotated[Staff, Depends(console_staff("staff.manage"))]
AdminForm = Annotated[Staff, Depends(console_form("staff.manage"))]


def _page(
    request: Request, runtime: Runtime, staff: Staff, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    with session_scope(runtime.engine, read_only=True) as session:
        replies = list_canned(session, every_team=True)
        teams = sorted(
            {t for t in session.exec(select(Staff.team)).all() if t} | {r.team for r in replies if r.team}
        )
    shown = {"error": None, "form": {}, "editing": None, **context}
    return render(
        request,
        "console_canned.html",
        staff,
        status_code=status_code,
        replies=replies,
        teams=teams,
        placeholders=PLACEHOLDERS,
        notice=request.query_params.get("notice"),
        **shown,
    )


@router.get("", response_class=HTMLResponse)
def canned_page(
    request: Request, runtime: RuntimeDep, staff: Admin, edit: Annotated[int | None, Query(ge=1)] = None
) -> HTMLResponse:
    return _page(request, runtime, staff, editing=edit)


@router.post("", response_model=None)
def save(
    request: Request,
    runtime: RuntimeDep,
    staff: AdminForm,
    shortcut: Annotated[str, Form(max_length=40)],
    title: Annotated[str, Form(max_length=200)],
    text: Annotated[str, Form(max_length=10_000)],
    team: Annotated[str, Form(max_length=60)] = "",
    canned_id: Annotated[int | None, Form(ge=1)] = None,
) -> HTMLResponse | RedirectResponse:
    try:
        with session_scope(runtime.engine) as session:
            saved = save_canned(
                session,
                shortcut=shortcut,
                title=title,
                text=text,
                team=team,
                staff_id=staff.id,
                canned_id=canned_id,
            )
    except CannedError as error:
        form = {"shortcut": shortcut, "title": title, "text": text, "team": team}
        return _page(request, runtime, staff, status_code=422, error=str(error), form=form, editing=canned_id)
    return RedirectResponse(f"/console/canned?notice=Saved+/{saved.shortcut}", status_code=303)


@router.post("/{canned_id}/delete")
def delete(
    canned_id: int,
    runtime: RuntimeDep,
    staff: AdminForm,
) -> RedirectResponse:
    try:
        with session_scope(runtime.engine) as session:
            delete_canned(session, canned_id, staff_id=staff.id)
    except CannedError as error:
        return RedirectResponse(f"/console/canned?notice={quote(str(error))}", status_code=303)
    return RedirectResponse("/console/canned?notice=Deleted", status_code=303)
