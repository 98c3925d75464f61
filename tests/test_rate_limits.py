"""Rate limits in the database: a window starts at a key's first hit, hits beyond the limit are refused with
the seconds until the window ends, a given-back hit frees its place, keys are stored hashed, and old windows
are forgotten."""

from __future__ import annotations

from sqlalchemy import select

from bot.crm.db import create_db_engine, session_scope, upgrade_database
from bot.crm.models import RateLimitWindow
from bot.crm.rate_limits import KEEP_SECONDS, Limit, forget_expired, give_back, take

THREE_A_MINUTE = Limit("test", hits=3, window_seconds=60)


def engine_at(tmp_path):
    url = f"sqlite:///{tmp_path / 'limits.sqlite3'}"
    upgrade_database(url)
    return create_db_engine(url)


def test_hits_beyond_the_limit_wait_until_the_window_started_by_the_first_hit_ends(tmp_path):
    engine = engine_at(tmp_path)
    with session_scope(engine) as session:
        waits = [take(session, THREE_A_MINUTE, "203.0.113.9", now=1000.0 + n) for n in range(5)]
        assert waits == [0.0, 0.0, 0.0, 57.0, 56.0]
        assert take(session, THREE_A_MINUTE, "198.51.100.4", now=1004.0) == 0.0  # another key, its own window
        assert take(session, THREE_A_MINUTE, "203.0.113.9", now=1060.0) == 0.0  # a new window
        keys = session.exec(select(RateLimitWindow.key)).scalars().all()
    assert not any("203.0.113.9" in key or "198.51.100.4" in key for key in keys)


def test_a_hit_given_back_frees_its_place_and_a_zero_limit_is_off(tmp_path):
    engine = engine_at(tmp_path)
    with session_scope(engine) as session:
        for n in range(3):
            take(session, THREE_A_MINUTE, "owner", now=1000.0 + n)
        give_back(session, THREE_A_MINUTE, "owner")
        assert take(session, THREE_A_MINUTE, "owner", now=1010.0) == 0.0
        assert take(session, THREE_A_MINUTE, "owner", now=1011.0) > 0
        off = Limit("off", hits=0, window_seconds=60)
        assert all(take(session, off, "anyone") == 0.0 for _ in range(10))


def test_old_windows_are_forgotten(tmp_path):
    engine = engine_at(tmp_path)
    with session_scope(engine) as session:
        take(session, THREE_A_MINUTE, "old", now=1000.0)
        take(session, THREE_A_MINUTE, "recent", now=1000.0 + KEEP_SECONDS)
        assert forget_expired(session, now=1001.0 + KEEP_SECONDS) == 1
        assert len(session.exec(select(RateLimitWindow.key)).scalars().all()) == 1


def test_the_upsert_counts_on_postgresql_too(pg_url):
    upgrade_database(pg_url)
    engine = create_db_engine(pg_url)
    with session_scope(engine) as session:
        waits = [take(session, THREE_A_MINUTE, "203.0.113.9", now=1000.0 + n) for n in range(5)]
        assert waits == [0.0, 0.0, 0.0, 57.0, 56.0]
        assert take(session, THREE_A_MINUTE, "203.0.113.9", now=1060.0) == 0.0  # a new window
