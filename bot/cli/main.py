"""The `socialbot` command: serve, demo, chat, database, and the intents / knowledge tools."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot import __version__
from bot.cli.common import fail, settings_for
from bot.cli.contacts import app as contacts_app
from bot.cli.export import app as export_app
from bot.cli.insights import app as insights_app
from bot.cli.intents import app as intents_app
from bot.cli.knowledge import app as knowledge_app
from bot.cli.ladder import app as ladder_app
from bot.cli.setup import slack_app, telegram_app
from bot.cli.staff import app as staff_app
from bot.cli.webhooks import app as webhooks_app
from bot.runtime.logs import NOISY_LOGGERS
from bot.runtime.settings import Settings, SettingsError

if TYPE_CHECKING:
    from bot.runtime.container import Runtime

app = typer.Typer(
    name="socialbot",
    help="A social-channel responder with a lightweight social CRM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The CRM database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
channels_app = typer.Typer(help="The platform channels (Slack, Telegram, X).", no_args_is_help=True)
app.add_typer(channels_app, name="channels")
app.add_typer(slack_app, name="slack")
app.add_typer(telegram_app, name="telegram")
app.add_typer(intents_app, name="intents", help="Understanding: classify, train and evaluate the heads.")
app.add_typer(knowledge_app, name="knowledge", help="The knowledge base: check, answer, evaluate, reindex.")
app.add_typer(staff_app, name="staff", help="Staff accounts: add people, issue API tokens.")
app.add_typer(export_app, name="export", help="Export the response log as CSV or Parquet.")
app.add_typer(webhooks_app, name="webhooks", help="Outgoing webhooks to integrations.")
app.add_typer(contacts_app, name="contacts", help="A customer's data: export it as JSON or erase it.")
app.add_typer(insights_app, name="insights", help="Insights for marketers: the weekly digest e-mail.")
app.add_typer(ladder_app, name="ladder", help="The advocacy ladder: check its rules on labelled histories.")

log = logging.getLogger("socialbot")


def _configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"socialbot {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="settings file (default: $SOCIALBOT_CONFIG, else ./settings.toml)"
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    ctx.obj = {"config": config}


def _runtime(settings: Settings):
    from bot.policy.routing import PolicyError
    from bot.worker.build import build_runtime
    from intents.encoder import EncoderLoadError

    try:
        return build_runtime(settings)
    except (PolicyError, EncoderLoadError) as error:
        raise fail(str(error)) from None
    except Exception as error:
        # Errors from the knowledge base and the heads name the file; anything else is a bug: re-raise.
        from intents import HeadsError
        from knowledge import KnowledgeBaseError

        if isinstance(error, KnowledgeBaseError | HeadsError):
            raise fail(str(error)) from None
        raise


def _serve(
    settings: Settings,
    *,
    banner: str | None = None,
    workers: int = 1,
    config: Path | None = None,
    prepare: Callable[[Runtime], str] | None = None,
) -> None:
    """Serve `settings`; `prepare` (one process only) runs on the loaded runtime before the worker starts
    and returns the banner."""
    import uvicorn
    from sqlalchemy.exc import OperationalError

    from bot.runtime.logs import configure_logging
    from bot.worker.serve import (
        app_for,
        check_workers,
        database_error,
        limit_malloc_arenas,
        listen_options,
        serve_workers,
        start_worker,
    )

    limit_malloc_arenas()
    configure_logging(settings.logging.format, settings.logging.level)
    try:
        check_workers(settings, workers)
        if workers > 1:
            serve_workers(settings, workers=workers, config=config, banner=banner)
            return
        # One process: load here, so a bad knowledge base or heads file stops start-up with one clear line.
        runtime = _runtime(settings)
        if prepare is not None:
            banner = prepare(runtime)
        web = app_for(start_worker(settings, runtime=runtime))
    except SettingsError as error:
        raise fail(str(error)) from None
    except OperationalError as error:
        raise fail(database_error(settings, error)) from None
    if banner:
        typer.echo(banner)
    uvicorn.run(web, log_level="info", log_config=None, **listen_options(settings))


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="address to listen on (default: [server] host)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: [server] port)")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="worker processes sharing the database (more than 1 needs PostgreSQL)",
            show_default=True,
        ),
    ] = 1,
) -> None:
    """Run socialbot: web chat, API and enabled channels, in one or several worker processes."""
    settings = settings_for(ctx)
    server = settings.server.model_copy(update={k: v for k, v in {"host": host, "port": port}.items() if v})
    _serve(settings.model_copy(update={"server": server}), workers=workers, config=ctx.obj.get("config"))


@app.command()
def demo(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="port to serve on")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its database")] = Path("data"),
) -> None:
    """Run the sample brand (Fernhill Outdoor) with its knowledge base and web chat; no tokens needed."""
    _configure_logging()
    settings = settings_for(ctx)
    settings = settings.model_copy(
        update={
            "data": settings.data.model_copy(update={"dir": data_dir.resolve()}),
            "server": settings.server.model_copy(update={"host": "127.0.0.1", "port": port}),
        }
    )
    url = f"http://127.0.0.1:{port}"

    def banner(runtime: Runtime) -> str:
        from bot.cli.demo import prepare_demo

        typer.echo("Preparing the demo (a sample week of conversations on a new database takes a minute)...")
        access = prepare_demo(runtime)
        if access.password is None:
            way_in = "  This database already has staff, so no demo admin was added: use your own account.\n"
        else:
            way_in = f"  Log in as {access.email} with password {access.password} (new at every start).\n"
        return (
            f"\n  {settings.brand.name} is ready (this computer only).\n"
            f"  Web chat:  {url}/   try 'how long does delivery take?' or 'you should sell kids' boots'\n"
            f"  Console:   {url}/console   (the queue, conversations, moderation)\n"
            f"  Dashboard: {url}/console/insights\n"
            f"{way_in}"
            f"  Database:  {settings.database_url_for_display}\n"
        )

    _serve(settings, prepare=banner)


@app.command()
def chat(
    ctx: typer.Context,
    user: Annotated[str, typer.Option(help="who you are in this conversation")] = "terminal-user",
) -> None:
    """Talk to the bot in the terminal, through the same pipeline as every channel (channel `cli`)."""
    _configure_logging(logging.WARNING)
    settings = settings_for(ctx)
    from bot.pipeline.inbound import handle_inbound
    from channels.base import Author, InboundMessage

    runtime = _runtime(settings)
    interactive = sys.stdin.isatty()
    brand = settings.brand.name
    if interactive:
        typer.echo(f"Chatting with {brand}. Ctrl-D to leave.")
    while True:
        if interactive:
            typer.echo("you> ", nl=False)
        line = sys.stdin.readline()
        if not line:
            break
        text = line.rstrip("\n")
        if not text.strip():
            continue
        result = handle_inbound(
            runtime,
            InboundMessage(
                channel="cli",
                external_id=f"cli:{user}:{uuid.uuid4().hex}",
                thread_id=f"cli:{user}",
                author=Author(external_id=user, display_name=user),
                text=text,
            ),
        )
        for reply in result.replies:
            typer.echo(f"{brand}> {reply.text}")
        if not result.replies and result.state == "human":
            typer.echo(f"({brand}: a person from the team will reply here.)")


@channels_app.command("check")
def channels_check(ctx: typer.Context) -> None:
    """Ask each enabled platform who we are (auth.test, getMe, get_me) and say which channels are ready."""
    from bot.worker.connectors import build_detached_channels
    from channels.base import ChannelError

    settings = settings_for(ctx)
    channels = build_detached_channels(settings)
    if not channels:
        typer.echo("no platform channel is enabled ([slack], [telegram], [twitter] enabled = true)")
        return
    failed = False
    for name, channel in sorted(channels.items()):
        try:
            typer.echo(f"{name}: ready - {channel.check()}")
        except ChannelError as error:
            failed = True
            typer.echo(f"{name}: NOT ready - {error}")
        finally:
            channel.stop()
    if failed:
        raise typer.Exit(code=1)


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="target revision")] = "heads",
) -> None:
    """Create or migrate the database to the latest schema (safe to run again)."""
    from sqlalchemy.exc import OperationalError

    from bot.crm.db import create_db_engine, current_revision, upgrade_database

    settings = settings_for(ctx)
    try:
        upgrade_database(settings.database_url, revision)
        revision_now = current_revision(create_db_engine(settings.database_url))
    except OperationalError as error:
        raise fail(f"database {settings.database_url_for_display}: {error.orig}") from None
    typer.echo(f"database at revision {revision_now}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
