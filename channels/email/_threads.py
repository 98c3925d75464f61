"""Thread ids inside our own `Message-ID`s, signed so a reply can't be pointed at someone else's thread.

Every mail we send names its thread in its `Message-ID`: `<digest.thread.tag@domain>`, where `thread` is the
thread id in base32 and `tag` an HMAC of it under a key derived from the application's secret. A customer's
client quotes that id back in `In-Reply-To` / `References`; only an id whose tag verifies is taken as the
thread, so a sender who makes up `In-Reply-To: <...victim's thread...>` starts a thread of their own instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence

__all__ = ["ThreadSigner"]

#: Separates the purpose of this key from other uses of the same application secret.
_KEY_PURPOSE = b"socialbot e-mail thread ids v1"
#: Bytes of the HMAC kept in the id (80 bits: far beyond guessing by mail).
_TAG_BYTES = 10
_OURS = re.compile(r"<?([0-9a-f]{24})\.([a-z2-7]+)\.([a-z2-7]{16})@([^<>\s]+?)>?")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


class ThreadSigner:
    """Makes our `Message-ID`s and reads the thread back from the ones a reply quotes.

    Args:
        secret: the application's secret (`SOCIALBOT_SECRET_KEY`); the HMAC key is derived from it.
        domain: the right-hand side of our ids (the domain of the address mail is sent from).

    Raises:
        ValueError: the secret is empty.
    """

    def __init__(self, secret: str | bytes, domain: str) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        if not raw:
            raise ValueError("an e-mail thread signer needs a non-empty secret")
        self._key = hmac.new(raw, _KEY_PURPOSE, hashlib.sha256).digest()
        self.domain = domain.lower()

    def _tag(self, thread_id: str) -> str:
        return _b32(hmac.new(self._key, thread_id.encode(), hashlib.sha256).digest()[:_TAG_BYTES])

    def message_id(self, idempotency_key: str, thread_id: str) -> str:
        """The `Message-ID` of the mail sent for one outbox row.

        Stable for the row (a retry reuses it, so the customer's client shows one mail) and naming `thread_id`
        with its tag.
        """
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
        return f"<{digest}.{_b32(thread_id.encode())}.{self._tag(thread_id)}@{self.domain}>"

    def thread_of(self, message_id: str) -> str | None:
        """The thread named by one of our own, untampered `Message-ID`s; None for anything else."""
        match = _OURS.fullmatch(message_id.strip())
        if match is None or match.group(4).lower() != self.domain:
            return None
        encoded, tag = match.group(2), match.group(3)
        try:
            thread_id = base64.b32decode(encoded.upper() + "=" * (-len(encoded) % 8)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(tag, self._tag(thread_id)):
            return None
        return thread_id

    def thread_of_reply(self, in_reply_to: str | None, references: Sequence[str] = ()) -> str | None:
        """The thread a reply belongs to: its `In-Reply-To`, else the newest of its `References`, that is one
        of our ids and verifies. None when none does (the reply starts a thread of its own)."""
        for candidate in [in_reply_to or "", *reversed(references)]:
            for message_id in re.findall(r"<[^<>\s]+>", candidate) or [candidate]:
                thread_id = self.thread_of(message_id) if message_id.strip() else None
                if thread_id is not None:
                    return thread_id
        return None
