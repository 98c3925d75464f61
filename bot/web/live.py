"""The console's live updates: one server-sent event stream per page at /console/events (an `EventSource` in
static/console.js), on the site's one push mechanism (bot/web/event_stream.py: when the worker's change mark
moves, each stream sends what its page shows, rendered from the pages' own templates):

- `counts` (every page): the navigation's counts, the unread count for the tab title, and the newest unread
  customer message, for a desktop notification;
- `queue` (the queue page): its rows for the page's filters;
- `list`, `status`, `messages` (a conversation): the side list, the status line, and the messages newer than
  the last one the page has (the event id, so a reconnecting browser resumes where it was); shown messages
  count as read;
- `typing` (a web chat conversation): whether the customer is typing, on every tick while the page has the
  conversation (a typing signal starts with a write and ends with the clock or the customer's message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from bot.crm.models import Staff
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
from bot.support.webchat_status import conversation_typing
from bot.web.auth import console_staff, csrf_token
from bot.web.dependencies import RuntimeDep
from bot.web.event_stream import event, event_stream
from bot.web.workspace import (
    QueueFilterDep,
    messages_html,
    queue_list_html,
    queue_rows_html,
    side_list,
    status_html,
)

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)
Agent = Annotated[Staff, Depends(console_staff("conversations.read"))]


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
    webchat: bool = False  # the conversation is a web chat, where the customer's typing shows
    sent_typing: bool = False


def _updates(runtime: Runtime, staff: Staff, view: _View) -> list[str]:
    """The events describing `view` now (run in a worker thread: it reads the database)."""
    events = [event("counts", _counts(queue_counts(runtime.engine, staff.id)))]
    if view.name == "queue":
        rows = list_conversations(runtime.engine, view.filters, staff_id=staff.id)
        events.append(
            event("queue", {"html": queue_rows_html(rows, view.filters.query_string()), "count": len(rows)})
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
        event("list", {"html": queue_list_html(queue, view.conversation_id, view.filters.query_string())})
    )
    view.webchat = summary.channel == "webchat"
    status = status_html(summary)
    if status != view.sent_status:
        view.sent_status = status
        events.append(event("status", {"html": status, "state": state}))
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
        events.append(event("messages", {"html": html, "last_id": view.after}, event_id=view.after))
        own = [m.id for m in new if m.conversation_id == view.conversation_id]
        if own:
            mark_read(
                runtime.engine, staff_id=staff.id, conversation_id=view.conversation_id, message_id=own[-1]
            )
    return events


def _typing(runtime: Runtime, view: _View) -> list[str]:
    """A `typing` event when whether the customer is typing changed since the page was told."""
    try:
        typing = conversation_typing(runtime.engine, view.conversation_id).customer_typing
    except ConversationNotFound:
        return []
    if typing == view.sent_typing:
        return []
    view.sent_typing = typing
    return [event("typing", {"customer": typing})]


def _tick(runtime: Runtime, staff: Staff, view: _View, changed: bool) -> list[str]:
    """What `view`'s page is sent on one tick of its stream (in a worker thread: it reads the database)."""
    events = _updates(runtime, staff, view) if changed else []
    if view.webchat:
        events.extend(_typing(runtime, view))
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
    return event_stream(request, runtime, lambda changed: _tick(runtime, staff, watched, changed))
