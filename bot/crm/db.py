"""The database: engine with the right per-engine settings, sessions, and migrations.

SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy timeout; PostgreSQL is used
as it is. The schema is owned by Alembic (`bot/crm/migrations`); `upgrade_database` brings any database to
head.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlmodel import Session

__all__ = [
    "DatabaseUnavailable",
    "check_database",
    "create_db_engine",
    "in_models",
    "is_transient_conflict",
    "session_scope",
    "upgrade_database",
]

# Execution option of a read-only session (`session_scope(engine, read_only=True)`).
READ_ONLY_OPTION = "socialbot_read_only"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# PostgreSQL advisory lock held while migrating (an arbitrary constant: "socialbt" in ASCII).
MIGRATION_LOCK_KEY = 0x736F6369616C6274


class DatabaseUnavailable(Exception):
    """The database is locked, down or unreachable; the caller should retry later."""


def create_db_engine(
    url: str,
    *,
    echo: bool = False,
    busy_timeout_seconds: float = 5.0,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_timeout_seconds: float = 10.0,
    pool_recycle_seconds: int = 1800,
) -> Engine:
    """Create the engine for `url`, creating the SQLite file's folder if needed.

    Args:
        busy_timeout_seconds: SQLite only: how long a writer waits for the lock.
        pool_size, max_overflow, pool_timeout_seconds, pool_recycle_seconds: the connection pool of a server
            database (PostgreSQL); connections are checked before use, so a restarted server costs one retry.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_seconds},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
            # Let SQLAlchemy, not the driver, open transactions (see _sqlite_begin).
            dbapi_connection.isolation_level = None

        # One writer at a time: this process's threads queue on a lock, in order, instead of in SQLite's busy
        # handler (which polls with sleeps of up to 100 ms: under a burst, a few unlucky messages waited a
        # second). Other processes on the same file still meet SQLite's own lock and busy timeout.
        write_lock = threading.Lock()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection) -> None:
            if connection.get_execution_options().get(READ_ONLY_OPTION):
                # WAL readers see the last commit and never wait for a writer.
                connection.exec_driver_sql("BEGIN")
                return
            connection.info["holds_write_lock"] = write_lock.acquire(timeout=busy_timeout_seconds)
            # Take the write lock when the transaction starts: a deferred transaction that reads and then
            # writes fails at once with "database is locked" when another writer went first, instead of
            # waiting for the busy timeout.
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                _release(connection.info)
                raise

        def _release(info: dict) -> None:
            if info.pop("holds_write_lock", False):
                write_lock.release()

        # The transaction ends: committed or rolled back through SQLAlchemy ...
        event.listen(engine, "commit", lambda connection: _release(connection.info))
        event.listen(engine, "rollback", lambda connection: _release(connection.info))
        # ... or its connection went back to the pool another way (a session dropped without closing it is
        # reset by the pool, which SQLAlchemy's transaction events don't see).
        event.listen(engine, "checkin", lambda _dbapi_connection, record: _release(record.info))
        return engine
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_seconds,
        pool_recycle=pool_recycle_seconds,
    )


@contextmanager
def session_scope(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """The one way to open a database session: it commits on success and rolls back on any error.

    Args:
        read_only: the session only reads (pages, exports, lookups); on SQLite it then neither takes nor waits
            for the write lock, so a read never queues behind writers.
    """
    bind = engine.execution_options(**{READ_ONLY_OPTION: True}) if read_only else engine
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# PostgreSQL's "deadlock detected" and "could not serialize access": the transaction was rolled back because
# of another one running at the same moment, and simply running it again is the documented remedy.
TRANSIENT_CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})


def is_transient_conflict(error: BaseException) -> bool:
    """True when `error` is a transaction rolled back over a conflict with a concurrent one (retry it)."""
    return getattr(getattr(error, "orig", None), "sqlstate", None) in TRANSIENT_CONFLICT_SQLSTATES


def check_database(engine: Engine) -> None:
    """Raise `DatabaseUnavailable` unless a trivial query works."""
    from sqlalchemy.exc import OperationalError

    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        raise DatabaseUnavailable(str(error.orig)) from error


#: Full-text search structures the migrations make outside the models (bot/support/search.py): SQLite's
#: FTS5 tables (and the shadow tables FTS5 keeps beside them) and PostgreSQL's expression indexes.
SEARCH_STRUCTURES = (
    "message_fts",
    "contact_fts",
    "ix_message_text_search",
    "ix_contact_search",
    "ix_identity_search",
)


def in_models(name: str | None, type_: str, _parent_names: object = None) -> bool:
    """Whether schema object `name` is one the models describe (Alembic's `include_name`): everything but
    the search structures, which the migrations own."""
    return not (name and type_ in ("table", "index") and name.startswith(SEARCH_STRUCTURES))


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str, revision: str = "heads") -> None:
    """Apply migrations up to `revision` (idempotent: an up-to-date database is left as it is)."""
    if make_url(url).get_backend_name() == "sqlite":
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    if make_url(url).get_backend_name() == "postgresql":
        # Several workers start at once: one migrates while the others wait on a session advisory lock
        # (released when its connection closes, so a crashed migrator doesn't block the rest).
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                try:
                    command.upgrade(alembic_config(url), revision)
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                    connection.commit()
        finally:
            engine.dispose()
        return
    command.upgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    return "+".join(sorted(heads)) if heads else None
