"""The brand's web chat: the page at `/` and its JSON API. A message goes through the same pipeline as every
channel (`handle_inbound`); the bot's replies come back in the response, and later ones (staff) are polled."""

from __future__ import annotations

import math
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import select

from bot.crm.db import session_scope
from bot.crm.models import Conversation, DeliveryStatus, Direction, Message
from bot.crm.rate_limits import Limit, take
from bot.pipeline.inbound import handle_inbound
from bot.runtime.container import Runtime
from bot.web.chat_sessions import (
    NoSuchSession,
    forget_session,
    open_session,
    presented_token,
    set_token_cookie,
    thread_of,
    token_opens,
)
from bot.web.dependencies import RuntimeDep, client_address
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
    session_token: str | None = Field(
        default=None,
        description="only in the answer that opened the session: present it with every later request",
    )


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


@router.post("/api/v1/chat", response_model=ChatResponse, response_model_exclude_none=True)
def post_chat_message(
    body: ChatRequest, request: Request, response: Response, runtime: RuntimeDep
) -> ChatResponse | JSONResponse:
    """Send a customer's web chat message; the bot's replies come back in the response. The first message
    of a new `session_id` opens the session: its answer carries `session_token` (also set as a cookie),
    which every later request for the session must present (cookie or `Authorization: Bearer`)."""
    settings = runtime.settings
    if not settings.webchat.enabled:
        return JSONResponse({"error": "the web chat is disabled"}, status_code=404)
    client = client_address(request)
    wait = _take(runtime, Limit("webchat:client", settings.webchat.messages_per_minute_per_ip, 60), client)
    if wait:
        return JSONResponse(
            {"error": "too many messages from your address; wait a moment and send again"},
            status_code=429,
            headers={"Retry-After": str(math.ceil(wait))},
        )
    limit = settings.webchat.max_text_chars
    if len(body.text) > limit:
        return JSONResponse(
            {"error": f"text is {len(body.text)} characters; the limit is {limit}"}, status_code=413
        )
    thread_id = thread_of(body.session_id)
    presented = presented_token(request, thread_id)
    new_token = None
    if presented is not None:
        if not token_opens(runtime.engine, thread_id, presented):
            return _refused(403)
    else:
        try:
            new_token = open_session(runtime.engine, thread_id)
        except NoSuchSession:
            return _refused(401)
    inbound = InboundMessage(
        channel="webchat",
        external_id=f"{thread_id}:{body.message_id or uuid.uuid4().hex}",
        thread_id=thread_id,
        author=Author(external_id=thread_id, display_name=body.name),
        text=body.text,
        public=False,
        raw={"client_ip": client},
    )
    try:
        result = handle_inbound(runtime, inbound)
    except Exception:
        if new_token is not None:
            forget_session(runtime.engine, thread_id)  # nothing was answered: the retry opens it again
        raise
    if new_token is not None:
        set_token_cookie(response, thread_id, new_token, secure=settings.server.https)
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
        session_token=new_token,
    )


@router.get("/api/v1/chat/{session_id}/messages", response_model=list[ChatMessage])
def list_chat_messages(
    session_id: Annotated[str, Field(pattern=SESSION_ID_PATTERN)],
    request: Request,
    runtime: RuntimeDep,
    after: Annotated[int, Query(ge=0, description="only messages with a larger id")] = 0,
) -> list[ChatMessage] | JSONResponse:
    """The messages of a web chat session, for the page to poll (replies from staff arrive here); needs the
    session's token (cookie or `Authorization: Bearer`)."""
    thread_id = thread_of(session_id)
    presented = presented_token(request, thread_id)
    if presented is None:
        return _refused(401)
    if not token_opens(runtime.engine, thread_id, presented):
        return _refused(403)
    with session_scope(runtime.engine, read_only=True) as session:
        rows = session.exec(
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.channel == "webchat",
                Conversation.thread_id == thread_id,
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


def _take(runtime: Runtime, limit: Limit, *key: str) -> float:
    with session_scope(runtime.engine) as session:
        return take(session, limit, *key)


def _refused(status: int) -> JSONResponse:
    reason = {
        401: "this chat session is open: send its session token (the cookie from its first answer, or "
        "Authorization: Bearer <session_token>)",
        403: "this session token does not open this chat session",
    }[status]
    return JSONResponse({"error": reason}, status_code=status, headers={"WWW-Authenticate": "Bearer"})
