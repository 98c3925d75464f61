"""The one path every inbound message takes.

store (idempotent on channel + external id) -> identify contact -> find or open conversation -> understand
(one encoder pass) -> decide through the chain of steps (bot/pipeline/chain.py: rating, identity, data
rights, listening, greeting, human owns, policy, language, moderation) -> carry the decision out (queue the
reply in the outbox, escalate, record the idea: bot/pipeline/outcome.py) -> log the decision -> update the
advocacy stage -> deliver.

Two transactions keep the model out of any database lock: the first stores the message (after it commits, the
message is never lost: `recover_unprocessed` finishes it after a crash); the second records the decision and
queues the reply, and only the transaction that moves the message from `received` to `processed` may do that,
so a message is decided and answered once however often it is delivered or retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, Row, bindparam, insert, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from bot.crm.db import is_transient_conflict, session_scope
from bot.crm.ladder import standing, text_signs, update_ladder
from bot.crm.models import (
    AuthorKind,
    Contact,
    Conversation,
    ConversationState,
    Direction,
    Identity,
    Message,
    ModerationItem,
    ProcessingStatus,
    utcnow,
)
from bot.crm.vectors import store_vector
from bot.delivery.outbox import deliver_due
from bot.delivery.webhooks import ladder_change_event, message_data, record_events
from bot.pipeline.chain import decide
from bot.pipeline.outcome import carry_out
from bot.pipeline.turn import Turn
from bot.policy.routing import Action, Decision
from bot.runtime.analysis import Analysis
from bot.runtime.container import Runtime
from bot.runtime.metrics import DECISIONS, DUPLICATES, MESSAGES_IN, MODEL_SECONDS, PIPELINE_SECONDS
from bot.support.handoff import reopen_conversation, wake_conversation
from bot.support.slack_posts import deliver_support_posts, support_posts_changed
from channels.base import InboundMessage

__all__ = [
    "PipelineResult",
    "Reply",
    "accept_inbound",
    "handle_inbound",
    "process_stored",
    "recover_unprocessed",
    "store_inbound",
]

log = logging.getLogger("socialbot.pipeline")


@dataclass(frozen=True, slots=True)
class Reply:
    message_id: int
    text: str
    status: str


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """What happened to one inbound message.

    Args:
        duplicate: the message had been received before; nothing new was stored or sent.
        state: the conversation's state afterwards (who speaks next).
        replies: the replies queued for this message (for a duplicate: the ones queued the first time).
    """

    message_id: int
    conversation_id: int
    contact_id: int
    duplicate: bool
    state: str
    action: str | None
    reason: str | None
    replies: tuple[Reply, ...]


def _clean(text: str) -> str:
    # PostgreSQL text can't hold NUL; nothing legitimate needs it.
    return text.replace("\x00", "")


_MESSAGE, _CONTACT = Message.__table__, Contact.__table__
_CONVERSATION, _IDENTITY = Conversation.__table__, Identity.__table__

# The message path's statements, built once (building one costs more Python than running it; the values
# are bound per message).
_STORED_BEFORE = select(_MESSAGE.c.id).where(
    _MESSAGE.c.channel == bindparam("channel"), _MESSAGE.c.external_id == bindparam("external_id")
)
_IDENTITY_OF = select(
    _IDENTITY.c.id, _IDENTITY.c.contact_id, _IDENTITY.c.handle, _IDENTITY.c.verified, _IDENTITY.c.bounced_at
).where(_IDENTITY.c.channel == bindparam("channel"), _IDENTITY.c.external_user_id == bindparam("user"))
_CONVERSATION_OF = (
    select(_CONVERSATION.c.id, _CONVERSATION.c.state)
    .where(_CONVERSATION.c.channel == bindparam("channel"), _CONVERSATION.c.thread_id == bindparam("thread"))
    .order_by(_CONVERSATION.c.id.desc())
    .limit(1)
)
_INSERT_MESSAGE = insert(_MESSAGE)
_CONTACT_SEEN = (
    update(_CONTACT).where(_CONTACT.c.id == bindparam("row_id")).values(last_seen_at=bindparam("at"))
)
_CONVERSATION_SPOKEN = (
    update(_CONVERSATION)
    .where(_CONVERSATION.c.id == bindparam("row_id"))
    .values(last_message_at=bindparam("at"))
)
_CLAIM = (
    update(Message)
    .where(Message.id == bindparam("row_id"), Message.status == ProcessingStatus.RECEIVED.value)
    .values(status=ProcessingStatus.PROCESSED.value)
    .returning(Message)
)
_RECORD = update(_MESSAGE).where(_MESSAGE.c.id == bindparam("row_id"))
_CONVERSATION_ROW = select(Conversation).where(Conversation.id == bindparam("row_id"))
# PostgreSQL: the conversation's row locked (after the contact's: the order `store_inbound` updates them in).
_CONVERSATION_LOCKED = _CONVERSATION_ROW.with_for_update()


def _identify_contact(connection: Connection, inbound: InboundMessage) -> int:
    """The id of the contact `inbound`'s author is (a new one for an author never seen on its channel)."""
    author = inbound.author
    identity = connection.execute(
        _IDENTITY_OF, {"channel": inbound.channel, "user": author.external_id}
    ).first()
    if identity is not None:
        changes = {}
        if author.handle and identity.handle != author.handle:
            changes["handle"] = author.handle
        if author.verified and (not identity.verified or identity.bounced_at is not None):
            # The channel vouches for this author (an authenticated mail): the address is theirs and works.
            changes.update(verified=True, bounced_at=None, bounce_detail=None)
        if changes:
            connection.execute(update(_IDENTITY).where(_IDENTITY.c.id == identity.id).values(**changes))
        return identity.contact_id
    contact_id = connection.execute(
        insert(_CONTACT).values(display_name=author.display_name or author.handle)
    ).inserted_primary_key[0]
    connection.execute(
        insert(_IDENTITY).values(
            contact_id=contact_id,
            channel=inbound.channel,
            external_user_id=author.external_id,
            handle=author.handle,
            display_name=author.display_name,
            verified=author.verified,  # chat platforms vouch for their ids; e-mail only when authenticated
        )
    )
    return contact_id


