"""Prometheus metrics of a worker, served at GET /metrics.

The counters are bumped at the few central points every message passes (the pipeline and the outbox), so they
cover every channel. With several worker processes behind one port each process has its own registry; run
them with `PROMETHEUS_MULTIPROC_DIR` set (what `socialbot serve --workers N` does) and /metrics sums them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Engine, func
from sqlmodel import select

from bot.crm.db import session_scope
from bot.crm.models import Outbox, OutboxStatus

__all__ = [
    "CONTENT_TYPE_LATEST",
    "DECISIONS",
    "ENCODER_BATCH_SIZE",
    "MODEL_SECONDS",
    "MESSAGES_IN",
    "MESSAGES_OUT",
    "PIPELINE_SECONDS",
    "SEND_FAILURES",
    "SEND_DURATION",
    "render_metrics",
]

MESSAGES_IN = Counter(
    "socialbot_messages_in_total", "Inbound messages stored (duplicates excluded), per channel", ["channel"]
)
MESSAGES_OUT = Counter(
    "socialbot_messages_out_total", "Outbound messages delivered, per channel", ["channel"]
)
DUPLICATES = Counter(
    "socialbot_duplicate_deliveries_total",
    "Inbound messages delivered again by the platform (retries), not processed again",
    ["channel"],
)
DECISIONS = Counter(
    "socialbot_decisions_total",
    "Decisions taken on inbound messages, per action and intent",
    ["action", "intent"],
)
SEND_FAILURES = Counter(
    "socialbot_send_failures_total",
    "Failed send attempts, per channel and kind (temporary: retried with backoff; rate_limited: the platform "
    "asked us to wait; permanent: given up)",
    ["channel", "kind"],
)
SEND_DURATION = Histogram(
    "socialbot_send_seconds",
    "Seconds one send to a platform took (the outbox's claim leases are sized from it), per channel",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
PIPELINE_SECONDS = Histogram(
    "socialbot_pipeline_seconds",
    "Seconds from picking up a stored message to its decision being recorded (model + database)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MODEL_SECONDS = Histogram(
    "socialbot_model_seconds",
    "Seconds spent in the models (encoder + heads + knowledge-base scoring) per message",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ENCODER_BATCH_SIZE = Histogram(
    "socialbot_encoder_batch_size",
    "Messages encoded together in one encoder call (micro-batching; bursts make batches bigger)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
OUTBOX_BACKLOG = Gauge(
    "socialbot_outbox_backlog",
    "Outbox rows waiting to be sent (pending), read from the database when /metrics is scraped",
    multiprocess_mode="max",
)


def render_metrics(engine: Engine) -> bytes:
    """The Prometheus text exposition of this worker (or of all workers, in multi-process mode)."""
    with session_scope(engine) as session:
        backlog = session.exec(
            select(func.count()).select_from(Outbox).where(Outbox.status == OutboxStatus.PENDING.value)
        ).one()
    OUTBOX_BACKLOG.set(backlog)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY)
