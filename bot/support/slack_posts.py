"""The Slack support channel's posts: an escalation posted for staff, kept current as the conversation
changes hands; and alerts for staff (a complaint spike, bot/insights/topics.py), posted once.

Posting is reliable like the outbox: the escalation's transaction writes a `SupportPost` row
(`record_support_post`, called by bot/support/handoff.py); `deliver_support_posts` claims due rows (on
PostgreSQL with `FOR UPDATE SKIP LOCKED`), posts them (`chat.postMessage`) and keeps the post's `ts`; whenever
the conversation changes hands (take, assign, resolve, hand back, a staff reply - from the console, the API or
Slack) its row's `version` goes up (`support_posts_changed`) and the next run updates the post
(`chat.update`). Failures are retried with backoff; a post whose earlier attempt may have gone out is looked
for on Slack before it is posted again. What staff do from Slack is bot/support/slack_desk.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, or_, update
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import (
    AuditEvent,
    Contact,
    Conversation,
    ConversationState,
    Direction,
    Identity,
    Message,
    Staff,
    SupportPost,
    utcnow,
)
from bot.delivery.outbox import backoff_seconds
from bot.runtime.container import Runtime
from bot.runtime.settings import Settings
from channels.base import PermanentSendError, TemporarySendError

if TYPE_CHECKING:
    from channels.slack import EscalationCard, SlackChannel

__all__ = [
    "SupportDeliveryReport",
    "deliver_support_posts",
    "notify_support_channel",
    "record_support_post",
    "support_channel_of",
    "support_posts_changed",
]

log = logging.getLogger("socialbot.support_channel")

# How long a worker may hold a claimed row before another may take it (a crashed worker's claim expires).
CLAIM_SECONDS = 60


def support_channel_of(settings: Settings) -> str:
    """The Slack channel id escalations are posted to, or "" when there is none (Slack off or unset)."""
    return settings.slack.support_channel.strip() if settings.slack.enabled else ""


def record_support_post(
    session: Session, conversation: Conversation, *, support_channel: str, message_id: int | None
) -> SupportPost:
    """Record, in the caller's transaction, that this escalation is to be posted to `support_channel`."""
    post = SupportPost(
        conversation_id=conversation.id, message_id=message_id, support_channel=support_channel
    )
    session.add(post)
    session.flush()
    return post


_posts = SupportPost.__table__.c
# Built once (it runs for every message in a conversation a person owns).
_CHANGED = (
    update(SupportPost.__table__)
    .where(_posts.conversation_id == bindparam("posts_of"))
    .values(version=_posts.version + 1)
)


def support_posts_changed(session: Session, conversation_id: int) -> None:
    """The conversation changed hands: its posts are to show it (the update goes out after this commits).

    A plain SQL UPDATE: it runs for every message in a conversation a person owns, and the ORM's version of
    it (matching the session's loaded posts) cost about as much as the rest of the decision's bookkeeping;
    the posts are read fresh by `deliver_support_posts`, in its own session."""
    session.connection().execute(_CHANGED, {"posts_of": conversation_id})


@dataclass
class SupportDeliveryReport:
    """What one `deliver_support_posts` run did, by `SupportPost` id."""

    posted: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Job:
    post_id: int
    ts: str | None
    version: int
    maybe_posted: bool
    # An escalation's card, or None for an alert (its `alert` text is posted as it is).
    card: EscalationCard | None
    alert: str | None = None

    @property
    def key(self) -> str:
        """What finds the post on Slack again after an interrupted attempt."""
        return self.card.key if self.card is not None else f"alert:{self.post_id}"


def _support_slack(runtime: Runtime) -> SlackChannel | None:
    """The Slack adapter when a support channel is configured, else None."""
    if not support_channel_of(runtime.settings):
        return None
    return runtime.channels.get("slack")  # type: ignore[return-value]


def deliver_support_posts(
    runtime: Runtime,
    *,
    now: datetime | None = None,
    limit: int = 20,
    max_attempts: int = 8,
    backoff_base_seconds: float = 2.0,
    backoff_cap_seconds: float = 600.0,
) -> SupportDeliveryReport:
    """Post due escalations to the support channel and update posts whose conversation changed hands.

    Safe to run in several workers at once (rows are claimed). Slack's refusals never raise: a temporary one
    is retried with backoff (honouring `Retry-After`), a permanent one or `max_attempts` failures give up
    (a post is marked failed; an update is skipped until the next change).
    """
    report = SupportDeliveryReport()
    slack = _support_slack(runtime)
    if slack is None:
        return report
    now = now or utcnow()
    for job in _claim(runtime, now, limit):
        try:
            if job.ts is None:
                ts = slack.find_escalation(job.key) if job.maybe_posted else None
                if ts is None:
                    if job.card is None:
                        ts = slack.post_alert(job.key, job.alert or "")
                    else:
                        ts = slack.post_escalation(job.card)
                    report.posted.append(job.post_id)
                else:
                    log.info("support post %s had been posted before a stop (%s)", job.post_id, ts)
                    report.posted.append(job.post_id)
            else:
                ts = job.ts
                slack.update_escalation(ts, job.card)
                report.updated.append(job.post_id)
        except TemporarySendError as error:
            _record_failure(
                runtime,
                job,
                str(error),
                error.retry_after,
                now,
                report,
                max_attempts,
                backoff_base_seconds,
                backoff_cap_seconds,
            )
            continue
        except PermanentSendError as error:
            _record_failure(runtime, job, str(error), None, now, report, 0, 0, 0)
            continue
        except Exception as error:
            # An unexpected SDK error must not stop the other rows; retry this one like a 5xx.
            log.exception("support post %s: unexpected error", job.post_id)
            _record_failure(
                runtime,
                job,
                f"{type(error).__name__}: {error}",
                None,
                now,
                report,
                max_attempts,
                backoff_base_seconds,
                backoff_cap_seconds,
            )
            continue
        _record_done(runtime, job, ts)
    return report


