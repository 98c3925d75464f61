"""A fake Telegram Bot API: ``getMe``, ``sendMessage``, ``getUpdates``, ``deleteMessage`` and
``deleteWebhook`` under ``/bot<token>/``, answering ``{"ok": true, "result": ...}`` as
https://core.telegram.org/bots/api documents.

Tests queue updates for `getUpdates` (or post them to the webhook themselves, built with `private_message` /
`group_message`), read what the bot sent from `sent`, and script failures with `fail("sendMessage", ...)`
using `flood_control` (429 + ``retry_after``) or `server_error`.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from tests.fakes.server import FakeResponse, FakeServer, RecordedRequest

__all__ = ["FakeTelegram", "flood_control", "server_error"]

BOT_USER = {
    "id": 7000001,
    "is_bot": True,
    "first_name": "Fernhill Outdoor",
    "username": "FernhillBot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


def _ok(result: Any) -> FakeResponse:
    return FakeResponse(200, {"ok": True, "result": result})


def _error(code: int, description: str, **parameters: Any) -> FakeResponse:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return FakeResponse(code, body)


def flood_control(retry_after: int) -> FakeResponse:
    """Telegram's answer when the bot sends too fast."""
    return _error(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


def server_error() -> FakeResponse:
    return _error(500, "Internal Server Error")


class FakeTelegram:
    """The Bot API of one bot (`token`), served on loopback. Use as a context manager."""

    def __init__(self, token: str = "123456:TEST-token") -> None:
        self.token = token
        self.server = FakeServer()
        self.sent: list[dict[str, Any]] = []  # every message sendMessage accepted, as the Bot API returned it
        self.deleted: list[tuple[int, int]] = []  # (chat id, message id) of every deleteMessage accepted
        self.not_admin_in: set[int] = set()  # chats where deleteMessage is refused (the bot is no admin)
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1001)
        self._message_ids = itertools.count(500)
        self._changed = threading.Condition()
        self._closed = False
        for method, handler in {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "deleteMessage": self._delete_message,
        }.items():
            self.server.route("POST", self.path(method), handler)

    # Set-up and inspection

    @property
    def api_base_url(self) -> str:
        """What the `api_base_url` setting points at (the token is appended by python-telegram-bot)."""
        return f"{self.server.base_url}/bot"

    def path(self, method: str) -> str:
        return f"/bot{self.token}/{method}"

    def calls(self, method: str) -> list[RecordedRequest]:
        return self.server.calls(self.path(method))

    def fail(self, method: str, *responses: FakeResponse) -> None:
        """Answer the next calls to `method` with `responses` (then as usual)."""
        self.server.fail_next(self.path(method), *responses)

    def queue(self, *updates: dict[str, Any]) -> None:
        """Make `updates` available to getUpdates (and wake a long poll)."""
        with self._changed:
            self._updates.extend(updates)
            self._changed.notify_all()

    def next_update_id(self) -> int:
        return next(self._update_ids)

    def __enter__(self) -> FakeTelegram:
        self.server.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self.server.stop()

    # Update builders (what Telegram sends)

    def private_message(self, user_id: int, text: str, **message: Any) -> dict[str, Any]:
        """An update carrying a private message from customer `user_id` (the chat id is the user id)."""
        chat = {"id": user_id, "type": "private", "first_name": "Jane", "username": f"user{user_id}"}
        return self._update(chat, user_id, text, **message)

    def group_message(self, chat_id: int, user_id: int, text: str, **message: Any) -> dict[str, Any]:
        """An update carrying a message from `user_id` in supergroup `chat_id` (a negative id)."""
        chat = {"id": chat_id, "type": "supergroup", "title": "Fernhill campers"}
        return self._update(chat, user_id, text, **message)

    def bot_message(self, chat: dict[str, Any], text: str) -> dict[str, Any]:
        """A message the bot itself sent in `chat` (to reply to)."""
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": BOT_USER,
            "text": text,
        }

    def _update(self, chat: dict[str, Any], user_id: int, text: str | None, **message: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": {
                "id": user_id,
                "is_bot": False,
                "first_name": "Jane",
                "last_name": "Doe",
                "username": f"user{user_id}",
                "language_code": "en",
            },
        }
        if text is not None:
            body["text"] = text
        body.update(message)
        return {"update_id": self.next_update_id(), "message": body}

    # Handlers

    def _get_me(self, _request: RecordedRequest) -> FakeResponse:
        return _ok(BOT_USER)

    def _delete_webhook(self, _request: RecordedRequest) -> FakeResponse:
        return _ok(True)

    def _set_webhook(self, request: RecordedRequest) -> FakeResponse:
        if not str(request.params.get("url", "")).startswith("https://"):
            return _error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        return _ok(True)

    def _send_message(self, request: RecordedRequest) -> FakeResponse:
        params = request.params
        if "chat_id" not in params or not params.get("text"):
            return _error(400, "Bad Request: chat_id and text are required")
        chat_id = int(params["chat_id"])
        chat = (
            {"id": chat_id, "type": "private", "first_name": "Jane"}
            if chat_id > 0
            else {"id": chat_id, "type": "supergroup", "title": "Fernhill campers"}
        )
        message = self.bot_message(chat, params["text"])
        self.sent.append({**message, "request": params})
        return _ok(message)

    def _delete_message(self, request: RecordedRequest) -> FakeResponse:
        params = request.params
        if "chat_id" not in params or "message_id" not in params:
            return _error(400, "Bad Request: chat_id and message_id are required")
        if int(params["chat_id"]) in self.not_admin_in:
            return _error(400, "Bad Request: message can't be deleted")
        self.deleted.append((int(params["chat_id"]), int(params["message_id"])))
        return _ok(True)

    def _get_updates(self, request: RecordedRequest) -> FakeResponse:
        params = request.params
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        with self._changed:
            while True:
                # An offset confirms (forgets) every update before it, as Telegram does.
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                if self._updates or time.monotonic() >= deadline or self._closed:
                    return _ok(list(self._updates[:100]))
                self._changed.wait(deadline - time.monotonic())
