"""The learning loop: retrain the heads on the brand's own corrections, install them only if they are better.

`train_from_crm` (behind `socialbot intents train --from-crm`):
1. reads the corrections of intent, sentiment and abusive (bot/insights/corrections.py), a message's
   correction with the message's text;
2. splits them by a hash of the text: one text in five (sha1 % 5 == 0) is held out, the rest trains; the
   split is stable, so a held-out correction stays held out on every later run;
3. for each corrected head with at least `MIN_HELD_OUT` held-out corrections, retrains the head on the rows
   the shipped head trains on (intents/corpus.py) plus the training corrections, each counting
   `OWN_WEIGHT` times like the project's own examples;
4. scores the active head and the retrained one on the held-out corrections (macro-F1 over the labels those
   corrections have, a `not_<intent>` one counting only for that intent; as the product decides: through
   `Understander`), and installs a new version of the heads (intents/versions.py) with the heads that scored
   strictly better; the others stay as they were;
5. recalibrates the knowledge base's answer threshold from staff's right / wrong marks on its answers
   (bot/insights/answer_threshold.py), stored with the version, unless `[knowledge] threshold` pins it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Engine
from sqlmodel import select

from bot.crm.db import session_scope
from bot.crm.models import Correction, Message
from bot.insights.answer_threshold import ThresholdResult, article_marks, calibrate
from bot.runtime.analysis import THRESHOLD_KEY, answer_threshold
from intents.corpus import OWN_WEIGHT, training_rows
from intents.embedding_cache import embed_cached
from intents.encoder import Encoder
from intents.heads import Head
from intents.public_data import DatasetMissingError
from intents.service import HEAD_LABELS, predict_labels
from intents.training import RECIPES, train_head
from intents.understand import HEAD_NAMES, Understander
from intents.versions import HeadVersions

__all__ = [
    "MIN_HELD_OUT",
    "HeadResult",
    "LearningError",
    "LearningReport",
    "held_out",
    "macro_f1",
    "train_from_crm",
]

#: Fewer held-out corrections than this for a head and its figures would be noise: the head is kept.
MIN_HELD_OUT = 20
#: One text in HELD_OUT_EVERY is held out.
HELD_OUT_EVERY = 5


class LearningError(ValueError):
    """There is nothing to learn from, or the training data is missing; the message says which."""


def held_out(text: str) -> bool:
    """Whether a correction of `text` is held out for scoring (one text in five, by a hash of the text)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16) % HELD_OUT_EVERY == 0


def _label(aspect: str, value: str) -> str:
    if aspect == "abusive":
        return "abusive" if value == "true" else "not_abusive"
    return value


def brand_examples(engine: Engine) -> dict[str, list[tuple[str, str]]]:
    """The corrections as (text, label) per head, in a stable order (by text)."""
    with session_scope(engine, read_only=True) as session:
        rows = session.exec(
            select(Correction.aspect, Correction.value, Correction.text, Message.text)
            .join(Message, Correction.message_id == Message.id, isouter=True)
            .where(Correction.aspect.in_(HEAD_NAMES))
        ).all()
    out: dict[str, list[tuple[str, str]]] = {}
    for aspect, value, own_text, message_text in rows:
        text = (own_text or message_text or "").strip()
        if text:
            out.setdefault(aspect, []).append((text, _label(aspect, value)))
    return {head: sorted(set(examples)) for head, examples in out.items()}


def macro_f1(gold: list[str], predicted: list[str], labels: tuple[str, ...]) -> float | None:
    """Macro-F1 over the labels that `gold` has, None if it has none.

    A gold `not_<label>` that is not itself one of `labels` (an intent correction that only says what the text
    is not) counts for that label as a negative and is left out of the other labels' F1, as it trains only
    that label's one-vs-rest model.
    """
    scores = []
    for label in (label for label in labels if label in gold):
        tp = fp = fn = 0
        for want, got in zip(gold, predicted, strict=True):
            if want not in labels and want != f"not_{label}":  # a `not_<other intent>`
                continue
            tp += want == label and got == label
            fp += want != label and got == label
            fn += want == label and got != label
        scores.append(2 * tp / (2 * tp + fp + fn))
    return round(float(np.mean(scores)), 4) if scores else None


def _score(head: str, understander: Understander, texts: list[str], vectors: np.ndarray, gold: list[str]):
    return macro_f1(gold, predict_labels(head, understander, texts, vectors), HEAD_LABELS[head])


def _with_head(understander: Understander, head: str, new: Head) -> Understander:
    heads = {
        "intent": understander.intent_head,
        "sentiment": understander.sentiment_head,
        "abusive": understander.abusive_head,
    }
    heads[head] = new
    return Understander(**heads)