def notify_support_channel(runtime: Runtime) -> None:
    """Post or update what is due in the background (after a change of hands), if there is a support
    channel; the scheduler's job catches anything this misses."""
    if _support_slack(runtime) is not None:
        runtime.submit(deliver_support_posts, runtime)


def _claim(runtime: Runtime, now: datetime, limit: int) -> list[_Job]:
    engine = runtime.engine
    with session_scope(engine) as session:
        query = (
            select(SupportPost)
            .where(
                or_(
                    SupportPost.status == "pending",
                    (SupportPost.status == "posted") & (SupportPost.posted_version < SupportPost.version),
                ),
                SupportPost.next_attempt_at <= now,
                or_(SupportPost.claimed_until.is_(None), SupportPost.claimed_until < now),
            )
            .order_by(SupportPost.id)
            .limit(limit)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        jobs = []
        for row in session.exec(query).all():
            # An expired claim: a worker stopped mid-post; a failed attempt may hide a post that went out.
            maybe_posted = row.ts is None and (row.claimed_until is not None or row.attempts > 0)
            row.claimed_until = now + timedelta(seconds=CLAIM_SECONDS)
            session.add(row)
            if row.kind == "alert":
                jobs.append(_Job(row.id, row.ts, row.version, maybe_posted, None, row.text))
            else:
                card = _card(session, row, runtime.settings.server.public_url)
                jobs.append(_Job(row.id, row.ts, row.version, maybe_posted, card))
        return jobs


def _card(session: Session, post: SupportPost, public_url: str) -> EscalationCard:
    """The post's content from the conversation as it is now."""
    from channels.slack import EscalationCard

    conversation = session.get(Conversation, post.conversation_id)
    message = session.get(Message, post.message_id) if post.message_id is not None else None
    contact = session.get(Contact, conversation.contact_id)
    customer = contact.display_name if contact is not None else None
    if not customer:
        identity = session.exec(
            select(Identity).where(
                Identity.contact_id == conversation.contact_id, Identity.channel == conversation.channel
            )
        ).first()
        customer = (identity.handle or identity.external_user_id) if identity is not None else "a customer"
    latest = session.exec(
        select(Message)
        .where(Message.conversation_id == conversation.id, Message.direction == Direction.INBOUND.value)
        .order_by(Message.id.desc())
    ).first()
    return EscalationCard(
        conversation_id=conversation.id,
        key=f"escalation:{post.id}",
        channel=conversation.channel,
        customer=customer,
        reason=conversation.escalation_reason or "escalated",
        text=message.text if message is not None else "",
        status=_status(session, conversation),
        open=conversation.state == ConversationState.HUMAN,
        console_url=f"{public_url.rstrip('/')}/console/conversations/{conversation.id}",
        latest=latest.text if latest is not None and message is not None and latest.id > message.id else "",
    )


def _status(session: Session, conversation: Conversation) -> str:
    """Who has the thread now, as the post says it."""
    if conversation.state == ConversationState.HUMAN:
        if conversation.assignee_id is None:
            return "Waiting for someone to take it"
        return f"Taken by {_staff_label(session, conversation.assignee_id)}"
    if conversation.state == ConversationState.RESOLVED:
        resolved = session.exec(
            select(AuditEvent)
            .where(
                AuditEvent.subject_type == "conversation",
                AuditEvent.subject_id == conversation.id,
                AuditEvent.action == "conversation.resolved",
            )
            .order_by(AuditEvent.id.desc())
        ).first()
        if resolved is not None and resolved.actor_id is not None:
            return f"Resolved by {_staff_label(session, resolved.actor_id)}"
        return "Resolved"
    if conversation.state == ConversationState.BOT:
        return "Back with the bot"
    return "Snoozed"


def _staff_label(session: Session, staff_id: int) -> str:
    staff = session.get(Staff, staff_id)
    return (staff.name or staff.email) if staff is not None else "someone"


def _record_done(runtime: Runtime, job: _Job, ts: str) -> None:
    with session_scope(runtime.engine) as session:
        row = session.get(SupportPost, job.post_id)
        row.ts = ts
        row.status = "posted"
        row.posted_version = max(row.posted_version, job.version)
        row.posted_at = row.posted_at or utcnow()
        row.attempts, row.claimed_until, row.last_error = 0, None, None
        session.add(row)


def _record_failure(
    runtime: Runtime,
    job: _Job,
    error: str,
    retry_after: float | None,
    now: datetime,
    report: SupportDeliveryReport,
    max_attempts: int,
    base: float,
    cap: float,
) -> None:
    with session_scope(runtime.engine) as session:
        row = session.get(SupportPost, job.post_id)
        row.attempts += 1
        row.last_error = error[:2000]
        row.claimed_until = None
        if row.attempts >= max_attempts:
            if row.ts is None:
                row.status = "failed"
                log.warning("support post %s not posted after %s attempts: %s", row.id, row.attempts, error)
            else:
                # The post stays as it was; the next change of hands tries again.
                row.posted_version, row.attempts = job.version, 0
                log.warning("support post %s not updated: %s", row.id, error)
            report.failed.append(row.id)
        else:
            delay = max(retry_after or 0.0, backoff_seconds(row.attempts, base=base, cap=cap))
            row.next_attempt_at = now + timedelta(seconds=delay)
            report.retried.append(row.id)
            log.info("support post %s: %s; retry in %.1fs", row.id, error, delay)
        session.add(row)
