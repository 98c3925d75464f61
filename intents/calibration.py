"""Choosing the heads' thresholds on rows nobody trained on (numpy only).

An intent head's threshold is the F1 optimum once its negatives are re-weighted to the share the intent has
in real traffic (`TRAFFIC_PRIORS`): suggestions are a quarter of SemEval's training set but about a tenth of
posts to a brand, and a threshold chosen at a quarter fires far too often at a tenth.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["TRAFFIC_PRIORS", "best_threshold", "intent_thresholds", "ovr_targets"]

# Expected share of each intent among posts addressed to a brand (rough, from reading a sample of twcs_sample
# inbound tweets, and issue 17: "ideas are about a tenth of posts").
TRAFFIC_PRIORS = {"complaint": 0.35, "question": 0.30, "recommendation": 0.10, "praise": 0.12, "other": 0.13}


def ovr_targets(labels: Sequence[str], classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest targets and a mask of which are known, each of shape (rows, classes).

    A label that is an intent is positive for it and negative for the others; `not_<intent>` says only that
    the row is not that intent (data sets that only know "complaint or not").
    """
    targets = np.zeros((len(labels), len(classes)), dtype=np.float32)
    known = np.zeros_like(targets)
    for row, label in enumerate(labels):
        if label.startswith("not_"):
            known[row, classes.index(label[4:])] = 1.0
        else:
            targets[row, classes.index(label)] = 1.0
            known[row] = 1.0
    return targets, known


def best_threshold(
    scores: np.ndarray, positive: np.ndarray, prior: float | None = None, *, min_precision: float = 0.0
) -> float:
    """Threshold on `scores` maximising F1 once negatives are re-weighted so positives make up `prior`
    (None: as they are), among thresholds whose (re-weighted) precision is at least `min_precision` if any.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return 0.5
    neg_weight = 1.0 if prior is None else (n_pos / prior - n_pos) / n_neg
    candidates = np.unique(np.quantile(scores, np.linspace(0.005, 0.995, 199)))
    best, best_key = 0.5, (-1.0, -1.0)
    for threshold in candidates:
        predicted = scores >= threshold
        tp = float((predicted & positive).sum())
        fp = float((predicted & ~positive).sum()) * neg_weight
        fn = float((~predicted & positive).sum())
        f1 = 2 * tp / max(2 * tp + fp + fn, 1e-9)
        precision = tp / max(tp + fp, 1e-9)
        key = (float(precision >= min_precision), f1)
        if key > best_key:
            best, best_key = float(threshold), key
    return best


def intent_thresholds(
    probabilities: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str],
    priors: dict[str, float] | None = None,
    min_precision: dict[str, float] | None = None,
) -> dict[str, float]:
    """Per intent, the threshold on its probability (see `best_threshold`) over the rows that say whether
    they are that intent."""
    priors = priors or TRAFFIC_PRIORS
    targets, known = ovr_targets(labels, classes)
    out = {}
    for column, name in enumerate(classes):
        rows = known[:, column] > 0
        out[name] = best_threshold(
            probabilities[rows, column],
            targets[rows, column] > 0,
            priors.get(name),
            min_precision=(min_precision or {}).get(name, 0.0),
        )
    return out
