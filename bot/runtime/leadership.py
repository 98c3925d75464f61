"""Exactly one poller per platform account across all workers, with PostgreSQL advisory locks.

Pollers (X mentions, Telegram long polling) must run once per account, not once per worker: two pollers would
fetch the same posts and race on the stored cursor. Each worker runs a `PollerLeadership` per poller: a thread
that tries `pg_try_advisory_lock` on its own dedicated connection and starts the poller only while it holds
the lock. PostgreSQL releases a session lock when its connection closes, so when the holding worker dies (or
its connection is cut) another worker's next try succeeds and polling resumes from the stored cursor within
`retry_seconds`. The holder checks its connection on the same beat and stops polling the moment it is lost,
so two pollers never run for longer than one beat. On SQLite (one process) pollers simply start.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from channels.base import Channel

__all__ = ["PollerLeadership", "lock_key"]

log = logging.getLogger("socialbot.leadership")


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name` (e.g. "poller:twitter:12345")."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class PollerLeadership:
    """Runs `channel`'s poller only while this process holds the account's advisory lock.

    Args:
        database_url: the PostgreSQL URL; the lock lives on a dedicated connection outside the pool.
        channel: the poller to start and stop.
        account: what identifies the polled account (X user id, Telegram bot id), so two brands' pollers
            on one database don't exclude each other.
        retry_seconds: how often a follower tries to take the lock and the leader checks its connection;
            the take-over time after a leader dies.
    """

    def __init__(self, database_url: str, channel: Channel, account: str, *, retry_seconds: float = 2.0):
        self.channel = channel
        self.name = f"poller:{channel.name}:{account}"
        self.key = lock_key(self.name)
        self.retry_seconds = retry_seconds
        # pg_stat_activity names the worker process holding the lock (what an operator, or the soak, kills).
        application_name = f"socialbot pid {os.getpid()} {self.name}"[:63]
        self._engine = create_engine(
            database_url, poolclass=NullPool, connect_args={"application_name": application_name}
        )
        self._connection: Connection | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.leading = threading.Event()

    def start(self) -> None:
        """Start competing for the lock in a daemon thread; returns at once."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"leader-{self.channel.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the poller if we lead, give the lock back, and end the thread. Safe to call twice."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.retry_seconds + 30)
            self._thread = None
        self._engine.dispose()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                if self.leading.is_set():
                    if not self._still_connected():
                        log.warning(
                            "%s: lost the database connection holding the lock; polling stops", self.name
                        )
                        self._step_down()
                elif self._try_lock():
                    log.info("%s: this worker holds the lock and polls", self.name)
                    self.leading.set()
                    self.channel.start()
                self._stopping.wait(self.retry_seconds)
        finally:
            if self.leading.is_set():
                self._step_down()
            self._close()

    def _try_lock(self) -> bool:
        try:
            if self._connection is None:
                self._connection = self._engine.connect()
            taken = self._connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
            held = bool(taken.scalar_one())
            self._connection.commit()  # end the implicit transaction; the session lock stays
            return held
        except SQLAlchemyError as error:
            log.warning("%s: can't reach the database to take the lock: %s", self.name, type(error).__name__)
            self._close()
            return False

    def _still_connected(self) -> bool:
        try:
            self._connection.execute(text("SELECT 1"))
            self._connection.commit()
            return True
        except SQLAlchemyError:
            return False

    def _step_down(self) -> None:
        self.leading.clear()
        try:
            self.channel.stop()
        except Exception:
            log.exception("%s: stopping the poller failed", self.name)
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                self._connection.commit()
            except SQLAlchemyError:
                pass  # the connection is gone, and with it the lock
        self._close()

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.close()
            self._connection = None
