"""How well a knowledge base answers a labelled set of questions, and the threshold trade-off."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from knowledge._base import MIN_PROBABILITY, BatchScores, KnowledgeBase

__all__ = ["Evaluation", "ThresholdPoint", "evaluate", "threshold_curve"]


@dataclass(frozen=True)
class Evaluation:
    """Figures for one labelled set at one threshold.

    Rows with an expected article are "answerable"; rows without one should be declined.

    Attributes:
        top1: answerable rows whose best-ranked article is the expected one (before the threshold).
        top3: answerable rows with the expected article among the three best-ranked.
        answer_rate: all rows that got an answer.
        wrong_answer_rate: all rows answered with a wrong article, or answered when they should not be.
        correct_answer_rate: answerable rows answered with the expected article (declines count as misses).
        decline_rate: should-not-answer rows that were declined (None when there are none).
    """

    rows: int
    answerable: int
    threshold: float
    top1: float
    top3: float
    answer_rate: float
    wrong_answer_rate: float
    correct_answer_rate: float
    decline_rate: float | None

    def lines(self) -> list[str]:
        """The figures as aligned text lines."""
        unanswerable = self.rows - self.answerable
        lines = [
            f"rows                 {self.rows} ({self.answerable} answerable, {unanswerable} not)",
            f"threshold            {self.threshold:.3f}",
            f"top-1 accuracy       {self.top1:.4f}   (answerable rows, before the threshold)",
            f"top-3 accuracy       {self.top3:.4f}",
            f"answer rate          {self.answer_rate:.4f}   (all rows)",
            f"wrong-answer rate    {self.wrong_answer_rate:.4f}  (all rows: wrong article or should decline)",
            f"answered correctly   {self.correct_answer_rate:.4f}   (answerable rows; a decline is a miss)",
        ]
        if self.decline_rate is not None:
            lines.append(f"declined correctly   {self.decline_rate:.4f}   (should-not-answer rows)")
        return lines


@dataclass(frozen=True)
class ThresholdPoint:
    threshold: float
    correct_answer_rate: float
    wrong_answer_rate: float
    decline_rate: float | None
    answer_rate: float


def evaluate(
    knowledge_base: KnowledgeBase,
    embeddings: np.ndarray,
    expected: Sequence[str | None],
    *,
    threshold: float | None = None,
) -> Evaluation:
    """Score embedded questions against their expected article ids (None: the bot should decline).

    Raises:
        ValueError: an expected id is not an article of the knowledge base, or the lengths differ.
    """
    scores = knowledge_base.score_batch(embeddings, top=3)
    return _figures(
        scores,
        _expected_indices(knowledge_base, expected, len(embeddings)),
        threshold_of(knowledge_base, threshold),
    )


def threshold_curve(
    knowledge_base: KnowledgeBase,
    embeddings: np.ndarray,
    expected: Sequence[str | None],
    thresholds: Sequence[float],
) -> list[ThresholdPoint]:
    """The trade-off between answering correctly and declining what should not be answered."""
    scores = knowledge_base.score_batch(embeddings, top=3)
    targets = _expected_indices(knowledge_base, expected, len(embeddings))
    points = []
    for threshold in thresholds:
        figures = _figures(scores, targets, threshold)
        points.append(
            ThresholdPoint(
                threshold,
                figures.correct_answer_rate,
                figures.wrong_answer_rate,
                figures.decline_rate,
                figures.answer_rate,
            )
        )
    return points


def threshold_of(knowledge_base: KnowledgeBase, threshold: float | None) -> float:
    return knowledge_base.threshold if threshold is None else threshold


def _expected_indices(knowledge_base: KnowledgeBase, expected: Sequence[str | None], rows: int) -> np.ndarray:
    if len(expected) != rows:
        raise ValueError(f"{len(expected)} expected articles for {rows} questions")
    positions = {article.id: number for number, article in enumerate(knowledge_base.articles)}
    targets = np.full(rows, -1, dtype=np.int64)
    for row, article_id in enumerate(expected):
        if article_id:
            if article_id not in positions:
                raise ValueError(f"row {row + 1}: article {article_id!r} is not in the knowledge base")
            targets[row] = positions[article_id]
    return targets


def _figures(scores: BatchScores, targets: np.ndarray, threshold: float) -> Evaluation:
    rows = len(targets)
    answerable = targets >= 0
    if scores.ranked.shape[1]:
        answered = (scores.similarity >= threshold) & (scores.probability >= MIN_PROBABILITY)
        top1 = scores.ranked[:, 0] == targets
        top3 = (scores.ranked == targets[:, None]).any(axis=1)
    else:
        answered = top1 = top3 = np.zeros(rows, dtype=bool)
    right = answered & (scores.best == targets) & answerable
    wrong = answered & ~right

    def share(mask: np.ndarray, among: np.ndarray) -> float:
        return float(mask[among].mean()) if among.any() else 0.0

    everything = np.ones(rows, dtype=bool)
    return Evaluation(
        rows=rows,
        answerable=int(answerable.sum()),
        threshold=float(threshold),
        top1=share(top1, answerable),
        top3=share(top3, answerable),
        answer_rate=share(answered, everything),
        wrong_answer_rate=share(wrong, everything),
        correct_answer_rate=share(right, answerable),
        decline_rate=share(~answered, ~answerable) if (~answerable).any() else None,
    )
