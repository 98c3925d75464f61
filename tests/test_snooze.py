"""Snoozed conversations come back to the queue when their time comes, each exactly once however many
workers run the job at the same moment (SQLite and a real PostgreSQL), and never before their time."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.crm.db import create_db_engine, session_scope, upgrade_database
from bot.crm.models import AuditEvent, Contact, Conversation, Staff, utcnow
from bot.support.snooze import snooze, wake_due_snoozes


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 's.sqlite3'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    upgrade_database(url)
    engine = create_db_engine(url)
    yield engine
    engine.dispose()


def conversations_with_staff(engine, count: int) -> tuple[int, list[int]]:
    with session_scope(engine) as session:
        agent = Staff(email="ana@fernhill.example", role="agent", name="Ana")
        session.add(agent)
        ids = []
        for number in range(count):
            contact = Contact(display_name=f"Customer {number}")
            session.add(contact)
            session.flush()
            conversation = Conversation(
                contact_id=contact.id, channel="webchat", thread_id=f"t{number}", state="human"
            )
            session.add(conversation)
            session.flush()
            ids.append(conversation.id)
        return agent.id, ids


def test_a_snooze_ends_at_its_time_not_before(engine):
    agent, (first, second) = conversations_with_staff(engine, 2)
    now = utcnow()
    snooze(engine, first, until=now + timedelta(minutes=10), staff_id=agent)
    snooze(engine, second, until=now + timedelta(hours=2), staff_id=agent)

    assert wake_due_snoozes(engine, now=now + timedelta(minutes=9)) == []
    assert wake_due_snoozes(engine, now=now + timedelta(minutes=11)) == [first]
    with session_scope(engine, read_only=True) as session:
        woken, still = session.get(Conversation, first), session.get(Conversation, second)
        assert (woken.state, woken.snoozed_until) == ("human", None)
        assert still.state == "snoozed"
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "conversation.woken")).one()
        assert event.subject_id == first and event.details["why"] == "the snooze ended"


def test_only_a_conversation_with_staff_and_a_future_time_can_be_snoozed(engine):
    agent, (conversation,) = conversations_with_staff(engine, 1)
    with pytest.raises(ValueError, match="future"):
        snooze(engine, conversation, until=utcnow() - timedelta(minutes=1), staff_id=agent)
    with pytest.raises(ValueError, match="time zone"):
        snooze(engine, conversation, until=utcnow().replace(tzinfo=None) + timedelta(hours=1), staff_id=agent)
    with session_scope(engine) as session:
        session.get(Conversation, conversation).state = "bot"
    with pytest.raises(ValueError, match="only a conversation with staff"):
        snooze(engine, conversation, until=utcnow() + timedelta(hours=1), staff_id=agent)


def test_workers_waking_snoozes_at_once_wake_each_conversation_once(engine):
    agent, ids = conversations_with_staff(engine, 12)
    now = utcnow()
    for conversation in ids:
        snooze(engine, conversation, until=now + timedelta(seconds=1), staff_id=agent)
    later = now + timedelta(minutes=1)
    woken: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(3)

    def worker() -> None:
        start.wait()
        got = wake_due_snoozes(engine, now=later, limit=5)
        while got:
            with lock:
                woken.extend(got)
            got = wake_due_snoozes(engine, now=later, limit=5)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(woken) == sorted(ids)  # every one, none twice
    with session_scope(engine, read_only=True) as session:
        events = session.exec(
            select(AuditEvent.subject_id).where(AuditEvent.action == "conversation.woken")
        ).all()
    assert sorted(events) == sorted(ids)
