"""What the models say about a message: the encoder, the heads on it and the knowledge base, loaded once per
worker (`load_models`), and `Models.analyse`, one encoder pass per message shared by intents and knowledge
(the leaves get the encoder from here). The language is detected on the same call (bot/runtime/languages.py).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from bot.runtime.batching import MicroBatcher
from bot.runtime.languages import detect_language
from bot.runtime.settings import Settings
from intents import Understander, Understanding
from intents.encoder import Encoder, load_encoder
from knowledge import Answer, KnowledgeBase

__all__ = ["Analysis", "Models", "load_models", "sample_knowledge_dir"]

log = logging.getLogger("socialbot")


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
        self._maybe_refresh_knowledge()
        embedding: np.ndarray = self.batcher.encode(text)
        language = detect_language(text, self.languages, default=self.default_language)
        return Analysis(
            understanding=self.understander.understand(text, embedding),
            answer=self.knowledge.answer(text, embedding, language=language),
            language=language,
            embedding=embedding,
            encoder=self.encoder.name,
        )

    def _maybe_refresh_knowledge(self) -> None:
        if not self.refresh_seconds or time.monotonic() - self._last_refresh < self.refresh_seconds:
            return
        if not self._refresh_lock.acquire(blocking=False):
            return
        try:
            self._last_refresh = time.monotonic()
            if self.knowledge.refresh():
                log.info("knowledge base reloaded: %d articles", len(self.knowledge.articles))
        finally:
            self._refresh_lock.release()


def load_models(settings: Settings) -> Models:
    """Load the encoder, the heads and the knowledge base named by the settings."""
    started = time.perf_counter()
    encoder = load_encoder(
        settings.intents.backend,
        cache_dir=settings.data.onnx_cache_dir,
        threads=settings.intents.threads or None,
    )
    understander = Understander.load(settings.intents.heads_dir)
    knowledge_dir = settings.knowledge.dir or sample_knowledge_dir()
    knowledge = KnowledgeBase.build(
        knowledge_dir,
        encoder,
        threshold=settings.knowledge.threshold,
        cache_dir=settings.data.dir / "cache" / "knowledge",
        on_invalid=settings.knowledge.on_invalid,
    )
    if not knowledge.articles:
        log.warning("knowledge base %s has no articles: every question will be escalated", knowledge_dir)
    log.info(
        "models loaded in %.2f s (encoder %s, %s backend)",
        time.perf_counter() - started,
        encoder.name,
        settings.intents.backend,
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
    )
