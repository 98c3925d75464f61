"""Corrections: how staff say a message should have been read, kept as the learning loop's training data.

`record_correction` is the one way a correction is stored, whoever makes it: an agent in the console (intent,
sentiment, abusive, or whether the article the bot answered with was right), the moderation queue's "not
abuse", an API. One row per message and aspect (a later correction replaces an earlier one), each audited.
`import_corrections` adds labelled examples from a CSV (`text` and any of `intent`, `sentiment`,
`abusive`; an intent may also be `not_<intent>`, "not a recommendation", when that is all the file knows).
`socialbot intents train --from-crm` (bot/insights/learning.py) retrains the heads from them.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.crm.audit import audit
from bot.crm.db import session_scope
from bot.crm.models import AuthorKind, Correction, Direction, Message, utcnow
from intents import INTENTS, SENTIMENTS

__all__ = [
    "ASPECTS",
    "CorrectionError",
    "ImportReport",
    "import_corrections",
    "record_correction",
]

#: What of a message's reading can be corrected, and the values each takes.
ASPECTS: dict[str, tuple[str, ...]] = {
    "intent": tuple(INTENTS),
    "sentiment": tuple(SENTIMENTS),
    "abusive": ("true", "false"),
    "article": ("right", "wrong"),
}
#: The columns of a labelled CSV that carry labels (besides `text`).
LABEL_COLUMNS = ("intent", "sentiment", "abusive")
#: A labelled CSV may say only what a text's intent is not (`not_recommendation`), as public data sets often
#: do: such an example trains and scores that one intent and says nothing about the others.
NOT_INTENTS = tuple(f"not_{intent}" for intent in INTENTS)
_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}


class CorrectionError(ValueError):
    """A correction can't be stored as given; the message says what to change."""


def _value(aspect: str, value: str | bool, *, negative: bool = False) -> str:
    """`value` as stored; `negative` also accepts `not_<intent>` (labelled files only)."""
    if aspect not in ASPECTS:
        raise CorrectionError(f"aspect: expected one of {', '.join(ASPECTS)}, got {aspect!r}")
    text = str(value).strip().lower()
    if aspect == "abusive":
        text = "true" if text in _TRUE else "false" if text in _FALSE else text
    allowed = ASPECTS[aspect] + (NOT_INTENTS if negative and aspect == "intent" else ())
    if text not in allowed:
        raise CorrectionError(f"{aspect}: expected one of {', '.join(allowed)}, got {value!r}")
    return text


def _reading(message: Message, aspect: str) -> str | None:
    """What the bot read for `aspect`, as a correction's value would say it."""
    if aspect == "abusive":
        return None if message.abusive is None else str(bool(message.abusive)).lower()
    if aspect == "article":
        return message.kb_article_id
    return getattr(message, aspect)


def record_correction(
    session: Session,
    *,
    message_id: int,
    aspect: str,
    value: str | bool,
    staff_id: int | None,
    source: str = "console",
) -> Correction:
    """Store, in the caller's transaction, how `message_id` should have been read, and audit it.

    Args:
        aspect: "intent", "sentiment", "abusive" or "article" (the article the bot answered with).
        value: an intent, a sentiment, True/False ("true"/"false") for abusive, "right"/"wrong" for article.
        staff_id: who corrected it (None for the operator at the command line).
        source: where: "console", "moderation", "api", ...

    Raises:
        CorrectionError: an unknown aspect or value, a message that is not a customer's, or "article" for a
            message the bot answered without one.
    """
    value = _value(aspect, value)
    message = session.get(Message, message_id)
    if (
        message is None
        or message.direction != Direction.INBOUND
        or message.author_kind != AuthorKind.CUSTOMER
    ):
        raise CorrectionError(f"message {message_id}: there is no customer message with this id")
    if aspect == "article" and not message.kb_article_id:
        raise CorrectionError(f"message {message_id}: the bot used no article for it, so none can be judged")
    was = _reading(message, aspect)
    correction = session.exec(
        select(Correction).where(Correction.message_id == message_id, Correction.aspect == aspect)
    ).first()
    if correction is None:
        correction = Correction(message_id=message_id, aspect=aspect, value=value, source=source)
    correction.value, correction.was, correction.source = value, was, source
    correction.staff_id, correction.updated_at = staff_id, utcnow()
    if aspect == "article":
        correction.article_id, correction.score = message.kb_article_id, message.kb_score
    session.add(correction)
    session.flush()
    audit(
        session,
        "message.corrected",
        "message",
        message_id,
        actor_kind="staff" if staff_id is not None else "operator",
        actor_id=staff_id,
        details={"aspect": aspect, "from": was, "to": value, "source": source},
    )
    return correction


@dataclass
class ImportReport:
    """What an import added: examples per aspect, and those already there (skipped)."""

    added: Counter[str] = field(default_factory=Counter)
    skipped: int = 0


def _rows(path: Path) -> Iterable[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CorrectionError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CorrectionError(f"{path}: cannot read it as UTF-8 text ({error})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [name.strip().lower() for name in reader.fieldnames or []]
    if "text" not in columns or not set(columns) & set(LABEL_COLUMNS):
        raise CorrectionError(
            f"{path}: line 1: expected a 'text' column and at least one of {', '.join(LABEL_COLUMNS)} "
            f"(found: {', '.join(columns) or 'nothing'})"
        )
    try:
        for row in reader:
            yield reader.line_num, {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
    except csv.Error as error:
        raise CorrectionError(f"{path}: line {reader.line_num}: malformed CSV ({error})") from None


def import_corrections(engine: Engine, path: Path, *, staff_id: int | None = None) -> ImportReport:
    """Add the labelled examples of a CSV file (`text`, and any of `intent`, `sentiment`, `abusive`; an empty
    cell says nothing; an intent may be `not_<intent>`) as corrections with source "csv:<file name>"; an
    example already stored is skipped. All rows are checked before any is stored. Audited once.

    Raises:
        CorrectionError: the file is missing, not UTF-8 CSV, lacks the columns, or a row has an empty text or
            an unknown label (the message names the line).
    """
    path = Path(path)
    examples: list[tuple[str, str, str]] = []
    for line, row in _rows(path):
        if not row.get("text"):
            raise CorrectionError(f"{path}: line {line}: empty text")
        for aspect in LABEL_COLUMNS:
            if row.get(aspect):
                try:
                    examples.append((row["text"], aspect, _value(aspect, row[aspect], negative=True)))
                except CorrectionError as error:
                    raise CorrectionError(f"{path}: line {line}: {error}") from None
    source = f"csv:{path.name}"
    report = ImportReport()
    with session_scope(engine) as session:
        stored = set(
            session.exec(
                select(Correction.text, Correction.aspect, Correction.value).where(
                    Correction.text.is_not(None)
                )
            ).all()
        )
        for example in dict.fromkeys(examples):
            if example in stored:
                report.skipped += 1
                continue
            text, aspect, value = example
            session.add(Correction(text=text, aspect=aspect, value=value, source=source, staff_id=staff_id))
            report.added[aspect] += 1
        audit(
            session,
            "corrections.imported",
            "correction",
            actor_kind="staff" if staff_id is not None else "operator",
            actor_id=staff_id,
            details={"file": path.name, "added": dict(report.added), "skipped": report.skipped},
        )
    return report
