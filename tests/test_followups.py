"""Follow-ups across channels: a customer complains on X, staff resolve it, and the next day a "did that fix
it?" with a rating question arrives on X (a reply in their thread) and by e-mail (a real SMTP server on
loopback), once each, whatever restarts or extra workers happen in between; an opted-out customer gets
nothing; the rating they reply is stored on the conversation. The clock is passed in, never slept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import (
    AuditEvent,
    Contact,
    Conversation,
    FollowUp,
    Identity,
    Message,
    Outbox,
    Staff,
    utcnow,
)
from bot.delivery.outbox import deliver_due
from bot.engagement.followups import (
    RESOLUTION_CHECK,
    cancel_nudges_on_reply,
    in_quiet_hours,
    schedule_followup,
    schedule_resolution_followup,
    schedule_staff_reminders,
    send_due_followups,
    sync_followup_delivery,
)
from bot.runtime.settings import FollowupSettings
from bot.support.handoff import resolve_conversation
from bot.support.staff import create_staff, issue_api_token
from bot.web.app import create_app
from bot.worker.build import build_runtime
from bot.worker.scheduler import start_scheduler
from channels.base import OutboundMessage
from channels.webchat import StoredChannel
from tests.fakes.smtp import LocalSMTP
from tests.fakes.twitter import FakeX

REPO = Path(__file__).resolve().parents[1]
BRAND_ID = "1000"
CUSTOMER_ID = "2001"
EMAIL = "jane@customer.example"
COMPLAINT = "@fernhill my new tent leaked all night and the zip broke on day one. Really disappointed."


@pytest.fixture
def x() -> Iterator[FakeX]:
    with FakeX(brand_id=BRAND_ID, brand_username="fernhill") as fake:
        yield fake


@pytest.fixture
def smtp() -> Iterator[LocalSMTP]:
    with LocalSMTP() as server:
        yield server


@pytest.fixture
def start_bot(make_settings: Callable[..., Any], models, x: FakeX, smtp: LocalSMTP) -> Iterator[Callable]:
    """A runtime with X (fake) and e-mail (aiosmtpd) enabled; every call is a new process on the same DB."""
    runtimes = []

    def start(**followups: Any):
        settings = make_settings(
            twitter={
                "enabled": True,
                "bearer_token": "app-bearer-token",
                "consumer_key": "consumer-key",
                "consumer_secret": "consumer-secret",
                "access_token": "access-token",
                "access_token_secret": "access-token-secret",
                "user_id": BRAND_ID,
                "api_base_url": x.base_url,
            },
            email=smtp.email_settings(),
            secret_key="test-secret-key-of-thirty-two-characters",
            followups={"quiet_hours_start": "00:00", "quiet_hours_end": "00:00", **followups},
        )
        runtime = build_runtime(settings, models=models)
        runtimes.append(runtime)
        return runtime

    yield start
    for runtime in runtimes:
        runtime.close()


def poll(runtime) -> int:
    accepted = runtime.channels["twitter"].poll_once()
    assert runtime.wait_idle()
    return accepted


def agent_token(runtime) -> str:
    with Session(runtime.engine) as session:
        staff = session.exec(select(Staff).where(Staff.email == "ana@fernhill.example")).first()
        if staff is None:
            staff = create_staff(session, "ana@fernhill.example", role="agent", password="a long password!")
        token = issue_api_token(session, staff)
        session.commit()
        return token


def complain_on_x_and_resolve(runtime, x: FakeX) -> tuple[int, dict]:
    """Jane (verified e-mail on file) complains on X, the bot escalates, an agent resolves it over the API.
    Returns the X conversation's id and her post."""
    poll(runtime)  # the poller's first round: nothing yet
    complaint = x.mention(CUSTOMER_ID, COMPLAINT, username="jane")
    assert poll(runtime) == 1
    with Session(runtime.engine) as session:
        message = session.exec(select(Message).where(Message.external_id == complaint["id"])).one()
        assert message.intent == "complaint" and message.action == "escalate"
        session.add(
            Identity(contact_id=message.contact_id, channel="email", external_user_id=EMAIL, verified=True)
        )
        session.commit()
        conversation_id = message.conversation_id
    token = agent_token(runtime)
    with TestClient(create_app(runtime)) as client:
        resolved = client.post(
            f"/api/v1/conversations/{conversation_id}/resolve", headers={"Authorization": f"Bearer {token}"}
        )
        assert resolved.status_code == 200 and resolved.json()["state"] == "resolved"
    return conversation_id, complaint