@dataclass
class HeadResult:
    """One head's run: how many corrections trained and were held out, and the held-out macro-F1 before
    (the active head) and after (the retrained one); `reason` says why the head was kept, if it was."""

    head: str
    train: int
    held_out: int
    before: float | None = None
    after: float | None = None
    installed: bool = False
    reason: str = ""

    def line(self) -> str:
        counts = f"{self.train} training / {self.held_out} held-out corrections"
        if self.before is None:
            return f"{self.head}: {counts}; kept: {self.reason}"
        figures = f"held-out macro-F1 {self.before:.3f} -> {self.after:.3f}"
        verdict = "installed" if self.installed else f"kept: {self.reason}"
        return f"{self.head}: {counts}; {figures}; {verdict}"


@dataclass
class LearningReport:
    """A run of the learning loop: per head, and the version installed (None: nothing changed)."""

    base: str
    heads: list[HeadResult] = field(default_factory=list)
    threshold: ThresholdResult | None = None
    version: str | None = None

    def lines(self) -> list[str]:
        out = [result.line() for result in self.heads]
        if self.threshold is not None:
            out.append(self.threshold.line())
        if self.version:
            out.append(
                f"installed heads {self.version} (was {self.base}); undo: socialbot intents heads rollback"
            )
        else:
            out.append(f"nothing installed: heads {self.base} stay active")
        return out


def train_from_crm(
    engine: Engine, versions: HeadVersions, encoder: Encoder, *, pinned_threshold: float | None = None
) -> LearningReport:
    """Retrain each corrected head and install those that beat the active ones on held-out corrections; with
    the answer threshold recalibrated from the right / wrong marks, if it beats the active one on held-out
    marks.

    Args:
        pinned_threshold: `[knowledge] threshold`, when set: the marks can't change the threshold then.

    Raises:
        LearningError: no intent, sentiment or abusive corrections and no marks on answers; or the public
            training data is missing.
    """
    examples = brand_examples(engine)
    marks = article_marks(engine)
    if not examples and not marks:
        raise LearningError(
            "no corrections to learn from: correct messages in the console or add labelled examples with "
            "`socialbot intents import-corrections FILE.csv`"
        )
    base = versions.current()
    active = Understander.load(versions.folder(base))
    report = LearningReport(base=base)
    better: dict[str, Head] = {}
    for head in HEAD_NAMES:
        if head not in examples:
            continue
        train = [(t, lab) for t, lab in examples[head] if not held_out(t)]
        test = [(t, lab) for t, lab in examples[head] if held_out(t)]
        result = HeadResult(head, len(train), len(test))
        report.heads.append(result)
        if len(test) < MIN_HELD_OUT:
            result.reason = f"too few held-out corrections to tell better from worse (need {MIN_HELD_OUT})"
            continue
        if not train:
            result.reason = "no training corrections"
            continue
        if not any(not label.startswith("not_") for _, label in test):
            result.reason = "the held-out corrections only say what the texts are not: nothing to score"
            continue
        try:
            # The permissive variant's heads learn from permissively licensed rows only, as shipped.
            rows = training_rows(head, permissive_only=versions.variant == "permissive")
        except DatasetMissingError as error:
            raise LearningError(f"cannot retrain the {head} head: {error}") from None
        rows.add(
            "brand corrections",
            "the brand's own",
            [t for t, _ in train],
            [lab for _, lab in train],
            OWN_WEIGHT,
        )
        trained = train_head(
            RECIPES[head],
            rows.texts,
            rows.labels,
            embed_cached(encoder, rows.texts),
            sample_weight=np.array(rows.weights),
            metadata={
                "encoder": encoder.name,
                "trained_on": rows.counts(),
                "licenses": rows.licenses,
                "script": "socialbot intents train --from-crm",
            },
        )
        texts, gold = [t for t, _ in test], [lab for _, lab in test]
        vectors = embed_cached(encoder, texts)
        result.before = _score(head, active, texts, vectors, gold)
        result.after = _score(head, _with_head(active, head, trained), texts, vectors, gold)
        if result.after > result.before:
            result.installed = True
            better[head] = trained
        else:
            result.reason = "not better on the held-out corrections"
    calibration = None
    if marks:
        current = answer_threshold(versions, base, None, variant=versions.variant)
        if pinned_threshold is not None:
            held = sum(held_out(mark.text) for mark in marks)
            report.threshold = ThresholdResult(
                len(marks) - held, held, pinned_threshold, reason="[knowledge] threshold pins it"
            )
        else:
            report.threshold = calibrate(marks, current, held_out)
            if report.threshold.installed:
                calibration = {THRESHOLD_KEY: report.threshold.after}
    if better or calibration:
        manifest = {
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "held_out": f"sha1(text) % {HELD_OUT_EVERY} == 0",
            "heads": {
                r.head: {
                    "train": r.train,
                    "held_out": r.held_out,
                    "before": r.before,
                    "after": r.after,
                    "installed": r.installed,
                }
                for r in report.heads
            },
        }
        if report.threshold is not None:
            manifest["answer_threshold"] = report.threshold.manifest()
        report.version = versions.install(better, base, manifest, calibration)
    return report
