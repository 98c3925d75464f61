"""Follow-ups: messages the brand sends later, on whichever channel reaches the customer.

A follow-up is a `FollowUp` row (`due_at`, `channel`, `template`, `status` pending / sent / cancelled /
failed, `attempts`). They are made by policy:

- a complaint resolved by staff -> "did that fix it?" with the 1-5 rating question (`[followups]
  resolved_delay_hours` later), one row per channel that reaches the customer: the conversation's own channel
  when the platform allows a proactive message there, and their verified e-mail address;
- an idea whose status changed -> the customer hears about it (`schedule_idea_followup`);
- an escalated conversation without a staff answer for `staff_reminder_hours` -> a reminder to staff (the
  conversation is raised to urgent and the reminder audited; it is cancelled if staff answered meanwhile);
- staff, by hand (the staff API).

`send_due_followups` (an APScheduler job, and once at start so nothing missed while down is lost) takes due
rows one by one, each in one transaction that locks it (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's
write lock) and queues it in the outbox with the idempotency key `followup:<id>`, so any number of workers
may run it and a killed worker leaves no claim behind (its transaction dies with its connection): a follow-up
is queued once and the outbox sends it once, retrying with backoff and marking it failed for staff to see.
`sync_followup_delivery` copies the outbox's outcome back onto the row. Quiet hours postpone customer
follow-ups; an opted-out contact gets none; a customer's new message cancels pending "did that fix it?" rows.
The clock is a parameter (`now`) everywhere, so tests move time instead of sleeping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Engine, and_, or_, text
from sqlmodel import Session, select

from bot.crm.audit import audit
from bot.crm.db import session_scope
from bot.crm.languages import customer_language
from bot.crm.models import (
    Contact,
    Conversation,
    ConversationState,
    DeliveryStatus,
    Direction,
    FollowUp,
    FollowUpStatus,
    Idea,
    Identity,
    Message,
    Outbox,
    utcnow,
)
from bot.delivery.outbox import enqueue
from bot.runtime.container import Runtime
from bot.runtime.leadership import lock_key
from bot.runtime.settings import FollowupSettings, Settings

if TYPE_CHECKING:
    from channels.email import Bounce

__all__ = [
    "CUSTOMER_FOLLOWUPS",
    "FollowupError",
    "FollowupReport",
    "awaiting_csat",
    "cancel_followup",
    "cancel_nudges_on_reply",
    "email_conversation",
    "proactive_channels",
    "read_unsubscribe_token",
    "schedule_followup",
    "schedule_idea_followup",
    "schedule_resolution_followup",
    "schedule_staff_reminders",
    "send_due_followups",
    "sync_followup_delivery",
    "unsubscribe",
    "unsubscribe_url",
]

log = logging.getLogger("socialbot.followups")

RESOLUTION_CHECK = "resolution_check"
IDEA_UPDATE = "idea_update"
CUSTOM = "custom"
STAFF_REMINDER = "staff_reminder"
#: The channel name of follow-ups addressed to staff rather than the customer.
STAFF_CHANNEL = "staff"

#: The follow-ups customers receive: the policy's template of that name (bot/policy/templates.py), in the
#: customer's language, or for `CUSTOM` the words staff wrote.
CUSTOMER_FOLLOWUPS = (RESOLUTION_CHECK, IDEA_UPDATE, CUSTOM)
# Follow-ups that a customer's new message makes pointless (they are talking to us again anyway).
NUDGES_CANCELLED_BY_REPLY = (RESOLUTION_CHECK,)
# Channels where the brand may write first: web chat (seen on return), Telegram private chats (the user
# started the bot), Slack DMs, X only as a reply in the customer's thread, e-mail.
PROACTIVE_CHANNELS = ("webchat", "telegram", "slack", "twitter", "email")
X_MAX_CHARS = 280
UNSUBSCRIBE_SALT = "socialbot.unsubscribe"


class FollowupError(ValueError):
    """A follow-up can't be scheduled or changed as asked; the message says why."""


@dataclass
class FollowupReport:
    queued: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    postponed: list[int] = field(default_factory=list)
    reminded: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


# Where a follow-up can go


def _last_inbound(session: Session, conversation_id: int) -> Message | None:
    return session.exec(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.direction == Direction.INBOUND.value)
        .order_by(Message.id.desc())
    ).first()


