"""The social CRM's tables.

Times are timezone-aware UTC in Python (`utcnow()`); SQLModel's UTC column type stores them as UTC on both
engines and gives them back aware. Every schema change is an Alembic migration in `bot/crm/migrations`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlalchemy import true as sa_true
from sqlmodel import Field, SQLModel

__all__ = [
    "AuditEvent",
    "AuthorKind",
    "CannedReply",
    "ChannelCursor",
    "ComplaintSpike",
    "Contact",
    "Conversation",
    "ContactBlock",
    "Correction",
    "ContactMerge",
    "ConversationRead",
    "ConversationState",
    "ConversationTag",
    "DataRequest",
    "DeliveryStatus",
    "Direction",
    "FollowUp",
    "FollowUpStatus",
    "Idea",
    "IdeaMention",
    "Identity",
    "IdentityVerification",
    "LadderChange",
    "LadderStage",
    "Message",
    "MessageVector",
    "ModerationItem",
    "Note",
    "Outbox",
    "OutboxStatus",
    "ProcessingStatus",
    "Staff",
    "StaffRole",
    "SupportPost",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "utcnow",
    "as_utc",
]


def utcnow() -> datetime:
    """Now, timezone-aware UTC (the convention of every timestamp column)."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A timestamp read back from the database, timezone-aware (SQLite gives naive datetimes, stored UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class LadderStage(StrEnum):
    """Where a customer stands on the advocacy ladder (bot/crm/ladder.py decides)."""

    DETRACTOR = "detractor"
    TIRE_KICKER = "tire-kicker"
    OWNER = "owner"
    LOYAL = "loyal"
    ADVOCATE = "advocate"


class ConversationState(StrEnum):
    """Who speaks in a conversation: the bot, a person, nobody (resolved) or nobody for now (snoozed)."""

    BOT = "bot"
    HUMAN = "human"
    RESOLVED = "resolved"
    SNOOZED = "snoozed"


