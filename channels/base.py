"""The neutral message types every channel adapter speaks, and the `Channel` interface.

An adapter turns a platform event into an `InboundMessage` and an `OutboundMessage` into a platform call.
It knows the platform and nothing about intents, the knowledge base or the CRM.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CHANNEL_NAMES",
    "Author",
    "Channel",
    "ChannelError",
    "InboundMessage",
    "OutboundMessage",
    "PermanentSendError",
    "TemporarySendError",
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
    """

    external_id: str
    handle: str | None = None
    display_name: str | None = None


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
    """

    channel: str
    external_id: str
    thread_id: str
    author: Author
    text: str
    public: bool = False
    received_at: datetime = field(default_factory=_utcnow)
    raw: dict[str, Any] = field(default_factory=dict)


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
    """

    channel: str
    thread_id: str
    text: str
    reply_to_external_id: str | None = None
    idempotency_key: str = ""


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


class Channel(abc.ABC):
    """One platform adapter.

    Pollers override `start` and `stop`; webhook-driven adapters are fed by the web app and leave them as
    they are. `send` is called by the outbox, never by the pipeline directly.
    """

    name: str

    async def start(self) -> None:  # noqa: B027 - optional hook: only pollers override it
        """Start listening (pollers only)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook: only pollers override it
        """Stop listening and release what `start` took."""

    @abc.abstractmethod
    def send(self, message: OutboundMessage) -> str:
        """Deliver `message` on the platform and return the platform's id for it.

        Raises:
            TemporarySendError: the platform refused for now; the outbox retries later.
            PermanentSendError: the platform refused for good; the outbox marks the row failed.
        """
