"""The ladder's rules against contact histories labelled by hand (tests/data/ladder_histories.yaml).

Each history is a customer's messages (days ago, text, public or not, in whose thread) with the stage a
person gives them. The messages are read either as labelled (`labels`: the rules alone are measured) or by
the shipped models (`models`: intent, sentiment and abuse as the bot would read them: rules and models
together), then `decide_stage` places the customer. Accuracy is reported per split: `dev` histories were
looked at while the rules were written, `test` ones were not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bot.crm.ladder import Said, decide_stage
from bot.crm.models import LadderStage

__all__ = ["HistoryFileError", "LadderEvaluation", "Reading", "evaluate_ladder", "load_histories"]

#: The moment the histories' "days ago" count back from.
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
STAGES = [stage.value for stage in LadderStage]

#: (intent, sentiment, abusive, sure of the intent) for each text, in order.
Reading = Callable[[list[str]], list[tuple[str, str, bool, bool]]]


class HistoryFileError(ValueError):
    """The histories file is malformed; the message names the history and what is wrong."""


@dataclass(frozen=True, slots=True)
class History:
    id: str
    split: str
    stage: str
    why: str
    messages: list[dict[str, Any]]


def _message(history_id: str, waiting: set[int], row: Any) -> dict[str, Any]:
    if not isinstance(row, list) or len(row) not in (4, 5):
        raise HistoryFileError(
            f"history {history_id}: a message is [days, intent, sentiment, text, options?]"
        )
    days, intent, sentiment, text = row[:4]
    options = row[4] if len(row) == 5 else {}
    if not isinstance(days, int | float) or not isinstance(text, str) or not isinstance(options, dict):
        raise HistoryFileError(f"history {history_id}: malformed message {row!r}")
    conversation = int(options.get("conv", 1))
    return {
        "days": float(days),
        "intent": intent,
        "sentiment": sentiment,
        "text": text,
        "abusive": bool(options.get("abusive", False)),
        "public": bool(options.get("public", False)),
        "others": bool(options.get("others", False)),
        "waiting": conversation in waiting,
    }


def load_histories(path: Path) -> list[History]:
    """Read a histories file.

    Raises:
        HistoryFileError: not readable YAML, or a history lacks a field or has an unknown stage.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise HistoryFileError(f"{path}: {error}") from None
    if not isinstance(data, list):
        raise HistoryFileError(f"{path}: expected a list of histories")
    histories = []
    for entry in data:
        try:
            history_id = str(entry["id"])
            stage, messages = entry["stage"], entry["messages"]
        except (TypeError, KeyError) as error:
            raise HistoryFileError(f"{path}: a history lacks {error}") from None
        if stage not in STAGES:
            raise HistoryFileError(f"history {history_id}: unknown stage {stage!r}")
        waiting = {int(c) for c in entry.get("waiting", [])}
        histories.append(
            History(
                history_id,
                str(entry.get("split", "dev")),
                stage,
                str(entry.get("why", "")),
                [_message(history_id, waiting, row) for row in messages],
            )
        )
    return histories


@dataclass
class LadderEvaluation:
    """How often the rules place a history where a person did, per split, with the mistakes."""

    readings: str
    by_split: dict[str, tuple[int, int]] = field(default_factory=dict)  # split -> (correct, total)
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # (expected, decided)
    mistakes: list[tuple[str, str, str, str, str]] = field(default_factory=list)  # id, split, exp, got, why

    def accuracy(self, split: str | None = None) -> float:
        pairs = [self.by_split[split]] if split else list(self.by_split.values())
        correct, total = sum(c for c, _ in pairs), sum(t for _, t in pairs)
        return correct / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "readings": self.readings,
            "accuracy": round(self.accuracy(), 4),
            "by_split": {
                split: {"correct": c, "total": t, "accuracy": round(c / t, 4) if t else 0.0}
                for split, (c, t) in sorted(self.by_split.items())
            },
            "confusion": {f"{e} -> {g}": n for (e, g), n in sorted(self.confusion.items())},
            "mistakes": [
                {"id": i, "split": s, "expected": e, "decided": g, "reason": r}
                for i, s, e, g, r in self.mistakes
            ],
        }


def evaluate_ladder(
    histories: Sequence[History],
    *,
    reading: Reading | None = None,
    brand_handles: Sequence[str] = ("fernhill",),
) -> LadderEvaluation:
    """Place every history and compare with its label.

    Args:
        reading: reads the texts (e.g. the shipped models); None uses the labels in the file.
    """
    texts = [message["text"] for history in histories for message in history.messages]
    read = iter(reading(texts)) if reading is not None else None
    evaluation = LadderEvaluation("models" if reading is not None else "labels")
    for history in histories:
        said = []
        for message in history.messages:
            labelled = (message["intent"], message["sentiment"], message["abusive"], True)
            intent, sentiment, abusive, sure = next(read) if read is not None else labelled
            said.append(
                Said(
                    at=NOW - timedelta(days=message["days"]),
                    text=message["text"],
                    intent=intent,
                    sentiment=sentiment,
                    abusive=abusive,
                    public=message["public"],
                    in_others_thread=message["public"] and message["others"],
                    waiting_for_staff=message["waiting"],
                    sure=sure,
                )
            )
        placement = decide_stage(said, now=NOW, brand_handles=brand_handles)
        correct, total = evaluation.by_split.get(history.split, (0, 0))
        hit = placement.stage.value == history.stage
        evaluation.by_split[history.split] = (correct + hit, total + 1)
        evaluation.confusion[history.stage, placement.stage.value] += 1
        if not hit:
            evaluation.mistakes.append(
                (history.id, history.split, history.stage, placement.stage.value, placement.reason)
            )
    return evaluation
