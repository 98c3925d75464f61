"""What a decision does, in the deciding transaction: the reply it says (an article fitted to the channel,
or a template of bot/policy/templates.py in the customer's language) is queued in the outbox once, the
conversation escalated, the idea recorded.
"""

from __future__ import annotations

from bot.crm.ideas import IDEA_SIMILARITIES, record_idea
from bot.crm.models import Message
from bot.delivery.outbox import enqueue
from bot.pipeline.turn import Turn
from bot.policy.routing import Action, Decision
from bot.runtime.container import Runtime
from bot.support.handoff import escalate_conversation
from bot.support.slack_posts import support_channel_of
from knowledge import format_reply

__all__ = ["carry_out", "reply_text"]


def reply_text(runtime: Runtime, decision: Decision, channel: str) -> str | None:
    """The text a decision says to the customer on `channel` (an article fitted to the channel, or a template
    in the customer's language), or None when it says nothing."""
    if decision.action == Action.ANSWER:
        text = format_reply(decision.article, channel)
    elif decision.template is not None:
        text = runtime.policy.render(
            decision.template, article=decision.article, language=decision.language, **decision.variables
        )
    else:
        return None
    return f"{runtime.policy.render('language_note')}\n\n{text}" if decision.language_note else text


def carry_out(turn: Turn, *, priority: int = 0, first: bool = False) -> Message | None:
    """What `turn`'s decision does, in its transaction: queue the reply (keyed `reply:<message id>`, so it is
    sent once however often this runs), escalate with `priority`, record the idea. Returns the queued reply
    (or the one queued before), if any.

    Args:
        first: this transaction claimed the message's first decision, so no reply can have been queued for it
            (none is looked for; the key still refuses a second).
    """
    runtime, session, message, decision = turn.runtime, turn.session, turn.message, turn.decision
    text = reply_text(runtime, decision, message.channel)
    reply = None
    if text:
        reply = enqueue(
            session,
            conversation=turn.conversation,
            text=text,
            reply_to=message,
            idempotency_key=f"reply:{message.id}",
            channels=runtime.channels,
            new=first,
        )
    if decision.escalate:
        escalate_conversation(
            session,
            turn.conversation,
            reason=decision.reason,
            message_id=message.id,
            priority=priority,
            support_channel=support_channel_of(runtime.settings),
        )
    if decision.record_idea:
        record_idea(
            session,
            message,
            encoder=runtime.models.encoder.name,
            join_at=IDEA_SIMILARITIES[runtime.models.variant],
        )
    return reply
