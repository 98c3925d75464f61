"""The neutral message types every channel adapter speaks, and the `Channel` interface.

An adapter turns a platform event into an `InboundMessage` and an `OutboundMessage` into a platform call.
It knows the platform and nothing about intents, the knowledge base or the CRM.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

__all__ = [
    "CHANNEL_NAMES",
    "Author",
    "Channel",
    "ChannelError",
    "CursorStore",
    "InboundKind",
    "InboundMessage",
    "InboundSink",
    "OutboundMessage",
    "PermanentSendError",
    "TemporarySendError",
    "WebhookChannel",
    "WebhookResponse",
]

#: Every channel the product knows. `cli` is the terminal conversation of `socialbot chat`.
CHANNEL_NAMES = ("webchat", "slack", "telegram", "twitter", "email", "cli")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote a message, as the platform knows them.

    Args:
        external_id: the platform's stable user id (Slack user id, Telegram user id, X user id, web chat
            session id, e-mail address).
        handle: the public handle or username, if any (``@jane``).
        display_name: a human-readable name, if the platform gives one.
        verified: whether the platform vouches that this account wrote the message. Chat platforms do for
            their own account ids; an e-mail sender only when the mail passed sender authentication (a
            `From` header alone proves nothing). An unverified author is never trusted with their data.
    """

    external_id: str
    handle: str | None = None
    display_name: str | None = None
    verified: bool = True


class InboundKind(StrEnum):
    """Why a message reached the bot, which decides whether it may be answered."""

    MESSAGE = "message"  # addressed to the brand (a mention, a DM, a reply): understood and answered
    LISTENED = "listened"  # found by brand listening (keyword search): logged and understood, never answered
    GREETING = "greeting"  # the customer opened the conversation (Telegram /start): greeted


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message a customer sent to the brand on some channel.

    Args:
        channel: one of `CHANNEL_NAMES`.
        external_id: the platform's id of this message; (channel, external_id) is unique, so a platform's
            retry of the same delivery is recognised and not processed twice.
        thread_id: the platform's conversation key (Slack channel + thread ts, Telegram chat id, X
            conversation id, web chat session id). Messages with the same thread id belong together.
        author: who wrote it.
        text: the message text exactly as received (untrusted).
        public: whether other people can see it (a public post or group message) or it is private (a DM).
        received_at: when the platform says it was sent, timezone-aware UTC.
        raw: the platform's payload, kept for debugging and for replies that need platform details.
        kind: why it reached the bot (`InboundKind`); only `MESSAGE` and `GREETING` may get a reply.
    """

    channel: str
    external_id: str
    thread_id: str
    author: Author
    text: str
    public: bool = False
    received_at: datetime = field(default_factory=_utcnow)
    raw: dict[str, Any] = field(default_factory=dict)
    kind: InboundKind = InboundKind.MESSAGE


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message the brand sends on a channel.

    Args:
        channel: one of `CHANNEL_NAMES`.
        thread_id: the thread to post in (as in `InboundMessage.thread_id`).
        text: the text to send, already shortened to fit the channel.
        reply_to_external_id: the platform id of the message this answers, when the platform threads replies.
        idempotency_key: unique per intended send (inbound message + purpose); the outbox never sends two
            messages with the same key.
        subject: the title of the conversation on channels that have one (e-mail's `Subject`, without
            "Re:"), None to let the channel choose.
        references: the ids of the messages in the thread before `reply_to_external_id`, oldest first, on
            channels that carry them (e-mail's `References`).
    """

    channel: str
    thread_id: str
    text: str
    reply_to_external_id: str | None = None
    idempotency_key: str = ""
    subject: str | None = None
    references: tuple[str, ...] = ()


class ChannelError(Exception):
    """A channel could not do what was asked."""


class TemporarySendError(ChannelError):
    """Sending failed in a way worth retrying (rate limit, 5xx, network).

    Args:
        retry_after: seconds the platform asked us to wait, if it said.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSendError(ChannelError):
    """Sending failed and retrying will not help (the thread is gone, the bot was blocked)."""


#: What an adapter hands every inbound message to. The bot stores the message before it returns (so a
#: webhook may acknowledge the platform afterwards) and processes it in the background. Returns False when
#: the message had been received before (a platform's retry): the adapter does nothing more with it.
InboundSink = Callable[[InboundMessage], bool]


class CursorStore(Protocol):
    """Where a poller keeps its position (X's `since_id`, Telegram's update offset) across restarts."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


class Channel(abc.ABC):
    """One platform adapter.

    Pollers override `start` and `stop` (both return quickly; polling runs in the adapter's own thread);
    webhook-driven adapters also implement `WebhookChannel`. `send` is called by the outbox, never by the
    pipeline directly, and may block (it runs in a worker thread).
    """

    name: str
    #: True for a channel whose customers read replies from socialbot's own API (web chat): a reply is
    #: delivered once it is stored, so the outbox records it as sent in the transaction that queues it.
    delivers_by_storing: bool = False

    def start(self) -> None:  # noqa: B027 - optional hook: only pollers override it
        """Start listening in a background thread (pollers only)."""

    def stop(self) -> None:  # noqa: B027 - optional hook: only pollers override it
        """Stop listening and release what `start` took; waits for the poller to finish its round."""

    def check(self) -> str:
        """Ask the platform who we are (`auth.test`, `getMe`, `get_me`) and describe the account.

        Raises:
            ChannelError: the platform can't be reached or refuses the credentials; the message says which.
        """
        return f"{self.name}: nothing to check"

    def find_sent(self, message: OutboundMessage) -> str | None:
        """The platform id of `message` if an earlier attempt did post it, else None.

        The outbox asks before re-sending a row whose previous attempt may have reached the platform (the
        worker stopped between sending and recording). Platforms that can't be asked return None.
        """
        return None

    @abc.abstractmethod
    def send(self, message: OutboundMessage) -> str:
        """Deliver `message` on the platform and return the platform's id for it.

        Raises:
            TemporarySendError: the platform refused for now; the outbox retries later.
            PermanentSendError: the platform refused for good; the outbox marks the row failed.
        """


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    """What a webhook answers the platform (framework-neutral, like Bolt's `BoltResponse`)."""

    status: int
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


class WebhookChannel(Channel):
    """An adapter the platform calls over HTTP; the web app routes `POST webhook_path` to it, unless the
    adapter was set up to receive another way (`receives_webhooks` False: then nothing is mounted)."""

    webhook_path: str

    @property
    def receives_webhooks(self) -> bool:
        """Whether the platform delivers to `webhook_path` (False when it was set up to poll or to use a
        socket: the web app then does not mount the path at all)."""
        return True

    @abc.abstractmethod
    def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookResponse:
        """Verify and parse one delivery, hand its messages to the sink, and say what to answer.

        Runs in a worker thread; must return within the platform's deadline (Slack: 3 s), so it only
        stores messages (through the sink) and never waits for the model. `headers` keys are lower-case.
        Malformed or unverifiable deliveries get a 4xx and are never handed on.
        """