def _find_or_open_conversation(connection: Connection, inbound: InboundMessage, contact_id: int) -> Row:
    """The thread's latest conversation (id, state), opened for `contact_id` if there is none."""
    found = connection.execute(
        _CONVERSATION_OF, {"channel": inbound.channel, "thread": inbound.thread_id}
    ).first()
    if found is not None:
        return found
    return connection.execute(
        insert(_CONVERSATION)
        .values(contact_id=contact_id, channel=inbound.channel, thread_id=inbound.thread_id)
        .returning(_CONVERSATION.c.id, _CONVERSATION.c.state)
    ).one()


def _touch(
    session: Session,
    message_id: int,
    contact_id: int,
    conversation: Row,
    *,
    reopen_to_assignee: bool,
) -> None:
    """The customer was seen and spoke in the conversation, which reopens if it was resolved and comes back
    to staff if it was snoozed."""
    now = utcnow()
    connection = session.connection()
    connection.execute(_CONTACT_SEEN, {"row_id": contact_id, "at": now})
    if conversation.state not in (ConversationState.RESOLVED, ConversationState.SNOOZED):
        connection.execute(_CONVERSATION_SPOKEN, {"row_id": conversation.id, "at": now})
        return
    # Rare: the conversation changes hands, through the services that audit it (in the ORM).
    changed = session.get(Conversation, conversation.id)
    if changed.state == ConversationState.RESOLVED:
        reopen_conversation(session, changed, message_id=message_id, to_assignee=reopen_to_assignee)
    else:
        wake_conversation(session, changed, why="the customer wrote", message_id=message_id)
    changed.last_message_at = now
    session.add(changed)


