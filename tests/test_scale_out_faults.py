"""Faults with several workers on a real PostgreSQL and the fake Slack: Slack retries deliveries to other
workers, answers 429 with a Retry-After and then 5xx before it recovers, and the database restarts under load.
Every mention still gets exactly one reply, and the backoff shows in /metrics."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from bot.crm.models import Direction, Message, Outbox, OutboxStatus, utcnow
from bot.delivery.outbox import deliver_due
from bot.pipeline.inbound import handle_inbound
from bot.runtime.metrics import SEND_FAILURES
from bot.web.app import create_app
from bot.worker.build import build_runtime
from channels.base import Author, InboundMessage
from tests.fakes.server import FakeResponse
from tests.fakes.slack import BOT_USER_ID, FakeSlack, event_callback, signed_headers

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def mention(number: int) -> dict:
    ts = f"1700000000.{number:06d}"
    return {
        "type": "app_mention",
        "user": f"U{number:05d}",
        "text": f"<@{BOT_USER_ID}> love the new tent, thanks! ({number})",
        "ts": ts,
        "channel": "C0GENERAL",
        "event_ts": ts,
    }


def failures(kind: str) -> float:
    return SEND_FAILURES.labels("slack", kind)._value.get()


@pytest.fixture
def fake_slack():
    with FakeSlack() as fake:
        yield fake


def test_three_workers_answer_each_slack_mention_once_through_retries_rate_limits_and_server_errors(
    make_settings, models, pg_url, fake_slack
):
    settings = make_settings(
        database={"url": pg_url},
        slack={
            "enabled": True,
            "bot_token": fake_slack.bot_token,
            "signing_secret": SIGNING_SECRET,
            "api_base_url": fake_slack.api_base_url,
        },
        server={"metrics_token": "scraper-token-for-tests"},
    )
    workers = [build_runtime(settings, models=models) for _ in range(3)]
    clients = [TestClient(create_app(w)) for w in workers]
    rate_limited, temporary = failures("rate_limited"), failures("temporary")
    # Slack answers the first posts with 429 (retry after 1 s), then two 500s, then recovers.
    fake_slack.server.fail_next(
        "/api/chat.postMessage",
        FakeResponse(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}),
        FakeResponse(500, "<html>oops</html>", {"content-type": "text/html"}),
        FakeResponse(500, "<html>oops</html>", {"content-type": "text/html"}),
    )
    # 30 mentions; every third one is delivered again (a Slack retry) to the next worker.
    deliveries = [(n, n % 3, None) for n in range(30)] + [(n, (n + 1) % 3, 1) for n in range(0, 30, 3)]

    def deliver(delivery) -> int:
        number, worker, retry = delivery
        body = json.dumps(event_callback(mention(number), event_id=f"Ev{number:05d}")).encode()
        headers = signed_headers(body, SIGNING_SECRET)
        if retry is not None:
            headers |= {"x-slack-retry-num": str(retry), "x-slack-retry-reason": "http_timeout"}
        return clients[worker].post("/slack/events", content=body, headers=headers).status_code

    try:
        with ThreadPoolExecutor(6) as pool:
            assert set(pool.map(deliver, deliveries)) == {200}
        for worker in workers:
            assert worker.wait_idle(120)
        # Every worker's outbox job runs, later and later, until nothing is left (as the scheduler does).
        for step in range(1, 8):
            later = utcnow() + timedelta(seconds=10 * step)
            with ThreadPoolExecutor(3) as pool:
                list(pool.map(lambda w, at=later: deliver_due(w.engine, w.channels, now=at), workers))
        metrics = clients[0].get("/metrics", headers={"Authorization": "Bearer scraper-token-for-tests"}).text
        with Session(workers[0].engine) as session:
            inbound = session.exec(select(Message).where(Message.direction == Direction.INBOUND.value)).all()
            outbox = session.exec(select(Outbox)).all()
    finally:
        for client in clients:
            client.close()
        for worker in workers:
            worker.close()

    assert len(inbound) == 30
    assert {row.status for row in outbox} == {OutboxStatus.SENT.value} and len(outbox) == 30
    replies = Counter(reply.thread_ts for reply in fake_slack.bot_replies())
    assert len(replies) == 30 and set(replies.values()) == {1}, replies
    assert failures("rate_limited") == rate_limited + 1 and failures("temporary") == temporary + 2
    assert 'socialbot_send_failures_total{channel="slack",kind="rate_limited"}' in metrics


def test_workers_reconnect_after_the_database_restarts_and_lose_nothing_they_accepted(
    make_settings, models, postgres_server, pg_url
):
    workers = [build_runtime(make_settings(database={"url": pg_url}), models=models) for _ in range(2)]

    def chat(number: int) -> InboundMessage:
        return InboundMessage(
            channel="webchat",
            external_id=f"restart-{number}",
            thread_id=f"restart-session-{number}",
            author=Author(external_id=f"restart-session-{number}"),
            text="love my new tent!",
        )

    accepted, refused = [], []

    def send(number: int) -> None:
        try:
            handle_inbound(workers[number % 2], chat(number))
            accepted.append(number)
        except OperationalError:  # the web layer turns this into 503 + Retry-After: nothing was stored
            refused.append(number)

    try:
        for number in range(10):
            send(number)
        postgres_server.stop()
        for number in range(10, 14):
            send(number)  # refused while the server is down
        postgres_server.start()
        for number in range(14, 30):
            send(number)  # the pools drop dead connections (pre-ping) and reconnect
        for number in refused:  # what the platforms' retries do
            send(number)
        for worker in workers:
            deliver_due(worker.engine, worker.channels)
        with Session(workers[0].engine) as session:
            inbound = session.exec(select(Message).where(Message.direction == Direction.INBOUND.value)).all()
            outbound = session.exec(
                select(Message).where(Message.direction == Direction.OUTBOUND.value)
            ).all()
    finally:
        for worker in workers:
            worker.close()

    assert refused == [10, 11, 12, 13]
    assert sorted(m.external_id for m in inbound) == sorted(f"restart-{n}" for n in range(30))
    assert all(m.status == "processed" for m in inbound)
    assert len(outbound) == 30 and {m.status for m in outbound} == {"sent"}


def test_when_the_x_poller_holder_dies_another_worker_resumes_from_the_stored_since_id(
    make_settings, models, pg_url
):
    from sqlalchemy import create_engine, text

    from tests.fakes.twitter import FakeX

    with FakeX(brand_id="1000", brand_username="fernhill") as x:
        settings = make_settings(
            database={"url": pg_url},
            twitter={
                "enabled": True,
                "bearer_token": "app-bearer-token",
                "consumer_key": "consumer-key",
                "consumer_secret": "consumer-secret",
                "access_token": "access-token",
                "access_token_secret": "access-token-secret",
                "user_id": "1000",
                "api_base_url": x.base_url,
                "poll_interval_seconds": 0.3,
            },
        )
        workers = [build_runtime(settings, models=models) for _ in range(2)]
        try:
            for worker in workers:
                worker.start_channels()
            # The first round only notes where the timeline is; mentions after it are answered.
            assert wait_for(lambda: len(x.server.calls("/2/users/1000/mentions")) >= 1, timeout=30)
            first = x.mention("2001", "@fernhill love my new tent!", username="jane")
            assert wait_for(lambda: len(x.replies_by_brand()) == 1, timeout=30)
            leading = [w for w in workers if w.leaderships[0].leading.is_set()]
            assert len(leading) == 1
            holder, follower = leading[0], next(w for w in workers if w is not leading[0])

            # The holder's lock connection dies (its process was killed, or the network cut it).
            admin = create_engine(pg_url)
            with admin.connect() as connection:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND granted AND ((classid::bigint << 32) | objid::bigint) = :key"
                    ),
                    {"key": holder.leaderships[0].key},
                )
            admin.dispose()
            assert wait_for(follower.leaderships[0].leading.is_set, timeout=10)
            assert wait_for(lambda: not holder.leaderships[0].leading.is_set(), timeout=10)
            polls_before = len(x.server.calls("/2/users/1000/mentions"))
            second = x.mention("2002", "@fernhill how long does delivery take?", username="tom")
            assert wait_for(lambda: len(x.replies_by_brand()) == 2, timeout=30)
        finally:
            for worker in workers:
                worker.close()

    replied_to = Counter(reply["referenced_tweets"][0]["id"] for reply in x.replies_by_brand())
    assert replied_to == Counter({first["id"]: 1, second["id"]: 1})  # nothing answered twice
    resumed = x.server.calls("/2/users/1000/mentions")[polls_before:]
    assert resumed and resumed[0].query["since_id"] == [first["id"]]  # the cursor stored by the holder


def wait_for(condition, timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
