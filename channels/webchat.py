"""The brand's own web chat (and the terminal chat of `socialbot chat`).

These channels deliver by storing: the reply is already in the CRM, and the customer's client reads it from
the JSON API (`GET /api/v1/chat/{session_id}/messages`). `send` only confirms delivery and names it.
"""

from __future__ import annotations

from channels.base import Channel, OutboundMessage

__all__ = ["StoredChannel"]


class StoredChannel(Channel):
    """A channel whose customers read replies from socialbot's own API."""

    delivers_by_storing = True

    def __init__(self, name: str = "webchat") -> None:
        self.name = name

    def send(self, message: OutboundMessage) -> str:
        return f"{self.name}:{message.idempotency_key}"
