"""The brand's web chat: the page at `/` and its JSON API. A message goes through the same pipeline as every
channel (`handle_inbound`); the bot's replies come back in the response, and later ones (staff) are polled."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import select

from bot.crm.db import session_scope
from bot.crm.models import Conversation, DeliveryStatus, Direction, Message
from bot.pipeline.inbound import handle_inbound
from bot.web.dependencies import RuntimeDep
from bot.web.pages import templates
from channels.base import Author, InboundMessage

__all__ = ["router"]

SESSION_ID_PATTERN = r"^[A-Za-z0-9_\-:.]{8,128}$"

router = APIRouter(tags=["web chat"])


class ChatRequest(BaseModel):
    """A customer's message from the web chat widget."""

    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(pattern=SESSION_ID_PATTERN, description="the browser's random chat session id")
    text: str = Field(description="the customer's message")
    name: str | None = Field(default=None, max_length=100, description="the name the customer gave, if any")
    message_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_\-:.]{1,128}$",
        description="the client's id for this message; a retry with the same id is answered once",
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("must not be empty or only whitespace")
        return text


class ChatReply(BaseModel):
    id: int
    text: str


class ChatResponse(BaseModel):
    conversation_id: int
    message_id: int
    state: str
    replies: list[ChatReply]
    duplicate: bool = False


class ChatMessage(BaseModel):
    id: int
    direction: str
    author: str
    text: str
    created_at: str


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def chat_page(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    settings = runtime.settings
    return templates.TemplateResponse(
        request, "chat.html", {"brand": settings.brand, "max_chars": settings.webchat.max_text_chars}
    )


@router.post("/api/v1/chat", response_model=ChatResponse)
def post_chat_message(body: ChatRequest, runtime: RuntimeDep) -> ChatResponse | JSONResponse:
    """Send a customer's web chat message; the bot's replies come back in the response."""
    settings = runtime.settings
    if not settings.webchat.enabled:
        return JSONResponse({"error": "the web chat is disabled"}, status_code=404)
    limit = settings.webchat.max_text_chars
    if len(body.text) > limit:
        return JSONResponse(
            {"error": f"text is {len(body.text)} characters; the limit is {limit}"}, status_code=413
        )
    inbound = InboundMessage(
        channel="webchat",
        external_id=f"{body.session_id}:{body.message_id or uuid.uuid4().hex}",
        thread_id=body.session_id,
        author=Author(external_id=body.session_id, display_name=body.name),
        text=body.text,
        public=False,
    )
    result = handle_inbound(runtime, inbound)
    return ChatResponse(
        conversation_id=result.conversation_id,
        message_id=result.message_id,
        state=result.state,
        # The web chat delivers by storing: a reply still pending here is being marked sent by this or
        # another worker's outbox job, and the customer must see it in this response either way.
        replies=[
            ChatReply(id=r.message_id, text=r.text)
            for r in result.replies
            if r.status != DeliveryStatus.FAILED
        ],
        duplicate=result.duplicate,
    )


@router.get("/api/v1/chat/{session_id}/messages", response_model=list[ChatMessage])
def list_chat_messages(
    session_id: Annotated[str, Field(pattern=SESSION_ID_PATTERN)],
    runtime: RuntimeDep,
    after: Annotated[int, Query(ge=0, description="only messages with a larger id")] = 0,
) -> list[ChatMessage]:
    """The messages of a web chat session, for the page to poll (replies from staff arrive here)."""
    with session_scope(runtime.engine) as session:
        rows = session.exec(
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.channel == "webchat",
                Conversation.thread_id == session_id,
                Message.id > after,
                (Message.direction == Direction.INBOUND.value)
                | (Message.status == DeliveryStatus.SENT.value),
            )
            .order_by(Message.id)
            .limit(200)
        ).all()
        return [
            ChatMessage(
                id=m.id,
                direction=m.direction,
                author=m.author_kind,
                text=m.text,
                created_at=m.created_at.isoformat(),
            )
            for m in rows
        ]
