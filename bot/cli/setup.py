"""Setup helpers: `socialbot slack manifest` and `socialbot telegram set-webhook`.

Connecting a channel is where new users stall: these print or register exactly what the platform needs for
this installation's `[server] public_url`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from bot.cli.common import fail, settings_for

slack_app = typer.Typer(help="Slack setup: the app manifest.", no_args_is_help=True, add_completion=False)
telegram_app = typer.Typer(
    help="Telegram setup: register the webhook.", no_args_is_help=True, add_completion=False
)

#: What the bot needs from Slack: read mentions and messages where it is, post replies, read its own history
#: (the outbox checks a reply was not posted twice), and users' names.
SLACK_BOT_SCOPES = (
    "app_mentions:read",
    "channels:history",
    "chat:write",
    "groups:history",
    "im:history",
    "mpim:history",
    "users:read",
)
SLACK_BOT_EVENTS = ("app_mention", "message.channels", "message.groups", "message.im", "message.mpim")


def slack_manifest(*, brand: str, public_url: str, socket_mode: bool) -> dict[str, Any]:
    """A Slack app manifest for this installation (paste it at api.slack.com/apps -> From a manifest)."""
    events_url = public_url.rstrip("/") + "/slack/events"
    event_subscriptions: dict[str, Any] = {"bot_events": list(SLACK_BOT_EVENTS)}
    interactivity: dict[str, Any] = {"is_enabled": True}
    if not socket_mode:
        event_subscriptions["request_url"] = events_url
        interactivity["request_url"] = events_url
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": f"{brand} assistant"[:35],
            "description": f"Answers customers for {brand} and hands them to the team",
        },
        "features": {
            "bot_user": {"display_name": f"{brand}"[:80], "always_online": True},
            "app_home": {"messages_tab_enabled": True, "messages_tab_read_only_enabled": False},
        },
        "oauth_config": {"scopes": {"bot": list(SLACK_BOT_SCOPES)}},
        "settings": {
            "event_subscriptions": event_subscriptions,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }


@slack_app.command("manifest")
def manifest(
    ctx: typer.Context,
    output_format: Annotated[str, typer.Option("--format", help="json | yaml")] = "yaml",
) -> None:
    """Print the Slack app manifest (scopes, events, request URLs for [server] public_url)."""

    if output_format not in ("json", "yaml"):
        raise fail(f"--format must be json or yaml, not {output_format!r}")
    settings = settings_for(ctx)
    if not settings.slack.socket_mode and not settings.server.public_url.startswith("https://"):
        typer.echo(
            f"note: Slack only calls https URLs; [server] public_url is {settings.server.public_url}",
            err=True,
        )
    document = slack_manifest(
        brand=settings.brand.name,
        public_url=settings.server.public_url,
        socket_mode=settings.slack.socket_mode,
    )
    if output_format == "json":
        typer.echo(json.dumps(document, indent=2))
    else:
        import yaml

        typer.echo(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


@telegram_app.command("set-webhook")
def set_webhook(ctx: typer.Context) -> None:
    """Register <public_url>/telegram/webhook with Telegram, with the webhook secret token."""
    from bot.worker.connectors import build_detached_channels
    from channels.base import ChannelError

    settings = settings_for(ctx)
    if not settings.telegram.enabled:
        raise fail("telegram is not enabled ([telegram] enabled = true, SOCIALBOT_TELEGRAM__TOKEN)")
    if settings.telegram.mode != "webhook":
        raise fail('[telegram] mode is "polling": a webhook would stop polling; set mode = "webhook" first')
    channel = build_detached_channels(settings)["telegram"]
    url = settings.server.public_url.rstrip("/") + channel.webhook_path
    try:
        channel.set_webhook(url)
    except ChannelError as error:
        raise fail(str(error)) from None
    finally:
        channel.stop()
    typer.echo(f"telegram: updates now go to {url}")
