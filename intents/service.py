"""The steps behind `socialbot intents classify | train | eval`, as plain functions the CLI calls."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from intents.embedding_cache import embed_cached
from intents.evaluation import Report, evaluate
from intents.heads import Head
from intents.io import InputFileError, read_labelled_csv, read_texts_csv
from intents.understand import HEAD_NAMES, INTENTS, SENTIMENTS, SHIPPED_HEADS_DIR, Understander, Understanding

__all__ = [
    "HEAD_LABELS",
    "classify_file",
    "encode_in_batches",
    "evaluate_file",
    "predict_labels",
    "train_file",
]

HEAD_LABELS: dict[str, tuple[str, ...]] = {
    "intent": INTENTS,
    "sentiment": SENTIMENTS,
    "abusive": ("abusive", "not_abusive"),
}
# Accepted spellings of the abusive flag in a training or evaluation file.
_ABUSIVE_ALIASES = {
    "yes": "abusive",
    "1": "abusive",
    "true": "abusive",
    "no": "not_abusive",
    "0": "not_abusive",
    "false": "not_abusive",
}
BATCH_SIZE = 32
#: Rows `classify_file` reads, encodes and writes at a time (the progress bar moves by this much).
CLASSIFY_CHUNK = 1024

Progress = Callable[[int], None]


def encode_in_batches(encoder, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
    """Embed texts 32 at a time, reporting progress after each batch."""
    parts = []
    for start in range(0, len(texts), BATCH_SIZE):
        batch = list(texts[start : start + BATCH_SIZE])
        parts.append(encoder.encode(batch, batch_size=BATCH_SIZE))
        if progress:
            progress(len(batch))
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dim), dtype=np.float32)


def classify_file(
    input_path: Path, output_path: Path, encoder, understander: Understander, progress: Progress | None = None
) -> int:
    """Classify the `text` column of a CSV into JSON Lines, one object per row in input order.

    Each line is {"intent", "confidence", "sentiment", "abusive"}. Returns the number of rows written.

    Raises:
        InputFileError: the input file is unusable (see `read_texts_csv`).
    """
    texts = read_texts_csv(input_path)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(output_path.name + ".part")
    with tmp.open("w", encoding="utf-8") as out:
        for start in range(0, len(texts), CLASSIFY_CHUNK):
            chunk = texts[start : start + CLASSIFY_CHUNK]
            # Each distinct text once; the encoder sorts the chunk by length into its batches of
            # `BATCH_SIZE` (less padding than batching the file's rows in order: ~1/4 less encoder time on
            # tweets). The heads read `BATCH_SIZE` texts at a time: their n-grams are cached for the three
            # heads of the same texts (`hashed_ngrams`).
            distinct = list(dict.fromkeys(chunk))
            vectors = encoder.encode(distinct, batch_size=BATCH_SIZE)
            understood = []
            for at in range(0, len(distinct), BATCH_SIZE):
                batch = slice(at, at + BATCH_SIZE)
                understood += understander.understand_batch(distinct[batch], vectors[batch])
            results = dict(zip(distinct, understood, strict=True))
            out.writelines(
                json.dumps(classification(results[text]), ensure_ascii=False) + "\n" for text in chunk
            )
            if progress:
                progress(len(chunk))
    tmp.replace(output_path)
    return len(texts)


def classification(result: Understanding) -> dict:
    """The CLI's JSON object for one message."""
    return {
        "intent": result.intent,
        "confidence": float(result.confidence),
        "sentiment": result.sentiment,
        "abusive": bool(result.abusive),
    }


def _labels_for(head: str, labels: list[str]) -> list[str]:
    if head == "abusive":
        return [_ABUSIVE_ALIASES.get(label.lower(), label) for label in labels]
    return labels


def _read_for_head(path: Path, head: str):
    if head not in HEAD_LABELS:
        raise ValueError(f"unknown head {head!r}; expected one of {', '.join(HEAD_LABELS)}")
    allowed = list(HEAD_LABELS[head]) + (list(_ABUSIVE_ALIASES) if head == "abusive" else [])
    rows = read_labelled_csv(path, allowed)
    return rows.texts, _labels_for(head, rows.labels)


def train_file(
    data_path: Path,
    head: str,
    out_dir: Path,
    encoder,
    *,
    base_heads: Path | None = None,
    progress: Progress | None = None,
) -> Head:
    """Train one head from a `text,label` CSV and write it to `out_dir/<head>.npz`.

    The other heads are copied from `base_heads` (default: the shipped ones) when `out_dir` lacks them, so
    the folder is complete and `[intents] heads_dir` can point at it.

    Raises:
        InputFileError: unusable file, unknown labels, or a label with no example.
    """
    from intents.training import RECIPES, train_head

    texts, labels = _read_for_head(data_path, head)
    expected = HEAD_LABELS[head] if head != "abusive" else ("abusive", "not_abusive")
    missing = [label for label in expected if label not in labels]
    if missing:
        raise InputFileError(
            f"{data_path}: no example of label(s) {', '.join(missing)}; every label needs some"
        )
    smallest = min(labels.count(label) for label in expected)
    embeddings = embed_cached(encoder, texts, progress=progress)
    trained = train_head(
        RECIPES[head],
        texts,
        labels,
        embeddings,
        calibrate=smallest >= 6,
        metadata={"encoder": encoder.name, "trained_on": {str(data_path): len(texts)}},
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trained.save(out_dir / f"{head}.npz")
    source = Path(base_heads) if base_heads else SHIPPED_HEADS_DIR
    for other in HEAD_NAMES:
        target = out_dir / f"{other}.npz"
        if not target.exists() and (source / f"{other}.npz").exists():
            shutil.copyfile(source / f"{other}.npz", target)
    return trained


def predict_labels(
    head: str, understander: Understander, texts: Sequence[str], embeddings: np.ndarray
) -> list[str]:
    """The label each text gets from one head, in that head's label vocabulary."""
    results = understander.understand_batch(texts, embeddings)
    if head == "intent":
        return [r.intent for r in results]
    if head == "sentiment":
        return [r.sentiment for r in results]
    return ["abusive" if r.abusive else "not_abusive" for r in results]


def evaluate_file(
    data_path: Path, head: str, encoder, understander: Understander, progress: Progress | None = None
) -> Report:
    """Score one head on a `text,label` CSV: per-class precision / recall / F1, macro-F1, confusion matrix.

    Raises:
        InputFileError: unusable file or unknown labels.
    """
    texts, labels = _read_for_head(data_path, head)
    embeddings = encode_in_batches(encoder, texts, progress)
    predicted = predict_labels(head, understander, texts, embeddings)
    return evaluate(labels, predicted, HEAD_LABELS[head])