def verified_email(session: Session, contact_id: int) -> str | None:
    """The contact's verified e-mail address that still takes mail (none bounced), if they have one."""
    identity = session.exec(
        select(Identity)
        .where(
            Identity.contact_id == contact_id,
            Identity.channel == "email",
            Identity.verified,
            Identity.bounced_at.is_(None),
        )
        .order_by(Identity.id)
    ).first()
    return identity.external_user_id if identity is not None else None


def address_bounced(session: Session, address: str) -> bool:
    """Whether mail to `address` bounced for good (and no authenticated mail came from it since)."""
    identity = session.exec(
        select(Identity).where(Identity.channel == "email", Identity.external_user_id == address.lower())
    ).first()
    return identity is not None and identity.bounced_at is not None


def record_bounce(engine: Engine, bounce: Bounce) -> None:
    """A mail we sent bounced for good: mark each address as failing (no follow-up goes there any more,
    pending ones are cancelled) and the mail itself as failed, for staff to see. Audited."""
    now = utcnow()
    detail = " ".join(part for part in (bounce.status, bounce.diagnostic) if part)[:500] or "bounced"
    with session_scope(engine) as session:
        for address in bounce.recipients:
            identity = session.exec(
                select(Identity).where(Identity.channel == "email", Identity.external_user_id == address)
            ).first()
            if identity is None:
                log.info("a bounce for %s, which no contact has", address)
                continue
            identity.bounced_at, identity.bounce_detail = now, detail
            session.add(identity)
            cancelled = _cancel_followups_to(session, identity.contact_id, address)
            audit(
                session,
                "identity.bounced",
                "contact",
                identity.contact_id,
                actor_kind="system",
                details={"detail": detail, "followups_cancelled": cancelled},
            )
        sent = session.exec(select(Outbox).where(Outbox.external_id == bounce.original_message_id)).first()
        if sent is not None:
            sent.last_error = f"bounced: {detail}"
            mail = session.get(Message, sent.message_id)
            mail.status = DeliveryStatus.FAILED.value
            session.add_all([sent, mail])


def _cancel_followups_to(session: Session, contact_id: int, address: str) -> list[int]:
    """Cancel the contact's pending e-mail follow-ups that would go to `address`; return their ids."""
    cancelled = []
    for row in _pending_locked(session, FollowUp.contact_id == contact_id, FollowUp.channel == "email"):
        conversation = session.get(Conversation, row.conversation_id)
        if conversation.channel == "email":
            target = conversation.thread_id
        else:
            target = verified_email(session, contact_id)
        if target is None or target == address:
            _finish(row, FollowUpStatus.CANCELLED, f"mail to {address} bounced")
            session.add(row)
            cancelled.append(row.id)
    return cancelled


def _may_write_first(session: Session, conversation: Conversation) -> bool:
    if conversation.channel not in PROACTIVE_CHANNELS:
        return False
    last = _last_inbound(session, conversation.id)
    if conversation.channel == "twitter":
        return last is not None and last.external_id is not None  # a reply in the customer's thread only
    if conversation.channel in ("telegram", "slack"):
        return last is not None and not last.public  # private chat / DM, never a group or channel
    return True


def proactive_channels(session: Session, conversation: Conversation) -> list[str]:
    """The channels a follow-up about `conversation` goes out on: its own when the platform allows the brand
    to write first there, and the contact's verified e-mail address."""
    channels = [conversation.channel] if _may_write_first(session, conversation) else []
    if "email" not in channels and verified_email(session, conversation.contact_id) is not None:
        channels.append("email")
    return channels


# Scheduling


def _described(followup: FollowUp, **details: Any) -> dict[str, Any]:
    """What an audit event about `followup` says: its conversation and channel, and `details`."""
    return {"conversation_id": followup.conversation_id, "channel": followup.channel, **details}


