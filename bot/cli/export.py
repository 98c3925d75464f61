"""`socialbot export messages | conversations`: the response log as CSV, streamed to a file in batches, with
the same filters as the console and the API, and an AuditEvent per export."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import fail, open_database, settings_for

app = typer.Typer(help="Export the response log as CSV.", no_args_is_help=True, add_completion=False)

KINDS = ("messages", "conversations")


def _export(
    ctx: typer.Context,
    kind: str,
    *,
    since: str | None,
    until: str | None,
    channel: str | None,
    intent: str | None,
    sentiment: str | None,
    state: str | None,
    author: str | None,
    text: str | None,
    out: Path,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy import func
    from sqlmodel import select

    from bot.crm.db import session_scope
    from bot.crm.models import Contact, Conversation, Message, Staff
    from bot.insights.response_log import (
        CONVERSATION_COLUMNS,
        MESSAGE_COLUMNS,
        FilterError,
        LogFilters,
        csv_lines,
        iter_conversation_rows,
        iter_message_rows,
        record_export,
    )

    try:
        filters = LogFilters.parse(
            since=since,
            until=until,
            channel=channel,
            intent=intent,
            sentiment=sentiment,
            state=state,
            author=author,
            text=text,
        )
    except FilterError as error:
        raise fail(str(error)) from None
    if not out.parent.is_dir():
        raise fail(f"--out: the folder {out.parent} does not exist")
    engine = open_database(settings_for(ctx))
    try:
        if kind == "messages":
            header, rows = MESSAGE_COLUMNS, iter_message_rows
            counting = (
                select(func.count())
                .select_from(Message)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .join(Contact, Contact.id == Message.contact_id)
                .outerjoin(Staff, Staff.id == Message.staff_id)
                .where(*filters.message_conditions())
            )
        else:
            header, rows = CONVERSATION_COLUMNS, iter_conversation_rows
            counting = (
                select(func.count()).select_from(Conversation).where(*filters.conversation_conditions())
            )
        record_export(engine, kind=kind, filters=filters, staff_id=None, via="cli", who=getpass.getuser())
        written = 0
        show_progress = sys.stderr.isatty()
        with (
            out.open("w", encoding="utf-8", newline="") as handle,
            Progress(
                TextColumn(f"exporting {kind}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                disable=not show_progress,
                transient=True,
            ) as progress,
        ):
            total = None
            if show_progress:
                with session_scope(engine, read_only=True) as session:
                    total = session.exec(counting).one()
            task = progress.add_task(kind, total=total)

            def counted():
                nonlocal written
                for batch in rows(engine, filters):
                    written += len(batch)
                    progress.advance(task, len(batch))
                    yield batch

            for chunk in csv_lines(header, counted()):
                handle.write(chunk)
    finally:
        engine.dispose()
    typer.echo(f"wrote {written} {kind} to {out}")


def _command(kind: str):
    def command(
        ctx: typer.Context,
        out: Annotated[Path, typer.Option("--out", "-o", help="the CSV file to write")],
        since: Annotated[str | None, typer.Option(help="from this UTC day (YYYY-MM-DD) or ISO time")] = None,
        until: Annotated[str | None, typer.Option(help="to this UTC day (inclusive) or ISO time")] = None,
        channel: Annotated[str | None, typer.Option(help="only this channel (webchat, slack, ...)")] = None,
        intent: Annotated[str | None, typer.Option(help="only messages with this intent")] = None,
        sentiment: Annotated[str | None, typer.Option(help="negative | neutral | positive")] = None,
        state: Annotated[str | None, typer.Option(help="conversation state: bot | human | resolved")] = None,
        author: Annotated[str | None, typer.Option(help="customer | bot | staff")] = None,
        text: Annotated[str | None, typer.Option(help="text contains (case-insensitive)")] = None,
    ) -> None:
        _export(
            ctx,
            kind,
            since=since,
            until=until,
            channel=channel,
            intent=intent,
            sentiment=sentiment,
            state=state,
            author=author,
            text=text,
            out=out,
        )

    command.__doc__ = (
        f"Write the {kind} matching the filters to a CSV file (streamed; cells that would start a "
        "spreadsheet formula get a leading quote)."
    )
    return command


for _kind in KINDS:
    app.command(_kind)(_command(_kind))
