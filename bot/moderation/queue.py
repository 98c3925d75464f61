"""Community moderation by staff: the queue of messages flagged abusive and what staff do with them.

Abuse with nothing to act on gets no reply (policy: action `moderate`; abuse that is also a service request
goes to a person instead, bot/policy/routing.py) and becomes a `ModerationItem` in the
pipeline's own transaction (its moderation step, bot/pipeline/steps/moderation.py, which also keeps the bot
silent toward blocked authors and guards against flame wars). Staff then decide, once:

- **fine** ("not abuse"): stored as a correction of the abuse reading (the learning loop's labelled example,
  bot/insights/corrections.py), and the bot answers it as usual (policy with the abusive flag overridden),
  through the outbox with the same idempotency key as any reply to that message, so it is answered once
  however often staff click;
- **hide**: removed on the platform where the bot may (Telegram `deleteMessage` in a group the bot admins);
  elsewhere (Slack lets a bot delete only its own posts, X and e-mail not at all) it is flagged for a person;
- **block**: the bot gives the author no replies for `[moderation] block_days`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from bot.crm.audit import audit
from bot.crm.contacts import contact_names
from bot.crm.db import session_scope
from bot.crm.models import (
    Contact,
    ContactBlock,
    Conversation,
    Message,
    ModerationItem,
    Staff,
    utcnow,
)
from bot.delivery.outbox import deliver_due
from bot.insights.corrections import record_correction
from bot.pipeline.chain import decide
from bot.pipeline.outcome import carry_out
from bot.pipeline.turn import Turn
from bot.runtime.container import Runtime
from bot.support.handoff import bot_may_reply

__all__ = [
    "MODERATION_ACTIONS",
    "ModerationError",
    "QueueEntry",
    "block_author",
    "decide_item",
    "hide_message",
    "list_queue",
    "mark_fine",
]

log = logging.getLogger("socialbot.moderation")

#: What staff can do with a queued message (the console's buttons, the API's `action`).
MODERATION_ACTIONS = ("fine", "hide", "block")


class ModerationError(Exception):
    """A moderation action can't be done as asked (no such item, decided already); the message says why."""


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One row of the moderation queue, as staff see it."""

    id: int
    message_id: int
    conversation_id: int
    contact_id: int
    contact_name: str | None
    channel: str
    public: bool
    text: str
    reason: str
    score: float | None
    # The words that weighed most in the abuse score (empty for items flagged before they were kept).
    flagged_words: tuple[str, ...]
    status: str
    outcome: str | None
    created_at: datetime


def list_queue(session: Session, *, status: str = "open", limit: int = 200) -> list[QueueEntry]:
    """The moderation queue, newest first; `status` "open" (waiting for staff) or "all"."""
    query = (
        select(ModerationItem, Message, Contact)
        .join(Message, Message.id == ModerationItem.message_id)
        .join(Contact, Contact.id == ModerationItem.contact_id)
        .order_by(ModerationItem.id.desc())
        .limit(limit)
    )
    if status != "all":
        query = query.where(ModerationItem.status == status)
    rows = session.exec(query).all()
    names = contact_names(session, [item.contact_id for item, _, _ in rows])
    return [
        QueueEntry(
            id=item.id,
            message_id=message.id,
            conversation_id=item.conversation_id,
            contact_id=item.contact_id,
            contact_name=names[item.contact_id],
            channel=message.channel,
            public=message.public,
            text=message.text,
            reason=item.reason,
            score=item.score,
            flagged_words=tuple(item.flagged_words or ()),
            status=item.status,
            outcome=item.outcome,
            created_at=item.created_at,
        )
        for item, message, _contact in rows
    ]


def _claim(session: Session, item_id: int, status: str, staff: Staff) -> ModerationItem:
    """Move an open item to `status` (only one staff action wins), or raise."""
    claimed = session.exec(
        update(ModerationItem)
        .where(ModerationItem.id == item_id, ModerationItem.status == "open")
        .values(status=status, decided_at=utcnow(), decided_by=staff.id)
    )
    item = session.get(ModerationItem, item_id)
    if item is None:
        raise ModerationError(f"moderation item {item_id} does not exist")
    if claimed.rowcount != 1:
        raise ModerationError(f"moderation item {item_id} was decided already ({item.status})")
    session.refresh(item)
    return item


def mark_fine(runtime: Runtime, item_id: int, staff: Staff) -> ModerationItem:
    """Staff say the message is not abuse: that is stored as a correction (the learning loop retrains on it)
    and the bot answers it as policy would have without the abuse flag.

    The reply is queued with the key of the message's ordinary reply (`reply:<message id>`), so it is sent
    once; a conversation a person owns by now gets no bot reply.

    Raises:
        ModerationError: no such item, or it was decided already.
    """
    with session_scope(runtime.engine) as session:
        item = session.get(ModerationItem, item_id)
        if item is None:
            raise ModerationError(f"moderation item {item_id} does not exist")
        text = session.get(Message, item.message_id).text
    analysis = runtime.models.analyse(text)  # outside the transaction: no lock held while the model runs
    understanding = dataclasses.replace(analysis.understanding, abusive=False)
    reviewed = dataclasses.replace(analysis, understanding=understanding)
    with session_scope(runtime.engine) as session:
        item = _claim(session, item_id, "fine", staff)
        record_correction(
            session,
            message_id=item.message_id,
            aspect="abusive",
            value=False,
            staff_id=staff.id,
            source="moderation",
        )
        message = session.get(Message, item.message_id)
        conversation = session.get(Conversation, item.conversation_id)
        if not bot_may_reply(conversation):
            item.outcome = f"marked fine; conversation is {conversation.state}, so the bot did not answer"
        else:
            # The message goes through the chain's policy and language steps again, without the flag.
            turn = Turn(runtime, session, message, conversation, reviewed)
            turn = decide(turn, only=("policy", "language"))
            decision = turn.decision
            carry_out(turn)
            message.abusive = False
            message.action = decision.action.value
            message.reason = f"marked fine by staff {staff.id}; {decision.reason}"
            session.add(message)
            item.outcome = f"marked fine: {decision.action.value}"
        session.add(item)
        audit(
            session,
            "moderation.fine",
            "message",
            item.message_id,
            actor_kind="staff",
            actor_id=staff.id,
            details={"item_id": item.id},
        )
        channel = message.channel
    if channel in runtime.channels:
        deliver_due(runtime.engine, {channel: runtime.channels[channel]})
    return item


def hide_message(runtime: Runtime, item_id: int, staff: Staff) -> ModerationItem:
    """Remove the message on its platform where the bot may; otherwise flag it for a person to remove.

    Telegram: ``deleteMessage`` (works in groups where the bot is an admin with "delete messages"). Slack lets
    a bot delete only what it posted, X and e-mail nothing: those become `needs_human`.

    Raises:
        ModerationError: no such item, or it was decided already.
    """
    with session_scope(runtime.engine) as session:
        item = session.get(ModerationItem, item_id)
        if item is None:
            raise ModerationError(f"moderation item {item_id} does not exist")
        message = session.get(Message, item.message_id)
        channel_name, external_id, public = message.channel, message.external_id, message.public
    adapter = runtime.channels.get(channel_name)
    hide = getattr(adapter, "hide", None)
    status, outcome = (
        "needs_human",
        f"{channel_name} does not let the bot remove a customer's post: remove it",
    )
    if hide is not None and public and external_id:
        try:
            hide(external_id)
            status, outcome = "hidden", f"removed on {channel_name}"
        except Exception as error:  # noqa: BLE001 - any platform refusal means a person has to do it
            outcome = f"{channel_name} refused to remove it ({error}): remove it by hand"
    with session_scope(runtime.engine) as session:
        item = _claim(session, item_id, status, staff)
        item.outcome = outcome
        session.add(item)
        audit(
            session,
            f"moderation.{status}",
            "message",
            item.message_id,
            actor_kind="staff",
            actor_id=staff.id,
            details={"outcome": outcome},
        )
    log.info("moderation item %s: %s", item_id, outcome)
    return item


def block_author(
    runtime: Runtime, item_id: int, staff: Staff, *, days: float | None = None
) -> ModerationItem:
    """Keep the bot from replying to the message's author for `days` (default `[moderation] block_days`).

    Raises:
        ModerationError: no such item, it was decided already, or `days` is not positive.
    """
    days = runtime.settings.moderation.block_days if days is None else days
    if days <= 0:
        raise ModerationError("a block lasts a positive number of days")
    with session_scope(runtime.engine) as session:
        item = _claim(session, item_id, "blocked", staff)
        until = utcnow() + timedelta(days=days)
        block = ContactBlock(
            contact_id=item.contact_id, until=until, reason=f"moderation item {item.id}", staff_id=staff.id
        )
        session.add(block)
        item.outcome = f"author blocked from bot replies until {until.isoformat(timespec='minutes')}"
        session.add(item)
        audit(
            session,
            "contact.blocked",
            "contact",
            item.contact_id,
            actor_kind="staff",
            actor_id=staff.id,
            details={"until": until.isoformat()},
        )
    return item


def decide_item(runtime: Runtime, item_id: int, action: str, staff: Staff) -> ModerationItem:
    """Apply one of `MODERATION_ACTIONS` to a queued message.

    Raises:
        ModerationError: unknown action, no such item, or decided already.
    """
    if action == "fine":
        return mark_fine(runtime, item_id, staff)
    if action == "hide":
        return hide_message(runtime, item_id, staff)
    if action == "block":
        return block_author(runtime, item_id, staff)
    raise ModerationError(f"unknown moderation action {action!r} (one of {', '.join(MODERATION_ACTIONS)})")
