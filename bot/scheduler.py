"""Background jobs of a running worker (APScheduler): deliver the outbox, finish interrupted messages.

Every job is safe to run in several workers at once: the rows it works on are claimed in the database.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler

from bot.outbox import deliver_due
from bot.pipeline import recover_unprocessed
from bot.runtime import Runtime

__all__ = ["start_scheduler"]

log = logging.getLogger("socialbot.scheduler")

OUTBOX_INTERVAL_SECONDS = 2
RECOVERY_INTERVAL_SECONDS = 60


def _deliver_outbox(runtime: Runtime) -> None:
    report = deliver_due(runtime.engine, runtime.channels)
    if report.failed:
        log.warning("outbox: %d message(s) failed for good", len(report.failed))


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
    scheduler.start()
    return scheduler
