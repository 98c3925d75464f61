"""The staff JSON API under /api/v1 (bearer token from `socialbot staff token EMAIL`): conversations, their
messages, reply, assign, resolve, hand back. Same rules and code paths as the console."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.crm.models import Staff
from bot.delivery.outbox import deliver_due
from bot.runtime.container import Runtime
from bot.support.conversations import HistoryItem, apply_action, conversation_detail, reply_as_staff
from bot.support.queue import ConversationSummary, QueueFilter, list_conversations
from bot.support.slack_posts import notify_support_channel
from bot.web.auth import api_staff
from bot.web.dependencies import RuntimeDep

__all__ = ["act_on_conversation", "router"]


class ConversationOut(BaseModel):
    id: int
    channel: str
    state: str
    contact_id: int
    contact_name: str
    assignee_id: int | None
    reason: str | None
    escalation_message_id: int | None
    priority: int
    tags: list[str]
    escalated_at: datetime | None
    last_message_at: datetime
    snoozed_until: datetime | None
    waiting_seconds: float

    @classmethod
    def of(cls, summary: ConversationSummary) -> ConversationOut:
        return cls(
            id=summary.id,
            channel=summary.channel,
            state=summary.state,
            contact_id=summary.contact_id,
            contact_name=summary.contact_name,
            assignee_id=summary.assignee_id,
            reason=summary.reason,
            escalation_message_id=summary.escalation_message_id,
            priority=summary.priority,
            tags=list(summary.tags),
            escalated_at=summary.escalated_at,
            last_message_at=summary.last_message_at,
            snoozed_until=summary.snoozed_until,
            waiting_seconds=round(summary.waiting_seconds, 1),
        )


class MessageOut(BaseModel):
    id: int
    conversation_id: int
    channel: str
    direction: str
    author: str | None
    text: str
    created_at: datetime
    status: str
    intent: str | None
    sentiment: str | None
    abusive: bool | None
    kb_article_id: str | None
    action: str | None
    reason: str | None

    @classmethod
    def of(cls, item: HistoryItem) -> MessageOut:
        return cls(
            id=item.id,
            conversation_id=item.conversation_id,
            channel=item.channel,
            direction=item.direction,
            author=item.author,
            text=item.text,
            created_at=item.created_at,
            status=item.status,
            intent=item.intent,
            sentiment=item.sentiment,
            abusive=item.abusive,
            kb_article_id=item.kb_article_id,
            action=item.action,
            reason=item.reason,
        )


class ConversationWithMessages(ConversationOut):
    messages: list[MessageOut] = Field(description="the contact's messages on every channel, oldest first")


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=10_000)
    idempotency_key: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_\-:.]{1,100}$",
        description="your id for this reply: a retry with the same key is sent once",
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("must not be empty or only whitespace")
        return text.strip()


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    staff_id: int | None = Field(description="who gets it; null = unassigned (still with staff)")


class StateOut(BaseModel):
    id: int
    state: str


class ReplyOut(BaseModel):
    message_id: int


router = APIRouter(prefix="/api/v1", tags=["staff"])
Reader = Annotated[Staff, Depends(api_staff("conversations.read"))]
Writer = Annotated[Staff, Depends(api_staff("conversations.write"))]


@router.get("/conversations", response_model=list[ConversationOut])
def get_conversations(
    runtime: RuntimeDep,
    staff: Reader,
    state: Annotated[str | None, Query(pattern="^(bot|human|resolved|snoozed)$")] = "human",
    channel: Annotated[str | None, Query(max_length=20)] = None,
    assignee_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ConversationOut]:
    """Conversations by state (with staff: the most urgent, then the longest waiting first), channel and
    assignee."""
    filters = QueueFilter(
        state=state or "",
        channel=channel,
        assignee=str(assignee_id) if assignee_id is not None else "all",
    )
    rows = list_conversations(runtime.engine, filters, staff_id=staff.id, limit=limit)
    return [ConversationOut.of(row) for row in rows]


@router.get("/conversations/{conversation_id}", response_model=ConversationWithMessages)
def get_conversation(conversation_id: int, runtime: RuntimeDep, staff: Reader) -> ConversationWithMessages:
    """One conversation with its contact's whole history across channels."""
    detail = conversation_detail(runtime.engine, conversation_id)
    return ConversationWithMessages(
        **ConversationOut.of(detail.conversation).model_dump(),
        messages=[MessageOut.of(item) for item in detail.history],
    )


@router.post("/conversations/{conversation_id}/reply", response_model=ReplyOut, status_code=202)
def post_reply(conversation_id: int, body: ReplyIn, runtime: RuntimeDep, staff: Writer) -> ReplyOut:
    """Send a reply on the customer's channel (queued in the outbox); the conversation becomes staff's."""
    key = body.idempotency_key or uuid.uuid4().hex
    message_id, _ = reply_as_staff(
        runtime.engine,
        conversation_id,
        staff_id=staff.id,
        text=body.text,
        idempotency_key=f"api:{staff.id}:{key}",
    )
    runtime.submit(deliver_due, runtime.engine, runtime.channels)
    notify_support_channel(runtime)
    return ReplyOut(message_id=message_id)


@router.post("/conversations/{conversation_id}/assign", response_model=StateOut)
def post_assign(conversation_id: int, body: AssignIn, runtime: RuntimeDep, staff: Writer) -> StateOut:
    """Assign to a staff member (or unassign); the bot stays silent."""
    return _state(runtime, conversation_id, "assign", staff, body.staff_id)


@router.post("/conversations/{conversation_id}/resolve", response_model=StateOut)
def post_resolve(conversation_id: int, runtime: RuntimeDep, staff: Writer) -> StateOut:
    """Resolve the conversation."""
    return _state(runtime, conversation_id, "resolve", staff)


@router.post("/conversations/{conversation_id}/hand-back", response_model=StateOut)
def post_hand_back(conversation_id: int, runtime: RuntimeDep, staff: Writer) -> StateOut:
    """Give the conversation back to the bot."""
    return _state(runtime, conversation_id, "hand_back", staff)


def act_on_conversation(
    runtime: Runtime, conversation_id: int, action: str, staff: Staff, assignee_id: int | None = None
) -> str:
    """Take, assign, resolve or hand back a conversation as `staff` (`apply_action`) and update the Slack
    support channel; the conversation's state after it.

    Raises:
        ConversationNotFound: no such conversation (the app answers 404).
        HTTPException: 422, an action that does not apply.
    """
    try:
        state = apply_action(
            runtime.engine,
            conversation_id,
            action,
            staff_id=staff.id,
            assignee_id=assignee_id,
            followup_settings=runtime.settings.followups,
        )
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
    notify_support_channel(runtime)
    return state


def _state(
    runtime: Runtime, conversation_id: int, action: str, staff: Staff, assignee_id: int | None = None
) -> StateOut:
    return StateOut(
        id=conversation_id, state=act_on_conversation(runtime, conversation_id, action, staff, assignee_id)
    )
