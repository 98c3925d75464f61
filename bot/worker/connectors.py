"""Build the enabled platform adapters from the settings, and the database-backed pieces they are given.

The adapters in `channels/` know their platform only: they get plain values (tokens, URLs), an
`InboundSink` to hand messages to and a `CursorStore` to keep their place. This module is the one place
that maps settings onto adapters; an SDK is imported only when its channel is enabled.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from bot.crm.db import session_scope
from bot.crm.models import ChannelCursor, MailboxPosition, utcnow
from bot.engagement.followups import record_bounce, unsubscribe_url
from bot.runtime.settings import Settings
from channels.base import Channel, CursorStore, InboundSink

if TYPE_CHECKING:
    from channels.email import MailboxPosition as ReadPosition
    from channels.email import SmtpSender

__all__ = [
    "DatabaseCursors",
    "DatabaseMailboxPositions",
    "brand_keywords",
    "build_detached_channels",
    "build_platform_channels",
    "smtp_sender",
]

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
    settings: Settings,
    *,
    sink: InboundSink,
    cursors: CursorStore,
    support_desk: Any = None,
    engine: Engine | None = None,
) -> dict[str, Channel]:
    """The adapters of every enabled platform, by channel name (not started: pollers start in `serve`).

    `support_desk` (a bot.support.slack_desk.SlackSupportDesk) handles staff's clicks and thread replies in
    the Slack support channel. `engine` keeps the e-mail poller's position and records bounces; without it
    (one-off commands) the mailbox is only checked, never read."""
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
        channels["email"] = _email_channel(settings, sink=sink, engine=engine)
    if channels:
        log.info("channels enabled: %s", ", ".join(sorted(channels)))
    return channels


class DatabaseMailboxPositions:
    """The IMAP poller's position per mailbox folder in the `mailboxposition` table (a
    `channels.email.MailboxPositionStore`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, mailbox: str) -> ReadPosition | None:
        from channels.email import MailboxPosition as ReadPosition

        with session_scope(self.engine, read_only=True) as session:
            row = session.get(MailboxPosition, mailbox)
            return ReadPosition(row.uidvalidity, row.last_uid) if row is not None else None

    def save(self, mailbox: str, position: ReadPosition) -> None:
        with session_scope(self.engine) as session:
            row = session.get(MailboxPosition, mailbox) or MailboxPosition(
                mailbox=mailbox, uidvalidity=position.uidvalidity, last_uid=position.last_uid
            )
            row.uidvalidity, row.last_uid, row.updated_at = position.uidvalidity, position.last_uid, utcnow()
            session.add(row)


class _NoPositions:
    def load(self, mailbox: str) -> ReadPosition | None:
        return None

    def save(self, mailbox: str, position: ReadPosition) -> None:
        raise RuntimeError("this e-mail channel was built for a one-off command and reads no mailbox")


def smtp_sender(settings: Settings) -> SmtpSender:
    """The SMTP server of `[email]`: the one replies, follow-ups and the weekly digest go out through (the
    digest also when the e-mail channel is off)."""
    from channels.email import SmtpSecurity, SmtpSender

    email = settings.email
    return SmtpSender(
        host=email.smtp_host,
        port=email.smtp_port,
        security=SmtpSecurity(email.smtp_security),
        username=email.username,
        password=_secret(email.password),
    )


def _email_channel(settings: Settings, *, sink: InboundSink, engine: Engine | None) -> Channel:
    from channels.email import EmailChannel, ImapAccount, ImapSecurity, SenderAuthenticator

    email = settings.email
    imap = None
    if email.imap_host:
        imap = ImapAccount(
            host=email.imap_host,
            port=email.imap_port,
            username=email.imap_user or email.username,
            password=_secret(email.imap_password) or _secret(email.password) or "",
            security=ImapSecurity(email.imap_security),
            folder=email.imap_folder,
            processed_folder=email.imap_processed_folder or None,
        )
    return EmailChannel(
        smtp=smtp_sender(settings),
        from_address=email.sender_address,
        inbound_secret=_secret(email.inbound_secret) or "",
        thread_secret=_secret(settings.secret_key) or "",
        brand_name=settings.brand.name,
        signature=email.signature or f"{settings.brand.name}\n{settings.brand.website}",
        unsubscribe_url=functools.partial(unsubscribe_url, settings),
        sink=sink,
        authenticator=SenderAuthenticator(
            trusted_authserv_ids=[email.trusted_authserv_id] if email.trusted_authserv_id else [],
            verify_dkim=email.verify_dkim,
        ),
        imap=imap,
        imap_poll_seconds=email.imap_poll_seconds,
        positions=DatabaseMailboxPositions(engine) if engine is not None else _NoPositions(),
        on_bounce=functools.partial(record_bounce, engine) if engine is not None else None,
    )


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
