"""What a message means: intent, sentiment, abuse and an explicit request for a person, from one embedding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from intents.heads import Head, HeadFileError, HeadsError
from intents.rules import wants_human

__all__ = [
    "INTENTS",
    "SENTIMENTS",
    "SHIPPED_HEADS_DIR",
    "Understander",
    "Understanding",
    "shipped_heads_dir",
]

INTENTS = ("complaint", "question", "recommendation", "praise", "other")
SENTIMENTS = ("negative", "neutral", "positive")
HEAD_NAMES = ("intent", "sentiment", "abusive")
SHIPPED_HEADS_DIR = Path(__file__).parent / "heads"


def shipped_heads_dir(variant: str = "default") -> Path:
    """The heads shipped for a model variant (intents.encoder.VARIANTS): `SHIPPED_HEADS_DIR` for the default
    one, its subfolder named after the variant for the others."""
    return SHIPPED_HEADS_DIR if variant == "default" else SHIPPED_HEADS_DIR / variant


# Texts longer than this are cut before n-gram features are computed; the encoder truncates on its own
# (256 word pieces), so nothing past this point could change the answer much.
MAX_CHARS = 2000


@dataclass(frozen=True)
class Understanding:
    """The heads' reading of one message.

    `confidence` is the probability of the chosen intent; `low_confidence` is True when no intent head
    cleared its threshold (or the text is empty), so the policy should escalate instead of guessing.
    """

    intent: str
    confidence: float
    low_confidence: bool
    sentiment: str
    sentiment_confidence: float
    abusive: bool
    abusive_score: float
    wants_human: bool

    def to_dict(self) -> dict:
        """A JSON-ready dict with plain Python types."""
        return asdict(self)


EMPTY = Understanding(
    intent="other",
    confidence=0.0,
    low_confidence=True,
    sentiment="neutral",
    sentiment_confidence=0.0,
    abusive=False,
    abusive_score=0.0,
    wants_human=False,
)


class Understander:
    """Applies the intent, sentiment and abusive heads to messages already embedded by the caller."""

    def __init__(self, intent: Head, sentiment: Head, abusive: Head) -> None:
        _check(intent, "ovr", INTENTS)
        _check(sentiment, "softmax", SENTIMENTS)
        _check(abusive, "binary", ("abusive", "not_abusive"))
        self.intent_head = intent
        self.sentiment_head = sentiment
        self.abusive_head = abusive

    @classmethod
    def load(cls, heads_dir: Path | None = None, *, variant: str = "default") -> Understander:
        """Load `intent.npz`, `sentiment.npz` and `abusive.npz` from `heads_dir` (default: the shipped heads).

        Raises:
            HeadFileError: a head file is missing or corrupt (the message names it).
            HeadsError: a head does not have the labels this package expects.
        """
        folder = Path(heads_dir) if heads_dir is not None else shipped_heads_dir(variant)
        if not folder.is_dir():
            raise HeadFileError(f"heads folder not found: {folder}")
        heads = [Head.load(folder / f"{name}.npz") for name in HEAD_NAMES]
        return cls(*heads)

    @property
    def encoder_name(self) -> str:
        """Fingerprint of the encoder the heads were trained on (empty if unknown)."""
        return str(self.intent_head.metadata.get("encoder", ""))

    def understand(self, text: str, embedding: np.ndarray) -> Understanding:
        """Read one message; `embedding` is `SentenceEncoder.encode([text])[0]`."""
        return self.understand_batch([text], np.asarray(embedding).reshape(1, -1))[0]

    def understand_batch(self, texts: Sequence[str], embeddings: np.ndarray) -> list[Understanding]:
        """Read many messages; `embeddings[i]` belongs to `texts[i]`.

        Raises:
            ValueError: the number of texts and embeddings differ, or the embedding width is wrong.
        """
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(texts):
            raise ValueError(f"got {len(texts)} texts but embeddings of shape {embeddings.shape}")
        dim = self.intent_head.coef_embedding.shape[1]
        if embeddings.shape[1] != dim:
            raise ValueError(f"embeddings have {embeddings.shape[1]} dimensions, the heads expect {dim}")
        results: list[Understanding | None] = [None] * len(texts)
        live = [i for i, text in enumerate(texts) if text and text.strip()]
        for i, text in enumerate(texts):
            if not (text and text.strip()):
                results[i] = EMPTY
        if live:
            live_texts = [texts[i][:MAX_CHARS] for i in live]
            live_vectors = embeddings[live]
            intents = self._intents(live_texts, live_vectors)
            sentiment = self.sentiment_head.probabilities(live_texts, live_vectors)
            abusive = self.abusive_head.probabilities(live_texts, live_vectors)[:, 0]
            abusive_threshold = self.abusive_head.thresholds.get("abusive", 0.5)
            for row, index in enumerate(live):
                intent, confidence, low = intents[row]
                best = int(np.argmax(sentiment[row]))
                results[index] = Understanding(
                    intent=intent,
                    confidence=confidence,
                    low_confidence=low,
                    sentiment=self.sentiment_head.labels[best],
                    sentiment_confidence=round(float(sentiment[row, best]), 4),
                    abusive=bool(abusive[row] >= abusive_threshold),
                    abusive_score=round(float(abusive[row]), 4),
                    wants_human=wants_human(texts[index]),
                )
        return [result for result in results if result is not None]

    def _intents(self, texts: list[str], embeddings: np.ndarray) -> list[tuple[str, float, bool]]:
        """Pick, per text, the intent whose head clears its own threshold by the widest margin (in logits).

        When no head clears its threshold, the best margin still names an intent, flagged low confidence.
        """
        head = self.intent_head
        probabilities = head.probabilities(texts, embeddings)
        thresholds = np.array([head.thresholds.get(label, 0.5) for label in head.labels])
        margins = _logit(probabilities) - _logit(thresholds)
        out = []
        for row in range(len(texts)):
            best = int(np.argmax(margins[row]))
            confidence = float(probabilities[row, best])
            out.append((head.labels[best], round(confidence, 4), bool(margins[row, best] < 0)))
        return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _check(head: Head, kind: str, labels: Sequence[str]) -> None:
    if head.kind != kind:
        raise HeadsError(f"head {head.name} is of kind {head.kind}, expected {kind}")
    if kind == "binary":
        if head.labels[0] != labels[0]:
            raise HeadsError(f"head {head.name} predicts {head.labels[0]!r}, expected {labels[0]!r}")
        return
    if set(head.labels) != set(labels):
        raise HeadsError(f"head {head.name} has labels {sorted(head.labels)}, expected {sorted(labels)}")
