"""The one push mechanism of the site: server-sent events, for the console (bot/web/live.py) and for the web
chat (bot/web/chat.py). Plain HTTP, so it passes proxies and load balancers that a WebSocket may not.

Workers share nothing but the database, so a stream learns of changes from it. Every `POLL_SECONDS` a worker
reads one change mark (`ChangeMark`: the newest message, audit event and note ids and the number of replies
still being delivered; every action on a conversation is audited), one query shared by all of the worker's
streams, console and chat alike. Each tick, a stream's `tick` is told whether the mark moved: it then reads
what its page shows; otherwise it reads only what changes with time alone (someone typing, which a write
starts and the clock ends), with a few primary-key reads.

A stream ends after `STREAM_SECONDS` and the browser reconnects at once (`retry`), which bounds how long a
shutting-down server waits for open streams and re-checks the session or token on every reconnect.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine, func, select
from starlette.concurrency import run_in_threadpool

from bot.crm.db import session_scope
from bot.crm.models import AuditEvent, Message, Note
from bot.runtime.container import Runtime

__all__ = ["POLL_SECONDS", "STREAM_SECONDS", "ChangeMark", "change_mark", "event", "event_stream"]

POLL_SECONDS = 1.0
STREAM_SECONDS = 25.0
RETRY_MS = 1000

#: A stream's work on each tick, run in a worker thread: given whether the change mark moved, the events to
#: send (each made by `event`).
Tick = Callable[[bool], list[str]]


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


def event(name: str, data: Any, event_id: int | None = None) -> str:
    """One server-sent event: `data` as JSON, and an id when given (a reconnecting browser sends the last)."""
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in json.dumps(data).splitlines())
    return "\n".join(lines) + "\n\n"


def event_stream(request: Request, runtime: Runtime, tick: Tick) -> StreamingResponse:
    """The response streaming `tick`'s events every `POLL_SECONDS` for `STREAM_SECONDS` (see the module)."""
    mark = change_mark(request)

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        seen = None
        started = time.monotonic()
        while time.monotonic() - started < STREAM_SECONDS and not runtime.stopping.is_set():
            current = await mark.current()
            changed, seen = current != seen, current
            for item in await run_in_threadpool(tick, changed):
                yield item
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