def followups(runtime) -> list[FollowUp]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(FollowUp).order_by(FollowUp.id)).all())


def run_followups(runtime, now: datetime) -> None:
    """What the scheduler's job does, at `now`."""
    send_due_followups(runtime, now=now)
    deliver_due(runtime.engine, runtime.channels, now=max(now, utcnow()))  # queued rows are due at once
    sync_followup_delivery(runtime.engine)


def fix_check_posts(x: FakeX) -> list[dict]:
    return [t for t in x.replies_by_brand() if "Did that fix it?" in t["text"]]


def test_a_resolved_x_complaint_is_followed_up_next_day_on_x_and_by_email_once_each(start_bot, x, smtp):
    bot = start_bot()
    conversation_id, complaint = complain_on_x_and_resolve(bot, x)
    resolved_at = utcnow()

    rows = followups(bot)
    assert sorted(r.channel for r in rows) == ["email", "twitter"]
    assert all(r.status == "pending" and r.template == "resolution_check" for r in rows)
    assert all(abs((r.due_at - resolved_at).total_seconds() - 24 * 3600) < 60 for r in rows)

    run_followups(bot, resolved_at + timedelta(hours=23))
    assert fix_check_posts(x) == [] and smtp.mails == []

    next_day = resolved_at + timedelta(hours=24, minutes=1)
    for _ in range(3):  # the job runs again and again: nothing goes twice
        run_followups(bot, next_day)
    posts = fix_check_posts(x)
    assert len(posts) == 1
    assert posts[0]["referenced_tweets"] == [{"type": "replied_to", "id": complaint["id"]}]
    assert "1 (poor) to 5 (great)" in posts[0]["text"]
    assert len(smtp.to(EMAIL)) == 1
    mail = smtp.to(EMAIL)[0]
    assert "Did that fix it?" in mail.get_body(("plain",)).get_content()
    assert all(r.status == "sent" and r.sent_at is not None for r in followups(bot))

    # Jane answers on X with a rating: stored on the conversation, thanked, not treated as a new question.
    x.post(CUSTOMER_ID, "@fernhill 4/5", reply_to=posts[0], username="jane")
    assert poll(bot) == 1
    with Session(bot.engine) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation.csat == 4 and conversation.state == "resolved"
        rating = session.exec(select(Message).where(Message.text == "@fernhill 4/5")).one()
        assert rating.action == "record_csat"
        assert session.exec(select(AuditEvent).where(AuditEvent.action == "conversation.rated")).one()
    assert "rating us 4/5" in x.replies_by_brand()[-1]["text"]


def test_a_restart_between_scheduling_and_due_time_sends_once_after_the_restart(start_bot, x, smtp):
    first = start_bot(resolved_delay_hours=0.0005)  # due 1.8 s after resolving
    complain_on_x_and_resolve(first, x)
    first.close()  # the process stops before the follow-up is due
    time.sleep(2)

    second = start_bot(resolved_delay_hours=0.0005)
    scheduler = start_scheduler(second)  # its follow-up job runs at start, then every 30 s
    try:
        deadline = time.monotonic() + 20
        while (len(smtp.to(EMAIL)) < 1 or len(fix_check_posts(x)) < 1) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        scheduler.shutdown()
    run_followups(second, utcnow() + timedelta(days=2))
    assert len(smtp.to(EMAIL)) == 1 and len(fix_check_posts(x)) == 1


def test_two_scheduler_instances_on_one_database_send_each_follow_up_once(start_bot, x, smtp):
    one = start_bot()
    complain_on_x_and_resolve(one, x)
    two = start_bot()  # a second worker on the same SQLite database
    due = utcnow() + timedelta(hours=25)
    barrier = threading.Barrier(4)
    errors = []

    def worker(runtime) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                run_followups(runtime, due)
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(rt,)) for rt in (one, two, one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not [e for e in errors if "database is locked" not in str(e)]
    run_followups(one, due)  # a worker that lost a race to a lock just runs again on its next round
    assert len(smtp.to(EMAIL)) == 1
    assert len(fix_check_posts(x)) == 1
    expected = sorted(f"followup:{r.id}" for r in followups(one))
    with Session(one.engine) as session:
        keys = session.exec(select(Outbox.idempotency_key).where(Outbox.idempotency_key.like("followup:%")))
        assert sorted(keys.all()) == expected


def test_an_opted_out_customer_gets_no_follow_up(start_bot, x, smtp):
    bot = start_bot()
    complain_on_x_and_resolve(bot, x)
    with Session(bot.engine) as session:
        contact = session.get(Contact, followups(bot)[0].contact_id)
        contact.opted_out = True
        session.add(contact)
        session.commit()
    run_followups(bot, utcnow() + timedelta(hours=25))
    assert smtp.mails == [] and fix_check_posts(x) == []
    assert {(r.status, r.last_error) for r in followups(bot)} == {("cancelled", "the contact opted out")}


def test_a_new_message_from_the_customer_cancels_the_pending_nudge(start_bot, x, smtp):
    bot = start_bot()
    _, complaint = complain_on_x_and_resolve(bot, x)
    x.post(CUSTOMER_ID, "@fernhill it is still leaking, what now?", reply_to=complaint, username="jane")
    assert poll(bot) == 1
    assert {r.status for r in followups(bot)} == {"cancelled"}
    run_followups(bot, utcnow() + timedelta(hours=25))
    assert smtp.mails == [] and fix_check_posts(x) == []


def test_smtp_down_the_email_follow_up_is_retried_then_failed_and_visible_to_staff(start_bot, x, smtp):
    bot = start_bot()
    complain_on_x_and_resolve(bot, x)
    smtp.stop()
    now = utcnow() + timedelta(hours=25)
    for _ in range(10):
        send_due_followups(bot, now=now)
        deliver_due(bot.engine, bot.channels, now=now, max_attempts=3)
        sync_followup_delivery(bot.engine)
        now += timedelta(minutes=15)
    by_channel = {r.channel: r for r in followups(bot)}
    assert by_channel["twitter"].status == "sent"
    email = by_channel["email"]
    assert email.status == "failed" and email.attempts == 3 and "unreachable" in email.last_error
    token = agent_token(bot)
    with TestClient(create_app(bot)) as client:
        listed = client.get(
            f"/api/v1/contacts/{email.contact_id}/followups?status=failed",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert listed.status_code == 200
    assert [(f["channel"], f["status"]) for f in listed.json()] == [("email", "failed")]


def test_staff_list_schedule_and_cancel_a_contacts_follow_ups(start_bot, x, smtp):
    bot = start_bot()
    conversation_id, _ = complain_on_x_and_resolve(bot, x)
    contact_id = followups(bot)[0].contact_id
    token = agent_token(bot)
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(bot)) as client:
        assert client.get(f"/api/v1/contacts/{contact_id}/followups").status_code == 401
        listed = client.get(f"/api/v1/contacts/{contact_id}/followups", headers=auth).json()
        assert [f["channel"] for f in listed] == ["twitter", "email"]
        cancelled = client.post(f"/api/v1/followups/{listed[0]['id']}/cancel", headers=auth)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        again = client.post(f"/api/v1/followups/{listed[0]['id']}/cancel", headers=auth)
        assert again.status_code == 409
        due = (utcnow() + timedelta(hours=2)).isoformat()
        made = client.post(
            f"/api/v1/contacts/{contact_id}/followups",
            json={"text": "Your replacement zip is on its way.", "due_at": due, "channels": ["email"]},
            headers=auth,
        )
        assert made.status_code == 201, made.text
        assert [(f["channel"], f["template"]) for f in made.json()] == [("email", "custom")]
        slack = client.post(
            f"/api/v1/contacts/{contact_id}/followups",
            json={"text": "Hello", "due_at": due, "channels": ["slack"]},
            headers=auth,
        )
        assert slack.status_code == 422 and "reachable: twitter, email" in slack.json()["error"]
        too_long = client.post(
            f"/api/v1/contacts/{contact_id}/followups",
            json={"text": "x" * 281, "due_at": due, "channels": ["twitter"]},
            headers=auth,
        )
        assert too_long.status_code == 422 and "280 characters" in too_long.json()["error"]
        naive = client.post(
            f"/api/v1/contacts/{contact_id}/followups",
            json={"text": "hi", "due_at": "2026-12-01T09:00:00"},
            headers=auth,
        )
        assert naive.status_code in (400, 422) and "time zone" in naive.text
        contact = client.get(f"/api/v1/contacts/{contact_id}", headers=auth).json()
        assert {i["channel"] for i in contact["identities"]} == {"twitter", "email"}
        assert conversation_id in [c["id"] for c in contact["conversations"]]
    run_followups(bot, utcnow() + timedelta(hours=3))
    assert [m.get_body(("plain",)).get_content().splitlines()[0] for m in smtp.to(EMAIL)] == [
        "Your replacement zip is on its way."
    ]
    assert fix_check_posts(x) == []  # the X one was cancelled; the e-mail one is not due yet


def test_quiet_hours_hold_follow_ups_until_they_end():
    settings = FollowupSettings(quiet_hours_start="21:00", quiet_hours_end="08:00", timezone="Europe/London")
    late = datetime(2026, 11, 23, 22, 30, tzinfo=UTC)
    assert in_quiet_hours(late, settings) == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    early = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    assert in_quiet_hours(early, settings) == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert in_quiet_hours(datetime(2026, 11, 24, 12, 0, tzinfo=UTC), settings) is None
    summer = datetime(2026, 7, 1, 6, 30, tzinfo=UTC)  # 07:30 in London (BST)
    assert in_quiet_hours(summer, settings) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)


