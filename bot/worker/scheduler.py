"""Background jobs of a running worker (APScheduler): deliver the outbox, send due follow-ups, post
escalations to the Slack support channel, deliver outgoing webhooks, finish interrupted messages, wake snoozed
conversations, purge old message text (retention), alert complaint spikes, send the weekly digest.

Every job is safe to run in several workers at once: the rows it works on are claimed in the database.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from bot.crm.data_rights import purge_old_text
from bot.crm.db import session_scope
from bot.crm.rate_limits import forget_expired
from bot.delivery.outbox import deliver_due
from bot.delivery.webhooks import deliver_webhooks
from bot.engagement.followups import send_due_followups, sync_followup_delivery
from bot.insights.digest import send_due_digest
from bot.insights.topics import check_complaint_spikes
from bot.pipeline.inbound import recover_unprocessed
from bot.runtime.container import Runtime
from bot.support.slack_posts import deliver_support_posts, support_channel_of
from bot.support.snooze import wake_due_snoozes
from bot.worker.connectors import smtp_sender

__all__ = ["run_retention", "start_scheduler"]

log = logging.getLogger("socialbot.scheduler")

OUTBOX_INTERVAL_SECONDS = 2
RECOVERY_INTERVAL_SECONDS = 60
FOLLOWUP_INTERVAL_SECONDS = 30
SNOOZE_INTERVAL_SECONDS = 15
#: How often each worker asks whether the weekly digest is due (the first to claim the week sends it).
DIGEST_CHECK_MINUTES = 15


def _deliver_outbox(runtime: Runtime) -> None:
    report = deliver_due(runtime.engine, runtime.channels, stop=runtime.stopping)
    if report.failed:
        log.warning("outbox: %d message(s) failed for good", len(report.failed))


def _send_followups(runtime: Runtime) -> None:
    send_due_followups(runtime)
    deliver_due(runtime.engine, runtime.channels)
    sync_followup_delivery(runtime.engine)


def _wake_snoozed(runtime: Runtime) -> None:
    woken = wake_due_snoozes(runtime.engine)
    if woken:
        log.info("snooze ended: conversation(s) %s back in the queue", ", ".join(map(str, woken)))
        deliver_support_posts(runtime)


def run_retention(runtime: Runtime) -> int:
    """The retention job: purge message text older than `[data_rights] retention_days` and rate-limit windows
    that ended long ago; return how many messages were purged."""
    with session_scope(runtime.engine) as session:
        forget_expired(session)
        return purge_old_text(session, runtime.settings.data_rights.retention_days)


def _article_titles(runtime: Runtime) -> dict[str, str]:
    return {article.id: article.title for article in runtime.models.knowledge.articles}


def _check_complaint_spikes(runtime: Runtime) -> None:
    settings = runtime.settings.insights
    spikes = check_complaint_spikes(
        runtime.engine,
        encoder=runtime.models.encoder.name,
        article_titles=_article_titles(runtime),
        support_channel=support_channel_of(runtime.settings),
        ratio=settings.spike_ratio,
        min_complaints=settings.spike_min_complaints,
        baseline_days=settings.spike_baseline_days,
    )
    for spike in spikes:
        log.warning("complaint spike: %s (%d today)", spike.label, spike.today)
    if spikes:
        deliver_support_posts(runtime)


def _send_weekly_digest(runtime: Runtime) -> None:
    send_due_digest(
        runtime.engine,
        runtime.settings,
        sender=smtp_sender(runtime.settings),
        encoder=runtime.models.encoder.name,
        article_titles=_article_titles(runtime),
    )


def start_scheduler(runtime: Runtime) -> BackgroundScheduler:
    """Start the worker's jobs; stop them with `.shutdown()`."""
    scheduler = BackgroundScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    )
    scheduler.add_job(
        _deliver_outbox,
        "interval",
        args=[runtime],
        seconds=OUTBOX_INTERVAL_SECONDS,
        id="outbox",
        name="deliver the outbox",
    )
    scheduler.add_job(
        recover_unprocessed,
        "interval",
        args=[runtime],
        seconds=RECOVERY_INTERVAL_SECONDS,
        id="recovery",
        name="finish messages interrupted by a stop",
    )
    scheduler.add_job(
        _send_followups,
        "interval",
        args=[runtime],
        seconds=FOLLOWUP_INTERVAL_SECONDS,
        next_run_time=datetime.now(UTC),  # at start too: follow-ups that fell due while down go out now
        id="followups",
        name="send due follow-ups",
    )
    scheduler.add_job(
        deliver_support_posts,
        "interval",
        args=[runtime],
        seconds=OUTBOX_INTERVAL_SECONDS,
        id="support_posts",
        name="post escalations to the Slack support channel and keep the posts current",
    )
    scheduler.add_job(
        _wake_snoozed,
        "interval",
        args=[runtime],
        seconds=SNOOZE_INTERVAL_SECONDS,
        next_run_time=datetime.now(UTC),  # at start too: snoozes that ended while down wake now
        id="snoozes",
        name="bring snoozed conversations back to the queue when their time comes",
    )
    scheduler.add_job(run_retention, "interval", args=[runtime], hours=1, id="retention", name="retention")
    scheduler.add_job(
        lambda: deliver_webhooks(runtime.engine, runtime.settings.webhooks),
        "interval",
        seconds=OUTBOX_INTERVAL_SECONDS,
        id="webhooks",
        name="deliver outgoing webhooks to integrations",
    )
    if runtime.settings.insights.spike_check_minutes:
        scheduler.add_job(
            _check_complaint_spikes,
            "interval",
            args=[runtime],
            minutes=runtime.settings.insights.spike_check_minutes,
            id="complaint_spikes",
            name="alert staff when a complaint topic spikes",
        )
    if runtime.settings.insights.digest_recipients:
        scheduler.add_job(
            _send_weekly_digest,
            "interval",
            args=[runtime],
            minutes=DIGEST_CHECK_MINUTES,
            next_run_time=datetime.now(UTC),  # at start too: a digest that fell due while down goes out now
            id="weekly_digest",
            name="send the weekly digest to marketers once a week",
        )
    scheduler.start()
    return scheduler
