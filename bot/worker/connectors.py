"""Build the enabled platform adapters from the settings, and the database-backed pieces they are given.

The adapters in `channels/` know their platform only: they get plain values (tokens, URLs), an
`InboundSink` to hand messages to and a `CursorStore` to keep their place. This module is the one place
that maps settings onto adapters; an SDK is imported only when its channel is enabled.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from sqlalchemy import Engine

from bot.crm.db import session_scope
from bot.crm.models import ChannelCursor, utcnow
from bot.engagement.followups import unsubscribe_url
from bot.runtime.settings import Settings
from channels.base import Channel, CursorStore, InboundSink

__all__ = ["DatabaseCursors", "brand_keywords", "build_detached_channels", "build_platform_channels"]

log = logging.getLogger("socialbot.channels")


class DatabaseCursors(CursorStore):
    """Pollers' positions in the `channelcursor` table, so a restart resumes where the last run stopped."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: str) -> str | None:
        with session_scope(self.engine) as session:
            row = session.get(ChannelCursor, key)
            return row.value if row is not None else None

    def set(self, key: str, value: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get(ChannelCursor, key)
            if row is None:
                row = ChannelCursor(key=key, value=value)
            row.value, row.updated_at = value, utcnow()
            session.add(row)


def brand_keywords(settings: Settings) -> list[str]:
    """Words that mean a message is about the brand: its handles and its name."""
    return [*settings.brand.handles, settings.brand.name]


def _secret(value) -> str | None:
    return value.get_secret_value() if value is not None else None


def build_platform_channels(
    settings: Settings, *, sink: InboundSink, cursors: CursorStore, support_desk: Any = None
) -> dict[str, Channel]:
    """The adapters of every enabled platform, by channel name (not started: pollers start in `serve`).

    `support_desk` (a bot.support.slack_desk.SlackSupportDesk) handles staff's clicks and thread replies in
    the Slack support channel."""
    channels: dict[str, Channel] = {}
    if settings.slack.enabled:
        from channels.slack import SlackChannel

        slack = settings.slack
        channels["slack"] = SlackChannel(
            bot_token=_secret(slack.bot_token),
            signing_secret=_secret(slack.signing_secret),
            app_token=_secret(slack.app_token),
            socket_mode=slack.socket_mode,
            api_base_url=slack.api_base_url,
            keywords=brand_keywords(settings),
            sink=sink,
            support_channel=slack.support_channel.strip(),
            staff_actions=support_desk.staff_action if support_desk is not None else None,
            staff_replies=support_desk.staff_reply if support_desk is not None else None,
        )
    if settings.telegram.enabled:
        from channels.telegram import TelegramChannel

        telegram = settings.telegram
        channels["telegram"] = TelegramChannel(
            token=_secret(telegram.token),
            webhook_secret=_secret(telegram.webhook_secret),
            mode=telegram.mode,
            api_base_url=telegram.api_base_url,
            sink=sink,
            cursors=cursors,
        )
    if settings.twitter.enabled:
        from channels.twitter import TwitterChannel

        twitter = settings.twitter
        channels["twitter"] = TwitterChannel(
            bearer_token=_secret(twitter.bearer_token),
            consumer_key=_secret(twitter.consumer_key),
            consumer_secret=_secret(twitter.consumer_secret),
            access_token=_secret(twitter.access_token),
            access_token_secret=_secret(twitter.access_token_secret),
            user_id=twitter.user_id,
            keywords=twitter.keywords,
            poll_interval_seconds=twitter.poll_interval_seconds,
            api_base_url=twitter.api_base_url,
            sink=sink,
            cursors=cursors,
        )
    if settings.email.enabled:
        from channels.email import EmailChannel

        email = settings.email
        channels["email"] = EmailChannel(
            smtp_host=email.smtp_host,
            smtp_port=email.smtp_port,
            username=email.username,
            password=_secret(email.password),
            from_address=email.from_address,
            use_tls=email.use_tls,
            inbound_secret=_secret(email.inbound_secret),
            brand_name=settings.brand.name,
            unsubscribe_url=functools.partial(unsubscribe_url, settings),
            sink=sink,
        )
    if channels:
        log.info("channels enabled: %s", ", ".join(sorted(channels)))
    return channels


class _NoCursors(CursorStore):
    def get(self, key: str) -> str | None:
        return None

    def set(self, key: str, value: str) -> None:
        return None


def _refuse_messages(_message: object) -> bool:
    raise RuntimeError("this channel was built for a one-off command and does not take messages")


def build_detached_channels(settings: Settings) -> dict[str, Channel]:
    """The enabled adapters for one-off commands (`channels check`, `telegram set-webhook`): no database, no
    message intake. Call `stop()` on them when done."""
    return build_platform_channels(settings, sink=_refuse_messages, cursors=_NoCursors())
