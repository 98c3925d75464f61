"""The advocacy ladder: where a customer stands, computed from what they did, with the rule that decided.

Rules, first match wins (each is one line of `compute_stage`):
1. detractor  - two or more complaints, and negative messages outnumber positive ones;
2. advocate   - two or more messages of praise, or an idea for the brand plus at least one positive message;
3. loyal      - positive messages in two or more separate conversations;
4. owner      - a complaint or a question the knowledge base files under orders, delivery, returns, account
                or payments (people ask about what they bought);
5. tire-kicker - anyone else: first contacts and general questions.
The stage is recomputed on every inbound message; each change is a `LadderChange` row with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import bindparam, case, distinct, false, func
from sqlmodel import Session, select

from bot.crm.models import Contact, LadderChange, LadderStage, Message, utcnow

__all__ = ["Behaviour", "compute_stage", "update_ladder"]

#: Knowledge-base tags that show the customer owns something of the brand's.
OWNER_TAGS = ("orders", "delivery", "returns", "refunds", "account", "payments", "warranty")


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What a contact has done, counted over all their inbound messages."""

    complaints: int = 0
    praise: int = 0
    ideas: int = 0
    positive: int = 0
    negative: int = 0
    positive_conversations: int = 0
    owner_questions: int = 0


def compute_stage(behaviour: Behaviour) -> tuple[LadderStage, str]:
    """Return the stage and a sentence naming the rule that decided it."""
    b = behaviour
    if b.complaints >= 2 and b.negative > b.positive:
        return (
            LadderStage.DETRACTOR,
            f"{b.complaints} complaints, {b.negative} negative vs {b.positive} positive",
        )
    if b.praise >= 2:
        return LadderStage.ADVOCATE, f"praised the brand {b.praise} times"
    if b.ideas >= 1 and b.positive >= 1:
        return LadderStage.ADVOCATE, f"{b.ideas} idea(s) for the brand and positive messages"
    if b.positive_conversations >= 2:
        return LadderStage.LOYAL, f"positive in {b.positive_conversations} conversations"
    if b.complaints >= 1 or b.owner_questions >= 1:
        return LadderStage.OWNER, "asked or complained about an order, delivery, return, account or payment"
    return LadderStage.TIRE_KICKER, "first contacts and general questions"


@lru_cache(maxsize=8)
def _behaviour_query(owner_article_ids: frozenset[str]):
    """The aggregate behind `_behaviour` (built once: building it costs more than running it)."""

    def count(condition) -> object:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    owner = Message.kb_article_id.in_(sorted(owner_article_ids)) if owner_article_ids else false()
    return select(
        count(Message.intent == "complaint"),
        count(Message.intent == "praise"),
        count(Message.intent == "recommendation"),
        count(Message.sentiment == "positive"),
        count(Message.sentiment == "negative"),
        func.count(distinct(case((Message.sentiment == "positive", Message.conversation_id)))),
        count(owner),
    ).where(Message.contact_id == bindparam("contact_id"), Message.direction == "in")


def _behaviour(session: Session, contact_id: int, owner_article_ids: set[str]) -> Behaviour:
    """One aggregate row over the contact's inbound messages (no message is loaded, however long the
    history)."""
    query = _behaviour_query(frozenset(owner_article_ids))
    row = session.exec(query, params={"contact_id": contact_id}).one()
    return Behaviour(*(int(value) for value in row))


def update_ladder(
    session: Session, contact: Contact, *, owner_article_ids: set[str], message_id: int | None = None
) -> LadderChange | None:
    """Recompute `contact`'s stage; record and return the change, or None if the stage is unchanged."""
    stage, reason = compute_stage(_behaviour(session, contact.id, owner_article_ids))
    if stage.value == contact.ladder_stage and contact.ladder_updated_at is not None:
        return None
    change = LadderChange(
        contact_id=contact.id,
        from_stage=contact.ladder_stage if contact.ladder_updated_at is not None else None,
        to_stage=stage.value,
        reason=reason,
        message_id=message_id,
    )
    contact.ladder_stage = stage.value
    contact.ladder_updated_at = utcnow()
    session.add(contact)
    session.add(change)
    return change


def count_by_stage(session: Session) -> dict[str, int]:
    """How many contacts stand on each rung."""
    rows = session.exec(select(Contact.ladder_stage, func.count()).group_by(Contact.ladder_stage)).all()
    counts = {stage.value: 0 for stage in LadderStage}
    counts.update({stage: count for stage, count in rows})
    return counts
