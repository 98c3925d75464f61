"""PostgreSQL runs the same Alembic migrations as SQLite and ends up exactly at the models; several workers
migrating at once don't trip over each other; the pool settings reach the engine."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import bot.crm.models  # noqa: F401
from bot.crm.db import create_db_engine, current_revision, in_models, upgrade_database


def test_the_whole_migration_chain_runs_on_postgresql_and_matches_the_models(pg_url):
    upgrade_database(pg_url)
    engine = create_db_engine(pg_url)
    try:
        assert {"message", "outbox", "conversation", "channelcursor"} <= set(
            inspect(engine).get_table_names()
        )
        with engine.connect() as connection:
            assert (
                compare_metadata(
                    MigrationContext.configure(connection, opts={"include_name": in_models}),
                    SQLModel.metadata,
                )
                == []
            )
        revision = current_revision(engine)
        upgrade_database(pg_url)  # idempotent
        assert current_revision(engine) == revision
    finally:
        engine.dispose()


def test_three_workers_starting_together_migrate_once(pg_url):
    errors: list[BaseException] = []

    def start_worker() -> None:
        try:
            upgrade_database(pg_url)
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=start_worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    engine = create_db_engine(pg_url)
    try:
        with engine.connect() as connection:
            assert (
                compare_metadata(
                    MigrationContext.configure(connection, opts={"include_name": in_models}),
                    SQLModel.metadata,
                )
                == []
            )
    finally:
        engine.dispose()


def test_the_pool_settings_reach_the_engine(pg_url):
    engine = create_db_engine(pg_url, pool_size=3, max_overflow=2, pool_timeout_seconds=1.5)
    try:
        assert engine.pool.size() == 3 and engine.pool._max_overflow == 2 and engine.pool._timeout == 1.5
    finally:
        engine.dispose()