def store_inbound(runtime: Runtime, inbound: InboundMessage) -> tuple[int, bool]:
    """Store the message (the first, fast step: a webhook calls it before acknowledging the platform).

    Returns its id and whether it had been stored before (a platform's retry: don't process it again).
    """
    for attempt in range(3):
        try:
            return _store_once(runtime, inbound)
        except _ConcurrentFirstContact:
            # Another worker stored this customer's first message at the same moment; now they exist.
            log.info("a new contact was created concurrently by another worker (attempt %d)", attempt + 1)
        except OperationalError as error:
            if not is_transient_conflict(error):
                raise
            # PostgreSQL chose this transaction to break a deadlock with another worker's (e.g. the same
            # message delivered twice at once); nothing of it was stored.
            log.info("storing conflicted with another worker's transaction (attempt %d)", attempt + 1)
    return _store_once(runtime, inbound, last_attempt=True)


class _ConcurrentFirstContact(Exception):
    """Storing conflicted on the contact's identity or conversation, not on the message itself."""


def _store_once(runtime: Runtime, inbound: InboundMessage, *, last_attempt: bool = False) -> tuple[int, bool]:
    try:
        with session_scope(runtime.engine) as session:
            # Plain SQL statements: the ORM's unit of work cost more than the statements themselves here.
            connection = session.connection()
            # A platform's retry of a stored message changes nothing (no timestamps moved, no rows locked).
            existing = _stored_before(connection, inbound)
            if existing is not None:
                return existing, True
            contact_id = _identify_contact(connection, inbound)
            conversation = _find_or_open_conversation(connection, inbound, contact_id)
            values = {
                "conversation_id": conversation.id,
                "contact_id": contact_id,
                "channel": inbound.channel,
                "external_id": inbound.external_id,
                "direction": Direction.INBOUND.value,
                "author_kind": AuthorKind.CUSTOMER.value,
                "staff_id": None,
                "text": _clean(inbound.text),
                "public": inbound.public,
                "created_at": inbound.received_at,
                "reply_to_id": None,
                "raw": inbound.raw or None,
                "kind": inbound.kind.value,
                "sender_verified": inbound.author.verified,
            }
            message_id = connection.execute(_INSERT_MESSAGE, values).inserted_primary_key[0]
            record_events(connection, [("message.received", message_data(values | {"id": message_id}))])
            # Only now update the contact's and conversation's rows. A copy of this message stored by
            # another worker at the same moment (a platform retry) then meets the unique key before it
            # locks them, so it can't deadlock with the decision on the first copy, which locks them.
            _touch(
                session,
                message_id,
                contact_id,
                conversation,
                reopen_to_assignee=runtime.settings.handoff.reopen_to == "assignee",
            )
    except IntegrityError:
        with session_scope(runtime.engine, read_only=True) as session:
            existing = _stored_before(session.connection(), inbound)
        if existing is None:  # the conflict was something else; let it surface
            if last_attempt:
                raise
            raise _ConcurrentFirstContact from None
        return existing, True
    MESSAGES_IN.labels(inbound.channel).inc()
    return message_id, False


def _stored_before(connection: Connection, inbound: InboundMessage) -> int | None:
    """The id of the stored message with `inbound`'s channel and external id (a platform retry), or None."""
    existing = connection.execute(
        _STORED_BEFORE, {"channel": inbound.channel, "external_id": inbound.external_id}
    ).scalar()
    if existing is not None:
        DUPLICATES.labels(inbound.channel).inc()
        log.info("message %s: delivered again by %s; not processed again", existing, inbound.channel)
    return existing


def _result(session: Session, message_id: int, *, duplicate: bool) -> PipelineResult:
    """What happened to a stored message, read back (its replies' statuses after delivery)."""
    message = session.get(Message, message_id)
    replies = session.exec(
        select(Message)
        .where(Message.reply_to_id == message.id, Message.direction == Direction.OUTBOUND.value)
        .order_by(Message.id)
    ).all()
    return _result_of(
        message, session.get(Conversation, message.conversation_id), replies, duplicate=duplicate
    )


def _result_of(
    message: Message, conversation: Conversation, replies: Sequence[Message], *, duplicate: bool
) -> PipelineResult:
    return PipelineResult(
        message_id=message.id,
        conversation_id=conversation.id,
        contact_id=message.contact_id,
        duplicate=duplicate,
        state=conversation.state,
        action=message.action,
        reason=message.reason,
        replies=tuple(Reply(r.id, r.text, r.status) for r in replies),
    )


