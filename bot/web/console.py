"""The staff console: log in, the queue of escalated conversations (with filters and search), one
conversation with the contact's whole history and the customer panel, and the actions on it (reply, take,
assign, resolve, hand back, snooze, tag, prioritise, note, correct the bot's reading). Server-rendered
(Jinja2, autoescaped: customer text is shown as text) with static/console.js for live updates
(bot/web/live.py) and the keyboard; every action also works as a plain form post."""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from bot.crm.db import session_scope
from bot.crm.models import Staff, utcnow
from bot.delivery.outbox import deliver_due
from bot.insights.corrections import CorrectionError, record_correction
from bot.runtime.container import Runtime
from bot.support.conversations import (
    ACTIONS,
    ConversationDetail,
    TagError,
    add_tag,
    conversation_detail,
    note_on,
    remove_tag,
    reply_as_staff,
    set_priority,
    unanswered_message,
)
from bot.support.queue import mark_read
from bot.support.search import search
from bot.support.slack_posts import notify_support_channel
from bot.support.snooze import snooze
from bot.support.staff import end_sessions, log_in, may
from bot.web.auth import console_form, console_staff, require_csrf
from bot.web.dependencies import RuntimeDep, client_address
from bot.web.pages import render
from bot.web.staff_api import act_on_conversation
from bot.web.workspace import QueueFilterDep, conversation_context, queue_context

__all__ = ["router"]

log = logging.getLogger("socialbot.console")
MAX_REPLY_CHARS = 10_000
# The longest snooze: a conversation put aside for longer belongs resolved.
MAX_SNOOZE = timedelta(days=90)


def _safe_next(path: str | None) -> str:
    """Only redirect to our own console pages after login (no open redirect)."""
    if path and path.startswith("/console") and not path.startswith("//"):
        return path
    return "/console"


router = APIRouter(prefix="/console", include_in_schema=False)
Agent = Annotated[Staff, Depends(console_staff("conversations.read"))]
#: A form post's author (with the conversations.write permission; the CSRF token checked).
Writer = Annotated[Staff, Depends(console_form("conversations.write"))]
#: A form post before login (or at logout): only the CSRF token is checked.
FORM = [Depends(require_csrf)]


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "console_login.html", next=_safe_next(next), error=None, email="")


@router.post("/login", response_model=None, dependencies=FORM)
def login(
    request: Request,
    runtime: RuntimeDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form()] = "/console",
) -> HTMLResponse | RedirectResponse:
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


@router.post("/logout", dependencies=FORM)
def logout(request: Request, runtime: RuntimeDep) -> RedirectResponse:
    """End this person's console sessions everywhere (a copied cookie stops working too)."""
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
    filters: QueueFilterDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    if q is not None and q.strip():
        results = search(runtime.engine, q, staff_id=staff.id)
        return render(request, "console_search.html", staff, query=q.strip(), results=results)
    return render(request, "console_queue.html", staff, **queue_context(runtime, staff, filters))


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
def conversation_page(
    request: Request,
    conversation_id: int,
    runtime: RuntimeDep,
    staff: Agent,
    filters: QueueFilterDep,
    notice: Annotated[str | None, Query(max_length=300)] = None,
    error: Annotated[str | None, Query(max_length=300)] = None,
    confirm: Annotated[str | None, Query(pattern="^resolve$")] = None,
) -> HTMLResponse:
    detail = conversation_detail(runtime.engine, conversation_id, staff_id=staff.id)
    _mark_seen(runtime, staff, detail)
    return _conversation(
        request, runtime, staff, detail, filters, notice=notice, error=error, confirm_resolve=bool(confirm)
    )


