"""The console's moderation queue (/console/moderation) and its JSON twin (/api/v1/moderation): messages
the abuse head flagged, with why (the reason, the score, the words that weighed most, highlighted), and the
staff actions on them ("not abuse": a correction and the bot answers; hide; block; see
bot/moderation/queue.py).

Abusive text is shown blurred until clicked, and always as text (Jinja2 autoescape)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel

from bot.crm.db import session_scope
from bot.crm.models import Staff
from bot.moderation.queue import MODERATION_ACTIONS, ModerationError, QueueEntry, decide_item, list_queue
from bot.runtime.container import Runtime
from bot.web.auth import api_staff, console_form, console_staff
from bot.web.dependencies import RuntimeDep
from bot.web.pages import render

__all__ = ["router"]

PERMISSION = "conversations.write"


class ModerationDecision(BaseModel):
    """The API's body: what to do with a queued message."""

    action: str


router = APIRouter()
ConsoleModerator = Annotated[Staff, Depends(console_staff(PERMISSION))]
ModeratorForm = Annotated[Staff, Depends(console_form(PERMISSION))]
ApiModerator = Annotated[Staff, Depends(api_staff(PERMISSION))]


def _act(runtime: Runtime, item_id: int, action: str, staff: Staff) -> dict:
    if action not in MODERATION_ACTIONS:
        raise HTTPException(422, f"action must be one of {', '.join(MODERATION_ACTIONS)}, not {action!r}")
    try:
        item = decide_item(runtime, item_id, action, staff)
    except ModerationError as error:
        status = 404 if "does not exist" in str(error) else 409
        raise HTTPException(status, str(error)) from None
    return {"id": item.id, "status": item.status, "outcome": item.outcome}


@router.get("/console/moderation", response_class=HTMLResponse, include_in_schema=False)
def queue_page(
    request: Request,
    runtime: RuntimeDep,
    staff: ConsoleModerator,
    status: Annotated[str, Query(pattern="^(open|all)$")] = "open",
) -> HTMLResponse:
    with session_scope(runtime.engine, read_only=True) as session:
        entries = list_queue(session, status=status)
    return render(
        request,
        "console_moderation.html",
        staff,
        entries=entries,
        status=status,
        block_days=runtime.settings.moderation.block_days,
        notice=request.query_params.get("notice"),
    )


@router.post("/console/moderation/{item_id}", include_in_schema=False)
def decide(
    item_id: int,
    runtime: RuntimeDep,
    staff: ModeratorForm,
    action: Annotated[str, Form(max_length=20)],
) -> RedirectResponse:
    result = _act(runtime, item_id, action, staff)
    done = {
        "fine": "marked not abuse; the bot answered it and the correction was stored",
        "hidden": "removed on its platform",
        "needs_human": "the platform does not let the bot remove it: remove it by hand",
        "blocked": "author blocked from bot replies",
    }.get(result["status"], result["status"])
    return RedirectResponse(f"/console/moderation?notice={quote(done)}", status_code=303)


@router.get("/api/v1/moderation", tags=["moderation"])
def api_queue(
    runtime: RuntimeDep, staff: ApiModerator, status: Annotated[str, Query(pattern="^(open|all)$")] = "open"
) -> list[dict]:
    """The moderation queue, newest first."""
    with session_scope(runtime.engine, read_only=True) as session:
        return [_entry(entry) for entry in list_queue(session, status=status)]


@router.post("/api/v1/moderation/{item_id}", tags=["moderation"])
def api_decide(item_id: int, body: ModerationDecision, runtime: RuntimeDep, staff: ApiModerator) -> dict:
    """Mark a queued message fine, hide it, or block its author."""
    return _act(runtime, item_id, body.action, staff)


def _entry(entry: QueueEntry) -> dict:
    return {
        "id": entry.id,
        "message_id": entry.message_id,
        "conversation_id": entry.conversation_id,
        "contact_id": entry.contact_id,
        "channel": entry.channel,
        "public": entry.public,
        "text": entry.text,
        "reason": entry.reason,
        "score": entry.score,
        "flagged_words": list(entry.flagged_words),
        "status": entry.status,
        "outcome": entry.outcome,
        "created_at": entry.created_at.isoformat(),
    }