def _record(session: Session, message: Message, analysis: Analysis, decision: Decision) -> None:
    """Write the understanding and the decision on the message's row (one plain UPDATE; the session's copy of
    the message shows them too)."""
    understanding, answer = analysis.understanding, analysis.answer
    values = {
        "intent": understanding.intent,
        "intent_confidence": understanding.confidence,
        "low_confidence": understanding.low_confidence,
        "sentiment": understanding.sentiment,
        "sentiment_confidence": understanding.sentiment_confidence,
        "abusive": understanding.abusive,
        "abusive_score": understanding.abusive_score,
        "wants_human": understanding.wants_human,
        "language": analysis.language,
        "kb_article_id": decision.article.id if decision.article is not None else None,
        "kb_score": answer.score if answer is not None else None,
        "action": decision.action.value,
        "reason": decision.reason,
        "processed_at": utcnow(),
        "ladder_signs": text_signs(message.text),  # read once: the ladder reads it on later messages
    }
    session.connection().execute(_RECORD, {"row_id": message.id, **values})
    for name, value in values.items():
        set_committed_value(message, name, value)


def _decide_and_queue(runtime: Runtime, message_id: int, analysis: Analysis) -> PipelineResult | None:
    """Record the decision and queue the reply; return what happened, or None if another worker had already
    done it."""
    with session_scope(runtime.engine) as session:
        # The claim and the message's row in one statement: only the transaction that moves it from
        # `received` gets it back.
        message = session.scalars(
            _CLAIM, {"row_id": message_id}, execution_options={"synchronize_session": False}
        ).first()
        if message is None:
            return None
        # Lock the contact, then the conversation: the order `store_inbound` takes them in (it updates both),
        # so two workers never wait on each other in a circle.
        locked = runtime.engine.dialect.name == "postgresql"
        stood = standing(session, message.contact_id, lock=locked)  # all the decision needs of the contact
        conversation = session.scalars(
            _CONVERSATION_LOCKED if locked else _CONVERSATION_ROW, {"row_id": message.conversation_id}
        ).one()
        turn = decide(Turn(runtime, session, message, conversation, analysis))
        decision = turn.decision
        _record(session, message, analysis, decision)
        if analysis.embedding is not None:  # before carrying out: an idea is grouped by it
            store_vector(session, message.id, analysis.embedding, encoder=analysis.encoder, new=True)
        reply = carry_out(
            turn, priority=1 if analysis.understanding.sentiment == "negative" else 0, first=True
        )
        if decision.action == Action.HUMAN_OWNS:
            support_posts_changed(session, conversation.id)  # its Slack post shows the customer's new words
        change = update_ladder(
            session,
            message.contact_id,
            brand_handles=runtime.settings.brand.handles,
            message_id=message.id,
            stood=stood,
        )
        if change is not None:
            record_events(session.connection(), [ladder_change_event(change)])
        # What happened, as this transaction leaves it (only it could queue a reply to this message).
        result = _result_of(message, conversation, [reply] if reply is not None else [], duplicate=False)
    DECISIONS.labels(decision.action.value, analysis.understanding.intent).inc()
    log.info("message %s: %s", message_id, decision.action.value, extra={"message_id": message_id})
    return result


def process_stored(runtime: Runtime, message_id: int) -> None:
    """Understand, decide and reply to a stored message (a no-op if it was processed already)."""
    with session_scope(runtime.engine, read_only=True) as session:
        message = session.get(Message, message_id)
        text, status, channel = message.text, message.status, message.channel
    if status == ProcessingStatus.RECEIVED:
        _understand_and_decide(runtime, message_id, text)
    _deliver(runtime, channel)


