"""`socialbot insights digest`: the weekly digest e-mail, previewed as an HTML file or sent now."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import fail, open_database, settings_for

app = typer.Typer(
    help="Insights for marketers: the weekly digest.", no_args_is_help=True, add_completion=False
)


@app.command("digest")
def digest(
    ctx: typer.Context,
    preview: Annotated[
        Path | None,
        typer.Option("--preview", help="write the digest as an HTML file (charts inside) for a browser"),
    ] = None,
    send: Annotated[
        bool, typer.Option("--send", help="send it now to [insights] digest_recipients (or --to)")
    ] = False,
    to: Annotated[
        list[str] | None, typer.Option("--to", help="send to this address instead (repeatable)")
    ] = None,
) -> None:
    """The weekly digest of the dashboard's last 7 days (volumes by channel, sentiment, complaint topics,
    ladder moves, top ideas): write it to an HTML file with --preview, send it with --send. Sending here
    does not count as the week's scheduled digest."""
    from bot.insights.digest import build_digest, dashboard_url, digest_html, send_digest
    from bot.runtime.settings import InsightsSettings
    from bot.worker.connectors import smtp_sender
    from channels.base import ChannelError

    if preview is None and not send:
        raise fail("say what to do: --preview FILE.html, --send, or both")
    if preview is not None and not preview.parent.is_dir():
        raise fail(f"--preview: the folder {preview.parent} does not exist")
    settings = settings_for(ctx)
    recipients = None
    if to:
        try:
            recipients = InsightsSettings(digest_recipients=to).digest_recipients
        except ValueError as error:
            raise fail("--to: " + str(error).splitlines()[-1].strip()) from None
    if send and not (recipients or settings.insights.digest_recipients):
        raise fail("--send: no recipients; set [insights] digest_recipients or give --to")
    if send and "@" not in settings.email.sender_address:
        raise fail("--send: the digest comes from email.from_address; set SOCIALBOT_EMAIL__FROM_ADDRESS")
    engine = open_database(settings)
    try:
        if preview is not None:
            made = build_digest(
                engine,
                brand=settings.brand.name,
                dashboard_url=dashboard_url(settings),
                first_response_target=settings.support.first_response_target,
                article_titles=article_titles(settings),
            )
            preview.write_text(digest_html(made), encoding="utf-8")
            typer.echo(f"wrote the digest of {made.period} ({len(made.charts)} charts) to {preview}")
        if send:
            try:
                sent = send_digest(
                    engine,
                    settings,
                    sender=smtp_sender(settings),
                    recipients=recipients,
                    article_titles=article_titles(settings),
                )
            except ChannelError as error:
                raise fail(f"the digest was not sent: {error}") from None
            count = len(recipients or settings.insights.digest_recipients)
            typer.echo(f"sent the digest of {sent.period} to {count} address(es)")
    finally:
        engine.dispose()


def article_titles(settings) -> dict[str, str]:
    """The knowledge base's article titles by id, read without the encoder (complaint topics are named after
    their article; the topics themselves come from the vectors the workers stored)."""
    from bot.runtime.analysis import sample_knowledge_dir
    from knowledge import load_articles

    directory = settings.knowledge.dir or sample_knowledge_dir()
    return {article.id: article.title for article in reversed(load_articles(directory, on_invalid="skip"))}
