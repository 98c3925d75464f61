"""The staff console: log in, the queue of escalated conversations, one conversation with the contact's whole
history, and the actions on it (reply, take, assign, resolve, hand back, note). Server-rendered (Jinja2,
autoescaped: customer text is shown as text) with a little JS for live updates; no build step."""

from __future__ import annotations

import logging
import secrets
import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from bot.crm.models import Staff
from bot.delivery.outbox import deliver_due
from bot.runtime.container import Runtime
from bot.support.conversations import (
    ACTIONS,
    ConversationDetail,
    conversation_detail,
    list_conversations,
    list_staff,
    messages_after,
    note_on,
    reply_as_staff,
)
from bot.support.handoff import ConversationNotFound
from bot.support.slack_posts import notify_support_channel
from bot.support.staff import end_sessions, log_in, may
from bot.web.auth import console_staff, verify_csrf
from bot.web.dependencies import RuntimeDep, client_address
from bot.web.pages import render
from bot.web.staff_api import act_on_conversation

__all__ = ["router"]

log = logging.getLogger("socialbot.console")
MAX_REPLY_CHARS = 10_000
STATES = ("human", "bot", "resolved", "snoozed")


def _safe_next(path: str | None) -> str:
    """Only redirect to our own console pages after login (no open redirect)."""
    if path and path.startswith("/console") and not path.startswith("//"):
        return path
    return "/console"


router = APIRouter(prefix="/console", include_in_schema=False)
Agent = Annotated[Staff, Depends(console_staff("conversations.read"))]
Writer = Annotated[Staff, Depends(console_staff("conversations.write"))]


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "console_login.html", next=_safe_next(next), error=None, email="")


@router.post("/login", response_model=None)
def login(
    request: Request,
    runtime: RuntimeDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/console",
) -> HTMLResponse | RedirectResponse:
    verify_csrf(request, csrf)
    outcome = log_in(
        runtime.engine, runtime.settings.console, email, password, client=client_address(request)
    )
    if outcome.staff is None:
        if outcome.retry_after:
            error, status = f"Too many attempts. Try again in {int(outcome.retry_after) + 1} seconds.", 429
        else:
            error, status = "That e-mail and password don't match an active account.", 401
        return render(
            request, "console_login.html", status_code=status, next=_safe_next(next), email=email, error=error
        )
    staff = outcome.staff
    request.session.clear()
    request.session.update(staff_id=staff.id, session_version=staff.session_version)
    request.session["csrf"] = secrets.token_urlsafe(24)
    works_conversations = may(staff, "conversations.read")
    target = _safe_next(next)
    if target == "/console" and not works_conversations:
        target = "/console/insights"  # marketers have no queue; their home is the dashboard
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request, runtime: RuntimeDep, csrf: Annotated[str, Form()] = "") -> RedirectResponse:
    """End this person's console sessions everywhere (a copied cookie stops working too)."""
    verify_csrf(request, csrf)
    staff_id = request.session.get("staff_id")
    if isinstance(staff_id, int):
        end_sessions(runtime.engine, staff_id)
    request.session.clear()
    return RedirectResponse("/console/login", status_code=303)


