"""What a running socialbot holds: settings, database, the encoder and its heads, the knowledge base, the
policy and the channels. Built once per process by `build_runtime`; the leaves get what they need from here
(the encoder is built here and passed to both `intents` and `knowledge`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from bot.batching import MicroBatcher
from bot.connectors import DatabaseCursors, build_platform_channels
from bot.crm.db import create_db_engine, upgrade_database
from bot.languages import detect_language
from bot.leadership import PollerLeadership
from bot.pipeline import accept_inbound
from bot.policy import Policy
from bot.settings import Settings
from bot.support_channel import SlackSupportDesk
from bot.webhooks import capture_webhook_events
from channels.base import Channel
from channels.webchat import StoredChannel
from intents import Understander, Understanding
from intents.encoder import Encoder, load_encoder
from knowledge import Answer, KnowledgeBase

__all__ = ["Analysis", "Models", "Runtime", "build_runtime", "load_models", "sample_knowledge_dir"]

log = logging.getLogger("socialbot")


def sample_knowledge_dir() -> Path:
    """The sample brand's (Fernhill Outdoor) knowledge base shipped with socialbot."""
    return Path(str(resources.files("knowledge") / "sample" / "fernhill"))


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything the models say about one message, from one encoder pass."""

    understanding: Understanding
    answer: Answer
    language: str | None = None  # ISO 639-1, "und" for an unknown script, None if unsure (bot/languages.py)


@dataclass
class Models:
    """The encoder, the heads on it and the knowledge base: loaded once, shared by every request."""

    encoder: Encoder
    understander: Understander
    knowledge: KnowledgeBase
    refresh_seconds: float = 30.0
    # Messages analysed at the same moment are encoded together (bot/batching.py).
    batch_max: int = 32
    batch_wait_ms: float = 0.0
    # Languages detected besides bot.languages.COMMON_LANGUAGES (the brand's), and the brand's default.
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


@dataclass
class Runtime:
    """One worker's state. `submit` runs pipeline work in the background (webhooks return at once)."""

    settings: Settings
    engine: Engine
    models: Models
    policy: Policy
    channels: dict[str, Channel]
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="pipeline")
    )
    _pending: set[Future] = field(default_factory=set)
    _pending_lock: threading.Lock = field(default_factory=threading.Lock)
    leaderships: list[PollerLeadership] = field(default_factory=list)
    # Set when the worker is shutting down: jobs stop taking new work and release what they claimed.
    stopping: threading.Event = field(default_factory=threading.Event)

    def submit(self, function: Callable[..., object], *args: object) -> Future:
        """Run `function(*args)` in the background; an exception is logged (the recovery job retries)."""

        def run() -> None:
            try:
                function(*args)
            except Exception:
                log.exception("background %s failed; the recovery job will retry", function.__name__)

        future = self.background.submit(run)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted job has finished; False if some are still running at `timeout`."""
        with self._pending_lock:
            pending = set(self._pending)
        return not wait(pending, timeout=timeout).not_done

    def start_channels(self) -> None:
        """Start the pollers (X mentions, Telegram long polling).

        On PostgreSQL several workers share the accounts, so each poller runs only in the worker holding its
        advisory lock (`bot.leadership`); on SQLite there is one process and the pollers just start.
        """
        shared = self.engine.dialect.name == "postgresql"
        for channel in self.channels.values():
            if shared and type(channel).start is not Channel.start:
                leadership = PollerLeadership(
                    self.settings.database_url, channel, _account_of(self.settings, channel.name)
                )
                self.leaderships.append(leadership)
                leadership.start()
            else:
                channel.start()

    def close(self) -> None:
        """Stop the pollers, finish background work (which may still send), then release the channels and
        the database. `Channel.stop` is called again after the drain, so it must be safe to repeat."""
        self.stopping.set()
        for leadership in self.leaderships:
            leadership.stop()
        self._stop_channels()
        self.background.shutdown(wait=True)
        self._stop_channels()
        self.engine.dispose()

    def _stop_channels(self) -> None:
        for channel in self.channels.values():
            try:
                channel.stop()
            except Exception:
                log.exception("stopping channel %s failed", channel.name)

    @property
    def owner_article_ids(self) -> set[str]:
        from bot.crm.ladder import OWNER_TAGS

        return {a.id for a in self.models.knowledge.articles if set(a.tags) & set(OWNER_TAGS)}


def _account_of(settings: Settings, channel: str) -> str:
    """What identifies the account a poller polls (the part of the advisory-lock name after the channel)."""
    if channel == "twitter":
        return settings.twitter.user_id
    if channel == "telegram" and settings.telegram.token is not None:
        return settings.telegram.token.get_secret_value().split(":", 1)[0]  # the bot id, not the secret
    return "default"


def build_policy(settings: Settings) -> Policy:
    return Policy(
        brand=settings.brand.name,
        support_hours=settings.brand.support_hours,
        human_reply_estimate=settings.brand.human_reply_estimate,
        routes=settings.policy.routes,
        templates=settings.policy.templates,
        templates_by_language=settings.policy.templates_by_language,
    )


def build_runtime(settings: Settings, *, models: Models | None = None, migrate: bool = True) -> Runtime:
    """Upgrade the database and load everything a worker needs.

    Args:
        models: already loaded models to share (tests load them once per session).
        migrate: apply database migrations first (what `serve` and `demo` do).
    """
    capture_webhook_events()  # webhook events are written in the transaction of each change
    if migrate:
        upgrade_database(settings.database_url)
    engine = create_db_engine(
        settings.database_url,
        echo=settings.database.echo,
        busy_timeout_seconds=settings.database.busy_timeout_seconds,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
        pool_timeout_seconds=settings.database.pool_timeout_seconds,
        pool_recycle_seconds=settings.database.pool_recycle_seconds,
    )
    channels: dict[str, Channel] = {"cli": StoredChannel("cli")}
    if settings.webchat.enabled:
        channels["webchat"] = StoredChannel("webchat")
    runtime = Runtime(
        settings=settings,
        engine=engine,
        models=models or load_models(settings),
        policy=build_policy(settings),
        channels=channels,
    )
    runtime.channels.update(
        build_platform_channels(
            settings,
            sink=functools.partial(accept_inbound, runtime),
            cursors=DatabaseCursors(engine),
            support_desk=SlackSupportDesk(runtime),
        )
    )
    return runtime
