"""Response times that mean what they say, by channel and by agent.

Four clocks, each counted for what started in the period (`since` <= start < `until`):
- **bot response**: a customer message the bot replied to -> the bot's reply was sent;
- **first human response**: a conversation opened -> the first reply written by a person was sent (only
  conversations a person answered; the bot's instant "a person will reply" does not count);
- **waiting for a person**: each handover to staff (the bot escalates, or a resolved conversation reopens to
  its assignee) -> the first staff reply sent after it. A handover nobody has answered yet is *still
  waiting*; one that ended without a staff reply (handed back, resolved silently) is *closed unanswered*;
- **resolution**: a conversation opened -> resolved (conversations resolved now).
A handover is an **SLA breach** when it waited longer than `[support] first_response_target`: answered late,
or still waiting past the target. By agent: a wait counts for the person whose reply ended it (a wait still
open for the assignee, or "unassigned"); a resolution for the person who resolved it.

Times are seconds; a summary gives the count, the median and the 90th percentile (nearest rank).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from bot.crm.models import (
    AuditEvent,
    AuthorKind,
    Conversation,
    ConversationState,
    Direction,
    Message,
    Outbox,
    OutboxStatus,
    Staff,
)

__all__ = ["UNASSIGNED", "Handover", "percentile", "response_times", "summarise"]

#: The agent a still-waiting handover counts for when nobody is assigned.
UNASSIGNED = "unassigned"
#: Audit actions that hand a conversation to a person (a reopen counts when it went to the assignee).
HANDOVER_ACTIONS = ("conversation.escalated", "conversation.reopened")
WAITING_STATES = (ConversationState.HUMAN.value, ConversationState.SNOOZED.value)


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (`fraction` 0.5 is the median) to a tenth, or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return round(ordered[rank - 1], 1)


def summarise(values: Iterable[float]) -> dict[str, Any]:
    """{"count", "median", "p90"} of durations in seconds (median and p90 None when there are none)."""
    values = list(values)
    return {"count": len(values), "median": percentile(values, 0.5), "p90": percentile(values, 0.9)}


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _seconds(start: datetime, end: datetime) -> float:
    return (_aware(end) - _aware(start)).total_seconds()


@dataclass
class Handover:
    """One time a conversation was handed to staff, and how the wait for a person ended."""

    conversation_id: int
    channel: str
    started_at: datetime
    answered_at: datetime | None = None
    answered_by: int | None = None
    #: answered | waiting (nobody has answered yet) | closed (ended without a staff reply)
    outcome: str = "waiting"

    def wait_seconds(self, now: datetime) -> float:
        """How long the customer waited (until now, if still waiting)."""
        return _seconds(self.started_at, self.answered_at or now)


@dataclass
class _Bucket:
    bot: list[float] = field(default_factory=list)
    first_human: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    resolution: list[float] = field(default_factory=list)
    handovers: int = 0
    breached_answered: int = 0
    still_waiting: int = 0
    breached_waiting: int = 0
    closed_unanswered: int = 0

    def figures(self, *, with_bot: bool = True) -> dict[str, Any]:
        answered = len(self.waits)
        figures = {
            "first_human_response": summarise(self.first_human),
            "waiting_for_person": summarise(self.waits),
            "resolution": summarise(self.resolution),
            "sla": {
                "handovers": self.handovers,
                "answered": answered,
                "answered_within_target": answered - self.breached_answered,
                "answered_late": self.breached_answered,
                "still_waiting": self.still_waiting,
                "still_waiting_past_target": self.breached_waiting,
                "closed_unanswered": self.closed_unanswered,
                "breaches": self.breached_answered + self.breached_waiting,
            },
        }
        if with_bot:
            figures = {"bot_response": summarise(self.bot), **figures}
        return figures


def _sent_replies(session: Session, conversation_ids: list[int], author: AuthorKind) -> dict[int, list]:
    """Per conversation, its replies by `author` that were sent: (sent_at, staff_id), oldest first."""
    found: dict[int, list] = defaultdict(list)
    if not conversation_ids:
        return found
    rows = session.exec(
        select(Message.conversation_id, Outbox.sent_at, Message.staff_id)
        .join(Outbox, Outbox.message_id == Message.id)
        .where(
            Message.conversation_id.in_(conversation_ids),
            Message.direction == Direction.OUTBOUND.value,
            Message.author_kind == author.value,
            Outbox.status == OutboxStatus.SENT.value,
        )
        .order_by(Outbox.sent_at)
    ).all()
    for conversation_id, sent_at, staff_id in rows:
        found[conversation_id].append((_aware(sent_at), staff_id))
    return found


def _handovers(
    session: Session, since: datetime, until: datetime, now: datetime
) -> tuple[list[Handover], dict[int, Conversation]]:
    events = session.exec(
        select(AuditEvent.subject_id, AuditEvent.at, AuditEvent.action, AuditEvent.details)
        .where(
            AuditEvent.subject_type == "conversation",
            AuditEvent.action.in_(HANDOVER_ACTIONS),
            AuditEvent.at >= since,
        )
        .order_by(AuditEvent.at, AuditEvent.id)
    ).all()
    starts: dict[int, list[datetime]] = defaultdict(list)
    for conversation_id, at, action, details in events:
        to_person = action == "conversation.escalated" or (details or {}).get("to") == "human"
        if to_person:
            starts[conversation_id].append(_aware(at))
    conversations = {
        c.id: c for c in session.exec(select(Conversation).where(Conversation.id.in_(list(starts)))).all()
    }
    replies = _sent_replies(session, list(starts), AuthorKind.STAFF)
    handovers = []
    for conversation_id, times in starts.items():
        conversation = conversations[conversation_id]
        for index, started in enumerate(times):
            if started >= until:
                continue
            handover = Handover(conversation_id, conversation.channel, started)
            next_start = times[index + 1] if index + 1 < len(times) else None
            reply = next(((at, who) for at, who in replies[conversation_id] if at >= started), None)
            if reply is not None and (next_start is None or reply[0] <= next_start):
                handover.answered_at, handover.answered_by, handover.outcome = reply[0], reply[1], "answered"
            elif next_start is None and conversation.state in WAITING_STATES:
                handover.outcome = "waiting"
            else:
                handover.outcome = "closed"
            handovers.append(handover)
    return handovers, conversations


def _staff_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.exec(select(Staff.id, Staff.name, Staff.email).where(Staff.id.in_(ids))).all()
    return {staff_id: name or email for staff_id, name, email in rows}


def response_times(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    target: timedelta,
    now: datetime,
) -> dict[str, Any]:
    """Every response-time figure for the period, overall, by channel and by agent (JSON-ready).

    Args:
        since, until: the period (`since` inclusive, `until` exclusive); see the module docstring for what
            each clock counts in it.
        target: `[support] first_response_target`: a handover waiting longer is an SLA breach.
        now: the time a still-waiting handover has waited until.
    """
    overall, by_channel = _Bucket(), defaultdict(_Bucket)
    by_agent: dict[int | None, _Bucket] = defaultdict(_Bucket)
    target_seconds = target.total_seconds()

    inbound, reply = Message, aliased(Message)
    bot_replies = session.exec(
        select(inbound.channel, inbound.created_at, func.min(Outbox.sent_at))
        .join(reply, reply.reply_to_id == inbound.id)
        .join(Outbox, Outbox.message_id == reply.id)
        .where(
            inbound.direction == Direction.INBOUND.value,
            inbound.created_at >= since,
            inbound.created_at < until,
            reply.author_kind == AuthorKind.BOT.value,
            Outbox.status == OutboxStatus.SENT.value,
        )
        .group_by(inbound.id, inbound.channel, inbound.created_at)
    ).all()
    for channel, received, sent in bot_replies:
        seconds = _seconds(received, sent)
        overall.bot.append(seconds)
        by_channel[channel].bot.append(seconds)

    handovers, _ = _handovers(session, since, until, now)
    assignees = dict(
        session.exec(
            select(Conversation.id, Conversation.assignee_id).where(
                Conversation.id.in_({h.conversation_id for h in handovers})
            )
        ).all()
    )
    for handover in handovers:
        answered = handover.outcome == "answered"
        agent = handover.answered_by if answered else assignees.get(handover.conversation_id)
        buckets = [overall, by_channel[handover.channel]]
        if handover.outcome != "closed":
            buckets.append(by_agent[agent])
        late = handover.wait_seconds(now) > target_seconds
        for bucket in buckets:
            bucket.handovers += 1
            if handover.outcome == "answered":
                bucket.waits.append(handover.wait_seconds(now))
                bucket.breached_answered += late
            elif handover.outcome == "waiting":
                bucket.still_waiting += 1
                bucket.breached_waiting += late
            else:
                bucket.closed_unanswered += 1

    opened = session.exec(
        select(Conversation).where(Conversation.opened_at >= since, Conversation.opened_at < until)
    ).all()
    staff_replies = _sent_replies(session, [c.id for c in opened], AuthorKind.STAFF)
    resolvers = _resolvers(session, [c.id for c in opened if c.resolved_at is not None])
    for conversation in opened:
        first = staff_replies[conversation.id][0] if staff_replies[conversation.id] else None
        if first is not None:
            seconds = _seconds(conversation.opened_at, first[0])
            for bucket in (overall, by_channel[conversation.channel], by_agent[first[1]]):
                bucket.first_human.append(seconds)
        if conversation.resolved_at is not None and conversation.state == ConversationState.RESOLVED:
            seconds = _seconds(conversation.opened_at, conversation.resolved_at)
            buckets = [overall, by_channel[conversation.channel]]
            resolver = resolvers.get(conversation.id)
            if resolver is not None:
                buckets.append(by_agent[resolver])
            for bucket in buckets:
                bucket.resolution.append(seconds)

    names = _staff_names(session, {agent for agent in by_agent if agent is not None})
    return {
        "target_seconds": target_seconds,
        "overall": overall.figures(),
        "by_channel": {channel: bucket.figures() for channel, bucket in sorted(by_channel.items())},
        "by_agent": {
            names.get(agent, f"staff #{agent}") if agent is not None else UNASSIGNED: bucket.figures(
                with_bot=False
            )
            for agent, bucket in sorted(by_agent.items(), key=lambda item: (item[0] is None, item[0] or 0))
        },
    }


def _resolvers(session: Session, conversation_ids: list[int]) -> dict[int, int]:
    """Who resolved each conversation last (staff id), where a person did."""
    if not conversation_ids:
        return {}
    rows = session.exec(
        select(AuditEvent.subject_id, AuditEvent.actor_id)
        .where(
            AuditEvent.subject_type == "conversation",
            AuditEvent.subject_id.in_(conversation_ids),
            AuditEvent.action == "conversation.resolved",
            AuditEvent.actor_kind == "staff",
        )
        .order_by(AuditEvent.id)
    ).all()
    return {conversation_id: actor for conversation_id, actor in rows}
