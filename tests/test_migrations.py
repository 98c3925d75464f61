"""`socialbot db upgrade` creates the schema on an empty database and migrates one at the previous revision,
keeping its data; the migrations describe exactly the models."""

from __future__ import annotations

import os
import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import bot.crm.models  # noqa: F401
from bot.crm.db import alembic_config, create_db_engine, current_revision, in_models, upgrade_database

HEAD = "0012_ladder_signs"


def test_head_is_the_newest_migration():
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() == HEAD


def run_cli(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        # The code under test, not another checkout's (a worktree runs with PYTHONPATH set).
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "SOCIALBOT_DATA__DIR": str(tmp_path / "d"),
        },
    )


def test_db_upgrade_creates_every_table_on_an_empty_database(tmp_path):
    result = run_cli(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert f"database at revision {HEAD}" in result.stdout
    engine = create_db_engine(f"sqlite:///{tmp_path / 'd' / 'socialbot.sqlite3'}")
    tables = set(inspect(engine).get_table_names())
    assert {
        "contact",
        "identity",
        "conversation",
        "message",
        "idea",
        "followup",
        "staff",
        "auditevent",
        "outbox",
        "ladderchange",
        "channelcursor",
        "note",
    } <= tables
    again = run_cli(tmp_path, "db", "upgrade")
    assert again.returncode == 0 and HEAD in again.stdout


def test_db_upgrade_from_the_previous_revision_keeps_the_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'd' / 'socialbot.sqlite3'}"
    upgrade_database(url, "0001")
    engine = create_db_engine(url)
    assert current_revision(engine) == "0001"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO contact (ladder_stage, opted_out, created_at, last_seen_at) "
                "VALUES ('owner', 0, '2026-01-01', '2026-01-01')"
            )
        )
    assert "outbox" not in inspect(engine).get_table_names()

    result = run_cli(tmp_path, "db", "upgrade")

    assert result.returncode == 0, result.stderr
    assert current_revision(engine) == HEAD
    with engine.connect() as connection:
        assert connection.execute(text("SELECT ladder_stage FROM contact")).scalar_one() == "owner"
    assert {"outbox", "channelcursor"} <= set(inspect(engine).get_table_names())


def test_the_migrations_match_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    upgrade_database(url)
    with create_db_engine(url).connect() as connection:
        assert (
            compare_metadata(
                MigrationContext.configure(connection, opts={"include_name": in_models}), SQLModel.metadata
            )
            == []
        )


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1


def test_db_upgrade_from_before_the_merged_branches_reaches_the_single_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'd' / 'socialbot.sqlite3'}"
    upgrade_database(url, "0004")
    engine = create_db_engine(url)

    result = run_cli(tmp_path, "db", "upgrade")

    assert result.returncode == 0, result.stderr
    assert current_revision(engine) == HEAD
    assert {"supportpost", "webhookendpoint", "identityverification"} <= set(
        inspect(engine).get_table_names()
    )