def _conversation(
    request: Request,
    runtime: Runtime,
    staff: Staff,
    detail: ConversationDetail,
    filters,
    *,
    status_code: int = 200,
    reply_token: str | None = None,
    warning: str | None = None,
    draft: str = "",
    notice: str | None = None,
    error: str | None = None,
    confirm_resolve: bool = False,
) -> HTMLResponse:
    return render(
        request,
        "console_conversation.html",
        staff,
        status_code=status_code,
        reply_token=reply_token or uuid.uuid4().hex,
        warning=warning,
        draft=draft,
        notice=notice,
        error=error,
        confirm_resolve=confirm_resolve,
        **conversation_context(runtime, staff, detail, filters),
    )


def _mark_seen(runtime: Runtime, staff: Staff, detail: ConversationDetail) -> None:
    """The agent has the conversation on screen: its customer messages are read."""
    if detail.last_message_id:
        mark_read(
            runtime.engine,
            staff_id=staff.id,
            conversation_id=detail.conversation.id,
            message_id=detail.last_message_id,
        )


@router.post("/conversations/{conversation_id}/reply", response_model=None)
def reply(
    request: Request,
    conversation_id: int,
    runtime: RuntimeDep,
    staff: Writer,
    filters: QueueFilterDep,
    text: Annotated[str, Form(max_length=MAX_REPLY_CHARS)],
    reply_token: Annotated[str, Form(pattern=r"^[0-9a-f]{32}$")],
    seen_message_id: Annotated[int, Form(ge=0)],
    seen_assignee_id: Annotated[str, Form()] = "",
    force: Annotated[bool, Form()] = False,
) -> HTMLResponse | RedirectResponse:
    if not text.strip():
        raise HTTPException(422, "the reply is empty")
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
    if warning:
        detail = conversation_detail(runtime.engine, conversation_id, staff_id=staff.id)
        return _conversation(
            request,
            runtime,
            staff,
            detail,
            filters,
            status_code=409,
            reply_token=reply_token,
            warning=warning,
            draft=text,
        )
    runtime.submit(deliver_due, runtime.engine, runtime.channels)
    notify_support_channel(runtime)
    log.info("staff %s replied in conversation %s (message %s)", staff.id, conversation_id, message_id)
    return _redirect_to(conversation_id, "Reply queued on the customer's channel.")


@router.post("/conversations/{conversation_id}/action")
def act(
    conversation_id: int,
    runtime: RuntimeDep,
    staff: Writer,
    action: Annotated[str, Form()],
    assignee_id: Annotated[str, Form()] = "",
    force: Annotated[bool, Form()] = False,
) -> RedirectResponse:
    if action not in ACTIONS:
        raise HTTPException(422, f"unknown action {action!r}")
    if action == "resolve" and not force:
        unanswered = unanswered_message(runtime.engine, conversation_id)
        if unanswered is not None:
            return RedirectResponse(
                f"/console/conversations/{conversation_id}?confirm=resolve", status_code=303
            )
    assignee = int(assignee_id) if assignee_id.isdigit() else None
    state = act_on_conversation(runtime, conversation_id, action, staff, assignee)
    labels = {"take": "You took", "assign": "Assigned", "resolve": "Resolved", "hand_back": "Handed back"}
    return _redirect_to(conversation_id, f"{labels[action]} the conversation (now {state}).")