def test_an_idea_whose_status_changes_is_followed_up_in_the_web_chat(start_bot, x, smtp):
    from bot.crm.models import Idea
    from bot.insights.ideas import set_idea_status

    bot = start_bot()
    with TestClient(create_app(bot)) as client:
        said = client.post(
            "/api/v1/chat",
            json={
                "session_id": "chat-session-ideas",
                "text": "You should sell a tent repair kit, that would be great",
            },
        )
        assert said.status_code == 200
        with Session(bot.engine) as session:
            idea = session.exec(select(Idea)).one()
        agent_token(bot)
        with Session(bot.engine) as session:
            staff_id = session.exec(select(Staff.id)).one()
        set_idea_status(bot.engine, idea.id, "planned", staff_id=staff_id)
        assert [(r.channel, r.template) for r in followups(bot)] == [("webchat", "idea_update")]
        run_followups(bot, utcnow() + timedelta(minutes=1))
        texts = [m["text"] for m in client.get("/api/v1/chat/chat-session-ideas/messages").json()]
    assert "tent repair kit" in texts[-1] and "it is now planned" in texts[-1]
    assert [r.status for r in followups(bot)] == ["sent"]


def test_a_customer_who_wrote_french_gets_the_brands_french_follow_up(make_settings, models):
    """Given a brand with French words for "did that fix it?", when the follow-up of a conversation in which
    the customer wrote French goes out, it says the brand's French words."""
    french = "Bonjour, c'est encore {{ brand }}. Le problème est-il réglé ? Notez notre aide de 1 à 5."
    settings = make_settings(policy={"templates_by_language": {"fr": {RESOLUTION_CHECK: french}}})
    bot = build_runtime(settings, models=models)
    try:
        with TestClient(create_app(bot)) as client:
            question = {"session_id": "chat-session-fr", "text": "Comment retourner un article ?"}
            said = client.post("/api/v1/chat", json=question)
            assert said.status_code == 200 and "60 jours" in said.json()["replies"][0]["text"]
            with Session(bot.engine) as session:
                conversation = session.exec(select(Conversation)).one()
                resolve_conversation(session, conversation, actor=None)
                schedule_followup(session, conversation, template=RESOLUTION_CHECK, due_at=utcnow())
                session.commit()
            run_followups(bot, utcnow() + timedelta(minutes=1))
            texts = [m["text"] for m in client.get("/api/v1/chat/chat-session-fr/messages").json()]
    finally:
        bot.close()
    assert texts[-1] == (
        "Bonjour, c'est encore Fernhill Outdoor. Le problème est-il réglé ? Notez notre aide de 1 à 5."
    )
    assert [r.status for r in followups(bot)] == ["sent"]


