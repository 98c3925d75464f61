"""Linear heads on the sentence embedding (plus optional hashed n-grams): file format and numpy inference.

A head file is a NumPy `.npz` (no pickles) holding the weights and one JSON metadata string. Three kinds:
- `softmax`: one distribution over the labels (sentiment);
- `ovr`: one sigmoid per label, each with its own threshold (intent);
- `binary`: one sigmoid for the first label, with a threshold (abusive).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from intents.features import NgramConfig, hashed_ngrams

__all__ = ["FORMAT_VERSION", "Head", "HeadsError", "HeadFileError"]

FORMAT_VERSION = 1
KINDS = ("softmax", "ovr", "binary")


class HeadsError(Exception):
    """The heads cannot be used: a file is missing, corrupt, or does not fit the encoder."""


class HeadFileError(HeadsError):
    """One head file is missing or unreadable; the message names the file."""


@dataclass
class Head:
    """A trained linear head.

    `coef_embedding` has shape (k, dim) and `coef_ngrams` (k, buckets) or (k, 0); k is 1 for a binary head.
    `thresholds` maps a label to the probability at which it fires (ovr and binary heads).
    """

    name: str
    kind: str
    labels: tuple[str, ...]
    coef_embedding: np.ndarray
    bias: np.ndarray
    coef_ngrams: np.ndarray | None = None
    ngram_config: NgramConfig | None = None
    ngram_scale: float = 0.0
    thresholds: dict[str, float] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise HeadsError(f"head {self.name}: unknown kind {self.kind!r}")

    @property
    def uses_ngrams(self) -> bool:
        return self.coef_ngrams is not None and self.coef_ngrams.size > 0 and self.ngram_scale > 0

    def logits(self, texts: list[str], embeddings: np.ndarray) -> np.ndarray:
        """Raw scores, shape (n, k)."""
        scores = embeddings.astype(np.float32) @ self.coef_embedding.T + self.bias
        if self.uses_ngrams:
            assert self.ngram_config is not None and self.coef_ngrams is not None
            for row, text in enumerate(texts):
                indices, values = hashed_ngrams(text, self.ngram_config)
                if indices.size:
                    scores[row] += self.ngram_scale * (self.coef_ngrams[:, indices] @ values)
        return scores

    def probabilities(self, texts: list[str], embeddings: np.ndarray) -> np.ndarray:
        """Shape (n, k): a softmax for `softmax` heads, independent sigmoids otherwise."""
        scores = self.logits(texts, embeddings)
        if self.kind == "softmax":
            scores = scores - scores.max(axis=1, keepdims=True)
            exp = np.exp(scores)
            return exp / exp.sum(axis=1, keepdims=True)
        return 1.0 / (1.0 + np.exp(-np.clip(scores, -50, 50)))

    def save(self, path: Path) -> None:
        """Write the head as a compressed `.npz` (float16 n-gram weights keep it small)."""
        meta = {
            "format": FORMAT_VERSION,
            "name": self.name,
            "kind": self.kind,
            "labels": list(self.labels),
            "thresholds": self.thresholds,
            "ngram_config": self.ngram_config.to_dict() if self.ngram_config else None,
            "ngram_scale": self.ngram_scale,
            **{"metadata": self.metadata},
        }
        ngrams = self.coef_ngrams if self.uses_ngrams else np.zeros((len(self.bias), 0))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.savez_compressed(
                handle,
                coef_embedding=self.coef_embedding.astype(np.float32),
                bias=self.bias.astype(np.float32),
                coef_ngrams=ngrams.astype(np.float16),
                meta=np.array(json.dumps(meta, sort_keys=True)),
            )

    @classmethod
    def load(cls, path: Path) -> Head:
        """Read a head file.

        Raises:
            HeadFileError: the file is missing, not a head file, or of an unknown format version.
        """
        if not path.is_file():
            raise HeadFileError(f"head file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                coef_embedding = data["coef_embedding"].astype(np.float32)
                bias = data["bias"].astype(np.float32)
                coef_ngrams = data["coef_ngrams"].astype(np.float32)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as error:
            raise HeadFileError(f"head file {path} is corrupt or not a head file: {error}") from error
        if meta.get("format") != FORMAT_VERSION:
            raise HeadFileError(
                f"head file {path} has format {meta.get('format')!r}, expected {FORMAT_VERSION}"
            )
        try:
            head = cls(
                name=meta["name"],
                kind=meta["kind"],
                labels=tuple(meta["labels"]),
                coef_embedding=coef_embedding,
                bias=bias,
                coef_ngrams=coef_ngrams if coef_ngrams.size else None,
                ngram_config=NgramConfig.from_dict(meta["ngram_config"]) if meta["ngram_config"] else None,
                ngram_scale=float(meta["ngram_scale"]),
                thresholds={k: float(v) for k, v in meta["thresholds"].items()},
                metadata=meta.get("metadata", {}),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise HeadFileError(f"head file {path} has incomplete metadata: {error}") from error
        rows = 1 if head.kind == "binary" else len(head.labels)
        if coef_embedding.shape[0] != rows or bias.shape != (rows,):
            raise HeadFileError(f"head file {path}: weight shapes do not match its {len(head.labels)} labels")
        return head
