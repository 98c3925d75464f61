"""The steps that answer what a customer sends back to us: a 1-5 rating (bot/engagement/csat.py) and the
e-mail verification flow's address or code (bot/engagement/identity.py). Both run only for a customer's
message in a conversation the bot owns, and decide nothing for any other text.
"""

from __future__ import annotations

import re

from bot.crm.models import utcnow
from bot.engagement.csat import record_rating
from bot.engagement.followups import cancel_nudges_on_reply
from bot.engagement.identity import link_email, request_confirmed_by_code
from bot.pipeline.steps import data_rights
from bot.pipeline.turn import Turn
from bot.policy.routing import Decision
from channels.base import InboundKind

__all__ = ["identity", "rating"]

_LEADING_MENTIONS = re.compile(r"^(?:\s*@\w+)+")


def _answers_us(turn: Turn) -> str | None:
    """The text of a customer's message the bot may answer, without leading @mentions ("@brand 4/5" on X is a
    plain "4/5"); None for anything else."""
    if turn.message.kind != InboundKind.MESSAGE or not turn.bot_may_reply:
        return None
    return _LEADING_MENTIONS.sub("", turn.message.text)


def rating(turn: Turn) -> Decision | None:
    """The customer wrote again, so their pending "did that fix it?" nudges are cancelled; a 1-5 answer to the
    rating question we sent them lately is recorded and thanked."""
    text = _answers_us(turn)
    if text is None:
        return None
    cancel_nudges_on_reply(turn.session, turn.message.contact_id)
    settings = turn.runtime.settings.followups
    return record_rating(
        turn.session,
        turn.message,
        turn.conversation,
        text,
        settings=settings,
        detected_language=turn.analysis.language,
        now=utcnow(),
    )


def identity(turn: Turn) -> Decision | None:
    """An e-mail address to verify, or the code that verifies it, is answered with the flow's next step. A
    code that confirms a data request (from an unauthenticated e-mail) lets that request go ahead."""
    text = _answers_us(turn)
    if text is None:
        return None
    decision = link_email(
        turn.runtime,
        turn.session,
        turn.message,
        turn.conversation,
        text,
        detected_language=turn.analysis.language,
    )
    if decision is not None:
        request = request_confirmed_by_code(turn.session, turn.conversation.id)
        if request is not None:
            return data_rights.confirm(turn, request)
    return decision
