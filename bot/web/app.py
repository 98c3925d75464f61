"""The HTTP face of socialbot: web chat page and API, platform webhooks, staff console and API, health."""

from __future__ import annotations

import html
import logging
import uuid
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.exc import OperationalError
from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from bot import __version__
from bot.crm.db import DatabaseUnavailable, session_scope
from bot.crm.models import Conversation, DeliveryStatus, Direction, Message
from bot.pipeline.inbound import handle_inbound
from bot.runtime.container import Runtime
from bot.runtime.logs import install_request_ids
from bot.web.admin import admin_router
from bot.web.auth import LoginRequired, session_secret
from bot.web.console import console_router
from bot.web.contacts_api import contacts_router
from bot.web.insights import insights_router
from bot.web.operations import operations_router
from bot.web.staff_api import staff_api_router
from bot.web.webhooks_console import webhooks_console_router
from channels.base import Author, InboundMessage, WebhookChannel

__all__ = ["create_app"]

log = logging.getLogger("socialbot.web")
WEB_DIR = Path(__file__).resolve().parent
# Any request body larger than this is refused before it is read (webhooks and the chat API alike).
MAX_BODY_BYTES = 1_000_000
SESSION_ID_PATTERN = r"^[A-Za-z0-9_\-:.]{8,128}$"


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


def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    problems = []
    status = 422
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"] if part != "body") or "body"
        if item["type"] == "json_invalid":
            status = 400
            problems.append(
                f"the request body is not valid JSON ({item.get('ctx', {}).get('error', 'parse error')})"
            )
        elif item["type"] == "extra_forbidden":
            problems.append(f"{location}: unknown field")
        elif item["type"] == "missing":
            problems.append(f"{location}: required")
        else:
            problems.append(f"{location}: {item['msg']}")
    return JSONResponse({"error": "; ".join(problems)}, status_code=status)


def _http_error(request: Request, error: StarletteHTTPException) -> Response:
    detail = error.detail
    if error.status_code == 400 and detail == "There was an error parsing the body":
        detail = "the request body is not valid JSON in UTF-8"
    if request.url.path.startswith("/console") and not request.url.path.endswith("/updates"):
        page = (
            f"<!doctype html><title>{error.status_code}</title><p>{html.escape(str(detail))}</p>"
            '<p><a href="/console">Back to the console</a></p>'
        )
        return HTMLResponse(page, status_code=error.status_code, headers=error.headers)
    return JSONResponse({"error": detail}, status_code=error.status_code, headers=error.headers)


def _login_required(_request: Request, error: LoginRequired) -> RedirectResponse:
    return RedirectResponse(f"/console/login?next={quote(error.next_path)}", status_code=303)


def _database_unavailable(_request: Request, error: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", type(error).__name__)
    return JSONResponse(
        {
            "error": "the database is busy or unreachable; nothing was stored, retry the request",
            "retry": True,
        },
        status_code=503,
        headers={"Retry-After": "2"},
    )


def _mount_webhook(app: FastAPI, channel: WebhookChannel) -> None:
    """Route `POST channel.webhook_path` to the adapter, which verifies, stores and says what to answer."""

    async def receive_webhook(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            log.warning("%s webhook: body of %d bytes refused", channel.name, len(body))
            return JSONResponse({"error": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        headers = {key.lower(): value for key, value in request.headers.items()}
        answer = await run_in_threadpool(channel.handle_webhook, body, headers)
        return Response(
            content=answer.body,
            status_code=answer.status,
            headers=dict(answer.headers),
            media_type=answer.headers.get("content-type", "application/json" if answer.body else None),
        )

    app.add_api_route(
        channel.webhook_path,
        receive_webhook,
        methods=["POST"],
        name=f"{channel.name}_webhook",
        tags=["webhooks"],
        summary=f"{channel.name} webhook",
    )


class BodySizeLimit:
    """Refuses a request whose declared body is over MAX_BODY_BYTES before any of it is read (plain ASGI:
    Starlette's `BaseHTTPMiddleware` costs about a millisecond per request)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            length = Headers(scope=scope).get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                refusal = JSONResponse(
                    {"error": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(runtime: Runtime) -> FastAPI:
    """Build the web application around an already built `Runtime`."""
    settings = runtime.settings
    app = FastAPI(title=f"socialbot - {settings.brand.name}", version=__version__)
    app.state.runtime = runtime
    templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    app.add_exception_handler(LoginRequired, _login_required)
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(secret),
        session_cookie="socialbot_session",
        max_age=settings.console.session_max_age_seconds,
        same_site="lax",
        https_only=settings.console.secure_cookies,
    )
    app.include_router(console_router(runtime, templates))
    app.include_router(staff_api_router(runtime))
    app.include_router(operations_router(runtime))
    install_request_ids(app)
    app.include_router(contacts_router(runtime))
    app.include_router(insights_router(runtime, templates))
    app.include_router(webhooks_console_router(runtime, templates))
    app.include_router(admin_router(runtime, templates))

    app.add_middleware(BodySizeLimit)

    for channel in runtime.channels.values():
        if isinstance(channel, WebhookChannel) and channel.receives_webhooks:
            _mount_webhook(app, channel)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def chat_page(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(
            request, "chat.html", {"brand": settings.brand, "max_chars": settings.webchat.max_text_chars}
        )

    @app.post("/api/v1/chat", response_model=ChatResponse, tags=["web chat"])
    def post_chat_message(body: ChatRequest) -> ChatResponse | JSONResponse:
        """Send a customer's web chat message; the bot's replies come back in the response."""
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

    @app.get("/api/v1/chat/{session_id}/messages", response_model=list[ChatMessage], tags=["web chat"])
    def list_chat_messages(
        session_id: Annotated[str, Field(pattern=SESSION_ID_PATTERN)],
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

    return app