def schedule_followup(
    session: Session,
    conversation: Conversation,
    *,
    template: str,
    due_at: datetime,
    channels: list[str] | None = None,
    text: str | None = None,
    staff_id: int | None = None,
) -> list[FollowUp]:
    """Schedule `template` about `conversation` at `due_at`, one row per channel (default: every channel
    that reaches the customer). A pending follow-up with the same template and conversation is replaced.

    Raises:
        FollowupError: no channel reaches the customer, or the template needs a text it wasn't given.
    """
    if template == CUSTOM and not (text and text.strip()):
        raise FollowupError("a follow-up written by hand needs a text")
    if template not in CUSTOMER_FOLLOWUPS and template != STAFF_REMINDER:
        raise FollowupError(f"unknown follow-up template {template!r}")
    reachable = proactive_channels(session, conversation)
    targets = channels if channels is not None else reachable
    unreachable = [c for c in targets if c not in reachable and c != STAFF_CHANNEL]
    if unreachable:
        raise FollowupError(
            f"channel(s) {', '.join(unreachable)} can't reach the customer of conversation "
            f"{conversation.id}; reachable: {', '.join(reachable) or 'none'}"
        )
    if text and "twitter" in targets and len(text) > X_MAX_CHARS:
        raise FollowupError(f"a post on X holds {X_MAX_CHARS} characters; this text has {len(text)}")
    if not targets:
        raise FollowupError(
            f"no channel reaches the customer of conversation {conversation.id}: {conversation.channel} "
            "does not allow the brand to write first there and they have no verified e-mail address"
        )
    for old in _pending_locked(
        session,
        FollowUp.conversation_id == conversation.id,
        FollowUp.template == template,
        FollowUp.channel.in_(targets),
    ):
        old.status, old.last_error = FollowUpStatus.CANCELLED.value, "replaced by a newer follow-up"
        session.add(old)
    rows = []
    for channel in targets:
        row = FollowUp(
            conversation_id=conversation.id,
            contact_id=conversation.contact_id,
            channel=channel,
            template=template,
            due_at=due_at,
            text=text,
            staff_id=staff_id,
        )
        session.add(row)
        session.flush()
        if staff_id is not None:  # the row itself records what policy schedules; people's actions are audited
            audit(
                session,
                "followup.scheduled",
                "followup",
                row.id,
                actor_kind="staff",
                actor_id=staff_id,
                details=_described(row, template=template, due_at=due_at.isoformat()),
            )
        rows.append(row)
    return rows


def _pending_locked(session: Session, *where: Any) -> list[FollowUp]:
    """The pending follow-ups matching `where` that are not queued yet, locked for this transaction, for
    cancelling or replacing them. One a sweep holds at this moment is left out: it is being queued and goes
    out (cancelling it here would hide a message that is sent). Passing over it rather than waiting also
    keeps this transaction, which may hold its contact and conversation (a customer's message being
    decided), from waiting on a sweep that waits on them to queue its message: a deadlock."""
    return list(
        session.exec(
            select(FollowUp)
            .where(FollowUp.status == FollowUpStatus.PENDING.value, FollowUp.message_id.is_(None), *where)
            .order_by(FollowUp.id)
            .with_for_update(skip_locked=True)
        ).all()
    )


def _was_complaint(session: Session, conversation: Conversation) -> bool:
    return (
        session.exec(
            select(Message.id).where(
                Message.conversation_id == conversation.id,
                Message.direction == Direction.INBOUND.value,
                Message.intent == "complaint",
            )
        ).first()
        is not None
    )


def schedule_resolution_followup(
    session: Session,
    conversation: Conversation,
    *,
    settings: FollowupSettings | None = None,
    now: datetime | None = None,
) -> list[FollowUp]:
    """After staff resolve a complaint: "did that fix it?" + rating, `resolved_delay_hours` later, on every
    channel that reaches the customer. Nothing for other conversations or unreachable customers."""
    settings = settings or FollowupSettings()
    if not _was_complaint(session, conversation):
        return []
    due = (now or utcnow()) + timedelta(hours=settings.resolved_delay_hours)
    try:
        return schedule_followup(session, conversation, template=RESOLUTION_CHECK, due_at=due)
    except FollowupError as error:
        log.info("conversation %s resolved; no follow-up: %s", conversation.id, error)
        return []