@router.post("/conversations/{conversation_id}/snooze")
def snooze_conversation(
    conversation_id: int,
    runtime: RuntimeDep,
    staff: Writer,
    for_minutes: Annotated[int | None, Form(ge=1, le=int(MAX_SNOOZE.total_seconds() // 60))] = None,
    until_local: Annotated[str, Form(max_length=30)] = "",
    tz_offset: Annotated[int, Form(ge=-24 * 60, le=24 * 60)] = 0,
) -> RedirectResponse:
    now = utcnow()
    if for_minutes is not None:
        until = now + timedelta(minutes=for_minutes)
    else:
        until = _local_time(until_local, tz_offset)
        if until is None:
            return _redirect_to(
                conversation_id, error="Choose how long, or a date and time, to snooze until."
            )
    if until - now > MAX_SNOOZE:
        return _redirect_to(conversation_id, error="Snooze for at most 90 days; resolve it instead.")
    try:
        snooze(runtime.engine, conversation_id, until=until, staff_id=staff.id)
    except ValueError as error:
        return _redirect_to(conversation_id, error=f"Not snoozed: {error}.")
    notify_support_channel(runtime)
    return RedirectResponse("/console", status_code=303)


def _local_time(value: str, tz_offset: int) -> datetime | None:
    """A browser's datetime-local value in UTC (`tz_offset`: the browser's getTimezoneOffset(), minutes)."""
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        return None
    if naive.tzinfo is not None:
        return naive
    return (naive + timedelta(minutes=tz_offset)).replace(tzinfo=UTC)


@router.post("/conversations/{conversation_id}/tags")
def tag(
    conversation_id: int,
    runtime: RuntimeDep,
    staff: Writer,
    tag: Annotated[str, Form(max_length=60)],
) -> RedirectResponse:
    try:
        added = add_tag(runtime.engine, conversation_id, tag, staff_id=staff.id)
    except TagError as error:
        return _redirect_to(conversation_id, error=str(error))
    return _redirect_to(conversation_id, f"Tagged #{added}.")


@router.post("/conversations/{conversation_id}/tags/remove")
def untag(
    conversation_id: int,
    runtime: RuntimeDep,
    staff: Writer,
    tag: Annotated[str, Form(max_length=60)],
) -> RedirectResponse:
    remove_tag(runtime.engine, conversation_id, tag, staff_id=staff.id)
    return _redirect_to(conversation_id, f"Removed #{tag}.")


@router.post("/conversations/{conversation_id}/priority")
def prioritise(
    conversation_id: int,
    runtime: RuntimeDep,
    staff: Writer,
    priority: Annotated[int, Form(ge=0, le=2)],
) -> RedirectResponse:
    set_priority(runtime.engine, conversation_id, priority, staff_id=staff.id)
    return _redirect_to(conversation_id, "Priority saved.")


@router.post("/conversations/{conversation_id}/notes")
def note(
    conversation_id: int,
    runtime: RuntimeDep,
    staff: Writer,
    text: Annotated[str, Form(min_length=1, max_length=MAX_REPLY_CHARS)],
) -> RedirectResponse:
    note_on(runtime.engine, conversation_id, staff_id=staff.id, text=text.strip())
    return _redirect_to(conversation_id, "Note added.")


@router.post("/messages/{message_id}/correct")
def correct(
    message_id: int,
    runtime: RuntimeDep,
    staff: Writer,
    conversation_id: Annotated[int, Form(ge=1)],
    intent: Annotated[str, Form(max_length=20)] = "",
    sentiment: Annotated[str, Form(max_length=20)] = "",
    abusive: Annotated[str, Form(max_length=10)] = "",
    article: Annotated[str, Form(max_length=10)] = "",
) -> RedirectResponse:
    """Store staff's reading of a customer message (the learning loop's labelled examples)."""
    given = {
        aspect: value
        for aspect, value in (
            ("intent", intent),
            ("sentiment", sentiment),
            ("abusive", abusive),
            ("article", article),
        )
        if value
    }
    if not given:
        return _redirect_to(conversation_id, error="Choose what the bot got wrong before saving.")
    try:
        with session_scope(runtime.engine) as session:
            for aspect, value in given.items():
                record_correction(
                    session,
                    message_id=message_id,
                    aspect=aspect,
                    value=value,
                    staff_id=staff.id,
                    source="console",
                )
    except CorrectionError as error:
        return _redirect_to(conversation_id, error=str(error))
    changed = ", ".join(f"{aspect} {value}" for aspect, value in given.items())
    return _redirect_to(conversation_id, f"Correction saved ({changed}); it will teach the next retraining.")


def _redirect_to(
    conversation_id: int, notice: str | None = None, *, error: str | None = None
) -> RedirectResponse:
    query = f"?notice={quote(notice)}" if notice else f"?error={quote(error or '')}"
    return RedirectResponse(f"/console/conversations/{conversation_id}{query}", status_code=303)
