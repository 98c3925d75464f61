"""Web chat sessions are opened by the server: the browser picks a random session id, and the first message
of a new id gets back a session token (in the answer, and in an HttpOnly cookie scoped to the chat API).
Reading or writing that session later needs the token: the cookie, or `Authorization: Bearer <token>` for
API clients. The session id alone (shown nowhere to staff, but it travels in URL paths) opens nothing.

Only a hash of the token is stored, and the conversation's thread id is a hash of the session id, so
neither the database nor the staff screens hold anything that opens a customer's chat.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError

from bot.crm.db import session_scope
from bot.crm.models import WebchatSession

__all__ = [
    "NoSuchSession",
    "forget_session",
    "open_session",
    "presented_token",
    "set_token_cookie",
    "thread_of",
    "token_opens",
]

#: How long the browser keeps a session's cookie (its session id stays in localStorage).
COOKIE_MAX_AGE_SECONDS = 90 * 24 * 3600
COOKIE_PATH = "/api/v1/chat"


class NoSuchSession(Exception):
    """The session is already open: a new token can't be issued for it."""


def thread_of(session_id: str) -> str:
    """The conversation thread id of the web chat session `session_id` (a hash: it opens nothing)."""
    return "webchat-" + hashlib.sha256(session_id.encode()).hexdigest()[:32]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _cookie_name(thread_id: str) -> str:
    return "socialbot_chat_" + thread_id.removeprefix("webchat-")[:16]


def open_session(engine: Engine, thread_id: str) -> str:
    """Open the session of `thread_id` and return its new token (shown to the client once).

    Raises:
        NoSuchSession: the session is already open (its token is needed to use it).
    """
    token = secrets.token_urlsafe(32)
    try:
        with session_scope(engine) as session:
            session.add(WebchatSession(thread_id=thread_id, token_hash=_digest(token)))
    except IntegrityError:
        raise NoSuchSession(thread_id) from None
    return token


def forget_session(engine: Engine, thread_id: str) -> None:
    """Close a session opened by a request that then failed, so the client's retry can open it again."""
    with session_scope(engine) as session:
        session.exec(delete(WebchatSession).where(WebchatSession.thread_id == thread_id))


def token_opens(engine: Engine, thread_id: str, token: str) -> bool:
    """Whether `token` is the one issued for the session of `thread_id`."""
    with session_scope(engine, read_only=True) as session:
        row = session.get(WebchatSession, thread_id)
        return row is not None and hmac.compare_digest(row.token_hash, _digest(token))


def presented_token(request: Request, thread_id: str) -> str | None:
    """The session token the request carries: `Authorization: Bearer`, else the session's cookie."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(_cookie_name(thread_id))


def set_token_cookie(response: Response, thread_id: str, token: str, *, secure: bool) -> None:
    """Give the browser the session's token as an HttpOnly cookie sent only to the chat API."""
    response.set_cookie(
        _cookie_name(thread_id),
        token,
        max_age=COOKIE_MAX_AGE_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )
