"""What every `socialbot` command shares: one way to stop with a clear line, the settings, the database."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from bot.runtime.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["EXIT_BAD_INPUT", "clear_errors", "fail", "open_database", "progress_bar", "settings_for"]

#: The exit code of a command stopped by input the user can fix.
EXIT_BAD_INPUT = 2


def fail(message: str) -> typer.Exit:
    """Print `message` as one line on stderr ("socialbot: ..."); raise what it returns to exit with code 2."""
    typer.echo(f"socialbot: {message}", err=True)
    return typer.Exit(code=EXIT_BAD_INPUT)


@contextmanager
def clear_errors(*errors: type[Exception]) -> Iterator[None]:
    """Turn `errors` (those a user can fix) into one line on stderr and exit code 2, without a traceback."""
    try:
        yield
    except errors as error:
        raise fail(str(error)) from None


def settings_for(ctx: typer.Context | None, **overrides: Any) -> Settings:
    """The settings of this run: `--config` (else $SOCIALBOT_CONFIG or ./settings.toml) and the environment.

    Raises:
        typer.Exit: the settings are wrong (said in one line).
    """
    config = ctx.obj.get("config") if ctx is not None and ctx.obj else None
    try:
        return load_settings(config, **overrides)
    except SettingsError as error:
        raise fail(str(error)) from None


def open_database(settings: Settings) -> Engine:
    """The settings' database, migrated to the latest schema first (a command may be the first to run)."""
    from bot.crm.db import create_db_engine, upgrade_database

    upgrade_database(settings.database_url)
    return create_db_engine(settings.database_url)


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A Rich progress bar on stderr when it is a terminal (yields `advance(n)`); None otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
