"""The brand's web chat: the page at `/` and its JSON API. A message goes through the same pipeline as every
channel (`handle_inbound`); the bot's replies come back in the response. Everything later (staff replies, who
has the conversation now, the agent typing) reaches the page through one server-sent event stream per session
(`/api/v1/chat/{session_id}/events`, on the console's mechanism: bot/web/event_stream.py), read with `fetch`
so the session token can travel as a cookie or as a bearer credential (the embedded widget's frame, where a
third-party cookie may not be sent)."""

from __future__ import annotations

import math
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Engine
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from bot.crm.db import session_scope
from bot.crm.models import Conversation, DeliveryStatus, Direction, Message, Staff
from bot.crm.rate_limits import Limit, take
from bot.pipeline.inbound import handle_inbound
from bot.runtime.container import Runtime
from bot.runtime.settings import HEX_COLOR_PATTERN, MAX_GREETING_CHARS
from bot.support.webchat_status import ChatStatus, chat_status, first_name, set_customer_typing
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
from bot.web.event_stream import event, event_stream
from bot.web.pages import STATIC_DIR, templates
from bot.web.security_headers import CHAT_EMBED_PATH
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
    created_at: str = Field(description="when it was stored, ISO 8601 in UTC (the page shows local time)")
    agent: str | None = Field(default=None, description="a staff reply's author, by first name")


class ChatStatusOut(BaseModel):
    status: str = Field(
        description="bot | waiting (for a person) | person (a named person has it) | resolved"
    )
    agent: str | None = Field(description="the person's first name, while status is person")
    label: str = Field(description="the status in a few words for the customer")
    agent_typing: bool

    @classmethod
    def of(cls, status: ChatStatus) -> ChatStatusOut:
        return cls(
            status=status.status, agent=status.agent, label=status.label, agent_typing=status.agent_typing
        )


class TypingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    typing: bool = Field(description="true while the customer types, false when they stop")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def chat_page(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """The chat as a page of its own."""
    webchat = runtime.settings.webchat
    return _chat_html(request, runtime, color=webchat.color, greeting=webchat.greeting, embedded=False)


@router.get(CHAT_EMBED_PATH, response_class=HTMLResponse, include_in_schema=False)
def embedded_chat_page(
    request: Request,
    runtime: RuntimeDep,
    color: Annotated[str | None, Query(pattern=HEX_COLOR_PATTERN, description="#rgb or #rrggbb")] = None,
    greeting: Annotated[str | None, Query(min_length=1, max_length=MAX_GREETING_CHARS)] = None,
) -> HTMLResponse:
    """The chat inside the widget's frame (widget.js opens it): the brand's site may frame it only when its
    origin is in `[webchat] allowed_origins` (bot/web/security_headers.py says so)."""
    webchat = runtime.settings.webchat
    return _chat_html(
        request,
        runtime,
        color=color or webchat.color,
        greeting=greeting or webchat.greeting,
        embedded=True,
    )


@router.get("/widget.js", include_in_schema=False)
def widget_script() -> FileResponse:
    """The one script a brand's site includes to show the chat (see README, "Web chat")."""
    return FileResponse(
        STATIC_DIR / "widget.js",
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300"},
    )


def _chat_html(
    request: Request, runtime: Runtime, *, color: str, greeting: str, embedded: bool
) -> HTMLResponse:
    settings = runtime.settings
    return templates.TemplateResponse(
        request,
        "chat.html",
        {
            "brand": settings.brand,
            "max_chars": settings.webchat.max_text_chars,
            "color": color,
            "greeting": greeting,
            "embedded": embedded,
        },
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


SessionIdPath = Annotated[str, Field(pattern=SESSION_ID_PATTERN)]


@router.get("/api/v1/chat/{session_id}/messages", response_model=list[ChatMessage])
def list_chat_messages(
    session_id: SessionIdPath,
    request: Request,
    runtime: RuntimeDep,
    after: Annotated[int, Query(ge=0, description="only messages with a larger id")] = 0,
) -> list[ChatMessage] | JSONResponse:
    """The messages of a web chat session (replies from staff arrive here too); needs the session's token
    (cookie or `Authorization: Bearer`)."""
    thread_id = _authorized(request, runtime, session_id)
    if isinstance(thread_id, JSONResponse):
        return thread_id
    return _messages_after(runtime.engine, thread_id, after)


@router.get("/api/v1/chat/{session_id}/status", response_model=ChatStatusOut)
def get_chat_status(
    session_id: SessionIdPath, request: Request, runtime: RuntimeDep
) -> ChatStatusOut | JSONResponse:
    """Who has the conversation now (the bot, nobody yet, a named person, or nobody: resolved) and whether
    they are typing; needs the session's token."""
    thread_id = _authorized(request, runtime, session_id)
    if isinstance(thread_id, JSONResponse):
        return thread_id
    return ChatStatusOut.of(chat_status(runtime.engine, thread_id))


@router.post("/api/v1/chat/{session_id}/typing", status_code=204, response_model=None)
def post_typing(
    session_id: SessionIdPath, body: TypingRequest, request: Request, runtime: RuntimeDep
) -> Response:
    """The customer is typing (repeat every few seconds while they do) or stopped; the agent's console
    shows it. Needs the session's token."""
    thread_id = _authorized(request, runtime, session_id)
    if isinstance(thread_id, JSONResponse):
        return thread_id
    set_customer_typing(runtime.engine, thread_id, typing=body.typing)
    return Response(status_code=204)


@router.get("/api/v1/chat/{session_id}/events", response_model=None)
async def chat_events(
    session_id: SessionIdPath,
    request: Request,
    runtime: RuntimeDep,
    after: Annotated[int, Query(ge=0, description="only messages with a larger id")] = 0,
) -> StreamingResponse | JSONResponse:
    """Server-sent events for the chat page: `status` (as /status answers, whenever it changes, and first
    thing) and `messages` (a list, as /messages answers, of those after `after`). The stream ends after
    a while; reconnect with `after` set to the last message id seen. Needs the session's token."""
    thread_id = await run_in_threadpool(_authorized, request, runtime, session_id)
    if isinstance(thread_id, JSONResponse):
        return thread_id
    return event_stream(request, runtime, _ChatStream(runtime.engine, thread_id, after).tick)


class _ChatStream:
    """One chat page's stream: its status on every tick (the agent's typing ends with the clock), new
    messages when the database changed (bot/web/event_stream.py)."""

    def __init__(self, engine: Engine, thread_id: str, after: int) -> None:
        self.engine, self.thread_id, self.last_id = engine, thread_id, after
        self.sent_status: ChatStatusOut | None = None

    def tick(self, changed: bool) -> list[str]:
        events = []
        status = ChatStatusOut.of(chat_status(self.engine, self.thread_id))
        if status != self.sent_status:
            self.sent_status = status
            events.append(event("status", status.model_dump()))
        new = _messages_after(self.engine, self.thread_id, self.last_id) if changed else []
        if new:
            self.last_id = new[-1].id
            events.append(event("messages", [m.model_dump() for m in new]))
        return events


def _authorized(request: Request, runtime: Runtime, session_id: str) -> str | JSONResponse:
    """The thread id of the session, when the request carries its token; else the 401/403 answer."""
    thread_id = thread_of(session_id)
    presented = presented_token(request, thread_id)
    if presented is None:
        return _refused(401)
    if not token_opens(runtime.engine, thread_id, presented):
        return _refused(403)
    return thread_id


def _messages_after(engine: Engine, thread_id: str, after: int) -> list[ChatMessage]:
    """The customer-visible messages of the session on `thread_id` with ids above `after` (at most 200)."""
    with session_scope(engine, read_only=True) as session:
        rows = session.exec(
            select(Message, Staff.name)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .outerjoin(Staff, Staff.id == Message.staff_id)
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
                agent=first_name(name),
            )
            for m, name in rows
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
