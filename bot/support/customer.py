"""Who the customer is, for the panel beside a conversation: their name, their accounts on each channel and
proven e-mail, where they stand on the advocacy ladder and why, their other conversations and ratings, their
ideas, and what moderation did about them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, or_, select

from bot.crm.contacts import addressed_as, best_name
from bot.crm.models import (
    Contact,
    ContactBlock,
    Conversation,
    Idea,
    IdeaMention,
    Identity,
    LadderChange,
    ModerationItem,
    utcnow,
)

__all__ = ["ChannelAccount", "CustomerProfile", "customer_profile"]

PAST_CONVERSATIONS = 20


@dataclass(frozen=True, slots=True)
class ChannelAccount:
    """The customer's account on one channel: a handle or address, and whether it is proven theirs (the
    platform vouches for its own accounts; an e-mail address is proven by a code sent to it)."""

    channel: str
    label: str
    verified: bool


@dataclass(frozen=True, slots=True)
class PastConversation:
    id: int
    channel: str
    state: str
    opened_at: datetime
    last_message_at: datetime
    reason: str | None
    csat: int | None


@dataclass(frozen=True, slots=True)
class LadderMove:
    from_stage: str | None
    to_stage: str
    reason: str
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class IdeaView:
    id: int
    text: str
    status: str
    votes: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ModerationRecord:
    id: int
    conversation_id: int
    status: str
    reason: str
    score: float | None
    outcome: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    """Everything the panel shows about one contact."""

    contact_id: int
    name: str
    # The name or handle they gave us (None: they gave none), for addressing them.
    addressed_as: str | None
    email: str | None
    email_verified: bool
    opted_out: bool
    first_seen: datetime
    accounts: list[ChannelAccount]
    ladder_stage: str
    # How they got to their stage (the newest move first); empty before the ladder placed them.
    ladder_moves: list[LadderMove]
    conversations: list[PastConversation]
    ratings: list[int]
    ideas: list[IdeaView]
    moderation: list[ModerationRecord]
    blocked_until: datetime | None

    @property
    def ladder_why(self) -> str | None:
        return self.ladder_moves[0].reason if self.ladder_moves else None

    @property
    def average_rating(self) -> float | None:
        return sum(self.ratings) / len(self.ratings) if self.ratings else None


def _account(identity: Identity) -> ChannelAccount:
    if identity.channel == "email":
        label = identity.external_user_id
    elif identity.handle:
        label = identity.handle if identity.handle.startswith("@") else f"@{identity.handle}"
    else:
        label = identity.display_name or "account without a handle"
    return ChannelAccount(identity.channel, label, bool(identity.verified))


def customer_profile(session: Session, contact_id: int) -> CustomerProfile:
    """The panel's view of `contact_id` (which must exist)."""
    contact = session.get(Contact, contact_id)
    identities = session.exec(
        select(Identity).where(Identity.contact_id == contact_id).order_by(Identity.id)
    ).all()
    emails = [i for i in identities if i.channel == "email"]
    conversations = session.exec(
        select(Conversation)
        .where(Conversation.contact_id == contact_id)
        .order_by(Conversation.last_message_at.desc())
        .limit(PAST_CONVERSATIONS)
    ).all()
    moves = session.exec(
        select(LadderChange)
        .where(LadderChange.contact_id == contact_id)
        .order_by(LadderChange.id.desc())
        .limit(3)
    ).all()
    mentioned = select(IdeaMention.idea_id).where(IdeaMention.contact_id == contact_id)
    ideas = session.exec(
        select(Idea)
        .where(or_(Idea.contact_id == contact_id, Idea.id.in_(mentioned)))
        .order_by(Idea.id.desc())
        .limit(10)
    ).all()
    moderation = session.exec(
        select(ModerationItem)
        .where(ModerationItem.contact_id == contact_id)
        .order_by(ModerationItem.id.desc())
        .limit(10)
    ).all()
    block = session.exec(
        select(ContactBlock)
        .where(
            ContactBlock.contact_id == contact_id,
            ContactBlock.until > utcnow(),
            ContactBlock.lifted_at.is_(None),
        )
        .order_by(ContactBlock.until.desc())
    ).first()
    return CustomerProfile(
        contact_id=contact_id,
        name=best_name(contact, identities),
        addressed_as=addressed_as(contact, identities),
        email=contact.email,
        email_verified=any(i.verified and i.external_user_id == contact.email for i in emails),
        opted_out=contact.opted_out,
        first_seen=contact.created_at,
        accounts=[_account(i) for i in identities],
        ladder_stage=contact.ladder_stage,
        ladder_moves=[LadderMove(m.from_stage, m.to_stage, m.reason, m.changed_at) for m in moves],
        conversations=[
            PastConversation(
                c.id, c.channel, c.state, c.opened_at, c.last_message_at, c.escalation_reason, c.csat
            )
            for c in conversations
        ],
        ratings=[c.csat for c in conversations if c.csat is not None],
        ideas=[IdeaView(i.id, i.text, i.status, i.votes, i.created_at) for i in ideas],
        moderation=[
            ModerationRecord(m.id, m.conversation_id, m.status, m.reason, m.score, m.outcome, m.created_at)
            for m in moderation
        ],
        blocked_until=block.until if block else None,
    )
