"""`socialbot staff add | token | list | link | team`: staff accounts for the console, the API and Slack."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bot.cli.common import fail, open_database, settings_for

app = typer.Typer(
    help="Staff accounts: add people, issue API tokens.", no_args_is_help=True, add_completion=False
)


@app.command("add")
def add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="the person's e-mail address (their login)")],
    role: Annotated[str, typer.Option(help="agent | marketer | admin")] = "agent",
    name: Annotated[str | None, typer.Option(help="the name colleagues see")] = None,
    team: Annotated[str | None, typer.Option(help="their team (whose canned replies they use)")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input (scripts)")
    ] = False,
) -> None:
    """Add a staff member; the password is asked for (or read from stdin), never taken as an argument."""
    from bot.crm.db import session_scope
    from bot.support.staff import StaffError, create_staff, set_team

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    engine = open_database(settings_for(ctx))
    try:
        with session_scope(engine) as session:
            staff = create_staff(session, email, role=role, password=password, name=name)
            if team:
                set_team(session, staff.email, team)
            summary = f"added {staff.email} as {staff.role} (id {staff.id})"
    except StaffError as error:
        raise fail(str(error)) from None
    finally:
        engine.dispose()
    typer.echo(summary)


@app.command("token")
def token(
    ctx: typer.Context, email: Annotated[str, typer.Argument(help="the staff member's e-mail address")]
) -> None:
    """Print a new API token for the staff member (the previous one stops working). Shown once."""
    from sqlmodel import select

    from bot.crm.db import session_scope
    from bot.crm.models import Staff
    from bot.support.staff import issue_api_token

    engine = open_database(settings_for(ctx))
    try:
        with session_scope(engine) as session:
            staff = session.exec(select(Staff).where(Staff.email == email.strip().lower())).first()
            if staff is None:
                raise fail(f"no staff account for {email}")
            value = issue_api_token(session, staff)
    finally:
        engine.dispose()
    typer.echo(value)


@app.command("list")
def list_staff(ctx: typer.Context) -> None:
    """List staff accounts."""
    from sqlmodel import select

    from bot.crm.db import session_scope
    from bot.crm.models import Staff

    engine = open_database(settings_for(ctx))
    with session_scope(engine, read_only=True) as session:
        for staff in session.exec(select(Staff).order_by(Staff.email)).all():
            state = "" if staff.active else " (disabled)"
            typer.echo(f"{staff.id}\t{staff.email}\t{staff.role}\t{staff.team or '-'}{state}")
    engine.dispose()


@app.command("link")
def link(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="the staff member's e-mail address")],
    slack_user_id: Annotated[
        str | None,
        typer.Option(
            "--slack-user-id",
            help="their Slack member id (U... or W...; in Slack: profile > ... > Copy member ID)",
        ),
    ] = None,
    unlink: Annotated[bool, typer.Option("--unlink", help="remove the link to Slack")] = False,
) -> None:
    """Link a staff member to their Slack account, so their Take / Resolve clicks and thread replies in the
    Slack support channel act as them."""
    from bot.crm.db import session_scope
    from bot.support.slack_desk import link_slack_user
    from bot.support.staff import StaffError

    if unlink == (slack_user_id is not None):
        raise fail("give either --slack-user-id U... or --unlink")
    engine = open_database(settings_for(ctx))
    try:
        with session_scope(engine) as session:
            staff = link_slack_user(session, email, slack_user_id)
            summary = (
                f"linked {staff.email} to Slack user {staff.slack_user_id}"
                if staff.slack_user_id
                else f"unlinked {staff.email} from Slack"
            )
    except StaffError as error:
        raise fail(str(error)) from None
    finally:
        engine.dispose()
    typer.echo(summary)


@app.command("team")
def team(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="the staff member's e-mail address")],
    name: Annotated[str, typer.Argument(help='the team (empty "" for none): they see its canned replies')],
) -> None:
    """Put a staff member in a team; the console offers them the team's canned replies and everyone's."""
    from bot.crm.db import session_scope
    from bot.support.staff import StaffError, set_team

    engine = open_database(settings_for(ctx))
    try:
        with session_scope(engine) as session:
            staff = set_team(session, email, name)
            summary = (
                f"{staff.email} is in team {staff.team}" if staff.team else f"{staff.email} is in no team"
            )
    except StaffError as error:
        raise fail(str(error)) from None
    finally:
        engine.dispose()
    typer.echo(summary)
