"""What a running worker holds: settings, database, the models, the policy and the channels, and the
background executor for pipeline work. Built once per process by bot/worker/build.py; every service gets
what it needs from here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from sqlalchemy import Engine

from bot.policy.routing import Policy
from bot.runtime.analysis import Models
from bot.runtime.leadership import PollerLeadership
from bot.runtime.settings import Settings
from channels.base import Channel

__all__ = ["Runtime"]

log = logging.getLogger("socialbot")


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
        advisory lock (`bot.runtime.leadership`); on SQLite there is one process and the pollers just start.
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


def _account_of(settings: Settings, channel: str) -> str:
    """What identifies the account a poller polls (the part of the advisory-lock name after the channel)."""
    if channel == "twitter":
        return settings.twitter.user_id
    if channel == "email" and settings.email.imap_host:
        email = settings.email
        return f"{email.imap_user or email.username}@{email.imap_host}/{email.imap_folder}"
    if channel == "telegram" and settings.telegram.token is not None:
        return settings.telegram.token.get_secret_value().split(":", 1)[0]  # the bot id, not the secret
    return "default"
