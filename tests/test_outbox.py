"""The outbox sends each queued message once, retries temporary failures with backoff honouring the
platform's retry-after, and marks a message failed for staff after the last attempt."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, func, select

from bot.crm.db import create_db_engine, session_scope, upgrade_database
from bot.crm.models import Contact, Conversation, Message, Outbox, utcnow
from bot.delivery.outbox import MAX_REFERENCES, deliver_due, enqueue
from channels.base import Channel, OutboundMessage, PermanentSendError, TemporarySendError


class ScriptedChannel(Channel):
    """An in-process channel (the errbot-style test backend): fails as scripted, records what it sent."""

    name = "slack"

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return f"ts-{len(self.sent)}"


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    yield engine
    engine.dispose()


def slack_conversation(session: Session) -> Conversation:
    contact = Contact()
    session.add(contact)
    session.flush()
    conversation = Conversation(contact_id=contact.id, channel="slack", thread_id="C1:1700000000.1")
    session.add(conversation)
    session.flush()
    return conversation


def queue_reply(engine, key: str = "reply:1") -> int:
    with session_scope(engine) as session:
        conversation = slack_conversation(session)
        message = enqueue(session, conversation=conversation, text="Hello!", idempotency_key=key)
        return message.id


def outbox_row(engine) -> Outbox:
    with Session(engine) as session:
        return session.exec(select(Outbox)).one()


def test_a_queued_message_is_sent_once_and_its_platform_id_recorded(engine):
    message_id = queue_reply(engine)
    channel = ScriptedChannel()

    first = deliver_due(engine, {"slack": channel})
    second = deliver_due(engine, {"slack": channel})

    assert len(first.sent) == 1 and second.sent == []
    assert [m.thread_id for m in channel.sent] == ["C1:1700000000.1"]
    with Session(engine) as session:
        message = session.get(Message, message_id)
        conversation = session.get(Conversation, message.conversation_id)
    assert (message.status, message.external_id) == ("sent", "ts-1")
    assert conversation.first_response_at is not None


def test_the_same_idempotency_key_queues_one_message(engine):
    queue_reply(engine, key="reply:7")
    with session_scope(engine) as session:
        conversation = session.exec(select(Conversation)).one()
        enqueue(session, conversation=conversation, text="Hello again!", idempotency_key="reply:7")
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Outbox)).one() == 1


def test_a_rate_limit_is_waited_out_then_the_message_goes_once(engine):
    queue_reply(engine)
    channel = ScriptedChannel(TemporarySendError("429 rate limited", retry_after=30))
    now = utcnow()

    report = deliver_due(engine, {"slack": channel}, now=now)
    assert report.retried and not channel.sent
    assert outbox_row(engine).next_attempt_at >= now + timedelta(seconds=30)

    assert deliver_due(engine, {"slack": channel}, now=now + timedelta(seconds=10)).sent == []
    assert len(deliver_due(engine, {"slack": channel}, now=now + timedelta(seconds=31)).sent) == 1
    assert len(channel.sent) == 1
    assert outbox_row(engine).attempts == 2


def test_server_errors_back_off_exponentially_and_fail_after_the_last_attempt(engine):
    message_id = queue_reply(engine)
    channel = ScriptedChannel(*[TemporarySendError("500") for _ in range(3)])
    now = utcnow()
    delays = []
    for _ in range(3):
        deliver_due(engine, {"slack": channel}, now=now, max_attempts=3, backoff_base_seconds=2)
        row = outbox_row(engine)
        delays.append((row.next_attempt_at - now).total_seconds())
        now = row.next_attempt_at
    row = outbox_row(engine)
    assert row.status == "failed" and row.attempts == 3 and row.last_error == "500"
    assert delays[:2] == [2.0, 4.0]
    with Session(engine) as session:
        assert session.get(Message, message_id).status == "failed"


def test_a_permanent_error_fails_at_once(engine):
    queue_reply(engine)
    deliver_due(engine, {"slack": ScriptedChannel(PermanentSendError("channel_not_found"))})
    row = outbox_row(engine)
    assert (row.status, row.attempts) == ("failed", 1)


def test_a_row_claimed_by_another_worker_is_left_alone_until_the_claim_expires(engine):
    queue_reply(engine)
    now = utcnow()
    with session_scope(engine) as session:
        row = session.exec(select(Outbox)).one()
        row.claimed_until = now + timedelta(seconds=60)
        session.add(row)
    channel = ScriptedChannel()
    assert deliver_due(engine, {"slack": channel}, now=now).sent == []
    assert len(deliver_due(engine, {"slack": channel}, now=now + timedelta(seconds=61)).sent) == 1


class RememberingChannel(ScriptedChannel):
    """A platform that can be asked whether an earlier attempt posted the message (like Slack's history)."""

    def __init__(self, already_posted: dict[str, str]) -> None:
        super().__init__()
        self.already_posted = already_posted
        self.asked: list[str] = []

    def find_sent(self, message: OutboundMessage) -> str | None:
        self.asked.append(message.idempotency_key)
        return self.already_posted.get(message.idempotency_key)


def test_a_send_interrupted_by_a_stop_is_not_repeated_where_the_platform_can_be_asked(engine):
    message_id = queue_reply(engine, key="reply:9")
    now = utcnow()
    with session_scope(engine) as session:  # a worker claimed the row, posted it, and died before recording
        row = session.exec(select(Outbox)).one()
        row.claimed_until = now - timedelta(seconds=1)
        session.add(row)
    channel = RememberingChannel({"reply:9": "ts-posted-before-the-crash"})

    report = deliver_due(engine, {"slack": channel}, now=now)

    assert report.sent and channel.sent == [] and channel.asked == ["reply:9"]
    with Session(engine) as session:
        assert session.get(Message, message_id).external_id == "ts-posted-before-the-crash"


def test_a_fresh_row_is_sent_without_asking_the_platform(engine):
    queue_reply(engine, key="reply:10")
    channel = RememberingChannel({})
    assert len(deliver_due(engine, {"slack": channel}).sent) == 1
    assert channel.asked == [] and len(channel.sent) == 1


def test_an_unexpected_error_in_one_channel_is_retried_and_does_not_stop_delivery(engine):
    queue_reply(engine)
    channel = ScriptedChannel(RuntimeError("bug in an adapter"))
    report = deliver_due(engine, {"slack": channel})
    row = outbox_row(engine)
    assert report.retried == [row.id] and row.status == "pending" and "RuntimeError" in row.last_error


def test_after_a_server_error_the_next_attempt_asks_the_platform_before_posting(engine):
    queue_reply(engine, key="reply:11")
    now = utcnow()
    channel = RememberingChannel({})
    channel.failures = [TemporarySendError("502 bad gateway (the post may have gone out)")]
    deliver_due(engine, {"slack": channel}, now=now)
    assert channel.asked == []

    channel.already_posted["reply:11"] = "ts-from-the-502"
    report = deliver_due(engine, {"slack": channel}, now=now + timedelta(seconds=10))

    assert report.sent and channel.asked == ["reply:11"] and channel.sent == []
    assert outbox_row(engine).external_id == "ts-from-the-502"


def test_after_a_rate_limit_the_next_attempt_posts_without_asking(engine):
    queue_reply(engine, key="reply:12")
    now = utcnow()
    channel = RememberingChannel({})
    channel.failures = [TemporarySendError("429", retry_after=5)]
    deliver_due(engine, {"slack": channel}, now=now)
    deliver_due(engine, {"slack": channel}, now=now + timedelta(seconds=6))
    assert channel.asked == [] and len(channel.sent) == 1


def test_a_web_chat_reply_is_delivered_by_the_transaction_that_stores_it(engine):
    from bot.runtime.metrics import MESSAGES_OUT
    from channels.webchat import StoredChannel

    counted = MESSAGES_OUT.labels("webchat")
    before = counted._value.get()

    def queue(key: str, *, fail: bool = False) -> None:
        with session_scope(engine) as session:
            contact = Contact()
            session.add(contact)
            session.flush()
            conversation = Conversation(contact_id=contact.id, channel="webchat", thread_id=key)
            session.add(conversation)
            session.flush()
            enqueue(
                session,
                conversation=conversation,
                text="Hello!",
                idempotency_key=key,
                channels={"webchat": StoredChannel(), "slack": ScriptedChannel()},
            )
            if fail:
                raise RuntimeError("the decision failed after queueing")

    with pytest.raises(RuntimeError):
        queue("reply:rolled-back", fail=True)
    assert counted._value.get() == before  # nothing was delivered, nothing counted
    queue("reply:1")
    with Session(engine) as session:
        row = session.exec(select(Outbox)).one()
        message = session.get(Message, row.message_id)
        conversation = session.get(Conversation, message.conversation_id)
    # No deliver_due ran: the row is sent, named the way the channel names it, and counted once.
    assert (row.status, row.attempts, row.external_id) == ("sent", 1, "webchat:reply:1")
    assert (message.status, message.external_id) == ("sent", "webchat:reply:1")
    assert conversation.first_response_at == row.sent_at
    assert counted._value.get() == before + 1
    assert deliver_due(engine, {"webchat": StoredChannel()}).sent == []


def test_a_reply_carries_the_thread_it_answers_trimmed_to_the_first_and_latest_ids(engine):
    thread = [f"<m{n}@mail.example>" for n in range(30)]
    with session_scope(engine) as session:
        conversation = slack_conversation(session)
        customer = Message(
            conversation_id=conversation.id,
            contact_id=conversation.contact_id,
            channel="slack",
            external_id="<m30@mail.example>",
            direction="in",
            author_kind="customer",
            text="and another thing",
            raw={"subject": "Re: My order", "references": thread},
        )
        session.add(customer)
        session.flush()
        enqueue(session, conversation=conversation, text="Hello!", idempotency_key="r:1", reply_to=customer)
    channel = ScriptedChannel()
    deliver_due(engine, {"slack": channel})
    (sent,) = channel.sent
    assert sent.reply_to_external_id == "<m30@mail.example>" and sent.subject == "Re: My order"
    assert sent.references == (thread[0], *thread[-(MAX_REFERENCES - 1) :])
