"""The moderation step: reviews what was decided for a message before it is recorded.

A message policy flagged (`moderate`: the abuse head said so) is queued for staff as a `ModerationItem`
(what staff do with it is bot/moderation/queue.py); a blocked author gets no bot reply for the block's
length; and the flame-war guard: `flame_war_messages` abusive or strongly negative messages in one public
thread within `flame_war_window_seconds` escalate the whole thread to a person, and the bot then stays silent
there (the conversation's state is `human`), as for any escalation.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, or_, select

from bot.crm.models import ContactBlock, Direction, Message, ModerationItem, utcnow
from bot.pipeline.turn import Turn
from bot.policy.routing import Action, Decision
from bot.runtime.settings import ModerationSettings

__all__ = ["active_block", "moderation"]


def active_block(session: Session, contact_id: int, *, now: datetime | None = None) -> ContactBlock | None:
    """The block keeping the bot silent toward `contact_id` now, or None."""
    now = now or utcnow()
    return session.exec(
        select(ContactBlock)
        .where(
            ContactBlock.contact_id == contact_id, ContactBlock.until > now, ContactBlock.lifted_at.is_(None)
        )
        .order_by(ContactBlock.until.desc())
    ).first()


def moderation(turn: Turn) -> Decision:
    """Review the decision: queue a message policy flagged (`moderate`) for staff; escalate a public thread
    that turned into a flame war (no reply; the bot pauses there); keep the bot silent toward a blocked
    author. Returns the decision to record (the same one when nothing applies)."""
    decision, message, session = turn.decision, turn.message, turn.session
    understanding = turn.analysis.understanding
    if decision.action == Action.MODERATE:
        session.add(
            ModerationItem(
                message_id=message.id,
                contact_id=message.contact_id,
                conversation_id=turn.conversation.id,
                reason=decision.reason,
                score=understanding.abusive_score,
            )  # the words behind the flag are named after this commits (bot/pipeline/inbound.py)
        )
    if not turn.bot_may_reply:
        return decision
    now = utcnow()
    settings = turn.runtime.settings.moderation
    strong = settings.strongly_negative_confidence
    heated = bool(understanding.abusive) or (
        understanding.sentiment == "negative" and (understanding.sentiment_confidence or 0.0) >= strong
    )
    if heated and message.public and settings.flame_war_messages > 0:
        heated_count = _heated_count(session, message, settings, now)
        if heated_count >= settings.flame_war_messages:
            return Decision(
                Action.ESCALATE,
                f"flame war: {heated_count} abusive or strongly negative messages in this public thread in "
                f"{settings.flame_war_window_seconds:.0f} s; the thread goes to a person and the bot pauses",
                escalate=True,
            )
    block = active_block(session, message.contact_id, now=now)
    if block is not None and decision.replies:
        return Decision(
            Action.IGNORE,
            f"author blocked from bot replies until {block.until.isoformat(timespec='minutes')} "
            f"(block {block.id}): no reply",
        )
    return decision


def _heated_count(session: Session, message: Message, settings: ModerationSettings, now: datetime) -> int:
    """How many abusive or strongly negative customer messages `message`'s thread had in the flame-war window,
    `message` included."""
    since = now - timedelta(seconds=settings.flame_war_window_seconds)
    earlier = session.exec(
        select(func.count(Message.id)).where(
            Message.conversation_id == message.conversation_id,
            Message.direction == Direction.INBOUND.value,
            Message.id != message.id,
            Message.created_at >= since,
            or_(
                Message.abusive.is_(True),
                (Message.sentiment == "negative")
                & (Message.sentiment_confidence >= settings.strongly_negative_confidence),
            ),
        )
    ).one()
    return earlier + 1
