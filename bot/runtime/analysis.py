"""What the models say about a message: the encoder, the heads on it and the knowledge base, loaded once per
worker (`load_models`), and `Models.analyse`, one encoder pass per message shared by intents and knowledge
(the leaves get the encoder from here). The language is detected on the same call (bot/runtime/languages.py).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from bot.runtime.batching import MicroBatcher
from bot.runtime.languages import WORD, detect_language
from bot.runtime.settings import Settings
from intents import HeadsError, Understander, Understanding
from intents.encoder import Encoder, load_encoder
from intents.versions import HeadVersions
from knowledge import ANSWER_THRESHOLDS, Answer, KnowledgeBase

__all__ = [
    "THRESHOLD_KEY",
    "Analysis",
    "Models",
    "answer_threshold",
    "current_answer_threshold",
    "encoder_for",
    "head_versions",
    "load_models",
    "sample_knowledge_dir",
]

log = logging.getLogger("socialbot")

#: The knowledge base's answer threshold in a heads version's calibration (bot/insights/answer_threshold.py).
THRESHOLD_KEY = "knowledge_threshold"

# How many words of a flagged message are tried out, and how much leaving a word out must lower the abuse
# score's log-odds for the word to be named as a reason for the flag (log-odds, not probability: a message
# scored 0.99 stays above 0.98 without any one of its insults, yet each of them moves its log-odds clearly).
ABUSE_WORDS_TRIED = 40
ABUSE_WORD_MIN_WEIGHT = 0.5
# Function words are never named: they steer the model (abuse is aimed at someone) but explain nothing.
FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "is",
        "are",
        "was",
        "be",
        "am",
        "i",
        "me",
        "my",
        "you",
        "your",
        "yours",
        "he",
        "him",
        "his",
        "she",
        "her",
        "it",
        "its",
        "we",
        "our",
        "they",
        "them",
        "their",
        "this",
        "that",
        "these",
        "those",
    ]
)


def sample_knowledge_dir() -> Path:
    """The sample brand's (Fernhill Outdoor) knowledge base shipped with socialbot."""
    return Path(str(resources.files("knowledge") / "sample" / "fernhill"))


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything the models say about one message, from one encoder pass."""

    understanding: Understanding
    answer: Answer
    # ISO 639-1, "und" for an unknown script, None if unsure (bot/runtime/languages.py).
    language: str | None = None
    # The encoder's vector of the message and the encoder's name (kept for insights and retraining).
    embedding: np.ndarray | None = None
    encoder: str = ""


@dataclass
class Models:
    """The encoder, the heads on it and the knowledge base: loaded once, shared by every request."""

    encoder: Encoder
    understander: Understander
    knowledge: KnowledgeBase
    refresh_seconds: float = 30.0
    # Messages analysed at the same moment are encoded together (bot/runtime/batching.py).
    batch_max: int = 32
    batch_wait_ms: float = 0.0
    # Languages detected besides bot.runtime.languages.COMMON_LANGUAGES (the brand's), and the brand's
    # default.
    languages: tuple[str, ...] = ()
    default_language: str = "en"
    # The learning loop's versions of the heads and the one loaded (None: [intents] heads_dir pins the heads).
    heads: HeadVersions | None = None
    heads_version: str = ""
    # `[knowledge] threshold` when set; else the threshold follows the heads version (`answer_threshold`).
    pinned_threshold: float | None = None
    # `[intents] variant`: the model variant the encoder and heads are (intents.encoder.VARIANTS).
    variant: str = "default"
    _last_refresh: float = field(default_factory=time.monotonic)
    _refresh_lock: threading.Lock = field(default_factory=threading.Lock)
    batcher: MicroBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.batcher = MicroBatcher(
            self.encoder.encode, max_batch=self.batch_max, max_wait_ms=self.batch_wait_ms
        )

    def analyse(self, text: str) -> Analysis:
        """Understand `text` and find its best article, with a single encoder pass (shared with the other
        messages being analysed at the same moment)."""
        self._maybe_refresh()
        embedding: np.ndarray = self.batcher.encode(text)
        language = detect_language(text, self.languages, default=self.default_language)
        understanding = self.understander.understand(text, embedding)
        return Analysis(
            understanding=understanding,
            answer=self.knowledge.answer(text, embedding, language=language),
            language=language,
            embedding=embedding,
            encoder=self.encoder.name,
        )

    def abuse_words(self, text: str, score: float, *, top: int = 3) -> tuple[str, ...]:
        """The words of `text` that weigh most in its abuse score `score`, heaviest first: each is left out
        in turn and the text read again (one batched encoder pass); a word counts when leaving it out
        lowers the score's log-odds by at least `ABUSE_WORD_MIN_WEIGHT`. For showing staff why a message
        was flagged."""
        words = [
            word
            for word in dict.fromkeys(m.group().lower() for m in WORD.finditer(text))
            if word not in FUNCTION_WORDS
        ][:ABUSE_WORDS_TRIED]
        if not words:
            return ()
        variants = [
            re.sub(rf"(?<![^\W_]){re.escape(word)}(?![^\W_])", " ", text, flags=re.IGNORECASE)
            for word in words
        ]
        readings = self.understander.understand_batch(variants, self.encoder.encode(variants))
        weights = sorted(
            (
                (_log_odds(score) - _log_odds(reading.abusive_score), word)
                for word, reading in zip(words, readings, strict=True)
            ),
            reverse=True,
        )
        return tuple(word for weight, word in weights[:top] if weight >= ABUSE_WORD_MIN_WEIGHT)

    def refresh_heads(self) -> bool:
        """Load the heads version the learning loop made active, if it is not the one loaded (True then)."""
        if self.heads is None or self.heads.current() == self.heads_version:
            return False
        version = self.heads.current()
        self.understander = Understander.load(self.heads.folder(version))
        self.knowledge.threshold = answer_threshold(
            self.heads, version, self.pinned_threshold, variant=self.variant
        )
        log.info(
            "heads %s loaded (were %s), answer threshold %.3f",
            version,
            self.heads_version,
            self.knowledge.threshold,
        )
        self.heads_version = version
        return True

    def _maybe_refresh(self) -> None:
        """Every `refresh_seconds`: reload the knowledge base if its articles changed, and the heads if
        another version was made active."""
        if not self.refresh_seconds or time.monotonic() - self._last_refresh < self.refresh_seconds:
            return
        if not self._refresh_lock.acquire(blocking=False):
            return
        try:
            self._last_refresh = time.monotonic()
            if self.knowledge.refresh():
                log.info("knowledge base reloaded: %d articles", len(self.knowledge.articles))
            try:
                self.refresh_heads()
            except HeadsError as error:  # a broken version must not stop the worker: it keeps its heads
                log.error("heads not reloaded: %s", error)
        finally:
            self._refresh_lock.release()


def _log_odds(probability: float) -> float:
    p = min(max(probability, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def encoder_for(settings: Settings, threads: int | None = None) -> Encoder:
    """The encoder the settings name (`[intents] backend`, `variant` and `threads`; `threads` here wins): what
    a worker runs, so a command line tool computes the vectors a worker would."""
    return load_encoder(
        settings.intents.backend,
        variant=settings.intents.variant,
        cache_dir=settings.data.onnx_cache_dir,
        threads=threads or settings.intents.threads or None,
    )


def current_answer_threshold(settings: Settings) -> float:
    """The answer threshold a worker started with these settings would use now."""
    heads = head_versions(settings)
    version = heads.current() if heads else ""
    return answer_threshold(heads, version, settings.knowledge.threshold, variant=settings.intents.variant)


def load_models(settings: Settings) -> Models:
    """Load the encoder, the heads and the knowledge base named by the settings."""
    started = time.perf_counter()
    encoder = encoder_for(settings)
    heads = head_versions(settings)
    heads_version = heads.current() if heads else ""
    understander = Understander.load(
        heads.folder(heads_version) if heads else settings.intents.heads_dir, variant=settings.intents.variant
    )
    knowledge_dir = settings.knowledge.dir or sample_knowledge_dir()
    knowledge = KnowledgeBase.build(
        knowledge_dir,
        encoder,
        threshold=answer_threshold(
            heads, heads_version, settings.knowledge.threshold, variant=settings.intents.variant
        ),
        cache_dir=settings.data.dir / "cache" / "knowledge",
        on_invalid=settings.knowledge.on_invalid,
    )
    if not knowledge.articles:
        log.warning("knowledge base %s has no articles: every question will be escalated", knowledge_dir)
    log.info(
        "models loaded in %.2f s (encoder %s, %s backend, %s variant)",
        time.perf_counter() - started,
        encoder.name,
        settings.intents.backend,
        settings.intents.variant,
    )
    return Models(
        encoder,
        understander,
        knowledge,
        refresh_seconds=settings.knowledge.refresh_seconds,
        batch_max=settings.intents.batch_max,
        batch_wait_ms=settings.intents.batch_wait_ms,
        languages=(settings.brand.default_language, *settings.languages.supported),
        default_language=settings.brand.default_language,
        heads=heads,
        heads_version=heads_version,
        pinned_threshold=settings.knowledge.threshold,
        variant=settings.intents.variant,
    )


def answer_threshold(
    heads: HeadVersions | None, version: str, pinned: float | None, *, variant: str = "default"
) -> float:
    """The knowledge base's answer threshold: `pinned` (`[knowledge] threshold`) when set, else the one the
    learning loop calibrated with heads `version` from staff's right / wrong marks, else the model variant's
    default (`heads`' variant when given)."""
    if pinned is not None:
        return pinned
    calibrated = heads.calibration(version).get(THRESHOLD_KEY) if heads is not None else None
    if calibrated is not None:
        return float(calibrated)
    return ANSWER_THRESHOLDS[heads.variant if heads is not None else variant]


def head_versions(settings: Settings) -> HeadVersions | None:
    """The learning loop's versions of the heads of the settings' model variant, or None when `[intents]
    heads_dir` pins a folder."""
    if settings.intents.heads_dir:
        return None
    variant = settings.intents.variant
    return HeadVersions(settings.data.heads_versions_dir(variant), variant=variant)
