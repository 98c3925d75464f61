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
from fastapi.templating import Jinja2Templates

from bot.crm.db import session_scope
from bot.crm.models import Staff
from bot.delivery.outbox import deliver_due
from bot.runtime.container import Runtime
from bot.support.conversations import (
    ACTIONS,
    apply_action,
    conversation_detail,
    list_conversations,
    list_staff,
    messages_after,
    note_on,
    reply_as_staff,
)
from bot.support.handoff import ConversationNotFound
from bot.support.slack_posts import notify_support_channel
from bot.support.staff import LoginRateLimiter, authenticate_password, may
from bot.web.auth import console_staff, csrf_token, verify_csrf

__all__ = ["console_router"]

log = logging.getLogger("socialbot.console")
MAX_REPLY_CHARS = 10_000
STATES = ("human", "bot", "resolved", "snoozed")


def _safe_next(path: str | None) -> str:
    """Only redirect to our own console pages after login (no open redirect)."""
    if path and path.startswith("/console") and not path.startswith("//"):
        return path
    return "/console"


def console_router(runtime: Runtime, templates: Jinja2Templates) -> APIRouter:
    """The console's pages and form handlers, under /console."""
    router = APIRouter(prefix="/console", include_in_schema=False)
    engine = runtime.engine
    limiter = LoginRateLimiter(
        runtime.settings.console.login_attempts, runtime.settings.console.login_window_seconds
    )
    agent = Depends(console_staff("conversations.read"))
    writer = Depends(console_staff("conversations.write"))

    def render(request: Request, name: str, staff: Staff | None, status_code: int = 200, **context):
        return templates.TemplateResponse(
            request,
            name,
            {
                "brand": runtime.settings.brand,
                "staff": staff,
                "csrf": csrf_token(request),
                **context,
            },
            status_code=status_code,
        )

    @router.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str | None = None) -> HTMLResponse:
        return render(request, "console_login.html", None, next=_safe_next(next), error=None, email="")

    @router.post("/login", response_model=None)
    def login(
        request: Request,
        email: Annotated[str, Form(max_length=320)],
        password: Annotated[str, Form(max_length=1000)],
        csrf: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/console",
    ) -> HTMLResponse | RedirectResponse:
        verify_csrf(request, csrf)
        client = request.client.host if request.client else "unknown"
        keys = (f"email:{email.strip().lower()}", f"client:{client}")
        wait = limiter.retry_after(*keys)
        if wait > 0:
            log.warning("login rate limit hit (client %s)", client)
            return render(
                request,
                "console_login.html",
                None,
                status_code=429,
                next=_safe_next(next),
                email=email,
                error=f"Too many failed attempts. Try again in {int(wait) + 1} seconds.",
            )
        with session_scope(engine) as session:  # a login may rehash the password
            staff = authenticate_password(session, email, password)
            staff_id = staff.id if staff is not None else None
            works_conversations = staff is not None and may(staff, "conversations.read")
        if staff_id is None:
            limiter.failed(*keys)
            return render(
                request,
                "console_login.html",
                None,
                status_code=401,
                next=_safe_next(next),
                email=email,
                error="That e-mail and password don't match an active account.",
            )
        limiter.succeeded(*keys)
        request.session.clear()
        request.session["staff_id"] = staff_id
        request.session["csrf"] = secrets.token_urlsafe(24)
        target = _safe_next(next)
        if target == "/console" and not works_conversations:
            target = "/console/insights"  # marketers have no queue; their home is the dashboard
        return RedirectResponse(target, status_code=303)

    @router.post("/logout")
    def logout(request: Request, csrf: Annotated[str, Form()] = "") -> RedirectResponse:
        verify_csrf(request, csrf)
        request.session.clear()
        return RedirectResponse("/console/login", status_code=303)

    @router.get("", response_class=HTMLResponse)
    def queue(
        request: Request,
        staff: Staff = agent,
        state: Annotated[str, Query(pattern="^(human|bot|resolved|snoozed)$")] = "human",
        show: Annotated[str, Query(pattern="^(all|mine|unassigned)$")] = "all",
        channel: Annotated[str | None, Query(max_length=20)] = None,
    ) -> HTMLResponse:
        conversations = list_conversations(
            engine,
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

    def detail_or_404(conversation_id: int):
        try:
            return conversation_detail(engine, conversation_id)
        except ConversationNotFound as error:
            raise HTTPException(404, str(error)) from None

    @router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
    def conversation_page(
        request: Request, conversation_id: int, staff: Staff = agent, notice: str | None = None
    ) -> HTMLResponse:
        return render(
            request,
            "console_conversation.html",
            staff,
            detail=detail_or_404(conversation_id),
            team=list_staff(engine),
            reply_token=uuid.uuid4().hex,
            warning=None,
            draft="",
            notice=notice,
        )

    @router.get("/conversations/{conversation_id}/updates")
    def conversation_updates(
        conversation_id: int,
        after: Annotated[int, Query(ge=0)] = 0,
        staff: Staff = agent,
    ) -> JSONResponse:
        try:
            state, items = messages_after(engine, conversation_id, after)
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
                        "action": m.action,
                    }
                    for m in items
                ],
            }
        )

    def redirect_to(conversation_id: int, notice: str) -> RedirectResponse:
        return RedirectResponse(
            f"/console/conversations/{conversation_id}?notice={quote(notice)}", status_code=303
        )

    @router.post("/conversations/{conversation_id}/reply", response_model=None)
    def reply(
        request: Request,
        conversation_id: int,
        text: Annotated[str, Form(max_length=MAX_REPLY_CHARS)],
        reply_token: Annotated[str, Form(pattern=r"^[0-9a-f]{32}$")],
        seen_message_id: Annotated[int, Form(ge=0)],
        seen_assignee_id: Annotated[str, Form()] = "",
        force: Annotated[bool, Form()] = False,
        csrf: Annotated[str, Form()] = "",
        staff: Staff = writer,
    ) -> HTMLResponse | RedirectResponse:
        verify_csrf(request, csrf)
        if not text.strip():
            raise HTTPException(422, "the reply is empty")
        try:
            message_id, warning = reply_as_staff(
                engine,
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
                detail=detail_or_404(conversation_id),
                team=list_staff(engine),
                reply_token=reply_token,
                warning=warning,
                draft=text,
                notice=None,
            )
        runtime.submit(deliver_due, engine, runtime.channels)
        notify_support_channel(runtime)
        log.info("staff %s replied in conversation %s (message %s)", staff.id, conversation_id, message_id)
        return redirect_to(conversation_id, "Reply queued on the customer's channel.")

    @router.post("/conversations/{conversation_id}/action")
    def act(
        request: Request,
        conversation_id: int,
        action: Annotated[str, Form()],
        assignee_id: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
        staff: Staff = writer,
    ) -> RedirectResponse:
        verify_csrf(request, csrf)
        if action not in ACTIONS:
            raise HTTPException(422, f"unknown action {action!r}")
        try:
            state = apply_action(
                engine,
                conversation_id,
                action,
                staff_id=staff.id,
                assignee_id=int(assignee_id) if assignee_id.isdigit() else None,
                followup_settings=runtime.settings.followups,
            )
        except ConversationNotFound as error:
            raise HTTPException(404, str(error)) from None
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        notify_support_channel(runtime)
        labels = {"take": "You took", "assign": "Assigned", "resolve": "Resolved", "hand_back": "Handed back"}
        return redirect_to(conversation_id, f"{labels[action]} the conversation (now {state}).")

    @router.post("/conversations/{conversation_id}/notes")
    def note(
        request: Request,
        conversation_id: int,
        text: Annotated[str, Form(min_length=1, max_length=MAX_REPLY_CHARS)],
        csrf: Annotated[str, Form()] = "",
        staff: Staff = writer,
    ) -> RedirectResponse:
        verify_csrf(request, csrf)
        try:
            note_on(engine, conversation_id, staff_id=staff.id, text=text.strip())
        except ConversationNotFound as error:
            raise HTTPException(404, str(error)) from None
        return redirect_to(conversation_id, "Note added.")

    return router
