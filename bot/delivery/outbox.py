"""The outbox: every outbound message is a row before it is sent, and is sent by whoever claims it.

`enqueue` writes the outbound `Message` and its `Outbox` row in the caller's transaction, keyed by an
idempotency key (inbound message + purpose), so a decision replayed after a crash or a platform retry queues
nothing new. `deliver_due` claims due rows (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so any number of
workers can run it), sends them through their channel, and writes the platform's id back. Temporary failures
are retried with exponential backoff, honouring the platform's `retry_after`; after `max_attempts` the row is
marked failed for staff to see.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, event, or_, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import (
    AuthorKind,
    Conversation,
    DeliveryStatus,
    Direction,
    Message,
    Outbox,
    OutboxStatus,
    utcnow,
)
from bot.runtime.metrics import MESSAGES_OUT, SEND_DURATION, SEND_FAILURES
from channels.base import Channel, OutboundMessage, PermanentSendError, TemporarySendError

__all__ = ["DeliveryReport", "deliver_due", "enqueue", "release_claims"]

log = logging.getLogger("socialbot.outbox")

# How long rows claimed together wait for their turn: a killed worker's rows are taken over after this. The
# rows ahead of one are sent in well under a second each (`socialbot_send_seconds`), so a batch of `limit`
# is through long before.
CLAIM_SECONDS = 15
# The lease of the row being sent, taken just before the send and renewed every third of it while the send
# runs (a heartbeat), so a live worker never has its row taken over however slow the platform is, and a
# killed worker's row in hand is taken over after this (and the platform asked first).
SEND_LEASE_SECONDS = 15
# How long a worker keeps trying to record a send the platform accepted while the database is away (a
# PostgreSQL restart took under a second in the soak; a managed failover takes tens of seconds).
RECORD_RETRY_SECONDS = 60
# The most earlier message ids a reply carries (an e-mail's References; long threads are trimmed).
MAX_REFERENCES = 20


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def enqueue(
    session: Session,
    *,
    conversation: Conversation,
    text: str,
    idempotency_key: str,
    reply_to: Message | None = None,
    author_kind: AuthorKind = AuthorKind.BOT,
    staff_id: int | None = None,
    channels: Mapping[str, Channel] | None = None,
    new: bool = False,
) -> Message:
    """Queue `text` for the conversation's channel and thread; return the outbound message row.

    If a row with `idempotency_key` exists already, nothing is queued and its message is returned; `new`: the
    caller knows there is none (the transaction that claimed a message's first decision), so it is not looked
    up (the key is unique all the same: a second row would fail the transaction).
    `channels`: the worker's channels; when the conversation's channel delivers by storing (web chat), the
    message is delivered when this transaction commits, and the row is recorded as sent at once instead of
    waiting for `deliver_due` (two transactions fewer per web chat reply).
    """
    if not new:
        existing = session.exec(select(Outbox).where(Outbox.idempotency_key == idempotency_key)).first()
        if existing is not None:
            return session.get(Message, existing.message_id)
    row = Outbox(
        idempotency_key=idempotency_key,
        channel=conversation.channel,
        thread_id=conversation.thread_id,
        reply_to_external_id=reply_to.external_id if reply_to is not None else None,
        subject=_subject_of(reply_to),
        thread_references=_references_of(reply_to),
        text=text,
    )
    message = Message(
        conversation_id=conversation.id,
        contact_id=conversation.contact_id,
        channel=conversation.channel,
        direction=Direction.OUTBOUND.value,
        author_kind=author_kind.value,
        staff_id=staff_id,
        text=text,
        reply_to_id=reply_to.id if reply_to is not None else None,
        status=DeliveryStatus.PENDING.value,
    )
    channel = (channels or {}).get(conversation.channel)
    if channel is not None and channel.delivers_by_storing:
        # Sent before the rows are written, so they are inserted as sent (no UPDATE of what was just
        # inserted); the flush records the `message.sent` event (bot/delivery/webhooks.py).
        external_id = channel.send(_outbound(row))
        _mark_sent(row, message, conversation, external_id)
        counted = MESSAGES_OUT.labels(row.channel)
        event.listen(session, "after_commit", lambda _session: counted.inc(), once=True)
    session.add(message)
    session.flush()
    row.message_id = message.id
    session.add(row)
    return message


def _subject_of(message: Message | None) -> str | None:
    """The subject of the message a reply answers (e-mail keeps it, so the reply stays in the thread)."""
    subject = (message.raw or {}).get("subject") if message is not None else None
    return subject[:300] if isinstance(subject, str) and subject.strip() else None


def _references_of(message: Message | None) -> str | None:
    """The ids of the messages before the one a reply answers, oldest first (an e-mail's References), at most
    MAX_REFERENCES of them (the oldest and the latest, as RFC 5322 suggests for trimming)."""
    references = (message.raw or {}).get("references") if message is not None else None
    if not isinstance(references, list):
        return None
    ids = [ref for ref in references if isinstance(ref, str) and ref.strip() and " " not in ref.strip()]
    if len(ids) > MAX_REFERENCES:
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1) :]
    return " ".join(ids) or None


def _outbound(row: Outbox) -> OutboundMessage:
    return OutboundMessage(
        channel=row.channel,
        thread_id=row.thread_id,
        text=row.text,
        reply_to_external_id=row.reply_to_external_id,
        idempotency_key=row.idempotency_key,
        subject=row.subject,
        references=tuple((row.thread_references or "").split()),
    )


def _mark_sent(row: Outbox, message: Message, conversation: Conversation, external_id: str) -> None:
    sent_at = utcnow()
    row.status, row.external_id, row.sent_at, row.claimed_until = (
        OutboxStatus.SENT.value,
        external_id,
        sent_at,
        None,
    )
    row.attempts = (row.attempts or 0) + 1
    message.status, message.external_id = DeliveryStatus.SENT.value, external_id
    if conversation.first_response_at is None:
        conversation.first_response_at = sent_at


def backoff_seconds(attempts: int, *, base: float, cap: float) -> float:
    """Exponential backoff: base, 2*base, 4*base, ... never more than cap."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


def _claim(
    engine: Engine, channels: Mapping[str, Channel], now: datetime, limit: int, claim_seconds: float
) -> list[tuple[Outbox, bool]]:
    """Claim up to `limit` due rows; each comes with whether an earlier claim of it expired unrecorded (a
    worker stopped mid-send, so the platform may already have the message)."""
    with session_scope(engine) as session:
        query = (
            select(Outbox)
            .where(
                Outbox.status == OutboxStatus.PENDING.value,
                Outbox.next_attempt_at <= now,
                Outbox.channel.in_(list(channels)),
                or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < now),
            )
            .order_by(Outbox.id)
            .limit(limit)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        claimed = []
        for row in session.exec(query).all():
            claimed.append((row, row.claimed_until is not None))
            row.claimed_until = now + timedelta(seconds=claim_seconds)
            session.add(row)
        return claimed


def deliver_due(
    engine: Engine,
    channels: Mapping[str, Channel],
    *,
    now: datetime | None = None,
    limit: int = 50,
    max_attempts: int = 8,
    backoff_base_seconds: float = 2.0,
    backoff_cap_seconds: float = 600.0,
    claim_seconds: float = CLAIM_SECONDS,
    send_seconds: float = SEND_LEASE_SECONDS,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Send every due row whose channel is in `channels`; return what happened to each.

    Args:
        claim_seconds: how long the rows claimed now wait for their turn as this worker's; if it dies,
            another worker takes them after that (and asks the platform first whether they went out).
        send_seconds: the lease of each row from the moment its send starts, renewed every third of it
            while the send runs.
        stop: set when the worker is shutting down: the row being sent is finished, the other claimed rows
            are released at once for other workers.
    """
    now = now or utcnow()
    started = time.monotonic()
    report = DeliveryReport()

    def lease_until() -> datetime:
        return now + timedelta(seconds=time.monotonic() - started + send_seconds)

    claimed = _claim(engine, channels, now, limit, claim_seconds)
    for position, (row, maybe_sent) in enumerate(claimed):
        if stop is not None and stop.is_set():
            release_claims(engine, [r.id for r, _ in claimed[position:]])
            break
        if not _lease_for_send(engine, row, lease_until()):
            log.info("outbox row %s: its claim ran out before its turn and another worker took it", row.id)
            continue
        outbound = _outbound(row)
        channel = channels[row.channel]
        try:
            with _heartbeat(engine, row, lease_until, every=send_seconds / 3):
                external_id = _find_or_send(channel, outbound, row, maybe_sent)
        except TemporarySendError as error:
            # A rate limit means the platform refused the post; any other temporary failure (5xx, timeout,
            # a failed `find_sent`) may hide a post that went out, so the next attempt asks first.
            _record_failure(
                engine,
                row.id,
                str(error),
                error.retry_after,
                now,
                max_attempts,
                backoff_base_seconds,
                backoff_cap_seconds,
                report,
                maybe_sent=maybe_sent or error.retry_after is None,
            )
            continue
        except PermanentSendError as error:
            _record_failure(engine, row.id, str(error), None, now, 0, 0, 0, report)
            continue
        except Exception as error:
            # A bug or an unexpected SDK error must not stop the other rows; retry this one like a 5xx.
            log.exception("outbox row %s: unexpected error from channel %s", row.id, row.channel)
            _record_failure(
                engine,
                row.id,
                f"{type(error).__name__}: {error}",
                None,
                now,
                max_attempts,
                backoff_base_seconds,
                backoff_cap_seconds,
                report,
                maybe_sent=True,
            )
            continue
        try:
            _record_sent(engine, row.id, external_id)
        except OperationalError:  # the platform has it and the database went away: record it once back
            with _heartbeat(engine, row, lease_until, every=send_seconds / 3):
                _record_sent_retrying(engine, row.id, external_id)
        report.sent.append(row.id)
    return report


def _find_or_send(channel: Channel, outbound: OutboundMessage, row: Outbox, maybe_sent: bool) -> str:
    """The platform id of the row's message: found on the platform when an earlier attempt may have posted
    it, else from sending it now."""
    external_id = channel.find_sent(outbound) if maybe_sent else None
    if external_id is not None:
        log.info("outbox row %s had been sent before a stop (%s); not sending again", row.id, external_id)
        return external_id
    with SEND_DURATION.labels(row.channel).time():
        return channel.send(outbound)


@contextlib.contextmanager
def _heartbeat(engine: Engine, row: Outbox, until: Callable[[], datetime], every: float) -> Iterator[None]:
    """Renew the row's send lease to `until()` every `every` seconds while the block runs."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(every):
            try:
                if not _lease_for_send(engine, row, until()):
                    log.warning("outbox row %s: its lease was lost during a send", row.id)
                    return
            except Exception:  # the database is away; the send goes on, the lease may lapse
                log.warning("outbox row %s: could not renew its lease", row.id, exc_info=True)

    beat = threading.Thread(target=renew, name=f"outbox-lease-{row.id}", daemon=True)
    beat.start()
    try:
        yield
    finally:
        done.set()
        beat.join()


def _lease_for_send(engine: Engine, row: Outbox, until: datetime) -> bool:
    """Extend this worker's claim on `row` to `until` just before sending it; False when the claim ran out
    and another worker claimed the row meanwhile (its `claimed_until` is no longer the one we wrote)."""
    with session_scope(engine) as session:
        extended = session.exec(
            update(Outbox)
            .where(
                Outbox.id == row.id,
                Outbox.status == OutboxStatus.PENDING.value,
                Outbox.claimed_until == row.claimed_until,
            )
            .values(claimed_until=until)
        )
        if extended.rowcount != 1:
            return False
    row.claimed_until = until
    return True


def _record_sent(engine: Engine, outbox_id: int, external_id: str) -> None:
    with session_scope(engine) as session:
        row = session.get(Outbox, outbox_id)
        message = session.get(Message, row.message_id)
        conversation = session.get(Conversation, message.conversation_id)
        _mark_sent(row, message, conversation, external_id)
        counted = MESSAGES_OUT.labels(row.channel)  # once committed: a failed commit is recorded again
        event.listen(session, "after_commit", lambda _session: counted.inc(), once=True)
        session.add_all([row, message, conversation])


def _record_sent_retrying(engine: Engine, outbox_id: int, external_id: str) -> None:
    """Record a send the platform accepted. While the database is away (a restart, a failover) keep trying
    for up to RECORD_RETRY_SECONDS, the row's lease renewed meanwhile, rather than leave the row to another
    worker, which would have to ask the platform (or, on Telegram and SMTP, which can't be asked, send it
    again)."""
    deadline = time.monotonic() + RECORD_RETRY_SECONDS
    pause = 0.1
    while True:
        log.warning("outbox row %s was sent; the database is away, recording it in %.1f s", outbox_id, pause)
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
        try:
            _record_sent(engine, outbox_id, external_id)
            return
        except OperationalError:
            if time.monotonic() + pause > deadline:
                raise


def _record_failure(
    engine: Engine,
    outbox_id: int,
    error: str,
    retry_after: float | None,
    now: datetime,
    max_attempts: int,
    base: float,
    cap: float,
    report: DeliveryReport,
    *,
    maybe_sent: bool = False,
) -> None:
    with session_scope(engine) as session:
        row = session.get(Outbox, outbox_id)
        row.attempts += 1
        row.last_error = error[:2000]
        # An expired claim is how `_claim` recognises a row that may have reached the platform.
        row.claimed_until = now if maybe_sent else None
        kind = "permanent" if max_attempts == 0 else "rate_limited" if retry_after else "temporary"
        SEND_FAILURES.labels(row.channel, kind).inc()
        if row.attempts >= max_attempts:
            row.status = OutboxStatus.FAILED.value
            message = session.get(Message, row.message_id)
            message.status = DeliveryStatus.FAILED.value
            session.add(message)
            report.failed.append(row.id)
            log.warning("outbox row %s failed after %s attempts", row.id, row.attempts)
        else:
            delay = max(retry_after or 0.0, backoff_seconds(row.attempts, base=base, cap=cap))
            row.next_attempt_at = now + timedelta(seconds=delay)
            report.retried.append(row.id)
            log.info("outbox row %s retry in %.1fs", row.id, delay)
        session.add(row)


def release_claims(engine: Engine, outbox_ids: list[int]) -> None:
    """Give claimed rows that were not attempted back at once (a worker shutting down), so another worker
    sends them without waiting for the claim to expire. Nothing was sent for them, so none is marked as
    possibly sent."""
    if not outbox_ids:
        return
    with session_scope(engine) as session:
        for row in session.exec(
            select(Outbox).where(Outbox.id.in_(outbox_ids), Outbox.status == OutboxStatus.PENDING.value)
        ).all():
            row.claimed_until = None
            session.add(row)
    log.info("released %d claimed outbox row(s) for other workers", len(outbox_ids))
