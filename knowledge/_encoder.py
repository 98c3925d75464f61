"""The encoder interface the knowledge base needs; `bot` passes in the real one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["TextEncoder"]


@runtime_checkable
class TextEncoder(Protocol):
    """Anything that turns texts into unit-length sentence vectors.

    Attributes:
        name: a fingerprint of the model; it is part of the index cache key, so it must change
            whenever the vectors would.
    """

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return a float32 array of shape (len(texts), dim) with one unit-length row per text."""
        ...