class Direction(StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"


class AuthorKind(StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    STAFF = "staff"


class ProcessingStatus(StrEnum):
    """An inbound message is stored as `received` and becomes `processed` in the same transaction that
    records the decision and queues the replies, so it is decided exactly once."""

    RECEIVED = "received"
    PROCESSED = "processed"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class FollowUpStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"


class StaffRole(StrEnum):
    AGENT = "agent"
    MARKETER = "marketer"
    ADMIN = "admin"


class Contact(SQLModel, table=True):
    """One customer, however many channels they use."""

    id: int | None = Field(default=None, primary_key=True)
    display_name: str | None = None
    email: str | None = Field(default=None, index=True)
    ladder_stage: str = Field(default=LadderStage.TIRE_KICKER.value, index=True)
    ladder_updated_at: datetime | None = None
    opted_out: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)


class Identity(SQLModel, table=True):
    """A customer's account on one channel; (channel, external_user_id) names one contact."""

    __table_args__ = (UniqueConstraint("channel", "external_user_id", name="uq_identity_channel_user"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    channel: str
    external_user_id: str
    handle: str | None = None
    display_name: str | None = None
    verified: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    # E-mail: when a mail to this address bounced for good (then no follow-up goes there), and why.
    bounced_at: datetime | None = None
    bounce_detail: str | None = None


class Conversation(SQLModel, table=True):
    """A thread on one channel with one contact. `state` alone decides who speaks."""

    __table_args__ = (Index("ix_conversation_channel_thread", "channel", "thread_id"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    channel: str
    thread_id: str
    state: str = Field(default=ConversationState.BOT.value, index=True)
    assignee_id: int | None = Field(default=None, foreign_key="staff.id")
    priority: int = 0
    escalation_reason: str | None = None
    # The customer message that made the bot hand the conversation to staff (no foreign key: message rows
    # point at their conversation, and a key both ways would make the two tables depend on each other).
    escalation_message_id: int | None = None
    # While `state` is snoozed: when it comes back to the queue by itself (the customer writing wakes it too).
    snoozed_until: datetime | None = Field(default=None, index=True)
    opened_at: datetime = Field(default_factory=utcnow)
    last_message_at: datetime = Field(default_factory=utcnow, index=True)
    escalated_at: datetime | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    csat: int | None = None


class Message(SQLModel, table=True):
    """Every message in and out, with the bot's understanding and decision for inbound ones."""

    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_message_channel_external_id"),
        Index("ix_message_conversation_id_id", "conversation_id", "id"),
        Index("ix_message_created_at", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id")
    contact_id: int = Field(foreign_key="contact.id", index=True)
    channel: str
    # The platform's id; None for an outbound message not yet delivered.
    external_id: str | None = None
    direction: str
    author_kind: str
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
    public: bool = False
    # Inbound: why it reached the bot (channels.base.InboundKind): message | listened | greeting.
    kind: str = Field(default="message", sa_column_kwargs={"server_default": "message"})
    created_at: datetime = Field(default_factory=utcnow)
    reply_to_id: int | None = Field(default=None, foreign_key="message.id")
    # Inbound: received -> processed.  Outbound: pending -> sent | failed.
    status: str = Field(default=ProcessingStatus.RECEIVED.value, index=True)
    # Understanding (inbound only).
    intent: str | None = Field(default=None, index=True)
    intent_confidence: float | None = None
    low_confidence: bool | None = None
    sentiment: str | None = None
    sentiment_confidence: float | None = None
    abusive: bool | None = None
    abusive_score: float | None = None
    wants_human: bool | None = None
    language: str | None = None
    # Decision (inbound only).
    kb_article_id: str | None = None
    kb_score: float | None = None
    action: str | None = None
    reason: str | None = None
    processed_at: datetime | None = None
    # Inbound: what the advocacy ladder's patterns found in `text` (bot.crm.ladder.text_signs), found once
    # when the message is decided; None: not yet (they are matched when read), or the text was erased.
    ladder_signs: int | None = None
    raw: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # Inbound: whether the channel vouched that the author wrote it (channels.base.Author.verified): an e-mail
    # whose sender failed authentication is False, and its author is trusted with nothing.
    sender_verified: bool = Field(default=True, sa_column_kwargs={"server_default": sa_true()})


class Idea(SQLModel, table=True):
    """An idea customers suggested to the brand: the first suggestion's words, and one vote per distinct
    customer who suggested it (`IdeaMention`s; bot/insights/ideas.py groups near-duplicates)."""

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", index=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    status: str = "new"
    votes: int = 1
    created_at: datetime = Field(default_factory=utcnow)


class IdeaMention(SQLModel, table=True):
    """A customer's message suggesting an idea: the first made the idea, later ones in other words (by anyone)
    were grouped into it; `similarity` is how close it came to the idea (None for the first)."""

    id: int | None = Field(default=None, primary_key=True)
    idea_id: int = Field(foreign_key="idea.id", index=True)
    message_id: int = Field(foreign_key="message.id", unique=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    similarity: float | None = None
    created_at: datetime = Field(default_factory=utcnow)


class LadderChange(SQLModel, table=True):
    """The history of a contact's advocacy stage: every move, with the rule that caused it."""

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    from_stage: str | None = None
    to_stage: str
    reason: str
    message_id: int | None = Field(default=None, foreign_key="message.id")
    changed_at: datetime = Field(default_factory=utcnow, index=True)


class FollowUp(SQLModel, table=True):
    """A message to send later ("did that fix it?"), claimed by one worker when due."""

    __table_args__ = (Index("ix_followup_status_due_at", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    channel: str
    template: str
    due_at: datetime
    status: str = FollowUpStatus.PENDING.value
    attempts: int = 0
    last_error: str | None = None
    claimed_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    # The outbound message it was queued as (the outbox then sends it); None while still due.
    message_id: int | None = Field(default=None, index=True)
    # A follow-up written by staff: its text, and who scheduled it.
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    staff_id: int | None = None


class Staff(SQLModel, table=True):
    """A person on the brand's side: agent, marketer or admin."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True)
    name: str | None = None
    role: str = StaffRole.AGENT.value
    password_hash: str | None = None
    api_token_hash: str | None = Field(default=None, index=True)
    slack_user_id: str | None = Field(default=None, index=True)
    # The team whose canned replies they use (None: only the replies meant for everyone).
    team: str | None = None
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    # Every console session carries the version it was opened at; logging out bumps it, which ends all of
    # this person's sessions at once (a copied cookie included).
    session_version: int = 0


class AuditEvent(SQLModel, table=True):
    """Who did what, when, and why: state changes, staff actions, exports, merges, erasures."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor_kind: str  # system | bot | staff | customer
    actor_id: int | None = None
    action: str = Field(index=True)
    subject_type: str
    subject_id: int | None = None
    details: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


class Outbox(SQLModel, table=True):
    """Every outbound message is a row here before it is sent; `idempotency_key` makes it happen once."""

    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    message_id: int = Field(foreign_key="message.id", index=True)
    channel: str
    thread_id: str
    reply_to_external_id: str | None = None
    # The title of the message it answers, on channels that have one (an e-mail's subject).
    subject: str | None = None
    # The ids of the earlier messages in the thread it answers, oldest first, space-separated (an e-mail's
    # References: a reply's References are its parent's plus the parent's own id).
    thread_references: str | None = None
    text: str = Field(sa_column=Column(Text, nullable=False))
    status: str = OutboxStatus.PENDING.value
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    claimed_until: datetime | None = None
    last_error: str | None = None
    external_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class MailboxPosition(SQLModel, table=True):
    """How far the IMAP poller has read a mailbox folder: mails with a higher UID under the same UIDVALIDITY
    are new (both are 32-bit unsigned numbers, hence BIGINT)."""

    mailbox: str = Field(primary_key=True)
    uidvalidity: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_uid: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class ChannelCursor(SQLModel, table=True):
    """A poller's position on its platform (X's `since_id`, Telegram's offset), kept across restarts."""

    key: str = Field(primary_key=True)
    value: str
    updated_at: datetime = Field(default_factory=utcnow)


class Note(SQLModel, table=True):
    """An internal note staff leave on a conversation; never sent to the customer."""

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    staff_id: int = Field(foreign_key="staff.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class IdentityVerification(SQLModel, table=True):
    """A customer proving they own an e-mail address: the bot mails a one-time code (only its hash is
    kept), the customer sends it back in the conversation they asked from (bot/engagement/identity.py)."""

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    # awaiting_email (the bot asked for an address) | pending (code sent) | verified | failed | expired
    status: str = Field(index=True)
    email: str | None = None
    code_hash: str | None = None
    attempts: int = 0
    expires_at: datetime
    created_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None
    # A data request from a sender nobody vouched for (an unauthenticated e-mail): it goes ahead only once
    # the code mailed to the address comes back.
    data_request_id: int | None = Field(default=None, foreign_key="datarequest.id")


class ContactMerge(SQLModel, table=True):
    """Two contacts made one (`from_contact` folded into `into_contact`), with the rows that moved, so the
    merge can be undone exactly."""

    id: int | None = Field(default=None, primary_key=True)
    into_contact_id: int = Field(foreign_key="contact.id", index=True)
    from_contact_id: int = Field(foreign_key="contact.id", index=True)
    # {"identity": [ids], "conversation": [...], "message": [...], ...} moved from `from_contact`.
    moved: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    reason: str
    staff_id: int | None = None
    merged_at: datetime = Field(default_factory=utcnow)
    undone_at: datetime | None = None
    undone_by_staff_id: int | None = None


# The response log (bot/insights/) finds each message's reply by `reply_to_id`.
Index("ix_message_reply_to_id", Message.reply_to_id)


class SupportPost(SQLModel, table=True):
    """A post to the Slack support channel, written in the transaction of what it reports and posted
    (`chat.postMessage`) by bot/support/slack_posts.py: an escalation (kept up to date with `chat.update`), or
    an alert (`text`, e.g. a complaint spike; posted once, never updated).

    `version` goes up whenever the conversation changes hands; the post shows `posted_version`, so a row with
    `posted_version < version` needs an update. `ts` is Slack's id of the post (None until it is posted).
    """

    __table_args__ = (Index("ix_supportpost_status_next_attempt_at", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # escalation | alert
    kind: str = Field(default="escalation", sa_column_kwargs={"server_default": "escalation"})
    # The escalated conversation (None for an alert).
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    # An alert's words (Slack mrkdwn-escaped when posted).
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The escalated customer message shown in the post.
    message_id: int | None = Field(default=None, foreign_key="message.id")
    support_channel: str
    ts: str | None = Field(default=None, index=True)
    status: str = "pending"  # pending (not posted yet) | posted | failed (gave up posting)
    version: int = 1
    posted_version: int = 0
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    claimed_until: datetime | None = None
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    posted_at: datetime | None = None


class ModerationItem(SQLModel, table=True):
    """A customer message held for staff: flagged abusive (no reply was sent), with the model's reason and
    score, until staff mark it fine (the bot answers it once), hide it, or block its author
    (bot/moderation/queue.py)."""

    __table_args__ = (Index("ix_moderationitem_status_id", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", unique=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    reason: str
    score: float | None = None
    # The words that weighed most in the abuse score (bot/runtime/analysis.py), shown highlighted to staff.
    flagged_words: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # open | fine (answered as usual) | hidden (removed on the platform) | needs_human (can't be hidden by
    # the bot) | blocked (author blocked from bot replies)
    status: str = "open"
    created_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None
    decided_by: int | None = Field(default=None, foreign_key="staff.id")
    outcome: str | None = None


class ContactBlock(SQLModel, table=True):
    """The bot gives no replies to a contact until `until` (a moderation decision; lifted early by staff)."""

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    until: datetime
    reason: str
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = Field(default_factory=utcnow)
    lifted_at: datetime | None = None


class DataRequest(SQLModel, table=True):
    """A customer asking what is stored about them (`access`) or to delete it (`erasure`), from a channel
    identity (bot/crm/data_rights.py). Only a verified requester's request is ever fulfilled."""

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    identity_id: int | None = Field(default=None, foreign_key="identity.id")
    message_id: int | None = Field(default=None, foreign_key="message.id")
    kind: str  # access | erasure
    # unverified (the identity is not proven; nothing exposed) | open (for staff) | fulfilled | rejected
    status: str = Field(default="open", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    note: str | None = None


class WebhookEndpoint(SQLModel, table=True):
    """An integration's URL that receives the event types it subscribed to, signed with its secret
    (bot/delivery/webhooks.py). Disabled by itself after too many failures in a row; an admin enables it
    again."""

    id: int | None = Field(default=None, primary_key=True)
    url: str
    # Signs every delivery (HMAC-SHA256); shown once when the endpoint is added.
    secret: str
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = True
    consecutive_failures: int = 0
    disabled_reason: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class WebhookEvent(SQLModel, table=True):
    """Something integrations hear about, written in the same transaction as the change it describes."""

    id: str = Field(primary_key=True)  # "evt_" + random hex: receivers deduplicate on it
    type: str = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class WebhookDelivery(SQLModel, table=True):
    """One event on its way to one endpoint: pending -> delivered | failed; the admins' delivery log."""

    __table_args__ = (Index("ix_webhookdelivery_status_next_attempt_at", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(foreign_key="webhookevent.id", index=True)
    endpoint_id: int = Field(foreign_key="webhookendpoint.id", index=True)
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    claimed_until: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None


class MessageVector(SQLModel, table=True):
    """The encoder's vector of an inbound message, kept from the one pass that understood it, so topics,
    knowledge gaps, ideas and the learning loop group and retrain without encoding again
    (bot/insights/vectors.py). Vectors of another encoder (`encoder` is its name) are never compared."""

    message_id: int = Field(foreign_key="message.id", primary_key=True)
    encoder: str = Field(index=True)
    # float16, little-endian; L2-normalised.
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ComplaintSpike(SQLModel, table=True):
    """A complaint topic that spiked on a UTC day ("delivery complaints 3x their 4-week average today"):
    written once per spike, with the Slack alert and the webhook event in the same transaction; a later check
    the same day that finds the same complaints updates the counts instead of alerting again
    (bot/insights/topics.py)."""

    id: int | None = Field(default=None, primary_key=True)
    day: str = Field(index=True)  # YYYY-MM-DD, UTC
    label: str
    words: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    article_id: str | None = None
    today: int
    daily_average: float
    # The day's complaints in the topic (what later checks compare with, so one spike alerts once).
    message_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DigestRun(SQLModel, table=True):
    """The weekly digest e-mail of one ISO week ("2026-W49"): the row is the claim, so however many
    workers' schedulers check at once, one sends (bot/insights/digest.py). `sent_at` stays empty until the
    SMTP server took the mail; a claim left unsent (a refused send, a dead worker) is taken again later."""

    week: str = Field(primary_key=True)
    claimed_at: datetime = Field(default_factory=utcnow)
    attempts: int = 1
    sent_at: datetime | None = None
    recipients: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Correction(SQLModel, table=True):
    """How a message should have been read, according to staff (an agent in the console, "not abuse" in the
    moderation queue) or a labelled CSV: the learning loop's training data (bot/insights/corrections.py).

    One row per message and aspect (the latest word wins); imported rows have no message, only `text`.
    """

    __table_args__ = (UniqueConstraint("message_id", "aspect", name="uq_correction_message_aspect"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: int | None = Field(default=None, foreign_key="message.id", index=True)
    # The text of an imported example (a message's correction reads the message's text).
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # intent | sentiment | abusive | article
    aspect: str = Field(index=True)
    # The right reading: an intent, a sentiment, "true" / "false" (abusive), "right" / "wrong" (article).
    value: str
    # What the bot had read (intent, sentiment, "true"/"false", or the article used).
    was: str | None = None
    # article: the article the bot used, and its score (the answer threshold is recalibrated from these).
    article_id: str | None = None
    score: float | None = None
    # console | moderation | csv:<file name>
    source: str
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ConversationTag(SQLModel, table=True):
    """A label staff put on a conversation ("refund", "vip"), for filtering the queue."""

    __table_args__ = (UniqueConstraint("conversation_id", "tag", name="uq_conversationtag_conversation_tag"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    tag: str = Field(index=True)
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = Field(default_factory=utcnow)


class ConversationRead(SQLModel, table=True):
    """How far a staff member has read a conversation: customer messages after `last_read_message_id` are
    unread for them (the queue's counts and the tab title)."""

    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", primary_key=True)
    last_read_message_id: int
    read_at: datetime = Field(default_factory=utcnow)


class CannedReply(SQLModel, table=True):
    """A saved reply staff insert with its shortcut ("/refund"); placeholders such as {customer_name} are
    filled for the conversation (bot/support/canned.py). `team` "": for every team."""

    __table_args__ = (UniqueConstraint("team", "shortcut", name="uq_cannedreply_team_shortcut"),)

    id: int | None = Field(default=None, primary_key=True)
    shortcut: str
    title: str
    text: str = Field(sa_column=Column(Text, nullable=False))
    team: str = Field(default="", index=True)
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class RateLimitWindow(SQLModel, table=True):
    """The current window of one rate-limit key (bot/crm/rate_limits.py): when it started and the hits in
    it. Shared by every worker, so a limit holds however many there are."""

    key: str = Field(primary_key=True)  # "<limit>:<hash of what is limited>": no address stored
    started: float  # seconds since the epoch
    hits: int = 0


class WebchatSession(SQLModel, table=True):
    """A web chat session the server opened: only the hash of the token its browser or API client holds
    (reading or writing the session later needs the token, not just the session id)."""

    thread_id: str = Field(primary_key=True)  # the conversation's thread id for this session
    token_hash: str
    created_at: datetime = Field(default_factory=utcnow)
    # Typing indicators (bot/support/webchat_status.py): when the customer last said they were typing, and
    # when a staff member (and who) last did in the console; None when they stopped.
    customer_typing_at: datetime | None = None
    staff_typing_at: datetime | None = None
    staff_typing_id: int | None = None
