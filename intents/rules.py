"""Rules for what a model trained on public data cannot know: an explicit request for a person."""

from __future__ import annotations

import re

__all__ = ["wants_human"]

_PERSON = (
    r"(?:a\s+|an\s+|some\s*one|somebody|one\s+of\s+your\s+)?(?:real\s+|actual\s+|live\s+)?"
    r"(?:human|person|people|agent|someone|somebody|operator|manager|supervisor|representative|rep|staff)"
)
_REQUEST = re.compile(
    r"\b(?:talk|speak|chat|get\s+through|put\s+me\s+through|connect\s+me|transfer\s+me|escalate\s+me)"
    r"(?:\s+(?:to|with))?\s+" + _PERSON + r"\b"
    r"|\b(?:need|want|get\s+me|give\s+me|let\s+me\s+(?:talk|speak)\s+to)\s+" + _PERSON + r"\b"
    r"|\b(?:human|agent|person)\s+(?:please|pls|plz)\b"
    r"|\b(?:can|could|will)\s+(?:someone|somebody|a\s+person|a\s+human|an\s+agent)(?:\s+from\s+your\s+\w+)?"
    r"\s+(?:call|ring|phone)\s+me\b"
    r"|\bnot\s+(?:a|another|your)\s+(?:ro)?bot\b"
    r"|\bis\s+there\s+(?:a\s+)?(?:human|real\s+person|anyone)\s+(?:there|here)\b",
    re.IGNORECASE,
)


def wants_human(text: str) -> bool:
    """True when the text explicitly asks to talk to a person instead of the bot."""
    return bool(_REQUEST.search(text))
