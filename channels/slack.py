"""Slack: the Events API (or Socket Mode) in through a slack-bolt `App`, replies out with `chat.postMessage`.

In: app mentions, direct messages, and messages in the channels the bot is in that name one of the brand's
keywords. Out: a reply in the customer's thread (in a direct message, in the conversation itself). The bot's
own messages, other bots' messages and message subtypes (edits, deletions, joins) are acknowledged and
dropped. The same Slack message can arrive twice (as `app_mention` and as `message`, or as a retry with
`X-Slack-Retry-Num`): its id is `channel:ts`, so the store keeps one.

Bolt verifies the signing secret (a bad or stale signature gets 401), answers `url_verification`, and runs
the listener inside the request (`process_before_response`): the listener only hands the message to the
sink, which stores it, so Slack's 200 goes out after the message is safe and well within its 3 seconds.

Retries belong to the outbox: the Web API client has no retry handlers, so `send` never sleeps; a rate limit
or a 5xx becomes a `TemporarySendError` (with Slack's `Retry-After`) and the outbox tries again later.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from slack_bolt import App, BoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from channels.base import (
    Author,
    ChannelError,
    InboundMessage,
    InboundSink,
    OutboundMessage,
    PermanentSendError,
    TemporarySendError,
    WebhookChannel,
    WebhookResponse,
)

__all__ = ["REPLY_EVENT_TYPE", "SlackChannel"]

log = logging.getLogger("socialbot.channels.slack")

#: The `metadata.event_type` on every message the bot posts; its payload carries the outbox's idempotency
#: key, so `find_sent` can recognise a reply that was posted but not recorded.
REPLY_EVENT_TYPE = "socialbot_reply"

# Subtypes that are still a person writing something new; every other subtype (message_changed,
# message_deleted, channel_join, bot_message, ...) is not a message to answer.
_USER_SUBTYPES = frozenset({"file_share", "thread_broadcast"})

# Web API errors worth trying again; any other error means the request itself can't succeed.
_TEMPORARY_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)

# How far back `find_sent` looks in a conversation for a reply posted before an interruption.
_FIND_SENT_PAGES = 5
_FIND_SENT_PAGE_SIZE = 200


class SlackChannel(WebhookChannel):
    """The Slack adapter: a Bolt app for events in, a Web API client for replies out.

    Args:
        bot_token: the bot token (`xoxb-...`) used for every Web API call.
        signing_secret: the app's signing secret; deliveries to `webhook_path` must be signed with it.
            May be None in Socket Mode, in which case the webhook answers 404.
        app_token: the app-level token (`xapp-...`) that opens the Socket Mode connection.
        socket_mode: receive events over a WebSocket opened by `start()` instead of at `webhook_path`.
        api_base_url: Slack's Web API base (`https://slack.com/api/`), or a local fake in tests.
        keywords: words that make a channel message about the brand (matched case-insensitively as whole
            words); mentions and direct messages are taken whatever they say.
        sink: where every accepted message goes; it stores the message before it returns.
        timeout_seconds: how long one Web API call may take.

    Raises:
        ChannelError: the bot token is missing.
    """

    name = "slack"
    webhook_path = "/slack/events"

    def __init__(
        self,
        *,
        bot_token: str | None,
        signing_secret: str | None,
        app_token: str | None = None,
        socket_mode: bool = False,
        api_base_url: str = "https://slack.com/api/",
        keywords: Iterable[str] = (),
        sink: InboundSink,
        timeout_seconds: int = 10,
    ) -> None:
        if not bot_token:
            raise ChannelError("slack: a bot token (xoxb-...) is required")
        self.signing_secret = signing_secret
        self.app_token = app_token
        self.socket_mode = socket_mode
        self.sink = sink
        self._keyword_pattern = _keyword_pattern(keywords)
        # No retry handlers: the outbox retries with backoff, so a call never sleeps inside `send`.
        self.client = WebClient(
            token=bot_token, base_url=api_base_url, timeout=timeout_seconds, retry_handlers=[]
        )
        self._identity: SlackResponse | None = None
        self._identity_lock = threading.Lock()
        self._socket_handler: Any = None
        # Idempotency keys whose last attempt may have reached Slack unrecorded: `send` looks before posting.
        self._unconfirmed: set[str] = set()
        self.app = App(
            # Bolt's own client has no token: each request's client gets it from `_authorize`.
            client=WebClient(base_url=api_base_url, timeout=timeout_seconds, retry_handlers=[]),
            signing_secret=signing_secret or "",
            # A lambda, not the bound method: Bolt injects arguments by parameter name and trips on `self`.
            authorize=lambda: self._authorize(),
            process_before_response=True,
            # Socket Mode deliveries are authenticated by the WebSocket; HTTP ones by the signature.
            request_verification_enabled=not socket_mode,
            logger=log,
        )
        self.app.event(re.compile(".*"))(self._on_event)

    # Inbound

    def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookResponse:
        """Verify one Events API delivery, store the message it carries, and say what to answer Slack.

        Malformed bodies get 400, bad or stale signatures 401 (from Bolt), events that are not for the
        bot 200 with nothing stored, and a failure to store 500 (so Slack delivers again).
        """
        if not self.signing_secret:
            return WebhookResponse(404, json.dumps({"error": "the Slack Events API is not configured"}))
        try:
            text = body.decode("utf-8")
            if headers.get("content-type", "").startswith("application/json") or text.startswith("{"):
                _check_envelope(json.loads(text))
            request = BoltRequest(body=text, headers=dict(headers))
        except ValueError as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            log.warning("slack webhook: malformed delivery refused: %s", error)
            return WebhookResponse(400, json.dumps({"error": f"malformed delivery: {error}"}))
        response = self.app.dispatch(request)
        return WebhookResponse(
            status=response.status,
            body=response.body,
            headers={key: values[0] for key, values in response.headers.items() if values},
        )

    def _authorize(self) -> AuthorizeResult:
        """Who the bot is (for Bolt to drop the bot's own events), from `auth.test` on first need, cached.

        Raising anything but `SlackApiError` makes Bolt answer 500, so Slack delivers the event again
        instead of it being acknowledged and lost.
        """
        try:
            identity = self._bot_identity()
        except SlackApiError as error:
            raise ChannelError(f"slack: auth.test failed: {_error_code(error)}") from error
        return AuthorizeResult.from_auth_test_response(
            auth_test_response=identity, bot_token=self.client.token
        )

    def _bot_identity(self) -> SlackResponse:
        with self._identity_lock:
            if self._identity is None:
                self._identity = self.client.auth_test()
            return self._identity

    def _on_event(self, event: dict[str, Any], context: Any) -> None:
        inbound = self._to_inbound(event, bot_user_id=context.bot_user_id)
        if inbound is not None:
            self.sink(inbound)

    def _to_inbound(self, event: dict[str, Any], *, bot_user_id: str | None) -> InboundMessage | None:
        """The message in `event`, or None when it is not one for the bot (logged at debug level)."""
        kind, subtype = event.get("type"), event.get("subtype")
        channel_type = event.get("channel_type")
        if kind not in ("app_mention", "message"):
            return _ignored(event, "not a message event")
        if subtype is not None and subtype not in _USER_SUBTYPES:
            return _ignored(event, f"subtype {subtype}")
        if event.get("bot_id") or event.get("bot_profile"):
            return _ignored(event, "written by a bot")
        channel, ts, user = event.get("channel"), event.get("ts"), event.get("user")
        text = event.get("text") if isinstance(event.get("text"), str) else ""
        if not all(isinstance(value, str) and value for value in (channel, ts, user)):
            log.warning("slack: ignored a %s event without channel, ts or user", kind)
            return None
        if bot_user_id is not None and user == bot_user_id:
            return _ignored(event, "the bot's own message")
        direct = kind == "message" and channel_type == "im"
        if kind == "message" and not direct and not self._names_the_brand(text):
            return _ignored(event, "a channel message that does not name the brand")
        thread_ts = event.get("thread_ts")
        if isinstance(thread_ts, str) and thread_ts:
            thread_id = f"{channel}:{thread_ts}"
        elif direct:
            # A direct message is one conversation with the customer: the bot answers in it, not in threads.
            thread_id = channel
        else:
            thread_id = f"{channel}:{ts}"
        profile = event.get("user_profile") if isinstance(event.get("user_profile"), dict) else {}
        return InboundMessage(
            channel=self.name,
            external_id=f"{channel}:{ts}",
            thread_id=thread_id,
            author=Author(
                external_id=user,
                handle=profile.get("name"),
                display_name=profile.get("display_name") or profile.get("real_name") or None,
            ),
            text=_without_mention(text, bot_user_id),
            public=channel_type != "im",
            received_at=_ts_to_datetime(ts),
            raw=event,
        )

    def _names_the_brand(self, text: str) -> bool:
        return self._keyword_pattern is not None and self._keyword_pattern.search(text) is not None

    # Outbound

    def send(self, message: OutboundMessage) -> str:
        """Post `message` in its thread with `chat.postMessage`; return `channel:ts` of the posted message.

        If an earlier attempt with the same idempotency key failed in a way that may still have posted it
        (a 5xx, a dropped connection), or `find_sent` could not tell, the thread is searched first and an
        earlier post is returned instead of posting again.

        Raises:
            TemporarySendError: rate limited (with Slack's `Retry-After`), a 5xx, or no connection.
            PermanentSendError: Slack refused the request (channel_not_found, not_in_channel, is_archived,
                invalid_auth, ...).
        """
        key = message.idempotency_key
        if key and key in self._unconfirmed:
            earlier = self.find_sent(message)
            if earlier is not None:
                return earlier
        channel, thread_ts = _split_thread(message.thread_id)
        try:
            with _send_errors("chat.postMessage"):
                response = self.client.chat_postMessage(
                    channel=channel,
                    thread_ts=thread_ts,
                    text=message.text,
                    metadata={"event_type": REPLY_EVENT_TYPE, "event_payload": {"idempotency_key": key}},
                )
        except TemporarySendError as error:
            if key and _may_have_posted(error):
                self._unconfirmed.add(key)
            raise
        self._unconfirmed.discard(key)
        return f"{response.get('channel') or channel}:{response['ts']}"

    def find_sent(self, message: OutboundMessage) -> str | None:
        """Look in the thread (or, for a direct message, the conversation) for a reply the bot posted with
        `message`'s idempotency key; return its `channel:ts`, else None.

        When Slack refuses to show the conversation (a missing `*:history` scope, the bot was removed), the
        answer is None: sending again risks a duplicate, not asking would lose the reply.

        Raises:
            TemporarySendError: Slack could not be asked for now (rate limit, 5xx, no connection); the outbox
                tries again later, and the next `send` of this message asks again before posting.
        """
        key = message.idempotency_key
        if not key:
            return None
        channel, thread_ts = _split_thread(message.thread_id)
        try:
            with _send_errors("find_sent"):
                for posted in self._recent_messages(channel, thread_ts):
                    metadata = posted.get("metadata") or {}
                    payload = metadata.get("event_payload") or {}
                    if (
                        metadata.get("event_type") == REPLY_EVENT_TYPE
                        and payload.get("idempotency_key") == key
                    ):
                        self._unconfirmed.discard(key)
                        return f"{channel}:{posted['ts']}"
        except TemporarySendError:
            # The outbox forgets that this row may have been sent once this attempt is recorded as failed;
            # remember it here so the next `send` asks before posting.
            self._unconfirmed.add(key)
            raise
        except PermanentSendError as error:
            log.warning("slack: can't look for an earlier reply (%s); sending it again", error)
        self._unconfirmed.discard(key)
        return None

    def _recent_messages(self, channel: str, thread_ts: str | None) -> Iterator[dict[str, Any]]:
        cursor = None
        for _ in range(_FIND_SENT_PAGES):
            arguments = {
                "channel": channel,
                "include_all_metadata": True,
                "limit": _FIND_SENT_PAGE_SIZE,
                "cursor": cursor,
            }
            if thread_ts is not None:
                page = self.client.conversations_replies(ts=thread_ts, **arguments)
            else:
                page = self.client.conversations_history(**arguments)
            yield from page.get("messages") or []
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return

    # Identity and lifecycle

    def check(self) -> str:
        """Ask `auth.test` who the bot is.

        Raises:
            ChannelError: Slack can't be reached or refuses the token; the message has Slack's error code.
        """
        try:
            identity = self.client.auth_test()
        except SlackApiError as error:
            raise ChannelError(f"slack: auth.test failed: {_error_code(error)}") from error
        except (SlackClientError, OSError, http.client.HTTPException) as error:
            raise ChannelError(f"slack: can't reach {self.client.base_url}: {error}") from error
        return f"slack: team {identity.get('team')} as @{identity.get('user')} ({identity.get('user_id')})"

    def start(self) -> None:
        """Open the Socket Mode connection when `socket_mode` is on (the Events API needs nothing started).

        Raises:
            ChannelError: no app token, or Slack refused to open the connection.
        """
        if not self.socket_mode or self._socket_handler is not None:
            return
        if not self.app_token:
            raise ChannelError("slack: Socket Mode needs an app-level token (xapp-...)")
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(self.app, app_token=self.app_token, web_client=self.app.client)
        try:
            handler.connect()
        except SlackApiError as error:
            raise ChannelError(f"slack: Socket Mode connection refused: {_error_code(error)}") from error
        except (SlackClientError, OSError, http.client.HTTPException) as error:
            raise ChannelError(f"slack: Socket Mode connection failed: {error}") from error
        self._socket_handler = handler

    def stop(self) -> None:
        """Close the Socket Mode connection, if one is open."""
        handler, self._socket_handler = self._socket_handler, None
        if handler is not None:
            handler.close()


def _check_envelope(payload: object) -> None:
    """Refuse JSON that is not an Events API envelope Bolt can read (it expects objects all the way down)."""
    if not isinstance(payload, dict):
        raise ValueError("the body is not a JSON object")
    if payload.get("type") == "event_callback" and not isinstance(payload.get("event"), dict):
        raise ValueError("an event_callback without an event object")


def _keyword_pattern(keywords: Iterable[str]) -> re.Pattern[str] | None:
    words = sorted({word.strip() for word in keywords if word and word.strip()}, key=len, reverse=True)
    if not words:
        return None
    alternatives = "|".join(re.escape(word) for word in words)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _without_mention(text: str, bot_user_id: str | None) -> str:
    """The text without the `<@BOT>` mention that addressed it (it says nothing about the question)."""
    if bot_user_id is None:
        return text
    return re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text).strip() or text


def _ts_to_datetime(ts: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (ValueError, OverflowError):
        return datetime.now(UTC)


def _split_thread(thread_id: str) -> tuple[str, str | None]:
    channel, _, thread_ts = thread_id.partition(":")
    return channel, thread_ts or None


def _ignored(event: Mapping[str, Any], reason: str) -> None:
    log.debug("slack: ignored %s event %s: %s", event.get("type"), event.get("ts") or "", reason)
    return None


def _error_code(error: SlackApiError) -> str:
    data = error.response.data if error.response is not None else None
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return f"HTTP {error.response.status_code}" if error.response is not None else str(error)


@contextlib.contextmanager
def _send_errors(what: str) -> Iterator[None]:
    """Turn slack_sdk's exceptions into the outbox's temporary / permanent send errors."""
    try:
        yield
    except SlackApiError as error:
        code, status = _error_code(error), error.response.status_code
        if status == 429 or code == "ratelimited":
            raise TemporarySendError(
                f"slack {what}: rate limited", retry_after=_retry_after(error.response)
            ) from error
        if status >= 500 or code in _TEMPORARY_ERRORS:
            raise TemporarySendError(f"slack {what}: {code} (HTTP {status})") from error
        raise PermanentSendError(f"slack {what}: {code}") from error
    except (OSError, http.client.HTTPException) as error:
        raise TemporarySendError(f"slack {what}: connection failed: {error}") from error
    except SlackClientError as error:
        raise PermanentSendError(f"slack {what}: {error}") from error


def _may_have_posted(error: TemporarySendError) -> bool:
    """Whether the failed request may still have been carried out (anything but a rate limit may)."""
    cause = error.__cause__
    rate_limited = isinstance(cause, SlackApiError) and (
        cause.response.status_code == 429 or _error_code(cause) == "ratelimited"
    )
    return not rate_limited


def _retry_after(response: SlackResponse) -> float | None:
    headers = {key.lower(): value for key, value in (response.headers or {}).items()}
    value = headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
