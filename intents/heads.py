"""Linear heads on the sentence embedding: file format and numpy inference.

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

__all__ = ["FORMAT_VERSION", "Head", "HeadsError", "HeadFileError"]

# 2: the fine-tuned encoder's heads, on the embedding alone (version 1 also had hashed n-grams).
FORMAT_VERSION = 2
KINDS = ("softmax", "ovr", "binary")


class HeadsError(Exception):
    """The heads cannot be used: a file is missing, corrupt, or does not fit the encoder."""


class HeadFileError(HeadsError):
    """One head file is missing or unreadable; the message names the file."""


@dataclass
class Head:
    """A trained linear head.

    `coef_embedding` has shape (k, dim); k is 1 for a binary head.
    `thresholds` maps a label to the probability at which it fires (ovr and binary heads).
    """

    name: str
    kind: str
    labels: tuple[str, ...]
    coef_embedding: np.ndarray
    bias: np.ndarray
    thresholds: dict[str, float] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise HeadsError(f"head {self.name}: unknown kind {self.kind!r}")

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """Raw scores, shape (n, k)."""
        return np.asarray(embeddings, dtype=np.float32) @ self.coef_embedding.T + self.bias

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """Shape (n, k): a softmax for `softmax` heads, independent sigmoids otherwise."""
        scores = self.logits(embeddings)
        if self.kind == "softmax":
            scores = scores - scores.max(axis=1, keepdims=True)
            exp = np.exp(scores)
            return exp / exp.sum(axis=1, keepdims=True)
        return 1.0 / (1.0 + np.exp(-np.clip(scores, -50, 50)))

    def save(self, path: Path) -> None:
        """Write the head as a compressed `.npz`."""
        meta = {
            "format": FORMAT_VERSION,
            "name": self.name,
            "kind": self.kind,
            "labels": list(self.labels),
            "thresholds": self.thresholds,
            "metadata": self.metadata,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.savez_compressed(
                handle,
                coef_embedding=self.coef_embedding.astype(np.float32),
                bias=self.bias.astype(np.float32),
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
                thresholds={k: float(v) for k, v in meta["thresholds"].items()},
                metadata=meta.get("metadata", {}),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise HeadFileError(f"head file {path} has incomplete metadata: {error}") from error
        rows = 1 if head.kind == "binary" else len(head.labels)
        if coef_embedding.shape[0] != rows or bias.shape != (rows,):
            raise HeadFileError(f"head file {path}: weight shapes do not match its {len(head.labels)} labels")
        return head
