"""`socialbot export messages | conversations`: the response log as CSV or Parquet, streamed to a file in
batches, with the same filters as the console and the API, and an AuditEvent per export."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import fail, open_database, settings_for

app = typer.Typer(
    help="Export the response log as CSV or Parquet.", no_args_is_help=True, add_completion=False
)

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
    file_format: str | None,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy import func
    from sqlmodel import select

    from bot.crm.db import session_scope
    from bot.crm.models import Contact, Conversation, Message, Staff
    from bot.insights.response_log import (
        CONVERSATION_COLUMNS,
        CONVERSATION_TYPES,
        EXPORT_FORMATS,
        MESSAGE_COLUMNS,
        MESSAGE_TYPES,
        FilterError,
        LogFilters,
        csv_lines,
        csv_row,
        iter_conversation_records,
        iter_message_records,
        parquet_chunks,
        record_export,
    )

    file_format = (file_format or ("parquet" if out.suffix.lower() == ".parquet" else "csv")).lower()
    if file_format not in EXPORT_FORMATS:
        raise fail(f"--format: expected {' or '.join(EXPORT_FORMATS)}, got {file_format!r}")

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
            header, types, rows = MESSAGE_COLUMNS, MESSAGE_TYPES, iter_message_records
            counting = (
                select(func.count())
                .select_from(Message)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .join(Contact, Contact.id == Message.contact_id)
                .outerjoin(Staff, Staff.id == Message.staff_id)
                .where(*filters.message_conditions())
            )
        else:
            header, types, rows = CONVERSATION_COLUMNS, CONVERSATION_TYPES, iter_conversation_records
            counting = (
                select(func.count()).select_from(Conversation).where(*filters.conversation_conditions())
            )
        record_export(
            engine,
            kind=kind,
            filters=filters,
            staff_id=None,
            via="cli",
            who=getpass.getuser(),
            file_format=file_format,
        )
        written = 0
        show_progress = sys.stderr.isatty()
        with (
            out.open("wb") as handle,
            Progress(
                TextColumn(f"exporting {kind} as {file_format}"),
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

            if file_format == "parquet":
                for data in parquet_chunks(header, types, counted()):
                    handle.write(data)
            else:
                for chunk in csv_lines(header, ([csv_row(r) for r in batch] for batch in counted())):
                    handle.write(chunk.encode("utf-8"))
    finally:
        engine.dispose()
    typer.echo(f"wrote {written} {kind} to {out}")


def _command(kind: str):
    def command(
        ctx: typer.Context,
        out: Annotated[Path, typer.Option("--out", "-o", help="the file to write (.csv or .parquet)")],
        since: Annotated[str | None, typer.Option(help="from this UTC day (YYYY-MM-DD) or ISO time")] = None,
        until: Annotated[str | None, typer.Option(help="to this UTC day (inclusive) or ISO time")] = None,
        channel: Annotated[str | None, typer.Option(help="only this channel (webchat, slack, ...)")] = None,
        intent: Annotated[str | None, typer.Option(help="only messages with this intent")] = None,
        sentiment: Annotated[str | None, typer.Option(help="negative | neutral | positive")] = None,
        state: Annotated[str | None, typer.Option(help="conversation state: bot | human | resolved")] = None,
        author: Annotated[str | None, typer.Option(help="customer | bot | staff")] = None,
        text: Annotated[str | None, typer.Option(help="text contains (case-insensitive)")] = None,
        file_format: Annotated[
            str | None,
            typer.Option("--format", help="csv | parquet (default: parquet for a .parquet file, else csv)"),
        ] = None,
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
            file_format=file_format,
        )

    command.__doc__ = (
        f"Write the {kind} matching the filters to a CSV file (streamed; cells that would start a "
        "spreadsheet formula get a leading quote) or a Parquet file (typed columns: UTC timestamps, "
        "numbers, booleans; text as written)."
    )
    return command


for _kind in KINDS:
    app.command(_kind)(_command(_kind))