def _understand_and_decide(runtime: Runtime, message_id: int, text: str) -> PipelineResult | None:
    """What deciding the message did, or None if another worker decided it."""
    started = time.perf_counter()
    analysis = runtime.models.analyse(text)
    MODEL_SECONDS.observe(time.perf_counter() - started)
    for attempt in range(1, 4):
        try:
            decided = _decide_and_queue(runtime, message_id, analysis)
            break
        except OperationalError as error:
            if attempt == 3 or not is_transient_conflict(error):
                raise
            log.info(
                "message %s: deciding conflicted with another worker's transaction (attempt %d)",
                message_id,
                attempt,
            )
    if decided is not None:
        PIPELINE_SECONDS.observe(time.perf_counter() - started)
        if decided.action == Action.MODERATE.value:
            _name_flagged_words(runtime, message_id, text, analysis)
    return decided


def _name_flagged_words(runtime: Runtime, message_id: int, text: str, analysis: Analysis) -> None:
    """Show staff why a held-back message was flagged: the words weighing most in its abuse score, on its
    moderation item. It reads the text again once per word, so it runs only for the few messages held back,
    and after the decision committed (no database lock held while the model runs)."""
    if not analysis.understanding.abusive:
        return
    words = runtime.models.abuse_words(text, analysis.understanding.abusive_score)
    if not words:
        return
    try:
        with session_scope(runtime.engine) as session:
            session.exec(
                update(ModerationItem)
                .where(ModerationItem.message_id == message_id)
                .values(flagged_words=list(words))
            )
    except OperationalError as error:  # the message is decided and queued; only the explanation is missing
        log.warning("message %s: the words behind its abuse flag were not saved: %s", message_id, error)


def _deliver(runtime: Runtime, channel: str) -> None:
    adapter = runtime.channels.get(channel)
    # A web chat reply was delivered by the transaction that stored it; the scheduler's outbox job still
    # sweeps every channel for anything left behind.
    if adapter is not None and not adapter.delivers_by_storing:
        deliver_due(runtime.engine, {channel: adapter})
    deliver_support_posts(runtime)  # an escalation's post; returns at once without a support channel


def accept_inbound(runtime: Runtime, inbound: InboundMessage) -> bool:
    """Store a message from a channel adapter and process it in the background (the `InboundSink`).

    Returns once the message is stored, so a webhook can acknowledge the platform at once; False when it had
    been stored before (a platform's retry), in which case nothing more happens.

    Raises:
        sqlalchemy.exc.OperationalError: the database is locked or down; nothing was stored, so the adapter
            must not acknowledge (the platform will retry).
    """
    message_id, duplicate = store_inbound(runtime, inbound)
    if not duplicate:
        runtime.submit(process_stored, runtime, message_id)
    return not duplicate


def handle_inbound(runtime: Runtime, inbound: InboundMessage) -> PipelineResult:
    """Take one inbound message through the whole path and return what happened.

    Raises:
        sqlalchemy.exc.OperationalError: the database is locked or down; nothing was half-stored, the caller
            should tell the sender to retry.
    """
    message_id, duplicate = store_inbound(runtime, inbound)
    decided = None
    if not duplicate:
        # Just stored, so still to be decided (unless another worker is at it: the decision is claimed).
        decided = _understand_and_decide(runtime, message_id, _clean(inbound.text))
        _deliver(runtime, inbound.channel)
    adapter = runtime.channels.get(inbound.channel)
    if decided is not None and (not decided.replies or (adapter is not None and adapter.delivers_by_storing)):
        return decided  # as the deciding transaction left it: nothing was delivered since
    with session_scope(runtime.engine, read_only=True) as session:  # the replies' statuses after delivery
        return _result(session, message_id, duplicate=duplicate)


def recover_unprocessed(runtime: Runtime, *, older_than_seconds: float = 30.0) -> int:
    """Finish messages that were stored but not decided (the process stopped in between); return how many."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with session_scope(runtime.engine) as session:
        pending = session.exec(
            select(Message.id, Message.channel)
            .where(
                Message.direction == Direction.INBOUND.value,
                Message.status == ProcessingStatus.RECEIVED.value,
                Message.created_at <= cutoff,
            )
            .order_by(Message.id)
        ).all()
    for message_id, _channel in pending:
        process_stored(runtime, message_id)
    if pending:
        log.info("recovered %d message(s) stored before a stop", len(pending))
    return len(pending)