def test_staff_are_reminded_of_an_escalated_conversation_nobody_answered(start_bot, x, smtp):
    bot = start_bot(staff_reminder_hours=4)
    poll(bot)
    complaint = x.mention(CUSTOMER_ID, COMPLAINT, username="jane")
    assert poll(bot) == 1
    with Session(bot.engine) as session:
        conversation_id = session.exec(select(Message).where(Message.external_id == complaint["id"])).one()
        conversation_id = conversation_id.conversation_id
    run_followups(bot, utcnow() + timedelta(hours=3))
    assert followups(bot) == []
    for _ in range(2):
        run_followups(bot, utcnow() + timedelta(hours=5))
    [reminder] = followups(bot)
    assert (reminder.channel, reminder.template, reminder.status) == ("staff", "staff_reminder", "sent")
    with Session(bot.engine) as session:
        assert session.get(Conversation, conversation_id).priority == 2
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "conversation.reminder")).all()
        assert event.subject_id == conversation_id
    assert smtp.mails == [] and len(x.replies_by_brand()) == 1  # nothing to the customer


def test_two_workers_sweeping_at_once_remind_staff_of_an_escalated_conversation_once(
    make_settings, models, pg_url
):
    runtime = build_runtime(make_settings(database={"url": pg_url}), models=models)
    settings = FollowupSettings(staff_reminder_hours=4)
    try:
        with session_scope(runtime.engine) as session:
            contact = Contact()
            session.add(contact)
            session.flush()
            session.add(
                Conversation(
                    contact_id=contact.id,
                    channel="webchat",
                    thread_id="session-waiting",
                    state="human",
                    escalated_at=utcnow() - timedelta(hours=5),
                )
            )
        with session_scope(runtime.engine) as first:  # one worker's sweep, its reminder not committed yet
            assert len(schedule_staff_reminders(first, settings=settings)) == 1
            with session_scope(runtime.engine) as second:  # another worker's sweep at the same moment
                assert schedule_staff_reminders(second, settings=settings) == []
        with session_scope(runtime.engine) as later:
            assert schedule_staff_reminders(later, settings=settings) == []
        assert [(row.channel, row.template) for row in followups(runtime)] == [("staff", "staff_reminder")]
    finally:
        runtime.close()


class RecordingWebchat(StoredChannel):
    """The web chat, counting what each worker delivers (shared by the workers, like the platform is)."""

    def __init__(self, delivered: list[str], lock: threading.Lock) -> None:
        super().__init__("webchat")
        self.delivered, self.lock = delivered, lock

    def send(self, message: OutboundMessage) -> str:
        with self.lock:
            self.delivered.append(message.idempotency_key)
        return super().send(message)


def resolved_webchat_complaints(engine, count: int) -> list[int]:
    """`count` web chat complaints, resolved a day ago: their "did that fix it?" follow-ups are due. Returns
    the conversations' ids."""
    ids = []
    with Session(engine) as session:
        for number in range(count):
            contact = Contact()
            session.add(contact)
            session.flush()
            conversation = Conversation(
                contact_id=contact.id, channel="webchat", thread_id=f"session-{number:04d}", state="resolved"
            )
            session.add(conversation)
            session.flush()
            session.add(
                Message(
                    conversation_id=conversation.id,
                    contact_id=contact.id,
                    channel="webchat",
                    external_id=f"in-{number}",
                    direction="in",
                    author_kind="customer",
                    text="my tent leaks",
                    intent="complaint",
                )
            )
            schedule_resolution_followup(session, conversation, now=utcnow() - timedelta(days=1))
            ids.append(conversation.id)
        session.commit()
    return ids


