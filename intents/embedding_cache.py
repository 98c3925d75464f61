"""Embeddings of training and evaluation texts, cached on disk so retraining and evaluating take seconds.

One SQLite file per encoder fingerprint maps a hash of each text to its vector, so subsets and re-orderings of
a data set reuse earlier work, and an interrupted run keeps what it had finished. The cache lives in
`$SOCIALBOT_CACHE_DIR` or `~/.cache/socialbot`.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from intents.encoder import cache_root

__all__ = ["cache_dir", "embed_cached"]


def cache_dir() -> Path:
    """Folder holding cached embeddings."""
    return cache_root() / "embeddings"


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def embed_cached(
    encoder,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Return `encoder.encode(texts)` as (len(texts), dim) float32, computing only texts not cached yet.

    `progress(n)` is called with the number of texts just done, for a progress bar.
    """
    path = cache_dir() / (re.sub(r"[^\w.-]", "_", encoder.name) + ".sqlite3")
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = [_key(text) for text in texts]
    vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 900):
            chunk = unique[start : start + 900]
            marks = ",".join("?" * len(chunk))
            found.update(db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk))
        missing = [i for i, key in enumerate(keys) if key not in found]
        if progress:
            progress(len(texts) - len(missing))
        # Short texts first: batches of similar length waste less padding.
        pending = Counter(keys[i] for i in missing)
        missing_first = {}
        for i in sorted(missing, key=lambda i: len(texts[i])):
            missing_first.setdefault(keys[i], i)
        todo = list(missing_first.values())
        step = batch_size * 8
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            encoded = encoder.encode([texts[i] for i in chunk], batch_size=batch_size)
            rows = [(keys[i], encoded[j].astype(np.float32).tobytes()) for j, i in enumerate(chunk)]
            db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
            db.commit()
            found.update(rows)
            if progress:
                progress(sum(pending[keys[i]] for i in chunk))
    for i, key in enumerate(keys):
        vectors[i] = np.frombuffer(found[key], dtype=np.float32)
    return vectors