def schedule_idea_followup(
    session: Session,
    idea: Idea,
    *,
    message_id: int | None = None,
    settings: FollowupSettings | None = None,
    now: datetime | None = None,
) -> list[FollowUp]:
    """Tell a customer the idea's status changed (call it after changing `idea.status`), in the conversation
    of `message_id`, their suggestion of it (default: the idea's first), quoting their own words. Replaces a
    pending update in that conversation; nothing if the customer can't be reached."""
    settings = settings or FollowupSettings()
    message_id = message_id if message_id is not None else idea.message_id
    message = session.get(Message, message_id)
    conversation = session.get(Conversation, message.conversation_id) if message is not None else None
    if conversation is None:
        return []
    due = (now or utcnow()) + timedelta(hours=settings.idea_delay_hours)
    try:
        rows = schedule_followup(session, conversation, template=IDEA_UPDATE, due_at=due)
    except FollowupError as error:
        log.info("idea %s changed; no follow-up in conversation %s: %s", idea.id, conversation.id, error)
        return []
    for row in rows:  # what the customer is told is fixed now: the status they would read about
        row.text = f"{idea.id}\n{idea.status}\n{message_id}"
    return rows


def schedule_staff_reminders(
    session: Session, *, settings: FollowupSettings | None = None, now: datetime | None = None
) -> list[FollowUp]:
    """A reminder for every escalated conversation that has waited `staff_reminder_hours` without a staff
    answer (one per escalation)."""
    settings = settings or FollowupSettings()
    if not settings.staff_reminder_hours:
        return []
    now = now or utcnow()
    cutoff = now - timedelta(hours=settings.staff_reminder_hours)
    waiting = session.exec(
        select(Conversation).where(
            Conversation.state == ConversationState.HUMAN.value,
            Conversation.escalated_at.is_not(None),
            Conversation.escalated_at <= cutoff,
        )
    ).all()
    made = []
    for conversation in waiting:
        if not _reminding_alone(session, conversation.id):
            continue
        if _staff_answered_since(session, conversation.id, conversation.escalated_at):
            continue
        already = session.exec(
            select(FollowUp.id).where(
                FollowUp.conversation_id == conversation.id,
                FollowUp.template == STAFF_REMINDER,
                FollowUp.created_at >= conversation.escalated_at,
            )
        ).first()
        if already is None:
            made += schedule_followup(
                session, conversation, template=STAFF_REMINDER, due_at=now, channels=[STAFF_CHANNEL]
            )
    return made


