"""The console's outgoing-webhooks page (/console/webhooks): admins add, enable, disable and remove endpoints
and read the delivery log. Needs the "staff.manage" permission; every form carries the CSRF token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from bot.crm.db import session_scope
from bot.crm.models import Staff
from bot.delivery.webhooks import (
    EVENT_TYPES,
    WebhookError,
    add_endpoint,
    list_deliveries,
    list_endpoints,
    remove_endpoint,
    set_endpoint_active,
)
from bot.runtime.container import Runtime
from bot.web.auth import console_form, console_staff
from bot.web.dependencies import RuntimeDep
from bot.web.pages import render

__all__ = ["router"]


router = APIRouter(prefix="/console/webhooks", include_in_schema=False)
Admin = Annotated[Staff, Depends(console_staff("staff.manage"))]
AdminForm = Annotated[Staff, Depends(console_form("staff.manage"))]


def _page(
    request: Request, runtime: Runtime, staff: Staff, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    with session_scope(runtime.engine, read_only=True) as session:
        endpoints = list_endpoints(session)
        deliveries = list_deliveries(session, limit=100)
    shown = {"error": None, "new_secret": None, "notice": request.query_params.get("notice"), **context}
    return render(
        request,
        "console_webhooks.html",
        staff,
        status_code=status_code,
        endpoints=endpoints,
        deliveries=deliveries,
        event_types=EVENT_TYPES,
        **shown,
    )


@router.get("", response_class=HTMLResponse)
def webhooks_page(request: Request, runtime: RuntimeDep, staff: Admin) -> HTMLResponse:
    return _page(request, runtime, staff)


@router.post("", response_class=HTMLResponse)
def add(
    request: Request,
    runtime: RuntimeDep,
    staff: AdminForm,
    url: Annotated[str, Form(max_length=2000)],
    events: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI reads the default, never mutates it
) -> HTMLResponse:
    try:
        with session_scope(runtime.engine) as session:
            endpoint, secret = add_endpoint(session, url, events, settings=runtime.settings)
            endpoint_id = endpoint.id
    except WebhookError as error:
        return _page(request, runtime, staff, status_code=422, error=str(error))
    # The secret is shown on this page once; it is never displayed again.
    return _page(request, runtime, staff, new_secret=secret, notice=f"Endpoint {endpoint_id} added.")


@router.post("/{endpoint_id}/{action}")
def change(
    endpoint_id: int,
    action: str,
    runtime: RuntimeDep,
    staff: AdminForm,
) -> RedirectResponse:
    if action not in ("enable", "disable", "remove"):
        raise HTTPException(404, f"unknown action {action!r}")
    try:
        with session_scope(runtime.engine) as session:
            if action == "remove":
                remove_endpoint(session, endpoint_id)
            else:
                set_endpoint_active(session, endpoint_id, action == "enable")
    except WebhookError as error:
        raise HTTPException(404, str(error)) from None
    done = {"enable": "enabled", "disable": "disabled", "remove": "removed"}[action]
    return RedirectResponse(f"/console/webhooks?notice=Endpoint+{endpoint_id}+{done}.", status_code=303)
