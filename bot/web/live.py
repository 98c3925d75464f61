"""The console's one push channel: server-sent events at /console/events (an `EventSource` in
static/console.js; plain HTTP, so it passes proxies and load balancers that a WebSocket may not).

Workers share nothing but the database, so a stream learns of changes from it: every second the worker reads a
change mark (the newest message, audit event and note ids and the number of replies still being delivered;
every action on a conversation is audited), one query shared by all of the worker's streams. When the mark
moves, each stream sends what its page shows, rendered from the pages' own templates:

- `counts` (every page): the navigation's counts, the unread count for the tab title, and the newest unread
  customer message, for a desktop notification;
- `queue` (the queue page): its rows for the page's filters;
- `list`, `status`, `messages` (a conversation): the side list, the status line, and the messages newer than
  the last one the page has (the event id, so a reconnecting browser resumes where it was); shown messages
  count as read.

A stream ends after `STREAM_SECONDS` and the browser reconnects at once (`retry`), which bounds how long a
shutting-down server waits for open streams and re-checks the session on every reconnect.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine, func, select
from starlette.concurrency import run_in_threadpool

from bot.crm.db import session_scope
from bot.crm.models import AuditEvent, Message, Note, Staff
from bot.runtime.container import Runtime
from bot.support.conversations import messages_after
from bot.support.handoff import ConversationNotFound
from bot.support.queue import (
    QueueCounts,
    conversation_summary,
    list_conversations,
    mark_read,
    queue_counts,
)
from bot.support.staff import may
from bot.web.auth import console_staff, csrf_token
from bot.web.dependencies import RuntimeDep
from bot.web.workspace import (
    QueueFilterDep,
    messages_html,
    queue_list_html,
    queue_rows_html,
    side_list,
    status_html,
)

__all__ = ["ChangeMark", "router"]

POLL_SECONDS = 1.0
STREAM_SECONDS = 25.0
RETRY_MS = 1000

router = APIRouter(prefix="/console", include_in_schema=False)
Agent = Annotated[Staff, Depends(console_staff("conversations.read"))]


class ChangeMark:
    """A worker's view of "has anything changed?": a cheap read of the database's newest ids, at most once
    per `POLL_SECONDS` however many streams ask."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._value: tuple[Any, ...] | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    def _read(self) -> tuple[Any, ...]:
        with session_scope(self.engine, read_only=True) as session:
            return tuple(
                session.exec(
                    select(
                        select(func.max(Message.id)).scalar_subquery(),
                        select(func.max(AuditEvent.id)).scalar_subquery(),
                        select(func.max(Note.id)).scalar_subquery(),
                        select(func.count(Message.id))
                        .where(Message.direction == "out", Message.status == "pending")
                        .scalar_subquery(),
                    )
                ).one()
            )

    async def current(self) -> tuple[Any, ...]:
        async with self._lock:
            if self._value is None or time.monotonic() - self._read_at >= POLL_SECONDS * 0.9:
                self._value = await run_in_threadpool(self._read)
                self._read_at = time.monotonic()
            return self._value


def change_mark(request: Request) -> ChangeMark:
    """The app's `ChangeMark` (made on first use)."""
    state = request.app.state
    if getattr(state, "change_mark", None) is None:
        state.change_mark = ChangeMark(state.runtime.engine)
    return state.change_mark


def _event(name: str, data: Any, event_id: int | None = None) -> str:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in json.dumps(data).splitlines())
    return "\n".join(lines) + "\n\n"


def _counts(counts: QueueCounts) -> dict[str, Any]:
    newest = counts.newest_unread
    return {
        "waiting": counts.waiting,
        "mine": counts.mine,
        "unread": counts.unread,
        "moderation": counts.moderation,
        "newest": (
            {"conversation_id": newest[0], "name": newest[1], "text": newest[2][:200]} if newest else None
        ),
    }


@dataclass
class _View:
    """What one stream's page shows, and how far its conversation log goes."""

    name: str
    filters: Any
    conversation_id: int | None
    after: int
    csrf: str
    sent_status: str | None = None


def _updates(runtime: Runtime, staff: Staff, view: _View) -> list[str]:
    """The events describing `view` now (run in a worker thread: it reads the database)."""
    events = [_event("counts", _counts(queue_counts(runtime.engine, staff.id)))]
    if view.name == "queue":
        rows = list_conversations(runtime.engine, view.filters, staff_id=staff.id)
        events.append(
            _event("queue", {"html": queue_rows_html(rows, view.filters.query_string()), "count": len(rows)})
        )
        return events
    if view.conversation_id is None:
        return events
    try:
        state, new = messages_after(runtime.engine, view.conversation_id, view.after)
    except ConversationNotFound:
        return events
    summary = conversation_summary(runtime.engine, view.conversation_id, staff_id=staff.id)
    if summary is None:
        return events
    queue = side_list(runtime, staff, view.filters)
    events.append(
        _event("list", {"html": queue_list_html(queue, view.conversation_id, view.filters.query_string())})
    )
    status = status_html(summary)
    if status != view.sent_status:
        view.sent_status = status
        events.append(_event("status", {"html": status, "state": state}))
    if new:
        view.after = new[-1].id
        html = messages_html(
            new,
            conversation_id=view.conversation_id,
            escalation_id=summary.escalation_message_id,
            customer_name=summary.contact_name,
            csrf=view.csrf,
            can_write=may(staff, "conversations.write"),
        )
        events.append(_event("messages", {"html": html, "last_id": view.after}, event_id=view.after))
        own = [m.id for m in new if m.conversation_id == view.conversation_id]
        if own:
            mark_read(
                runtime.engine, staff_id=staff.id, conversation_id=view.conversation_id, message_id=own[-1]
            )
    return events


@router.get("/events")
async def events(
    request: Request,
    runtime: RuntimeDep,
    staff: Agent,
    filters: QueueFilterDep,
    view: Annotated[str, Query(pattern="^(counts|queue|conversation)$")] = "counts",
    conversation: Annotated[int | None, Query(ge=1)] = None,
    after: Annotated[int, Query(ge=0)] = 0,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """The live updates of one console page (see the module's docstring)."""
    if last_event_id and last_event_id.isdigit():
        after = max(after, int(last_event_id))
    watched = _View(view, filters, conversation, after, csrf_token(request))
    mark = change_mark(request)

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        seen = None
        started = time.monotonic()
        while time.monotonic() - started < STREAM_SECONDS and not runtime.stopping.is_set():
            current = await mark.current()
            if current != seen:
                seen = current
                for event in await run_in_threadpool(_updates, runtime, staff, watched):
                    yield event
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