def _reminding_alone(session: Session, conversation_id: int) -> bool:
    """Whether this transaction may make the conversation's staff reminder: every worker's sweep runs
    `schedule_staff_reminders`, and one reminding staff of it right now (not committed yet) is left to it.
    On PostgreSQL an advisory lock held to the end of the transaction (not a row lock: the sweep must not
    hold the conversation while a customer's message being decided waits for it); SQLite runs one writer."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = lock_key(f"staff-reminder:{conversation_id}")
    return bool(session.exec(text("SELECT pg_try_advisory_xact_lock(:key)").bindparams(key=key)).scalar())


def _staff_answered_since(session: Session, conversation_id: int, since: datetime) -> bool:
    return (
        session.exec(
            select(Message.id).where(
                Message.conversation_id == conversation_id,
                Message.author_kind == "staff",
                Message.created_at >= since,
            )
        ).first()
        is not None
    )


def cancel_followup(session: Session, followup_id: int, *, staff_id: int | None = None) -> FollowUp:
    """Cancel a follow-up that has not gone out yet.

    Raises:
        FollowupError: no such follow-up, or it was queued or finished already.
    """
    row = session.exec(
        select(FollowUp).where(FollowUp.id == followup_id).with_for_update(skip_locked=True)
    ).first()
    if row is None:
        if session.get(FollowUp, followup_id) is None:
            raise FollowupError(f"follow-up {followup_id} does not exist")
        raise FollowupError(f"follow-up {followup_id} is being queued to go out now and can't be cancelled")
    if row.status != FollowUpStatus.PENDING or row.message_id is not None:
        raise FollowupError(f"follow-up {followup_id} is {row.status} already and can't be cancelled")
    row.status, row.last_error = FollowUpStatus.CANCELLED.value, "cancelled by staff"
    session.add(row)
    audit(
        session,
        "followup.cancelled",
        "followup",
        row.id,
        actor_kind="staff" if staff_id else "system",
        actor_id=staff_id,
        details=_described(row),
    )
    return row


def cancel_nudges_on_reply(session: Session, contact_id: int) -> list[int]:
    """The customer wrote again: pending "did that fix it?" follow-ups no longer make sense."""
    rows = _pending_locked(
        session, FollowUp.contact_id == contact_id, FollowUp.template.in_(NUDGES_CANCELLED_BY_REPLY)
    )
    for row in rows:
        row.status, row.last_error = FollowUpStatus.CANCELLED.value, "the customer wrote again"
        session.add(row)
        audit(
            session,
            "followup.cancelled",
            "followup",
            row.id,
            actor_kind="customer",
            details=_described(row, why="the customer wrote again"),
        )
    return [row.id for row in rows]


def awaiting_csat(
    session: Session,
    contact_id: int,
    *,
    settings: FollowupSettings | None = None,
    now: datetime | None = None,
) -> Conversation | None:
    """The conversation whose rating question this contact was sent lately and has not answered, if any."""
    settings = settings or FollowupSettings()
    since = (now or utcnow()) - timedelta(days=settings.csat_window_days)
    row = session.exec(
        select(FollowUp)
        .join(Message, Message.id == FollowUp.message_id)
        .join(Conversation, Conversation.id == FollowUp.conversation_id)
        .where(
            FollowUp.contact_id == contact_id,
            FollowUp.template == RESOLUTION_CHECK,
            Message.status == DeliveryStatus.SENT.value,
            Message.created_at >= since,
            Conversation.csat.is_(None),
        )
        .order_by(FollowUp.id.desc())
    ).first()
    return session.get(Conversation, row.conversation_id) if row is not None else None


# Sending


def in_quiet_hours(now: datetime, settings: FollowupSettings) -> datetime | None:
    """When quiet hours end if `now` is inside them, else None."""
    start, end = (
        time.fromisoformat(settings.quiet_hours_start),
        time.fromisoformat(settings.quiet_hours_end),
    )
    if start == end:
        return None
    zone = ZoneInfo(settings.timezone)
    local = now.astimezone(zone)
    current = local.time()
    inside = start <= current < end if start < end else (current >= start or current < end)
    if not inside:
        return None
    end_day = local.date() if current < end else local.date() + timedelta(days=1)
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(now.tzinfo)


def _due_ids(engine: Engine, now: datetime, limit: int) -> list[int]:
    """The ids of due follow-ups no worker is queueing right now (a read: nothing is claimed by it)."""
    with session_scope(engine, read_only=True) as session:
        return list(
            session.exec(
                select(FollowUp.id)
                .where(_still_due(now), FollowUp.due_at <= now)
                .order_by(FollowUp.due_at, FollowUp.id)
                .limit(limit)
            ).all()
        )


def _still_due(now: datetime) -> Any:
    """Pending, not queued yet, and not under the timed claim of a worker of an older version."""
    return and_(
        FollowUp.status == FollowUpStatus.PENDING.value,
        FollowUp.message_id.is_(None),
        or_(FollowUp.claimed_until.is_(None), FollowUp.claimed_until < now),
    )


def _take(session: Session, followup_id: int, now: datetime) -> FollowUp | None:
    """The follow-up, locked for this transaction if it is still due and no other worker holds it; else None.

    The claim is the transaction itself: the row stays locked (PostgreSQL: `FOR UPDATE SKIP LOCKED`, other
    workers pass over it; SQLite: every write transaction holds the database's write lock) until the row is
    queued in the outbox, cancelled or postponed and committed. A worker killed in between holds nothing
    afterwards: its connection closes, its transaction is rolled back and the next sweep takes the row.
    Cancelling (staff, a newer follow-up, the customer's reply) locks the row too, so it either comes first
    (the row is no longer pending here) or passes over the row this sweep holds (`_pending_locked`).
    """
    return session.exec(
        select(FollowUp).where(FollowUp.id == followup_id, _still_due(now)).with_for_update(skip_locked=True)
    ).first()


def email_conversation(session: Session, contact_id: int, address: str) -> Conversation:
    """The e-mail thread with `address` (one per address, like a DM), opened for `contact_id` if new."""
    conversation = session.exec(
        select(Conversation)
        .where(Conversation.channel == "email", Conversation.thread_id == address)
        .order_by(Conversation.id.desc())
    ).first()
    if conversation is None:
        conversation = Conversation(
            contact_id=contact_id, channel="email", thread_id=address, state=ConversationState.RESOLVED.value
        )
        session.add(conversation)
        session.flush()
    return conversation


def _text(runtime: Runtime, session: Session, row: FollowUp) -> str:
    """What the follow-up says, in the language the customer wrote in last in its conversation."""
    if row.template == CUSTOM:
        return row.text or ""
    language = customer_language(session, row.conversation_id)
    if row.template == IDEA_UPDATE:
        idea_id, status, message_id = ((row.text or "").split("\n") + ["", ""])[:3]
        said = session.get(Message, int(message_id)) if message_id.isdigit() else None
        idea = session.get(Idea, int(idea_id)) if idea_id.isdigit() else None
        excerpt = (said.text if said else idea.text if idea else "").strip()
        excerpt = excerpt if len(excerpt) <= 80 else excerpt[:77].rstrip() + "..."
        return runtime.policy.render(
            IDEA_UPDATE, language=language, idea=excerpt, status=status or "reviewed"
        )
    return runtime.policy.render(row.template, language=language)


def _finish(row: FollowUp, status: FollowUpStatus, why: str) -> None:
    row.status, row.last_error, row.claimed_until = status.value, why, None


def _give_up(session: Session, row: FollowUp, why: str, report: FollowupReport) -> None:
    """The follow-up can't go out (`why`): it is marked failed, for staff to see, and audited."""
    _finish(row, FollowUpStatus.FAILED, why)
    report.failed.append(row.id)
    audit(
        session,
        "followup.failed",
        "followup",
        row.id,
        actor_kind="system",
        details=_described(row, error=why),
    )


def _process(runtime: Runtime, followup_id: int, now: datetime, report: FollowupReport) -> None:
    """Queue, cancel or postpone one due follow-up, in one transaction that holds it (`_take`)."""
    settings = runtime.settings.followups
    with session_scope(runtime.engine) as session:
        row = _take(session, followup_id, now)
        if row is None:  # another worker has it in hand, or it was queued or cancelled meanwhile
            return
        conversation = session.get(Conversation, row.conversation_id)
        contact = session.get(Contact, row.contact_id)
        if row.channel == STAFF_CHANNEL:
            _remind_staff(session, row, conversation, now, report)
            return
        if contact.opted_out:
            _finish(row, FollowUpStatus.CANCELLED, "the contact opted out")
            report.cancelled.append(row.id)
            audit(
                session,
                "followup.cancelled",
                "followup",
                row.id,
                actor_kind="system",
                details=_described(row, why="opted out"),
            )
            return
        if row.template == RESOLUTION_CHECK and conversation.state != ConversationState.RESOLVED:
            _finish(row, FollowUpStatus.CANCELLED, f"the conversation is {conversation.state} again")
            report.cancelled.append(row.id)
            return
        quiet_until = in_quiet_hours(now, settings)
        if quiet_until is not None:
            row.due_at, row.claimed_until = quiet_until, None
            session.add(row)
            report.postponed.append(row.id)
            return
        if row.channel not in runtime.channels:
            row.attempts += 1
            _give_up(session, row, f"channel {row.channel} is not enabled", report)
            return
        if row.channel == "email" and address_bounced(
            session, conversation.thread_id if conversation.channel == "email" else ""
        ):
            _finish(row, FollowUpStatus.CANCELLED, f"mail to {conversation.thread_id} bounced")
            report.cancelled.append(row.id)
            return
        if row.channel == conversation.channel:
            target = conversation
        else:
            address = verified_email(session, contact.id) if row.channel == "email" else None
            if address is None:
                _give_up(session, row, f"the contact has no verified {row.channel} identity", report)
                return
            target = email_conversation(session, contact.id, address)
        message = enqueue(
            session,
            conversation=target,
            text=_text(runtime, session, row),
            idempotency_key=f"followup:{row.id}",
            reply_to=_last_inbound(session, target.id),
        )
        row.message_id, row.claimed_until = message.id, None
        session.add(row)
        report.queued.append(row.id)


def _remind_staff(
    session: Session, row: FollowUp, conversation: Conversation, now: datetime, report: FollowupReport
) -> None:
    if conversation.state != ConversationState.HUMAN or _staff_answered_since(
        session, conversation.id, conversation.escalated_at or row.created_at
    ):
        _finish(row, FollowUpStatus.CANCELLED, "staff answered or the conversation left the queue")
        report.cancelled.append(row.id)
        return
    conversation.priority = max(conversation.priority, 2)
    session.add(conversation)
    _finish(row, FollowUpStatus.SENT, "")
    row.last_error, row.sent_at, row.attempts = None, now, row.attempts + 1
    session.add(row)
    audit(
        session,
        "conversation.reminder",
        "conversation",
        conversation.id,
        actor_kind="system",
        details={"followup_id": row.id, "waiting_since": conversation.escalated_at.isoformat()},
    )
    log.warning("conversation %s has waited for staff since %s", conversation.id, conversation.escalated_at)
    report.reminded.append(row.id)


def send_due_followups(runtime: Runtime, *, now: datetime | None = None, limit: int = 100) -> FollowupReport:
    """Queue every due follow-up in the outbox (or cancel / postpone it); safe in any number of workers.

    Also makes the staff reminders that have come due. The outbox job sends what was queued.
    """
    now = now or utcnow()
    report = FollowupReport()
    with session_scope(runtime.engine) as session:
        schedule_staff_reminders(session, settings=runtime.settings.followups, now=now)
    for followup_id in _due_ids(runtime.engine, now, limit):
        _process(runtime, followup_id, now, report)
    if report.queued or report.failed:
        log.info("follow-ups: %d queued, %d failed", len(report.queued), len(report.failed))
    return report


def sync_followup_delivery(engine: Engine) -> int:
    """Copy the outbox's outcome onto queued follow-ups (sent, or failed after its retries); return how many
    changed."""
    changed = 0
    with session_scope(engine) as session:
        rows = session.exec(
            select(FollowUp, Outbox)
            .join(Outbox, Outbox.message_id == FollowUp.message_id)
            .where(FollowUp.status == FollowUpStatus.PENDING.value, FollowUp.message_id.is_not(None))
        ).all()
        for row, outbox in rows:
            row.attempts = outbox.attempts
            row.last_error = outbox.last_error
            if outbox.status == "sent":
                row.status, row.sent_at = FollowUpStatus.SENT.value, outbox.sent_at
            elif outbox.status == "failed":
                row.status = FollowUpStatus.FAILED.value
                audit(
                    session,
                    "followup.failed",
                    "followup",
                    row.id,
                    actor_kind="system",
                    details=_described(row, error=outbox.last_error),
                )
            else:
                session.add(row)
                continue
            session.add(row)
            changed += 1
    return changed


# Unsubscribing


def _serializer(settings: Settings) -> URLSafeSerializer:
    if settings.secret_key is None or not settings.secret_key.get_secret_value():
        raise FollowupError("SOCIALBOT_SECRET_KEY is required to sign unsubscribe links")
    return URLSafeSerializer(settings.secret_key.get_secret_value(), salt=UNSUBSCRIBE_SALT)


def unsubscribe_url(settings: Settings, address: str) -> str:
    """The signed link that opts `address` out of follow-ups (never expires)."""
    token = _serializer(settings).dumps({"email": address.lower()})
    return f"{settings.server.public_url.rstrip('/')}/email/unsubscribe?token={token}"


def read_unsubscribe_token(settings: Settings, token: str) -> str:
    """The address an unsubscribe token was made for.

    Raises:
        FollowupError: the token is forged, damaged or not ours.
    """
    try:
        data = _serializer(settings).loads(token)
    except BadSignature:
        raise FollowupError("this unsubscribe link is not valid (damaged or not ours)") from None
    if not isinstance(data, dict) or not isinstance(data.get("email"), str):
        raise FollowupError("this unsubscribe link is not valid")
    return data["email"]


def unsubscribe(session: Session, address: str) -> int | None:
    """Opt out the contact who owns `address` and cancel their pending follow-ups; returns the contact id,
    or None when no contact has that address (nothing to do)."""
    identity = session.exec(
        select(Identity).where(Identity.channel == "email", Identity.external_user_id == address.lower())
    ).first()
    if identity is None:
        return None
    contact = session.get(Contact, identity.contact_id)
    if not contact.opted_out:
        contact.opted_out = True
        session.add(contact)
        audit(
            session,
            "contact.opted_out",
            "contact",
            contact.id,
            actor_kind="customer",
            details={"via": "email unsubscribe link"},
        )
    for row in _pending_locked(session, FollowUp.contact_id == contact.id, FollowUp.channel != STAFF_CHANNEL):
        row.status, row.last_error = FollowUpStatus.CANCELLED.value, "the contact opted out"
        session.add(row)
    return contact.id