def test_four_workers_on_postgresql_send_every_follow_up_once(make_settings, models, pg_url):
    workers = [build_runtime(make_settings(database={"url": pg_url}), models=models) for _ in range(4)]
    delivered: list[str] = []
    lock = threading.Lock()
    for worker in workers:
        worker.channels["webchat"] = RecordingWebchat(delivered, lock)
    try:
        resolved_webchat_complaints(workers[0].engine, 40)
        due = utcnow()
        with ThreadPoolExecutor(len(workers)) as pool:
            list(pool.map(lambda worker: [run_followups(worker, due) for _ in range(3)], workers))
        assert len(delivered) == 40 and len(set(delivered)) == 40
        assert {r.status for r in followups(workers[0])} == {"sent"}
    finally:
        for worker in workers:
            worker.close()


# A worker process that took a due follow-up and is SIGKILLed before it is queued (the policy's wording is
# rendered inside the transaction that holds the row).
KILLED_SWEEP = textwrap.dedent(
    """
    import sys, time, types
    from bot.crm.db import create_db_engine
    from bot.engagement.followups import send_due_followups
    from bot.runtime.settings import load_settings
    from channels.webchat import StoredChannel

    class HoldingPolicy:
        def render(self, template, **_):
            print("holding a follow-up", flush=True)
            time.sleep(600)  # SIGKILLed here: the follow-up is taken, not queued yet

    url, data_dir = sys.argv[1], sys.argv[2]
    quiet = {"quiet_hours_start": "00:00", "quiet_hours_end": "00:00"}
    settings = load_settings(data={"dir": data_dir}, database={"url": url}, followups=quiet)
    channels = {"webchat": StoredChannel("webchat")}
    worker = types.SimpleNamespace(
        engine=create_db_engine(url), settings=settings, channels=channels, policy=HoldingPolicy()
    )
    send_due_followups(worker)
    """
)


