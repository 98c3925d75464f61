"""Retraining one head on the shipped encoder's vectors (scikit-learn, the `train` extra): how a brand
adapts the heads to its own corrections (`socialbot intents train`) without touching the encoder.

Heads are logistic regressions on the unit-length sentence vector. An `ovr` (one-vs-rest) head trains one
binary model per label; rows labelled `not_<label>` count as negatives for that label only. Thresholds are
chosen on 3-fold out-of-fold predictions of the training rows, at the share each intent has in real traffic
(`intents.calibration.TRAFFIC_PRIORS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from intents.calibration import TRAFFIC_PRIORS, best_threshold
from intents.heads import Head

__all__ = ["RECIPES", "HeadRecipe", "train_head"]

SEED = 13


@dataclass(frozen=True)
class HeadRecipe:
    """How one head is trained: kind, labels and regularisation."""

    name: str
    kind: str
    labels: tuple[str, ...]
    c: float = 4.0


RECIPES = {
    "intent": HeadRecipe("intent", "ovr", ("complaint", "question", "recommendation", "praise", "other")),
    "sentiment": HeadRecipe("sentiment", "softmax", ("negative", "neutral", "positive")),
    "abusive": HeadRecipe("abusive", "binary", ("abusive", "not_abusive")),
}


def _fit_binary(
    x: np.ndarray, y: np.ndarray, c: float, weights: np.ndarray | None
) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=SEED)
    model.fit(x, y, sample_weight=weights)
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def _folds(n: int, k: int) -> list[np.ndarray]:
    order = np.random.default_rng(SEED).permutation(n)
    return [order[i::k] for i in range(k)]


def train_head(
    recipe: HeadRecipe,
    labels: Sequence[str],
    embeddings: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    calibrate: bool = True,
    priors: dict[str, float] | None = None,
    metadata: dict | None = None,
) -> Head:
    """Fit one head.

    Args:
        recipe: kind, labels and regularisation.
        labels, embeddings: the training rows. For `ovr` heads a label may be `not_<label>`.
        sample_weight: optional weight per row.
        calibrate: choose thresholds on 3-fold out-of-fold predictions (ovr and binary heads); else 0.5.
        priors: expected share of each intent in real traffic (default `TRAFFIC_PRIORS`).
        metadata: stored in the head file (data, encoder).
    """
    from sklearn.linear_model import LogisticRegression

    labels = list(labels)
    x = np.asarray(embeddings, dtype=np.float32)
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    thresholds: dict[str, float] = {}
    if recipe.kind == "softmax":
        y = np.array([recipe.labels.index(label) for label in labels])
        model = LogisticRegression(C=recipe.c, max_iter=3000, class_weight="balanced", random_state=SEED)
        model.fit(x, y, sample_weight=weights)
        order = [list(model.classes_).index(i) for i in range(len(recipe.labels))]
        coef = model.coef_[order].astype(np.float32)
        bias = model.intercept_[order].astype(np.float32)
    else:
        targets = recipe.labels[:1] if recipe.kind == "binary" else recipe.labels
        rows, biases = [], []
        priors = priors or TRAFFIC_PRIORS
        for target in targets:
            if recipe.kind == "binary":
                used = np.ones(len(labels), dtype=bool)
            else:
                used = np.array(
                    [lab == target or lab == f"not_{target}" or not lab.startswith("not_") for lab in labels]
                )
            y = np.array([lab == target for lab in labels])[used]
            x_used = x[used]
            w_used = None if weights is None else weights[used]
            coef_t, bias_t = _fit_binary(x_used, y, recipe.c, w_used)
            thresholds[target] = 0.5
            if calibrate:
                scores = np.zeros(int(used.sum()))
                for fold in _folds(len(y), 3):
                    train = np.setdiff1d(np.arange(len(y)), fold)
                    c_f, b_f = _fit_binary(
                        x_used[train], y[train], recipe.c, None if w_used is None else w_used[train]
                    )
                    scores[fold] = x_used[fold] @ c_f + b_f
                prior = priors.get(target) if recipe.kind == "ovr" else None
                thresholds[target] = best_threshold(1 / (1 + np.exp(-scores)), y, prior)
            rows.append(coef_t)
            biases.append(bias_t)
        coef = np.vstack(rows)
        bias = np.array(biases, dtype=np.float32)
    return Head(
        name=recipe.name,
        kind=recipe.kind,
        labels=recipe.labels,
        coef_embedding=np.ascontiguousarray(coef),
        bias=bias,
        thresholds=thresholds,
        metadata=metadata or {},
    )
