"""Several workers on one real PostgreSQL: every message is decided once and every reply sent once, even when
workers race, die mid-send or shut down; exactly one worker polls each account.

Each "worker" here is a `Runtime` with its own engine and connection pool (what a worker process has); the
fault test kills a real subprocess with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session, select

from bot.crm.db import create_db_engine, session_scope, upgrade_database
from bot.crm.models import Contact, Conversation, Message, Outbox, utcnow
from bot.delivery.outbox import deliver_due, enqueue
from bot.pipeline.inbound import handle_inbound, process_stored, store_inbound
from bot.runtime.leadership import PollerLeadership
from channels.base import Author, Channel, InboundMessage, OutboundMessage

REPO = Path(__file__).resolve().parents[1]


class PlatformChannel(Channel):
    """A platform that records every post (shared by all workers, like the real platform is) and can be
    asked whether a message went out (`find_sent`), as Slack can by message metadata."""

    def __init__(self, name: str = "slack", posted: dict[str, list[str]] | None = None) -> None:
        self.name = name
        self.posted: dict[str, list[str]] = posted if posted is not None else {}
        self._lock = threading.Lock()

    def send(self, message: OutboundMessage) -> str:
        time.sleep(0.002)  # a platform call takes time; widens any race window
        with self._lock:
            self.posted.setdefault(message.idempotency_key, []).append(message.text)
            return f"{self.name}-{message.idempotency_key}-{len(self.posted[message.idempotency_key])}"

    def find_sent(self, message: OutboundMessage) -> str | None:
        with self._lock:
            posts = self.posted.get(message.idempotency_key)
            return f"{self.name}-{message.idempotency_key}-1" if posts else None


@pytest.fixture
def pg_engine(pg_url):
    upgrade_database(pg_url)
    engine = create_db_engine(pg_url)
    yield engine
    engine.dispose()


def queue_replies(engine, count: int, channel: str = "slack") -> list[str]:
    keys = []
    with session_scope(engine) as session:
        contact = Contact()
        session.add(contact)
        session.flush()
        conversation = Conversation(contact_id=contact.id, channel=channel, thread_id="C1:1")
        session.add(conversation)
        session.flush()
        for number in range(count):
            key = f"reply:{number}"
            enqueue(session, conversation=conversation, text=f"answer {number}", idempotency_key=key)
            keys.append(key)
    return keys


def test_eight_workers_delivering_at_once_send_every_outbox_row_exactly_once(pg_url, pg_engine):
    keys = queue_replies(pg_engine, 300)
    platform = PlatformChannel()
    engines = [create_db_engine(pg_url) for _ in range(8)]
    barrier = threading.Barrier(len(engines))

    def worker(engine) -> int:
        barrier.wait()
        sent = 0
        while True:
            report = deliver_due(engine, {"slack": platform}, limit=10)
            if not report.sent:
                return sent
            sent += len(report.sent)

    with ThreadPoolExecutor(len(engines)) as pool:
        per_worker = list(pool.map(worker, engines))
    for engine in engines:
        engine.dispose()

    assert sorted(platform.posted) == sorted(keys)
    assert all(len(posts) == 1 for posts in platform.posted.values())
    assert sum(per_worker) == 300 and sum(1 for n in per_worker if n) >= 2  # the work was really shared
    with Session(pg_engine) as session:
        assert {row.status for row in session.exec(select(Outbox)).all()} == {"sent"}


def make_runtime(make_settings, models, pg_url, platform: Channel):
    from bot.worker.build import build_runtime

    runtime = build_runtime(make_settings(database={"url": pg_url}), models=models)
    runtime.channels["webchat"] = platform
    return runtime


def chat_message(number: int) -> InboundMessage:
    texts = [
        "Thank you, the tent you sold me is wonderful!",
        "My boots fell apart after a week and nobody answers my emails.",
        "Love the new rain jacket, great work!",
    ]
    return InboundMessage(
        channel="webchat",
        external_id=f"s{number}:m{number}",
        thread_id=f"session-{number:04d}",
        author=Author(external_id=f"session-{number:04d}", display_name=f"Customer {number}"),
        text=texts[number % len(texts)],
    )


def test_two_workers_processing_the_same_stored_message_decide_and_reply_once(make_settings, models, pg_url):
    platform = PlatformChannel("webchat")
    first = make_runtime(make_settings, models, pg_url, platform)
    second = make_runtime(make_settings, models, pg_url, platform)
    try:
        message_ids = [store_inbound(first, chat_message(n))[0] for n in range(20)]
        barrier = threading.Barrier(2)

        def work(runtime) -> None:
            barrier.wait()
            for message_id in message_ids:
                process_stored(runtime, message_id)

        threads = [threading.Thread(target=work, args=(r,)) for r in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        with Session(first.engine) as session:
            messages = [session.get(Message, i) for i in message_ids]
            replies = session.exec(select(Message).where(Message.reply_to_id.in_(message_ids))).all()
        assert all(m.status == "processed" and m.action for m in messages)
        assert Counter(r.reply_to_id for r in replies) == Counter(message_ids)
        assert len(platform.posted) == 20 and all(len(p) == 1 for p in platform.posted.values())
    finally:
        first.close()
        second.close()


def test_a_burst_of_200_messages_across_three_workers_with_platform_retries_is_answered_once_each(
    make_settings, models, pg_url
):
    platform = PlatformChannel("webchat")
    workers = [make_runtime(make_settings, models, pg_url, platform) for _ in range(3)]
    # Every fifth message is delivered twice (a platform retry), to a different worker, at the same time.
    deliveries = [(n, n % 3) for n in range(200)] + [(n, (n + 1) % 3) for n in range(0, 200, 5)]
    deliveries.sort()
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda d: handle_inbound(workers[d[1]], chat_message(d[0])), deliveries))
        elapsed = time.perf_counter() - started
        for worker in workers:  # what the scheduler's outbox job does on every worker
            deliver_due(worker.engine, {"webchat": platform})
        with Session(workers[0].engine) as session:
            inbound = session.exec(select(Message).where(Message.direction == "in")).all()
            outbound = session.exec(select(Message).where(Message.direction == "out")).all()
            outbox = session.exec(select(Outbox)).all()
    finally:
        for worker in workers:
            worker.close()

    assert len(inbound) == 200 and all(m.status == "processed" for m in inbound)
    assert sum(1 for r in results if r.duplicate) == 40
    assert Counter(m.action for m in inbound).keys() <= {"thank", "escalate"}
    assert len(outbound) == 200 and len({m.reply_to_id for m in outbound}) == 200
    assert {row.status for row in outbox} == {"sent"}
    assert len(platform.posted) == 200 and all(len(posts) == 1 for posts in platform.posted.values())
    print(f"\n200 messages + 40 retries through 3 workers on PostgreSQL: {240 / elapsed:.0f} deliveries/s")


def test_a_worker_that_stops_between_claiming_and_recording_is_covered_by_another_once_the_claim_expires(
    pg_engine,
):
    keys = queue_replies(pg_engine, 3)
    platform = PlatformChannel()

    class DiesAfterPosting(PlatformChannel):
        """Posts the first row, then the worker 'dies' (the thread abandons its claim) before recording."""

        def send(self, message: OutboundMessage) -> str:
            platform.send(message)
            raise SystemExit("worker killed")

    with pytest.raises(SystemExit):
        deliver_due(pg_engine, {"slack": DiesAfterPosting()}, claim_seconds=1, send_seconds=1)
    assert list(platform.posted) == ["reply:0"]

    # Before the claim expires nobody touches the rows; after it, another worker finishes them.
    assert deliver_due(pg_engine, {"slack": platform}).sent == []
    report = deliver_due(pg_engine, {"slack": platform}, now=utcnow() + timedelta(seconds=2))

    assert len(report.sent) == 3
    assert sorted(platform.posted) == keys and all(len(p) == 1 for p in platform.posted.values())


class CantBeAsked(PlatformChannel):
    """A platform that can't be asked whether a message went out (Telegram, SMTP): a send that may have
    reached it can only be sent again."""

    def find_sent(self, message: OutboundMessage) -> str | None:
        return None


def test_a_send_accepted_while_the_database_restarts_is_recorded_once_it_is_back_and_not_sent_again(
    postgres_server, pg_engine
):
    keys = queue_replies(pg_engine, 3, channel="telegram")
    platform = CantBeAsked("telegram")
    restarted = threading.Event()

    class DatabaseGoesAway(CantBeAsked):
        """The database stops just as the platform accepts the first message, and is back 1.5 s later."""

        def send(self, message: OutboundMessage) -> str:
            external_id = platform.send(message)
            if not restarted.is_set():
                restarted.set()
                postgres_server.stop()
                threading.Timer(1.5, postgres_server.start).start()
            return external_id

    report = deliver_due(pg_engine, {"telegram": DatabaseGoesAway("telegram")})

    assert restarted.is_set() and len(report.sent) == 3
    # Later rounds, after every lease has run out, find nothing to send again.
    assert deliver_due(pg_engine, {"telegram": platform}, now=utcnow() + timedelta(minutes=5)).sent == []
    assert sorted(platform.posted) == keys and all(len(p) == 1 for p in platform.posted.values())
    with Session(pg_engine) as session:
        rows = session.exec(select(Outbox)).all()
    assert {(row.status, row.attempts) for row in rows} == {("sent", 1)}


KILLED_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from bot.crm.db import create_db_engine
    from bot.delivery.outbox import deliver_due
    from channels.base import Channel

    url, platform_file = sys.argv[1], sys.argv[2]

    class Platform(Channel):
        name = "slack"
        def send(self, message):
            with open(platform_file, "a") as posts:
                posts.write(message.idempotency_key + "\\n")
            if message.idempotency_key == "reply:2":
                print("posted reply:2, not recorded yet", flush=True)
                time.sleep(600)  # SIGKILLed here: posted on the platform, not recorded in the database
            return "ts-" + message.idempotency_key

    deliver_due(create_db_engine(url), {"slack": Platform()}, claim_seconds=2, send_seconds=2)
    """
)


