"""Logging set-up: plain text for a terminal, or one JSON object per line for a log pipeline.

Every record carries the id of the HTTP request it happened in (`request_id`, from the `X-Request-ID` header
or made up) and, where the code passes one, the message it is about (`extra={"message_id": ...}`), so one
customer message can be followed across workers. Customer text and secrets are never put in log records at
INFO by socialbot's own code; the JSON formatter adds nothing but the fields below.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import uuid
from datetime import UTC, datetime
from typing import Literal

from starlette.datastructures import Headers, MutableHeaders

__all__ = ["JsonFormatter", "RequestIdFilter", "configure_logging", "install_request_ids", "request_id"]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Attributes a LogRecord has on its own; anything else on a record came from `extra=` and is output.
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that say too much at INFO (APScheduler logs every run of every job, several a second; Alembic a
# line per plugin before every migration): their warnings and errors still show.
NOISY_LOGGERS = ("httpx", "transformers", "huggingface_hub", "apscheduler", "alembic.runtime.plugins")


class RequestIdFilter(logging.Filter):
    """Puts the current request's id (or None) on every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id, the record's
    `extra` fields (message_id, ...) and, for an exception, its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | type(None)) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(log_format: Literal["text", "json"] = "text", level: int | str = logging.INFO) -> None:
    """Send socialbot's (and the libraries') logs to stderr in `log_format`; replaces earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def install_request_ids(app) -> None:
    """Give every HTTP request an id (the caller's `X-Request-ID` if it is sane, else a new one), set it for
    the request's log records, and return it in the response's `X-Request-ID` header."""
    app.add_middleware(RequestIdMiddleware)


class RequestIdMiddleware:
    """The ASGI middleware behind `install_request_ids` (plain ASGI: Starlette's `BaseHTTPMiddleware`
    costs about a millisecond per request)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        current = given if 0 < len(given) <= 64 and given.replace("-", "").isalnum() else uuid.uuid4().hex

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = current
            await send(message)

        token = request_id.set(current)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
