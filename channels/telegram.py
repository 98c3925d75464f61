"""Telegram, through python-telegram-bot's `Bot`: webhook deliveries or long polling in, `sendMessage` out.

What reaches the bot: private messages; group messages that mention the bot (``@botname``) or reply to one of
its messages; ``/start`` in a private chat, which is a greeting. Messages from bots, messages without text and
every other kind of update (edits, channel posts, button presses) are ignored.

Two ways in (the `mode` setting):

- ``"webhook"``: Telegram posts each update to `TelegramChannel.webhook_path` with the secret token in the
  ``X-Telegram-Bot-Api-Secret-Token`` header; a wrong or missing token is refused with 403. Registering the
  webhook URL (``setWebhook``) is the operator's one-time step, not done per start.
- ``"polling"``: a thread asks ``getUpdates`` in a loop. The offset (last update id + 1) is saved in the
  `CursorStore` only after the batch was stored, so a crash fetches the batch again and the store drops the
  duplicates. Telegram refuses ``getUpdates`` while a webhook is set, so starting in polling mode deletes the
  webhook (keeping the pending updates): choosing polling in the settings means the webhook is no longer used.

python-telegram-bot is asyncio and the `Channel` interface is synchronous (called from worker threads), so the
adapter owns one event loop in a daemon thread and runs every Bot API call on it. The library's request layer
does not retry; the outbox does (`TemporarySendError`), honouring Telegram's ``retry_after``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import json
import logging
import re
import threading
import warnings
from collections.abc import Coroutine, Mapping
from datetime import UTC, timedelta
from typing import Any, Literal, TypeVar

from telegram import Bot, Message, MessageEntity, ReplyParameters, Update
from telegram.constants import ChatType
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from channels.base import (
    Author,
    ChannelError,
    CursorStore,
    InboundKind,
    InboundMessage,
    InboundSink,
    OutboundMessage,
    PermanentSendError,
    TemporarySendError,
    WebhookChannel,
    WebhookResponse,
)

__all__ = ["OFFSET_CURSOR", "TelegramChannel"]

log = logging.getLogger("socialbot.channels.telegram")

#: The `CursorStore` key of the polling offset.
OFFSET_CURSOR = "telegram:offset"

SECRET_HEADER = "x-telegram-bot-api-secret-token"

T = TypeVar("T")


def _json(status: int, payload: dict[str, Any]) -> WebhookResponse:
    return WebhookResponse(status, json.dumps(payload), {"content-type": "application/json"})


def _seconds(error: RetryAfter) -> float:
    # Reading `retry_after` warns that it will become a timedelta; accept both forms.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramChannel(WebhookChannel):
    """The Telegram adapter (python-telegram-bot 22).

    Args:
        token: the bot token from @BotFather.
        webhook_secret: the ``secret_token`` given to ``setWebhook``; deliveries must carry it. None refuses
            every webhook delivery (polling needs no secret).
        mode: ``"webhook"`` (Telegram posts to `webhook_path`) or ``"polling"`` (`start` runs ``getUpdates``).
        api_base_url: the Bot API base the token is appended to (``https://api.telegram.org/bot``).
        sink: stores each inbound message; returns False for one seen before.
        cursors: where polling keeps its offset across restarts.
        poll_timeout_seconds: how long one ``getUpdates`` long poll may wait for updates (whole seconds).
        retry_interval_seconds: how long polling waits after an error before asking again.
        request_timeout_seconds: the most a Bot API call (besides the long poll itself) may take.
    """

    name = "telegram"
    webhook_path = "/telegram/webhook"

    #: Defaults of the timing arguments (tests make them short).
    poll_timeout_seconds: int = 25
    retry_interval_seconds: float = 5.0
    request_timeout_seconds: float = 30.0

    def __init__(
        self,
        *,
        token: str,
        webhook_secret: str | None,
        mode: Literal["webhook", "polling"],
        api_base_url: str,
        sink: InboundSink,
        cursors: CursorStore,
        poll_timeout_seconds: int | None = None,
        retry_interval_seconds: float | None = None,
        request_timeout_seconds: float | None = None,
    ) -> None:
        if mode not in ("webhook", "polling"):
            raise ValueError(f'telegram mode must be "webhook" or "polling", not {mode!r}')
        self.mode = mode
        self.webhook_secret = webhook_secret
        self.sink = sink
        self.cursors = cursors
        if poll_timeout_seconds is not None:
            self.poll_timeout_seconds = poll_timeout_seconds
        if retry_interval_seconds is not None:
            self.retry_interval_seconds = retry_interval_seconds
        if request_timeout_seconds is not None:
            self.request_timeout_seconds = request_timeout_seconds
        self.bot = Bot(token, base_url=api_base_url)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()
        self._init_lock = threading.Lock()
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        self._poll_call: concurrent.futures.Future | None = None

    # The event loop the Bot runs on

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coroutine` on the adapter's loop and wait for its result (in the calling thread)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._event_loop())
        try:
            return future.result(timeout or self.request_timeout_seconds)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="telegram-loop", daemon=True)
                thread.start()
                self._loop, self._loop_thread = loop, thread
            return self._loop

    def _initialize(self) -> Bot:
        """The Bot, initialised once (``getMe``: its username and id are needed to see mentions)."""
        with self._init_lock:
            self._run(self.bot.initialize())
        return self.bot

    # Lifecycle

    def start(self) -> None:
        """In polling mode, start the ``getUpdates`` thread; in webhook mode there is nothing to start."""
        if self.mode != "polling" or (self._poller is not None and self._poller.is_alive()):
            return
        self._stopping.clear()
        self._poller = threading.Thread(target=self._poll, name="telegram-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        """End polling (the long poll in flight is cancelled), wait for it, and close the Bot and its loop."""
        self._stopping.set()
        call = self._poll_call
        if call is not None:
            call.cancel()
        if self._poller is not None:
            self._poller.join(timeout=self.request_timeout_seconds)
            self._poller = None
        with self._loop_lock:
            loop, thread = self._loop, self._loop_thread
            self._loop = self._loop_thread = None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.bot.shutdown(), loop).result(self.request_timeout_seconds)
        except (TelegramError, concurrent.futures.TimeoutError) as error:
            log.warning("telegram: closing the Bot API client failed: %s", error)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=self.request_timeout_seconds)
        loop.close()

    # In: webhook

    @property
    def receives_webhooks(self) -> bool:
        """Telegram posts to `webhook_path` in webhook mode only."""
        return self.mode == "webhook"

    def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookResponse:
        """Check the secret token, parse the update and hand its message (if it is for us) to the sink.

        Answers 403 for a wrong or missing secret, 400 for a body that is not a Telegram update, 200 for
        everything else (updates we don't handle included, so Telegram does not redeliver them).
        """
        given = headers.get(SECRET_HEADER, "")
        if not self.webhook_secret or not hmac.compare_digest(given.encode(), self.webhook_secret.encode()):
            log.warning(
                "telegram webhook: delivery with a %s secret token refused", "wrong" if given else "no"
            )
            return _json(403, {"error": "wrong or missing secret token"})
        try:
            data = json.loads(body)
        except ValueError as error:
            log.warning("telegram webhook: body is not JSON: %s", error)
            return _json(400, {"error": f"body is not JSON: {error}"})
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            log.warning("telegram webhook: body is not a Telegram update (no integer update_id)")
            return _json(
                400, {"error": "not a Telegram update: an object with an integer update_id expected"}
            )
        try:
            update = Update.de_json(data, self.bot)
        except (TypeError, KeyError, ValueError, AttributeError) as error:
            log.warning("telegram webhook: update %s is malformed: %r", data["update_id"], error)
            return _json(400, {"error": f"malformed update: {error!r}"})
        try:
            inbound = self._to_inbound(update, raw=data)
        except TelegramError as error:
            # Deciding whether a group message is for us needs getMe; Telegram redelivers after a 5xx.
            log.warning("telegram webhook: could not identify the bot: %s", error)
            return _json(503, {"error": f"the Bot API is unreachable: {error}"})
        if inbound is None:
            return _json(200, {"ok": True, "ignored": True})
        return _json(200, {"ok": True, "new": self.sink(inbound)})

    # In: polling

    def _poll(self) -> None:
        try:
            self._run(self.bot.delete_webhook(drop_pending_updates=False))
        except (TelegramError, concurrent.futures.TimeoutError) as error:
            log.warning("telegram: deleting the webhook before polling failed (%s); polling anyway", error)
        stored = self.cursors.get(OFFSET_CURSOR)
        offset = int(stored) if stored else None
        log.info("telegram: polling getUpdates from offset %s", offset)
        while not self._stopping.is_set():
            try:
                updates = self._fetch(offset)
            except concurrent.futures.CancelledError:
                break
            except RetryAfter as error:
                self._stopping.wait(_seconds(error))
                continue
            except (TelegramError, concurrent.futures.TimeoutError) as error:
                hint = " (a webhook is set or another poller runs)" if isinstance(error, Conflict) else ""
                log.warning("telegram: getUpdates failed%s: %s", hint, error)
                self._stopping.wait(self.retry_interval_seconds)
                continue
            if not updates:
                continue
            try:
                for update in updates:
                    inbound = self._to_inbound(update, raw=update.to_dict())
                    if inbound is not None:
                        self.sink(inbound)
            except Exception:
                # The poller must outlive a database outage: the offset stays, the batch comes again.
                log.exception("telegram: storing updates failed; fetching them again")
                self._stopping.wait(self.retry_interval_seconds)
                continue
            offset = updates[-1].update_id + 1
            self.cursors.set(OFFSET_CURSOR, str(offset))

    def _fetch(self, offset: int | None) -> tuple[Update, ...]:
        call = asyncio.run_coroutine_threadsafe(
            self.bot.get_updates(
                offset=offset, timeout=self.poll_timeout_seconds, allowed_updates=["message"]
            ),
            self._event_loop(),
        )
        self._poll_call = call
        if self._stopping.is_set():  # stop() ran before the call was visible to it
            call.cancel()
        try:
            return call.result(self.poll_timeout_seconds + self.request_timeout_seconds)
        except concurrent.futures.TimeoutError:
            call.cancel()
            raise
        finally:
            self._poll_call = None

    # From an update to an InboundMessage

    def _to_inbound(self, update: Update, *, raw: dict[str, Any]) -> InboundMessage | None:
        """The message of `update` if the bot should hear it, else None.

        Raises:
            TelegramError: the bot's own identity (``getMe``) was needed and could not be fetched.
        """
        message = update.message
        if message is None:
            return None
        sender = message.from_user
        if sender is None or sender.is_bot or not message.text:
            return None
        private = message.chat.type == ChatType.PRIVATE
        command, target = _command(message)
        if command == "start" and (private or self._is_me(target)):
            kind = InboundKind.GREETING
        elif private or self._addresses_bot(message):
            kind = InboundKind.MESSAGE
        else:
            return None
        return InboundMessage(
            channel=self.name,
            external_id=f"{message.chat.id}:{message.message_id}",
            thread_id=str(message.chat.id),
            author=Author(
                external_id=str(sender.id), handle=sender.username, display_name=sender.full_name or None
            ),
            text=message.text,
            public=not private,
            received_at=message.date.astimezone(UTC),
            raw=raw,
            kind=kind,
        )

    def _is_me(self, username: str | None) -> bool:
        if not username:
            return False
        return username.lstrip("@").lower() == self._initialize().username.lower()

    def _addresses_bot(self, message: Message) -> bool:
        """Whether a group message mentions the bot, names it in a command, or replies to it."""
        me = self._initialize()
        replied = message.reply_to_message
        if replied is not None and replied.from_user is not None and replied.from_user.id == me.id:
            return True
        for entity, text in message.parse_entities().items():
            if entity.type == MessageEntity.MENTION and self._is_me(text):
                return True
            if (
                entity.type == MessageEntity.TEXT_MENTION
                and entity.user is not None
                and entity.user.id == me.id
            ):
                return True
            if entity.type == MessageEntity.BOT_COMMAND and self._is_me(text.partition("@")[2]):
                return True
        # Clients mark mentions as entities; a message built without them still names the bot in its text.
        pattern = rf"(?<![\w@])@{re.escape(me.username)}(?!\w)"
        return re.search(pattern, message.text or "", re.IGNORECASE) is not None

    # Out

    def send(self, message: OutboundMessage) -> str:
        """Send `message` as plain text to its chat, as a reply when `reply_to_external_id` names a message.

        Returns ``"<chat id>:<message id>"`` of the sent message.

        Raises:
            TemporarySendError: flood control (with Telegram's ``retry_after``), network errors, timeouts,
                server errors.
            PermanentSendError: the bot was blocked or removed, the chat does not exist or the request is
                invalid, the token is refused, or the group moved to a new chat id.
        """
        reply = None
        if message.reply_to_external_id:
            _chat, _, message_id = message.reply_to_external_id.rpartition(":")
            if message_id.isdigit():
                reply = ReplyParameters(message_id=int(message_id), allow_sending_without_reply=True)
        try:
            self._initialize()
            sent = self._run(
                self.bot.send_message(chat_id=message.thread_id, text=message.text, reply_parameters=reply)
            )
        except RetryAfter as error:
            raise TemporarySendError(
                f"telegram flood control: {error}", retry_after=_seconds(error)
            ) from error
        except ChatMigrated as error:
            raise PermanentSendError(
                f"telegram: the group moved to chat {error.new_chat_id}; the old thread is gone"
            ) from error
        except (Forbidden, BadRequest, InvalidToken) as error:
            raise PermanentSendError(f"telegram refused the message: {error}") from error
        except NetworkError as error:
            raise TemporarySendError(f"telegram unreachable: {error}") from error
        except concurrent.futures.TimeoutError as error:
            raise TemporarySendError("telegram: sendMessage timed out") from error
        except TelegramError as error:
            raise TemporarySendError(f"telegram error: {error}") from error
        return f"{sent.chat_id}:{sent.message_id}"

    def hide(self, external_id: str) -> None:
        """Delete a customer's message (``deleteMessage``; in a group the bot must be an admin allowed to
        delete messages). `external_id` is ``"<chat id>:<message id>"`` as `InboundMessage` carries it.

        Raises:
            PermanentSendError: a malformed id, or Telegram refused (not an admin, the message is gone).
            TemporarySendError: flood control, network errors, timeouts, server errors.
        """
        chat_id, _, message_id = external_id.rpartition(":")
        if not chat_id or not message_id.isdigit():
            raise PermanentSendError(f"telegram: {external_id!r} is not a <chat id>:<message id>")
        try:
            self._initialize()
            self._run(self.bot.delete_message(chat_id=chat_id, message_id=int(message_id)))
        except (Forbidden, BadRequest, InvalidToken) as error:
            raise PermanentSendError(f"telegram refused to delete the message: {error}") from error
        except RetryAfter as error:
            raise TemporarySendError(
                f"telegram flood control: {error}", retry_after=_seconds(error)
            ) from error
        except (NetworkError, concurrent.futures.TimeoutError) as error:
            raise TemporarySendError(f"telegram unreachable: {error}") from error

    def set_webhook(self, url: str) -> None:
        """Tell Telegram to post updates to `url` with our secret token (``setWebhook``), messages only.

        Raises:
            ChannelError: there is no webhook secret, or Telegram refused (it names the reason, e.g. a URL
                that is not HTTPS).
        """
        if not self.webhook_secret:
            raise ChannelError("telegram: set a webhook secret (SOCIALBOT_TELEGRAM__WEBHOOK_SECRET) first")
        try:
            self._run(
                self.bot.set_webhook(url=url, secret_token=self.webhook_secret, allowed_updates=["message"])
            )
        except InvalidToken as error:
            raise ChannelError(f"telegram: the token is refused: {error}") from error
        except (TelegramError, concurrent.futures.TimeoutError) as error:
            raise ChannelError(f"telegram: setWebhook failed: {error or type(error).__name__}") from error

    def check(self) -> str:
        """Ask ``getMe`` who the bot is: ``"@username (id N)"``.

        Raises:
            ChannelError: the token is refused or the Bot API can't be reached.
        """
        try:
            me = self._run(self.bot.get_me())
        except InvalidToken as error:
            raise ChannelError(f"telegram: the token is refused: {error}") from error
        except (TelegramError, concurrent.futures.TimeoutError) as error:
            raise ChannelError(f"telegram: getMe failed: {error or type(error).__name__}") from error
        return f"@{me.username} (id {me.id})"


def _command(message: Message) -> tuple[str | None, str | None]:
    """The bot command the message starts with, without its slash, and the bot it names (``/start@x``)."""
    for entity, text in message.parse_entities([MessageEntity.BOT_COMMAND]).items():
        if entity.offset == 0:
            name, _, target = text.lstrip("/").partition("@")
            return name.lower(), target or None
    return None, None