def test_a_worker_process_killed_mid_batch_has_its_claimed_rows_sent_once_by_another(
    pg_url, pg_engine, tmp_path
):
    keys = queue_replies(pg_engine, 6)
    platform_file = tmp_path / "posted.txt"
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLED_WORKER, pg_url, str(platform_file)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert worker.stdout.readline().startswith("posted reply:2")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    posted_by_dead_worker = platform_file.read_text().split()
    assert posted_by_dead_worker == ["reply:0", "reply:1", "reply:2"]

    # The platform (where the dead worker's posts landed) can be asked what went out.
    platform = PlatformChannel(posted={key: ["(posted)"] for key in posted_by_dead_worker})
    assert deliver_due(pg_engine, {"slack": platform}).sent == []  # rows 2..5 are still claimed
    time.sleep(2.1)
    report = deliver_due(pg_engine, {"slack": platform})

    assert len(report.sent) == 4  # reply:2 (found on the platform, not re-posted) and reply:3..5
    assert sorted(platform.posted) == keys and all(len(p) == 1 for p in platform.posted.values())
    with Session(pg_engine) as session:
        rows = {row.idempotency_key: row for row in session.exec(select(Outbox)).all()}
    assert {row.status for row in rows.values()} == {"sent"}
    assert rows["reply:2"].external_id == "slack-reply:2-1"


