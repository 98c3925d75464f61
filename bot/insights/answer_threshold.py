"""The knowledge base's answer threshold, recalibrated from staff's "right" / "wrong" marks on its answers.

An agent marks an answer the bot gave from an article right or wrong in the console; the mark keeps the
answer's score (bot/insights/corrections.py). `calibrate` (run by `socialbot intents train --from-crm`):
1. splits the marks like the heads' corrections: a mark on a text with sha1(text) % 5 == 0 is held out;
2. on the training marks, picks the threshold whose decisions agree with most marks (an answer is right to
   give when marked right, right to withhold when marked wrong), among the active threshold and the
   midpoints between the training marks' scores; a tie keeps the threshold nearest the active one. Marks
   exist only for answers given, so the threshold is never set below the lowest marked score;
3. keeps the active threshold unless there are `MIN_HELD_OUT_MARKS` held-out marks and the new threshold
   agrees with strictly more of them than the active one does.
The threshold installed is stored with a new version of the heads (intents/versions.py, `calibration.json`)
and workers use it from their next knowledge refresh, unless `[knowledge] threshold` pins one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import select

from bot.crm.db import session_scope
from bot.crm.models import Correction, Message

__all__ = ["MIN_HELD_OUT_MARKS", "Mark", "ThresholdResult", "article_marks", "calibrate"]

#: Fewer held-out marks than this and a better threshold can't be told from luck: the active one is kept.
MIN_HELD_OUT_MARKS = 10


@dataclass(frozen=True, order=True)
class Mark:
    """One answer staff judged: the question's text, the answer's score, and whether it was right."""

    text: str
    score: float
    right: bool


def article_marks(engine: Engine) -> list[Mark]:
    """The "right" / "wrong" marks on the bot's article answers that kept their score, by text."""
    with session_scope(engine, read_only=True) as session:
        rows = session.exec(
            select(Message.text, Correction.score, Correction.value)
            .join(Message, Correction.message_id == Message.id)
            .where(Correction.aspect == "article", Correction.score.is_not(None))
        ).all()
    return sorted(Mark(text or "", float(score), value == "right") for text, score, value in rows)


def agreement(marks: Sequence[Mark], threshold: float) -> int:
    """How many marks the threshold's decisions agree with (answer the right ones, withhold the wrong)."""
    return sum((mark.score >= threshold) == mark.right for mark in marks)


@dataclass
class ThresholdResult:
    """A calibration: marks used and held out, the threshold before and after, and the held-out agreement
    (marks agreed with, of `held_out`) of each; `reason` says why the active threshold was kept."""

    train: int
    held_out: int
    before: float
    after: float | None = None
    agreed_before: int | None = None
    agreed_after: int | None = None
    installed: bool = False
    reason: str = ""

    def line(self) -> str:
        counts = f"{self.train} training / {self.held_out} held-out right/wrong marks"
        if self.after is None or self.agreed_before is None:
            return f"answer threshold {self.before:.3f}: {counts}; kept: {self.reason}"
        figures = (
            f"{self.before:.3f} -> {self.after:.3f}, agrees with {self.agreed_before} -> {self.agreed_after} "
            f"of {self.held_out} held-out marks"
        )
        verdict = "installed" if self.installed else f"kept: {self.reason}"
        return f"answer threshold: {counts}; {figures}; {verdict}"

    def manifest(self) -> dict:
        return {
            "train": self.train,
            "held_out": self.held_out,
            "before": self.before,
            "after": self.after,
            "agreed_before": self.agreed_before,
            "agreed_after": self.agreed_after,
            "installed": self.installed,
        }


def _choose(marks: Sequence[Mark], current: float) -> float:
    scores = sorted({mark.score for mark in marks})
    candidates = [current] + [(low + high) / 2 for low, high in zip(scores, scores[1:], strict=False)]
    return max(candidates, key=lambda t: (agreement(marks, t), -abs(t - current)))


def calibrate(marks: Sequence[Mark], current: float, held_out) -> ThresholdResult:
    """Choose the answer threshold from `marks` and check it on the held-out ones (see the module).

    Args:
        marks: staff's marks on answers given.
        current: the active threshold.
        held_out: text -> whether a mark on it is held out (the learning loop's split).
    """
    train = [mark for mark in marks if not held_out(mark.text)]
    test = [mark for mark in marks if held_out(mark.text)]
    result = ThresholdResult(len(train), len(test), current)
    if len(test) < MIN_HELD_OUT_MARKS:
        result.reason = f"too few held-out marks to tell better from worse (need {MIN_HELD_OUT_MARKS})"
        return result
    if not train:
        result.reason = "no training marks"
        return result
    result.after = _choose(train, current)
    result.agreed_before, result.agreed_after = agreement(test, current), agreement(test, result.after)
    if result.agreed_after > result.agreed_before:
        result.installed = True
    else:
        result.reason = "not better on the held-out marks"
    return result