@router.get("", response_class=HTMLResponse)
def queue(
    request: Request,
    runtime: RuntimeDep,
    staff: Agent,
    state: Annotated[str, Query(pattern="^(human|bot|resolved|snoozed)$")] = "human",
    show: Annotated[str, Query(pattern="^(all|mine|unassigned)$")] = "all",
    channel: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    conversations = list_conversations(
        runtime.engine,
        state=state,
        channel=channel or None,
        assignee_id=staff.id if show == "mine" else None,
        unassigned=show == "unassigned",
    )
    return render(
        request,
        "console_queue.html",
        staff,
        conversations=conversations,
        state=state,
        show=show,
        channel=channel or "",
        states=STATES,
    )


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
def conversation_page(
    request: Request, conversation_id: int, runtime: RuntimeDep, staff: Agent, notice: str | None = None
) -> HTMLResponse:
    return render(
        request,
        "console_conversation.html",
        staff,
        detail=_detail_or_404(runtime, conversation_id),
        team=list_staff(runtime.engine),
        reply_token=uuid.uuid4().hex,
        warning=None,
        draft="",
        notice=notice,
    )


@router.get("/conversations/{conversation_id}/updates")
def conversation_updates(
    conversation_id: int,
    runtime: RuntimeDep,
    staff: Agent,
    after: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    try:
        state, items = messages_after(runtime.engine, conversation_id, after)
    except ConversationNotFound as error:
        raise HTTPException(404, str(error)) from None
    return JSONResponse(
        {
            "state": state,
            "messages": [
                {
                    "id": m.id,
                    "conversation_id": m.conversation_id,
                    "channel": m.channel,
                    "direction": m.direction,
                    "author": m.author,
                    "author_kind": m.author_kind,
                    "text": m.text,
                    "created_at": m.created_at.isoformat(),
                    "status": m.status,
                    "intent": m.intent,
                    "sentiment": m.sentiment,
                    "abusive": bool(m.abusive),
                    "action": m.action,
                }
                for m in items
            ],
        }
    )


@router.post("/conversations/{conversation_id}/reply", response_model=None)
def reply(
    request: Request,
    conversation_id: int,
    runtime: RuntimeDep,
    staff: Writer,
    text: Annotated[str, Form(max_length=MAX_REPLY_CHARS)],
    reply_token: Annotated[str, Form(pattern=r"^[0-9a-f]{32}$")],
    seen_message_id: Annotated[int, Form(ge=0)],
    seen_assignee_id: Annotated[str, Form()] = "",
    force: Annotated[bool, Form()] = False,
    csrf: Annotated[str, Form()] = "",
) -> HTMLResponse | RedirectResponse:
    verify_csrf(request, csrf)
    if not text.strip():
        raise HTTPException(422, "the reply is empty")
    try:
        message_id, warning = reply_as_staff(
            runtime.engine,
            conversation_id,
            staff_id=staff.id,
            text=text.strip(),
            idempotency_key=f"staff:{conversation_id}:{reply_token}",
            seen_message_id=seen_message_id,
            seen_assignee_id=int(seen_assignee_id) if seen_assignee_id.isdigit() else None,
            force=force,
        )
    except ConversationNotFound as error:
        raise HTTPException(404, str(error)) from None
    if warning:
        return render(
            request,
            "console_conversation.html",
            staff,
            status_code=409,
            detail=_detail_or_404(runtime, conversation_id),
            team=list_staff(runtime.engine),
            reply_token=reply_token,
            warning=warning,
            draft=text,
            notice=None,
        )
    runtime.submit(deliver_due, runtime.engine, runtime.channels)
    notify_support_channel(runtime)
    log.info("staff %s replied in conversation %s (message %s)", staff.id, conversation_id, message_id)
    return _redirect_to(conversation_id, "Reply queued on the customer's channel.")


@router.post("/conversations/{conversation_id}/action")
def act(
    request: Request,
    conversation_id: int,
    runtime: RuntimeDep,
    staff: Writer,
    action: Annotated[str, Form()],
    assignee_id: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> RedirectResponse:
    verify_csrf(request, csrf)
    if action not in ACTIONS:
        raise HTTPException(422, f"unknown action {action!r}")
    assignee = int(assignee_id) if assignee_id.isdigit() else None
    state = act_on_conversation(runtime, conversation_id, action, staff, assignee)
    labels = {"take": "You took", "assign": "Assigned", "resolve": "Resolved", "hand_back": "Handed back"}
    return _redirect_to(conversation_id, f"{labels[action]} the conversation (now {state}).")


@router.post("/conversations/{conversation_id}/notes")
def note(
    request: Request,
    conversation_id: int,
    runtime: RuntimeDep,
    staff: Writer,
    text: Annotated[str, Form(min_length=1, max_length=MAX_REPLY_CHARS)],
    csrf: Annotated[str, Form()] = "",
) -> RedirectResponse:
    verify_csrf(request, csrf)
    try:
        note_on(runtime.engine, conversation_id, staff_id=staff.id, text=text.strip())
    except ConversationNotFound as error:
        raise HTTPException(404, str(error)) from None
    return _redirect_to(conversation_id, "Note added.")


def _detail_or_404(runtime: Runtime, conversation_id: int) -> ConversationDetail:
    try:
        return conversation_detail(runtime.engine, conversation_id)
    except ConversationNotFound as error:
        raise HTTPException(404, str(error)) from None


def _redirect_to(conversation_id: int, notice: str) -> RedirectResponse:
    return RedirectResponse(
        f"/console/conversations/{conversation_id}?notice={quote(notice)}", status_code=303
    )