def test_a_worker_shutting_down_finishes_the_row_in_hand_and_releases_the_rest(pg_engine):
    queue_replies(pg_engine, 5)
    stop = threading.Event()
    platform = PlatformChannel()

    class StopsAfterFirst(PlatformChannel):
        def send(self, message: OutboundMessage) -> str:
            stop.set()  # SIGTERM arrives while the first row is being sent
            return platform.send(message)

    report = deliver_due(pg_engine, {"slack": StopsAfterFirst()}, stop=stop)

    assert len(report.sent) == 1
    with Session(pg_engine) as session:
        pending = session.exec(select(Outbox).where(Outbox.status == "pending")).all()
    assert len(pending) == 4 and all(row.claimed_until is None for row in pending)
    assert len(deliver_due(pg_engine, {"slack": platform}).sent) == 4  # another worker, at once


class CountingPoller(Channel):
    """A poller that records when it runs."""

    name = "twitter"

    def __init__(self) -> None:
        self.running = threading.Event()
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.running.set()

    def stop(self) -> None:
        self.running.clear()

    def send(self, message: OutboundMessage) -> str:
        raise NotImplementedError


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_exactly_one_worker_polls_an_account_and_another_takes_over_when_it_dies(pg_url):
    pollers = [CountingPoller(), CountingPoller()]
    leaders = [PollerLeadership(pg_url, p, "12345", retry_seconds=0.2) for p in pollers]
    other_account = PollerLeadership(pg_url, CountingPoller(), "67890", retry_seconds=0.2)
    try:
        for leadership in [*leaders, other_account]:
            leadership.start()
        assert wait_for(lambda: any(p.running.is_set() for p in pollers))
        assert wait_for(other_account.channel.running.is_set)  # another account is not excluded
        time.sleep(1.0)  # several rounds of trying: still only one
        assert [p.running.is_set() for p in pollers].count(True) == 1
        holder = next(i for i, p in enumerate(pollers) if p.running.is_set())
        follower = 1 - holder

        # The holder's database connection dies (as when its process is killed).
        admin = create_engine(pg_url)
        with admin.connect() as connection:
            pids = connection.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND ((classid::bigint << 32) | objid::bigint) = :key"
                ),
                {"key": leaders[holder].key},
            ).all()
            assert len(pids) == 1
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0][0]})
        admin.dispose()
        died = time.monotonic()

        assert wait_for(pollers[follower].running.is_set, timeout=5)
        took_over = time.monotonic() - died
        assert wait_for(lambda: not pollers[holder].running.is_set(), timeout=5)
        assert took_over < 3, f"take-over took {took_over:.1f}s"
    finally:
        for leadership in [*leaders, other_account]:
            leadership.stop()
    assert not any(p.running.is_set() for p in pollers)