def test_a_worker_killed_while_taking_a_follow_up_leaves_no_claim_and_another_sends_it_once_at_once(
    make_settings, models, pg_url, tmp_path
):
    runtime = build_runtime(make_settings(database={"url": pg_url}), models=models)
    delivered: list[str] = []
    runtime.channels["webchat"] = RecordingWebchat(delivered, threading.Lock())
    try:
        resolved_webchat_complaints(runtime.engine, 1)
        worker = subprocess.Popen(
            [sys.executable, "-c", KILLED_SWEEP, pg_url, str(tmp_path / "killed")],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            assert worker.stdout.readline().startswith("holding a follow-up")
            # While the other worker holds it, this one passes over it at once instead of queueing it too.
            started = time.monotonic()
            assert send_due_followups(runtime).queued == []
            assert time.monotonic() - started < 5
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        killed_at = time.monotonic()

        # Its claim died with its connection: the next sweep queues the follow-up, no lease to wait out.
        queued = []
        while not queued and time.monotonic() - killed_at < 10:
            queued = send_due_followups(runtime).queued
        assert len(queued) == 1 and time.monotonic() - killed_at < 10
        for later in (utcnow(), utcnow() + timedelta(minutes=5)):  # and after any lease would have run out
            run_followups(runtime, later)
        assert delivered == [f"followup:{queued[0]}"]
        (row,) = followups(runtime)
        assert row.status == "sent" and row.claimed_until is None
    finally:
        runtime.close()


class GatedPolicy:
    """The worker's policy, whose wording waits for `gate` (the sweep then holds its follow-up)."""

    def __init__(self, policy) -> None:
        self.policy, self.holding, self.gate = policy, threading.Event(), threading.Event()

    def render(self, template: str, **values: Any) -> str:
        self.holding.set()
        assert self.gate.wait(30)
        return self.policy.render(template, **values)


@pytest.fixture
def gated_worker(make_settings, models, pg_url) -> Iterator[tuple[Any, list[str]]]:
    """A worker on PostgreSQL whose follow-up sweep stops, holding its follow-up, until `runtime.policy.gate`
    is set; and what its web chat delivered."""
    runtime = build_runtime(make_settings(database={"url": pg_url}), models=models)
    delivered: list[str] = []
    runtime.channels["webchat"] = RecordingWebchat(delivered, threading.Lock())
    runtime.policy = GatedPolicy(runtime.policy)
    yield runtime, delivered
    runtime.close()


def test_a_follow_up_replaced_while_a_worker_queues_it_is_either_cancelled_or_sent_never_both(
    gated_worker,
):
    runtime, delivered = gated_worker
    policy = runtime.policy
    (conversation_id,) = resolved_webchat_complaints(runtime.engine, 1)
    sweep = threading.Thread(target=send_due_followups, args=(runtime,))
    sweep.start()
    assert policy.holding.wait(30)

    def replace() -> None:  # staff schedule a newer "did that fix it?" in the same conversation
        with session_scope(runtime.engine) as session:
            conversation = session.get(Conversation, conversation_id)
            schedule_followup(
                session, conversation, template=RESOLUTION_CHECK, due_at=utcnow() + timedelta(hours=1)
            )

    replacing = threading.Thread(target=replace)
    replacing.start()
    replacing.join(30)
    assert not replacing.is_alive()  # it passed over the row the sweep holds instead of waiting for it
    policy.gate.set()
    sweep.join(30)
    run_followups(runtime, utcnow())

    first, newer = followups(runtime)
    # The sweep had it in hand: it went out, and stays what it is (not "cancelled" with a message sent).
    assert first.message_id is not None and first.status == "sent", (first.status, first.last_error)
    assert delivered == [f"followup:{first.id}"]
    assert newer.status == "pending" and newer.message_id is None


def test_a_customer_writing_while_a_worker_queues_their_nudge_does_not_deadlock_with_it(
    gated_worker,
):
    runtime, delivered = gated_worker
    policy = runtime.policy
    errors: list[Exception] = []

    def sweep() -> None:
        try:
            send_due_followups(runtime)
        except Exception as error:  # surfaced below
            errors.append(error)

    (conversation_id,) = resolved_webchat_complaints(runtime.engine, 1)
    sweeping = threading.Thread(target=sweep)
    sweeping.start()
    assert policy.holding.wait(30)
    # The customer's new message is decided as the pipeline does it: contact and conversation locked, then
    # their pending nudges cancelled. The sweep, let go, now waits for those locks to queue the nudge.
    with session_scope(runtime.engine) as session:
        contact_id = session.get(Conversation, conversation_id).contact_id
        session.exec(select(Contact).where(Contact.id == contact_id).with_for_update()).one()
        session.exec(select(Conversation).where(Conversation.id == conversation_id).with_for_update()).one()
        policy.gate.set()
        time.sleep(0.5)
        assert cancel_nudges_on_reply(session, contact_id) == []  # the one in hand goes out
    sweeping.join(30)
    run_followups(runtime, utcnow())

    assert errors == [] and not sweeping.is_alive()
    (row,) = followups(runtime)
    assert row.status == "sent" and delivered == [f"followup:{row.id}"]


def test_the_rating_can_come_back_by_email_and_lands_on_the_x_conversation(start_bot, x, smtp):
    bot = start_bot()
    conversation_id, _ = complain_on_x_and_resolve(bot, x)
    run_followups(bot, utcnow() + timedelta(hours=25))
    [mail] = smtp.to(EMAIL)
    reply = {
        "from": f"Jane <{EMAIL}>",
        "text": "five\n\nOn Tue, Fernhill Outdoor wrote:\n> Did that fix it?",
        "message_id": "<rating-1@customer.example>",
        "in_reply_to": mail["Message-ID"],
    }
    with TestClient(create_app(bot)) as client:
        answered = client.post("/email/inbound", json=reply, headers={"X-Socialbot-Secret": "inbound-secret"})
        assert answered.status_code == 200
        assert bot.wait_idle()
    deliver_due(bot.engine, bot.channels)
    with Session(bot.engine) as session:
        assert session.get(Conversation, conversation_id).csat == 5
        thread = session.exec(select(Conversation).where(Conversation.channel == "email")).one()
        assert thread.state == "resolved"  # an answer to our question, not a new request for staff
    thanks = smtp.to(EMAIL)[-1]
    assert "rating us 5/5" in thanks.get_body(("plain",)).get_content()
    assert thanks["In-Reply-To"] == "<rating-1@customer.example>"
