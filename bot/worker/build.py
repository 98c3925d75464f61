"""Build a worker's `Runtime` from the settings: migrate the database, load the models, make the policy and
wire the channels to the pipeline (their `InboundSink`) and to the Slack support desk.
"""

from __future__ import annotations

import functools

from bot.crm.db import create_db_engine, upgrade_database
from bot.delivery.webhooks import capture_webhook_events
from bot.pipeline.inbound import accept_inbound
from bot.policy.routing import Policy
from bot.runtime.analysis import Models, load_models
from bot.runtime.container import Runtime
from bot.runtime.settings import Settings
from bot.support.slack_desk import SlackSupportDesk
from bot.worker.connectors import DatabaseCursors, build_platform_channels
from channels.base import Channel
from channels.webchat import StoredChannel

__all__ = ["build_policy", "build_runtime"]


def build_policy(settings: Settings) -> Policy:
    return Policy(
        brand=settings.brand.name,
        support_hours=settings.brand.support_hours,
        human_reply_estimate=settings.brand.human_reply_estimate,
        routes=settings.policy.routes,
        templates=settings.policy.templates,
        templates_by_language=settings.policy.templates_by_language,
        strongly_negative_confidence=settings.moderation.strongly_negative_confidence,
    )


def build_runtime(settings: Settings, *, models: Models | None = None, migrate: bool = True) -> Runtime:
    """Upgrade the database and load everything a worker needs.

    Args:
        models: already loaded models to share (tests load them once per session).
        migrate: apply database migrations first (what `serve` and `demo` do).
    """
    capture_webhook_events()  # webhook events are written in the transaction of each change
    if migrate:
        upgrade_database(settings.database_url)
    engine = create_db_engine(
        settings.database_url,
        echo=settings.database.echo,
        busy_timeout_seconds=settings.database.busy_timeout_seconds,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
        pool_timeout_seconds=settings.database.pool_timeout_seconds,
        pool_recycle_seconds=settings.database.pool_recycle_seconds,
    )
    channels: dict[str, Channel] = {"cli": StoredChannel("cli")}
    if settings.webchat.enabled:
        channels["webchat"] = StoredChannel("webchat")
    runtime = Runtime(
        settings=settings,
        engine=engine,
        models=models or load_models(settings),
        policy=build_policy(settings),
        channels=channels,
    )
    runtime.channels.update(
        build_platform_channels(
            settings,
            sink=functools.partial(accept_inbound, runtime),
            cursors=DatabaseCursors(engine),
            support_desk=SlackSupportDesk(runtime),
            engine=engine,
        )
    )
    return runtime
