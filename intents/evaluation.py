"""Quality figures: per-class precision / recall / F1, macro-F1 and the confusion matrix (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ClassScores", "Report", "binary_f1", "evaluate", "format_report"]


@dataclass(frozen=True)
class ClassScores:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Report:
    """Scores of predictions against gold labels.

    `confusion[i][j]` counts rows with gold `labels[i]` predicted as `labels[j]`.
    """

    labels: tuple[str, ...]
    classes: tuple[ClassScores, ...]
    macro_f1: float
    accuracy: float
    confusion: tuple[tuple[int, ...], ...]
    total: int

    def to_dict(self) -> dict:
        return {
            "labels": list(self.labels),
            "per_class": {
                c.label: {"precision": c.precision, "recall": c.recall, "f1": c.f1, "support": c.support}
                for c in self.classes
            },
            "macro_f1": self.macro_f1,
            "accuracy": self.accuracy,
            "confusion_matrix": [list(row) for row in self.confusion],
            "total": self.total,
        }

    def f1(self, label: str) -> float:
        return next(c.f1 for c in self.classes if c.label == label)


def evaluate(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str] | None = None) -> Report:
    """Compare two label lists of equal length; `labels` fixes the order (default: sorted union)."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    order = tuple(labels) if labels is not None else tuple(sorted(set(gold) | set(predicted)))
    index = {label: i for i, label in enumerate(order)}
    matrix = np.zeros((len(order), len(order)), dtype=np.int64)
    for g, p in zip(gold, predicted, strict=True):
        matrix[index[g], index[p]] += 1
    classes = []
    for i, label in enumerate(order):
        tp = matrix[i, i]
        precision = tp / matrix[:, i].sum() if matrix[:, i].sum() else 0.0
        recall = tp / matrix[i].sum() if matrix[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        classes.append(
            ClassScores(
                label,
                round(float(precision), 4),
                round(float(recall), 4),
                round(float(f1), 4),
                int(matrix[i].sum()),
            )
        )
    present = [c for c in classes if c.support > 0]
    macro = float(np.mean([c.f1 for c in present])) if present else 0.0
    total = int(matrix.sum())
    return Report(
        labels=order,
        classes=tuple(classes),
        macro_f1=round(macro, 4),
        accuracy=round(float(np.trace(matrix) / total), 4) if total else 0.0,
        confusion=tuple(tuple(int(v) for v in row) for row in matrix),
        total=total,
    )


def binary_f1(gold: Sequence[bool], predicted: Sequence[bool]) -> tuple[float, float, float]:
    """(precision, recall, F1) of the positive class."""
    g = np.asarray(gold, dtype=bool)
    p = np.asarray(predicted, dtype=bool)
    tp = float((g & p).sum())
    precision = tp / p.sum() if p.sum() else 0.0
    recall = tp / g.sum() if g.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return round(float(precision), 4), round(float(recall), 4), round(float(f1), 4)


def format_report(report: Report) -> str:
    """A plain-text table: per-class scores, macro-F1, accuracy, then the confusion matrix."""
    width = max(12, *(len(label) for label in report.labels)) + 2
    lines = [f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for c in report.classes:
        lines.append(f"{c.label:<{width}}{c.precision:>10.3f}{c.recall:>10.3f}{c.f1:>10.3f}{c.support:>10}")
    lines.append(f"{'macro-F1':<{width}}{'':>20}{report.macro_f1:>10.3f}{report.total:>10}")
    lines.append(f"{'accuracy':<{width}}{'':>20}{report.accuracy:>10.3f}")
    lines.append("")
    lines.append("confusion matrix (rows: gold, columns: predicted)")
    cell = max(8, *(len(label) + 1 for label in report.labels))
    lines.append(" " * width + "".join(f"{label:>{cell}}" for label in report.labels))
    for label, row in zip(report.labels, report.confusion, strict=True):
        lines.append(f"{label:<{width}}" + "".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)
