"""What the agent's workspace pages show, shared by the pages (bot/web/console.py) and their live updates
(bot/web/live.py): the queue's filters as query parameters, the conversation page's context, and the
fragments (queue rows, the side list, messages, the status line) that both render from the same templates."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query

from bot.crm.db import session_scope
from bot.crm.models import Staff
from bot.insights.corrections import ASPECTS
from bot.runtime.container import Runtime
from bot.support.canned import fill_placeholders, list_canned
from bot.support.conversations import ConversationDetail, HistoryItem, known_tags, list_staff
from bot.support.queue import PRIORITIES, ConversationSummary, QueueFilter, list_conversations
from bot.web.pages import render_fragment

__all__ = [
    "CHANNELS",
    "QueueFilterDep",
    "conversation_context",
    "messages_html",
    "queue_context",
    "queue_heading",
    "queue_list_html",
    "queue_rows_html",
    "side_list",
    "status_html",
]

CHANNELS = ("webchat", "email", "slack", "telegram", "twitter")
STATE_LABELS = (
    ("human", "with staff"),
    ("snoozed", "snoozed"),
    ("bot", "with the bot"),
    ("resolved", "resolved"),
)
PRIORITY_CHOICES = ((0, "any priority"), (1, "high or urgent"), (2, "urgent"))
WAIT_CHOICES = (
    (0, "any wait"),
    (15, "waiting 15 min+"),
    (60, "waiting 1 h+"),
    (240, "waiting 4 h+"),
    (1440, "waiting 1 day+"),
)
SNOOZE_PRESETS = ((60, "1 hour"), (240, "4 hours"), (1440, "1 day"), (10080, "1 week"))
# How many conversations the workspace's side list shows.
SIDE_LIST = 40


def queue_filter(
    state: Annotated[str, Query(pattern="^(human|bot|resolved|snoozed)$")] = "human",
    channel: Annotated[str | None, Query(max_length=20)] = None,
    assignee: Annotated[str, Query(pattern=r"^(all|mine|unassigned|\d{1,9})$")] = "all",
    tag: Annotated[str | None, Query(max_length=30)] = None,
    priority: Annotated[int, Query(ge=0, le=2)] = 0,
    waiting: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> QueueFilter:
    """The queue's filters from the query string (the console's links and forms carry them along)."""
    return QueueFilter(
        state=state,
        channel=channel or None,
        assignee=assignee,
        tag=tag or None,
        priority=priority,
        waiting_minutes=waiting,
    )


QueueFilterDep = Annotated[QueueFilter, Depends(queue_filter)]


def queue_heading(filters: QueueFilter) -> str:
    """The queue page's title for `filters`."""
    if filters.state == "human":
        return {"mine": "My conversations", "unassigned": "Unassigned conversations"}.get(
            filters.assignee, "Waiting for a person"
        )
    return {"snoozed": "Snoozed", "bot": "With the bot", "resolved": "Resolved"}[filters.state]


def queue_context(runtime: Runtime, staff: Staff, filters: QueueFilter) -> dict[str, Any]:
    """What the queue page and its live rows need."""
    return {
        "conversations": list_conversations(runtime.engine, filters, staff_id=staff.id),
        "filters": filters,
        "filter_qs": filters.query_string(),
        "heading": queue_heading(filters),
        "states": STATE_LABELS,
        "channels": CHANNELS,
        "priorities": PRIORITY_CHOICES,
        "waits": WAIT_CHOICES,
        "team": list_staff(runtime.engine),
        "tags": known_tags(runtime.engine),
    }


def queue_rows_html(conversations: list[ConversationSummary], filter_qs: str) -> str:
    return render_fragment("_queue_rows.html", conversations=conversations, filter_qs=filter_qs)


def queue_list_html(queue: list[ConversationSummary], current_id: int, filter_qs: str) -> str:
    return render_fragment("_queue_list.html", queue=queue, current_id=current_id, filter_qs=filter_qs)


def side_list(runtime: Runtime, staff: Staff, filters: QueueFilter) -> list[ConversationSummary]:
    """The workspace's side list: the queue the agent came from."""
    return list_conversations(runtime.engine, filters, staff_id=staff.id, limit=SIDE_LIST)


def messages_html(
    items: list[HistoryItem],
    *,
    conversation_id: int,
    escalation_id: int | None,
    customer_name: str,
    csrf: str,
    can_write: bool,
) -> str:
    """New messages for the conversation page's log (marked new)."""
    return "".join(
        render_fragment(
            "_message.html",
            m=item,
            live=True,
            conversation_id=conversation_id,
            escalation_id=escalation_id,
            customer_name=customer_name,
            csrf=csrf,
            can_write=can_write,
            aspects=ASPECTS,
        )
        for item in items
    )


def status_html(summary: ConversationSummary) -> str:
    return render_fragment("_conversation_status.html", c=summary)


def conversation_context(
    runtime: Runtime,
    staff: Staff,
    detail: ConversationDetail,
    filters: QueueFilter,
) -> dict[str, Any]:
    """What the conversation page needs besides the detail itself."""
    with session_scope(runtime.engine, read_only=True) as session:
        canned = list_canned(session, team=staff.team)
    customer = detail.customer
    return {
        "detail": detail,
        "filters": filters,
        "filter_qs": filters.query_string(),
        "list_heading": queue_heading(filters),
        "queue": side_list(runtime, staff, filters),
        "current_id": detail.conversation.id,
        "team": list_staff(runtime.engine),
        "known_tags": known_tags(runtime.engine),
        "priorities": list(PRIORITIES.items()),
        "snooze_presets": SNOOZE_PRESETS,
        "canned": [
            {
                "shortcut": reply.shortcut,
                "title": reply.title,
                "text": fill_placeholders(
                    reply.text,
                    customer_name=customer.addressed_as,
                    agent_name=staff.name or staff.email.split("@")[0],
                    brand=runtime.settings.brand.name,
                ),
            }
            for reply in canned
        ],
        "conversation_id": detail.conversation.id,
        "escalation_id": detail.conversation.escalation_message_id,
        "customer_name": customer.name,
        "aspects": ASPECTS,
    }
