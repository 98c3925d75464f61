"""Hashed word and character n-gram features, in pure Python so training and inference agree exactly.

A frozen sentence embedding blurs the few words that decide some labels ("should", "please add", swear
words); sparse n-grams keep them. Each n-gram is hashed with CRC-32 (stable across processes and
platforms, unlike `hash()`) into a fixed number of buckets; a text's vector is the L2-normalised count vector.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["NgramConfig", "hashed_ngrams", "normalise_text"]

_HANDLE = re.compile(r"@\w+")
_URL = re.compile(r"https?://\S+|www\.\S+")
_NUMBER = re.compile(r"\d+")
_REPEAT = re.compile(r"(.)\1{2,}")
# Words, or single symbols that carry meaning in social posts (?, !, emoji); whitespace is dropped.
_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|0|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class NgramConfig:
    """Which n-grams to hash and into how many buckets; stored in each head file."""

    buckets: int = 1 << 17
    word_sizes: tuple[int, ...] = (1, 2)
    char_sizes: tuple[int, ...] = (3, 4, 5)

    def to_dict(self) -> dict:
        return {
            "buckets": self.buckets,
            "word_sizes": list(self.word_sizes),
            "char_sizes": list(self.char_sizes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> NgramConfig:
        return cls(int(data["buckets"]), tuple(data["word_sizes"]), tuple(data["char_sizes"]))


def normalise_text(text: str) -> str:
    """Lower-case; handles, links and digits replaced by placeholders; 'sooooo' -> 'soo'."""
    text = _URL.sub(" http ", text.lower())
    text = _HANDLE.sub(" @user ", text)
    text = _NUMBER.sub("0", text)
    return _REPEAT.sub(r"\1\1", text)


@lru_cache(maxsize=512)
def hashed_ngrams(text: str, config: NgramConfig) -> tuple[np.ndarray, np.ndarray]:
    """Return (bucket indices, values) of the text's L2-normalised hashed n-gram counts.

    Indices are sorted and unique; an empty text gives two empty arrays. Cached (read-only arrays): the
    heads of one message share one computation.
    """
    indices, values = _hashed_ngrams(text, config)
    indices.flags.writeable = values.flags.writeable = False
    return indices, values


def _hashed_ngrams(text: str, config: NgramConfig) -> tuple[np.ndarray, np.ndarray]:
    counts: dict[int, float] = {}
    tokens = _TOKEN.findall(normalise_text(text))
    buckets = config.buckets
    for size in config.word_sizes:
        for start in range(len(tokens) - size + 1):
            gram = "w" + " ".join(tokens[start : start + size])
            key = zlib.crc32(gram.encode("utf-8")) % buckets
            counts[key] = counts.get(key, 0.0) + 1.0
    for token in tokens:
        padded = f" {token} "
        for size in config.char_sizes:
            for start in range(len(padded) - size + 1):
                key = zlib.crc32(("c" + padded[start : start + size]).encode("utf-8")) % buckets
                counts[key] = counts.get(key, 0.0) + 1.0
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    indices = np.fromiter(sorted(counts), dtype=np.int64, count=len(counts))
    values = np.array([counts[i] for i in indices.tolist()], dtype=np.float32)
    values = np.sqrt(values)  # sublinear: a word said three times is not three times the evidence
    values /= np.linalg.norm(values)
    return indices, values
