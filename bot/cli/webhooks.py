"""`socialbot webhooks add | list | remove | enable | disable | deliveries`: outgoing webhooks."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bot.cli.common import fail, open_database, settings_for

app = typer.Typer(
    help="Outgoing webhooks: send events to your helpdesk, CRM or warehouse.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("add")
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="the receiver's http(s) URL")],
    events: Annotated[
        str, typer.Option(help="comma-separated event types, or * for all (see `webhooks events`)")
    ] = "*",
    secret_stdin: Annotated[
        bool, typer.Option("--secret-stdin", help="read the signing secret from standard input")
    ] = False,
) -> None:
    """Register an endpoint; the signing secret is generated and printed once (or read from stdin)."""
    from bot.crm.db import session_scope
    from bot.delivery.webhooks import WebhookError, add_endpoint

    settings = settings_for(ctx)
    engine = open_database(settings)
    secret = sys.stdin.readline().strip() if secret_stdin else None
    try:
        with session_scope(engine) as session:
            endpoint, secret = add_endpoint(session, url, events.split(","), settings=settings, secret=secret)
            endpoint_id, chosen = endpoint.id, endpoint.events
    except WebhookError as error:
        raise fail(str(error)) from None
    typer.echo(f"webhook endpoint {endpoint_id} added for: {', '.join(chosen)}")
    if not secret_stdin:
        typer.echo(f"signing secret (shown once, keep it in your receiver): {secret}")


@app.command("events")
def list_event_types() -> None:
    """The event types an endpoint can subscribe to."""
    from bot.delivery.webhooks import EVENT_TYPES

    for name in EVENT_TYPES:
        typer.echo(name)


@app.command("list")
def list_command(ctx: typer.Context) -> None:
    """Registered endpoints, their events and state."""
    from bot.crm.db import session_scope
    from bot.delivery.webhooks import list_endpoints

    engine = open_database(settings_for(ctx))
    with session_scope(engine, read_only=True) as session:
        endpoints = list_endpoints(session)
        if not endpoints:
            typer.echo("no webhook endpoints")
        for e in endpoints:
            state = "active" if e.active else f"disabled ({e.disabled_reason})"
            typer.echo(
                f"{e.id}\t{e.url}\t{','.join(e.events)}\t{state}\tfailures in a row: {e.consecutive_failures}"
            )


def _change(ctx: typer.Context, endpoint_id: int, change) -> None:
    from bot.crm.db import session_scope
    from bot.delivery.webhooks import WebhookError

    engine = open_database(settings_for(ctx))
    try:
        with session_scope(engine) as session:
            change(session, endpoint_id)
    except WebhookError as error:
        raise fail(str(error)) from None


@app.command("remove")
def remove(ctx: typer.Context, endpoint_id: Annotated[int, typer.Argument(help="the endpoint's id")]) -> None:
    """Delete an endpoint and its delivery log."""
    from bot.delivery.webhooks import remove_endpoint

    _change(ctx, endpoint_id, remove_endpoint)
    typer.echo(f"webhook endpoint {endpoint_id} removed")


@app.command("enable")
def enable(ctx: typer.Context, endpoint_id: Annotated[int, typer.Argument(help="the endpoint's id")]) -> None:
    """Enable an endpoint again (after it was disabled for failing); its pending deliveries resume."""
    from bot.delivery.webhooks import set_endpoint_active

    _change(ctx, endpoint_id, lambda session, i: set_endpoint_active(session, i, True))
    typer.echo(f"webhook endpoint {endpoint_id} enabled")


@app.command("disable")
def disable(
    ctx: typer.Context, endpoint_id: Annotated[int, typer.Argument(help="the endpoint's id")]
) -> None:
    """Stop sending to an endpoint (events are not recorded for it while disabled)."""
    from bot.delivery.webhooks import set_endpoint_active

    _change(ctx, endpoint_id, lambda session, i: set_endpoint_active(session, i, False))
    typer.echo(f"webhook endpoint {endpoint_id} disabled")


@app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    endpoint: Annotated[int | None, typer.Option(help="only this endpoint's deliveries")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="how many, newest first")] = 50,
) -> None:
    """The delivery log: event, endpoint, status, attempts, last answer."""
    from bot.crm.db import session_scope
    from bot.delivery.webhooks import list_deliveries

    engine = open_database(settings_for(ctx))
    with session_scope(engine, read_only=True) as session:
        entries = list_deliveries(session, endpoint_id=endpoint, limit=limit)
    if not entries:
        typer.echo("no deliveries")
    for d in entries:
        last = d.last_error or (f"HTTP {d.last_status_code}" if d.last_status_code else "-")
        typer.echo(
            f"{d.created_at:%Y-%m-%d %H:%M:%S}\t{d.event_id}\t{d.event_type}\tendpoint {d.endpoint_id}\t"
            f"{d.status}\tattempts {d.attempts}\t{last}"
        )
