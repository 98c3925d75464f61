"""The embedded database's concurrency rules: one writer at a time in order, readers never wait."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlmodel import select

from bot.crm.db import create_db_engine, session_scope, upgrade_database
from bot.crm.models import Contact


def _engine(tmp_path, busy_timeout_seconds: float = 5.0):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    upgrade_database(url)
    return create_db_engine(url, busy_timeout_seconds=busy_timeout_seconds)


def test_a_reader_does_not_wait_for_a_writer_and_sees_only_committed_rows(tmp_path):
    engine = _engine(tmp_path, busy_timeout_seconds=2.0)
    writing, read_done = threading.Event(), threading.Event()
    seen: list[int] = []

    def reader() -> None:
        writing.wait(5)
        started = time.monotonic()
        with session_scope(engine, read_only=True) as session:
            seen.append(len(session.exec(select(Contact)).all()))
        seen.append(time.monotonic() - started < 1.0)
        read_done.set()

    thread = threading.Thread(target=reader)
    thread.start()
    with session_scope(engine) as session:
        session.add(Contact(display_name="uncommitted"))
        session.flush()
        writing.set()
        # The reader finishes while this write transaction is still open.
        assert read_done.wait(2.0)
    thread.join(5)
    assert seen == [0, True]
    with session_scope(engine, read_only=True) as session:
        assert len(session.exec(select(Contact)).all()) == 1


def test_writers_from_many_threads_queue_instead_of_failing_on_a_short_busy_timeout(tmp_path):
    # Each transaction holds the write lock ~5 ms; 8 threads x 15 transactions queue far longer than SQLite's
    # busy handler (0.5 s here) would wait, yet nobody times out: the threads wait their turn on a lock.
    engine = _engine(tmp_path, busy_timeout_seconds=0.5)

    def write(worker: int) -> None:
        for number in range(15):
            with session_scope(engine) as session:
                session.add(Contact(display_name=f"{worker}-{number}"))
                session.flush()
                time.sleep(0.005)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    with session_scope(engine, read_only=True) as session:
        assert len(session.exec(select(Contact)).all()) == 120


def test_a_session_dropped_without_closing_gives_the_write_lock_back(tmp_path):
    import gc

    from sqlmodel import Session

    engine = _engine(tmp_path, busy_timeout_seconds=3.0)
    forgotten = Session(engine)
    forgotten.exec(select(Contact)).all()  # a write transaction is open (BEGIN IMMEDIATE)
    del forgotten
    gc.collect()  # the pool takes the connection back and rolls it back
    started = time.monotonic()
    with session_scope(engine) as session:
        session.add(Contact(display_name="next writer"))
    assert time.monotonic() - started < 1.0  # not the 3 s busy timeout
