"""Customer satisfaction: the 1-5 answer to the rating question a resolved complaint's follow-up asks
(bot/engagement/followups.py), recorded on the conversation it rates. The pipeline's rating step calls
`record_rating` for every customer message the bot may answer.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlmodel import Session, select

from bot.crm.audit import audit
from bot.crm.languages import reply_language
from bot.crm.models import AuditEvent, Conversation, ConversationState, Message, utcnow
from bot.engagement.followups import awaiting_csat
from bot.policy.routing import Action, Decision
from bot.runtime.settings import FollowupSettings

__all__ = ["parse_rating", "record_rating"]

_RATING = re.compile(r"^\s*([1-5])(?:\s*(?:/|out of)\s*5)?(?:\s*stars?)?\s*[.!]*\s*$", re.IGNORECASE)
_RATING_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def parse_rating(text: str) -> int | None:
    """A 1-5 rating from a reply like "4", "4/5", "4 out of 5", "four", "5 stars"; None otherwise."""
    match = _RATING.match(text)
    if match:
        return int(match.group(1))
    word = text.strip().strip(".!").lower()
    return _RATING_WORDS.get(word)


def record_rating(
    session: Session,
    message: Message,
    conversation: Conversation,
    text: str,
    *,
    settings: FollowupSettings,
    detected_language: str | None,
    now: datetime | None = None,
) -> Decision | None:
    """Record `text` (`message`'s text without leading @mentions) as the contact's rating when it is one and
    they were asked lately (within `settings.csat_window_days`); the decision thanks them in their language
    (`detected_language` on this message, else their last one). None otherwise.
    """
    rating = parse_rating(text)
    if rating is None:
        return None
    now = now or utcnow()
    rated = awaiting_csat(session, message.contact_id, settings=settings, now=now)
    if rated is None:
        return None
    rated.csat = rating
    session.add(rated)
    if conversation.state == ConversationState.BOT and _reopened_by_this_message(session, conversation):
        # The rating reopened a resolved thread (the X thread, or the e-mail the question came in); it answers
        # our question and is no new request, so the thread goes back to resolved.
        conversation.state, conversation.resolved_at = ConversationState.RESOLVED.value, now
        session.add(conversation)
    audit(
        session,
        "conversation.rated",
        "conversation",
        rated.id,
        actor_kind="customer",
        details={"csat": rating, "message_id": message.id},
    )
    return Decision(
        Action.RECORD_CSAT,
        f"rating {rating}/5 for conversation {rated.id} (answer to the follow-up)",
        template="csat_thanks",
        language=reply_language(session, conversation.id, detected_language),
        variables={"rating": rating},
    )


def _reopened_by_this_message(session: Session, conversation: Conversation) -> bool:
    last = session.exec(
        select(AuditEvent)
        .where(AuditEvent.subject_type == "conversation", AuditEvent.subject_id == conversation.id)
        .order_by(AuditEvent.id.desc())
    ).first()
    return last is not None and last.action == "conversation.reopened"
