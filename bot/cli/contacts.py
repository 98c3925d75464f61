"""`socialbot contacts export ID --out FILE.json | erase ID`: a customer's data rights from the command line
(the same as the console's and the API's, audited as done by the operator at the shell)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import fail, open_database, settings_for

app = typer.Typer(
    help="A customer's data: export everything stored about them, or erase it.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("export")
def export(
    ctx: typer.Context,
    contact_id: Annotated[int, typer.Argument(metavar="ID", help="the contact's id", min=1)],
    out: Annotated[Path, typer.Option("--out", "-o", help="the JSON file to write")],
) -> None:
    """Write everything stored about the contact (all their identities) to a JSON file."""
    from bot.crm.data_rights import ContactNotFound, export_for_staff

    if not out.parent.is_dir():
        raise fail(f"--out: the folder {out.parent} does not exist")
    engine = open_database(settings_for(ctx))
    try:
        data = export_for_staff(engine, contact_id, staff_id=None, via=f"cli:{getpass.getuser()}")
    except ContactNotFound as error:
        raise fail(str(error)) from None
    finally:
        engine.dispose()
    out.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    typer.echo(f"wrote contact {contact_id} ({len(data['messages'])} messages) to {out}")


@app.command("erase")
def erase(
    ctx: typer.Context,
    contact_id: Annotated[int, typer.Argument(metavar="ID", help="the contact's id", min=1)],
) -> None:
    """Erase the contact's personal data and message text (rows and counts stay; safe to repeat)."""
    from bot.crm.data_rights import ContactNotFound, erase_for_staff

    engine = open_database(settings_for(ctx))
    try:
        report = erase_for_staff(engine, contact_id, staff_id=None, via=f"cli:{getpass.getuser()}")
    except ContactNotFound as error:
        raise fail(str(error)) from None
    finally:
        engine.dispose()
    typer.echo(
        f"erased contact {contact_id}: {report.messages} messages, "
        f"{report.follow_ups_cancelled} follow-ups cancelled"
    )
