"""The Slack support channel: escalations are posted there with Take / Resolve buttons, staff work the thread
from Slack, and the post follows the conversation as it changes hands.

slack-bolt and slack_sdk run unmodified against the fake Slack, python-telegram-bot against the fake Bot API;
button clicks are signed `block_actions` payloads and thread replies signed events, posted to the real web
app's `/slack/events`."""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass
from datetime import timedelta
from itertools import count

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import AuditEvent, Conversation, Message, SupportPost, utcnow
from bot.runtime.container import Runtime
from bot.support.slack_desk import link_slack_user
from bot.support.slack_posts import deliver_support_posts
from bot.support.staff import StaffError
from bot.web.app import create_app
from bot.worker.build import build_runtime
from tests.conftest import TELEGRAM_SECRET, TELEGRAM_TOKEN
from tests.fakes.server import FakeResponse
from tests.fakes.slack import FakeSlack, PostedMessage, block_actions, event_callback, signed_headers
from tests.fakes.telegram import FakeTelegram
from tests.test_staff_console import add_staff

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SUPPORT = "C0SUPPORT"
GENERAL = "C0GENERAL"
CUSTOMER = 4242
ANA = "U0ANA"
STRANGER = "U0STRANGER"
COMPLAINT = "My tent arrived with a broken pole and nobody answers my emails!!"

_ts = count(500)


def new_ts() -> str:
    return f"{int(time.time())}.{next(_ts):06d}"


@dataclass
class Desk:
    runtime: Runtime
    client: TestClient
    slack: FakeSlack
    telegram: FakeTelegram

    def customer_writes(self, text: str) -> None:
        response = self.client.post(
            "/telegram/webhook",
            content=json.dumps(self.telegram.private_message(CUSTOMER, text)),
            headers={"content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
        )
        assert response.status_code == 200, response.text
        assert self.runtime.wait_idle()

    def to_slack(self, body: bytes, *, secret: str = SIGNING_SECRET, wait: bool = True):
        response = self.client.post("/slack/events", content=body, headers=signed_headers(body, secret))
        if wait:
            assert self.runtime.wait_idle()
        return response

    def click(self, post: PostedMessage, button: str, *, user: str = ANA, secret: str = SIGNING_SECRET):
        return self.to_slack(block_actions(post, button, user=user), secret=secret)

    def reply_in_thread(self, post: PostedMessage, text: str, *, user: str = ANA, ts: str | None = None):
        ts = ts or new_ts()
        event = {
            "type": "message",
            "channel_type": "channel",
            "channel": SUPPORT,
            "user": user,
            "text": text,
            "ts": ts,
            "thread_ts": post.ts,
            "event_ts": ts,
        }
        return self.to_slack(json.dumps(event_callback(event, event_id=f"Ev{ts}")).encode())

    @property
    def notices(self) -> list:
        self.runtime.channels["slack"].wait_for_notices()
        return self.slack.ephemerals

    def posts(self) -> list[PostedMessage]:
        return self.slack.in_channel(SUPPORT)

    def conversation(self) -> Conversation:
        with Session(self.runtime.engine) as session:
            [conversation] = session.exec(select(Conversation)).all()
            return conversation

    def telegram_texts(self) -> list[str]:
        return [sent["request"]["text"] for sent in self.telegram.sent]


@pytest.fixture
def desk(make_settings, models):
    with FakeTelegram(TELEGRAM_TOKEN) as telegram, FakeSlack() as slack:
        settings = make_settings(
            telegram={
                "enabled": True,
                "token": TELEGRAM_TOKEN,
                "webhook_secret": TELEGRAM_SECRET,
                "api_base_url": telegram.api_base_url,
            },
            slack={
                "enabled": True,
                "bot_token": slack.bot_token,
                "signing_secret": SIGNING_SECRET,
                "api_base_url": slack.api_base_url,
                "support_channel": SUPPORT,
            },
            server={"public_url": "https://support.fernhill.example"},
        )
        runtime = build_runtime(settings, models=models)
        try:
            with TestClient(create_app(runtime)) as client:
                yield Desk(runtime, client, slack, telegram)
        finally:
            runtime.close()


def link(runtime: Runtime, email: str, slack_user_id: str | None) -> None:
    with session_scope(runtime.engine) as session:
        link_slack_user(session, email, slack_user_id)


def test_a_telegram_complaint_is_taken_answered_and_resolved_from_the_slack_support_channel(desk):
    add_staff(desk.runtime, "ana@fernhill.example", name="Ana")
    link(desk.runtime, "ana@fernhill.example", ANA)

    desk.customer_writes(COMPLAINT)

    assert len(desk.telegram.sent) == 1  # the bot's apology
    [post] = desk.posts()
    conversation = desk.conversation()
    assert conversation.state == "human"
    assert set(post.buttons()) == {"support_take", "support_resolve", "support_open"}
    assert post.buttons()["support_take"]["value"] == str(conversation.id)
    assert post.buttons()["support_open"]["url"] == (
        f"https://support.fernhill.example/console/conversations/{conversation.id}"
    )
    assert COMPLAINT in post.mrkdwn() and "telegram" in post.mrkdwn()
    assert "Waiting for someone to take it" in post.mrkdwn()

    started = time.perf_counter()
    response = desk.to_slack(block_actions(post, "support_take", user=ANA), wait=False)
    acknowledged = time.perf_counter() - started
    assert desk.runtime.wait_idle()

    assert response.status_code == 200
    assert acknowledged < 3.0  # Slack's limit for acknowledging an interaction
    conversation = desk.conversation()
    assert conversation.state == "human" and conversation.assignee_id is not None
    [post] = desk.posts()
    assert post.edits == 1 and "Taken by Ana" in post.mrkdwn()
    assert desk.notices == []

    desk.customer_writes("so what now? <@U0BOSS>")
    assert len(desk.telegram.sent) == 1  # the bot stayed silent
    [post] = desk.posts()  # staff in Slack see what the customer wrote meanwhile
    assert post.edits == 2 and "Then wrote:*\n>so what now? &lt;@U0BOSS&gt;" in post.mrkdwn()
    assert "Taken by Ana" in post.mrkdwn()

    desk.reply_in_thread(post, "Ana here: a new pole is on its way &amp; tracking follows by e-mail.")

    assert len(desk.telegram.sent) == 2
    reply = desk.telegram.sent[1]["request"]
    assert reply["chat_id"] == str(CUSTOMER)
    assert reply["text"] == "Ana here: a new pole is on its way & tracking follows by e-mail."
    with Session(desk.runtime.engine) as session:
        staff_messages = session.exec(select(Message).where(Message.author_kind == "staff")).all()
        assert [m.status for m in staff_messages] == ["sent"]
        # The staff member's Slack message was not taken for a customer's message.
        assert session.exec(select(Message).where(Message.channel == "slack")).all() == []

    desk.click(post, "support_resolve")

    assert desk.conversation().state == "resolved"
    [post] = desk.posts()
    assert post.edits == 3 and "Resolved by Ana" in post.mrkdwn()
    assert "support_take" not in post.buttons() and "support_open" in post.buttons()


def test_a_thread_reply_delivered_twice_reaches_the_customer_once(desk):
    add_staff(desk.runtime, "ana@fernhill.example", name="Ana")
    link(desk.runtime, "ana@fernhill.example", ANA)
    desk.customer_writes(COMPLAINT)
    [post] = desk.posts()
    ts = new_ts()

    desk.reply_in_thread(post, "On it.", ts=ts)
    desk.reply_in_thread(post, "On it.", ts=ts)  # Slack's retry of the same event

    assert desk.telegram_texts().count("On it.") == 1
    conversation = desk.conversation()
    assert conversation.assignee_id is not None  # replying took the thread
    assert "Taken by Ana" in desk.posts()[0].mrkdwn()


def test_an_unlinked_slack_user_changes_nothing_and_is_told_to_link_their_account(desk):
    add_staff(desk.runtime, "ana@fernhill.example", name="Ana")
    link(desk.runtime, "ana@fernhill.example", ANA)
    desk.customer_writes(COMPLAINT)
    [post] = desk.posts()

    take = desk.click(post, "support_take", user=STRANGER)
    resolve = desk.click(post, "support_resolve", user=STRANGER)
    desk.reply_in_thread(post, "I'll handle it", user=STRANGER)

    assert take.status_code == resolve.status_code == 200
    conversation = desk.conversation()
    assert conversation.state == "human" and conversation.assignee_id is None
    assert len(desk.telegram.sent) == 1  # only the bot's apology
    assert desk.posts()[0].edits == 0
    notices = desk.notices
    assert [(n.channel, n.user) for n in notices] == [(SUPPORT, STRANGER)] * 3
    assert all("socialbot staff link" in n.text and STRANGER in n.text for n in notices)
    assert notices[2].thread_ts == post.ts


def test_a_marketer_linked_to_slack_may_not_take_a_thread(desk):
    add_staff(desk.runtime, "mo@fernhill.example", role="marketer")
    link(desk.runtime, "mo@fernhill.example", "U0MO")
    desk.customer_writes(COMPLAINT)
    [post] = desk.posts()

    desk.click(post, "support_take", user="U0MO")

    assert desk.conversation().assignee_id is None
    [notice] = desk.notices
    assert "marketer" in notice.text


def test_a_click_with_a_forged_signature_is_refused(desk):
    add_staff(desk.runtime, "ana@fernhill.example", name="Ana")
    link(desk.runtime, "ana@fernhill.example", ANA)
    desk.customer_writes(COMPLAINT)
    [post] = desk.posts()

    response = desk.click(post, "support_take", secret="not-the-signing-secret")

    assert response.status_code == 401
    assert desk.conversation().assignee_id is None
    assert desk.posts()[0].edits == 0


def test_a_customers_mentions_and_links_are_shown_as_text_in_the_post(desk):
    desk.customer_writes("<!channel> my order is broken, refund me <https://evil.example|here> & now")

    [post] = desk.posts()
    text = post.mrkdwn()
    assert "<!channel>" not in text and "<https://evil.example|here>" not in text
    assert "&lt;!channel&gt;" in text and "&lt;https://evil.example|here&gt; &amp; now" in text
    assert "<" not in post.text and "<!channel>" not in json.dumps(post.blocks)


def test_the_post_is_retried_while_slack_is_down_and_posted_once(desk):
    desk.slack.server.fail_next("/api/chat.postMessage", FakeResponse(500, "oops"), FakeResponse(503, "down"))

    desk.customer_writes(COMPLAINT)

    assert desk.posts() == []
    with Session(desk.runtime.engine) as session:
        [row] = session.exec(select(SupportPost)).all()
        assert row.status == "pending" and row.attempts == 1 and "500" in row.last_error
    later = utcnow() + timedelta(minutes=1)
    first = deliver_support_posts(desk.runtime, now=later)
    second = deliver_support_posts(desk.runtime, now=later + timedelta(minutes=1))
    third = deliver_support_posts(desk.runtime, now=later + timedelta(minutes=2))

    assert (first.retried, second.posted, third.posted) == ([row.id], [row.id], [])
    assert len(desk.posts()) == 1
    # After a 5xx the channel was searched before posting again (the post might have gone out).
    assert len(desk.slack.server.calls("/api/conversations.history")) == 2
    with Session(desk.runtime.engine) as session:
        row = session.get(SupportPost, row.id)
        assert row.status == "posted" and row.ts == desk.posts()[0].ts


def test_a_post_that_went_out_before_an_error_is_found_not_posted_again(desk):
    desk.customer_writes(COMPLAINT)
    [post] = desk.posts()
    with session_scope(desk.runtime.engine) as session:
        # As if the worker had stopped between Slack's answer and recording the ts.
        row = session.exec(select(SupportPost)).one()
        row.status, row.ts, row.posted_version, row.claimed_until = "pending", None, 0, utcnow()
        session.add(row)

    report = deliver_support_posts(desk.runtime, now=utcnow() + timedelta(seconds=1))

    assert report.posted == [row.id] and len(desk.posts()) == 1
    with Session(desk.runtime.engine) as session:
        assert session.get(SupportPost, row.id).ts == post.ts


def test_an_assignment_through_the_staff_api_updates_the_slack_post(desk):
    staff_id, token = add_staff(desk.runtime, "ana@fernhill.example", name="Ana")
    desk.customer_writes(COMPLAINT)
    conversation = desk.conversation()

    response = desk.client.post(
        f"/api/v1/conversations/{conversation.id}/assign",
        json={"staff_id": staff_id},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    assert desk.runtime.wait_idle()

    [post] = desk.posts()
    assert post.edits == 1 and "Taken by Ana" in post.mrkdwn()


def test_messages_in_the_support_channel_are_never_customer_messages(desk):
    ts = new_ts()
    event = {
        "type": "message",
        "channel_type": "channel",
        "channel": SUPPORT,
        "user": ANA,
        "text": "Fernhill Outdoor team: who is on call today?",
        "ts": ts,
        "event_ts": ts,
    }
    response = desk.to_slack(json.dumps(event_callback(event)).encode())

    assert response.status_code == 200
    with Session(desk.runtime.engine) as session:
        assert session.exec(select(Message)).all() == []
    assert desk.notices == []


def test_linking_a_slack_account(desk):
    add_staff(desk.runtime, "ana@fernhill.example", name="Ana")
    add_staff(desk.runtime, "bo@fernhill.example", name="Bo")
    link(desk.runtime, "ana@fernhill.example", ANA)

    with pytest.raises(StaffError, match="already linked to ana@fernhill.example"):
        link(desk.runtime, "bo@fernhill.example", ANA)
    with pytest.raises(StaffError, match="not a Slack member id"):
        link(desk.runtime, "bo@fernhill.example", "ana")
    with pytest.raises(StaffError, match="no staff account"):
        link(desk.runtime, "nobody@fernhill.example", "U0NOBODY")
    link(desk.runtime, "ana@fernhill.example", None)
    link(desk.runtime, "bo@fernhill.example", ANA)
    with Session(desk.runtime.engine) as session:
        actions = session.exec(select(AuditEvent.action).where(AuditEvent.subject_type == "staff")).all()
    assert actions.count("staff.slack_linked") == 2 and actions.count("staff.slack_unlinked") == 1


def test_socialbot_staff_link_connects_a_staff_account_to_a_slack_user(tmp_path):
    from typer.testing import CliRunner

    from bot.cli.main import app

    config = tmp_path / "settings.toml"
    config.write_text(f'[data]\ndir = "{tmp_path / "data"}"\n')
    cli = CliRunner()

    def run(*args: str, stdin: str | None = None):
        return cli.invoke(app, ["--config", str(config), "staff", *args], input=stdin)

    added = run("add", "ana@fernhill.example", "--password-stdin", stdin="correct horse battery\n")
    assert added.exit_code == 0, added.output

    linked = run("link", "ana@fernhill.example", "--slack-user-id", "U0ANA")
    malformed = run("link", "ana@fernhill.example", "--slack-user-id", "<@U0ANA>")
    neither = run("link", "ana@fernhill.example")
    unlinked = run("link", "ana@fernhill.example", "--unlink")

    assert linked.exit_code == 0 and "linked ana@fernhill.example to Slack user U0ANA" in linked.output
    assert malformed.exit_code == 2 and "not a Slack member id" in malformed.output
    assert neither.exit_code == 2 and "--slack-user-id U... or --unlink" in neither.output
    assert unlinked.exit_code == 0 and "unlinked ana@fernhill.example from Slack" in unlinked.output


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_workers_delivering_at_once_post_an_escalation_once(request, make_settings, models, database):
    from concurrent.futures import ThreadPoolExecutor

    from bot.pipeline.inbound import handle_inbound
    from channels.base import Author, InboundMessage

    with FakeSlack(post_delay_seconds=0.5) as slack:
        overrides = (
            {"database": {"url": request.getfixturevalue("pg_url")}} if database == "postgresql" else {}
        )
        settings = make_settings(
            slack={
                "enabled": True,
                "bot_token": slack.bot_token,
                "signing_secret": SIGNING_SECRET,
                "api_base_url": slack.api_base_url,
                "support_channel": SUPPORT,
            },
            **overrides,
        )
        workers = [build_runtime(settings, models=models) for _ in range(2)]
        try:
            slack.server.fail_next("/api/chat.postMessage", FakeResponse(500, "oops"))
            complaint = InboundMessage(
                channel="webchat",
                external_id="w-1",
                thread_id="session-1",
                author=Author("session-1"),
                text=COMPLAINT,
            )
            assert handle_inbound(workers[0], complaint).state == "human"
            assert slack.in_channel(SUPPORT) == []  # Slack was down

            later = utcnow() + timedelta(minutes=1)
            with ThreadPoolExecutor(2) as pool:
                reports = list(pool.map(lambda worker: deliver_support_posts(worker, now=later), workers))

            assert sorted(len(report.posted) for report in reports) == [0, 1]
            assert len(slack.in_channel(SUPPORT)) == 1
        finally:
            for worker in workers:
                worker.close()


def test_a_malformed_or_unknown_click_is_refused_or_ignored(desk):
    add_staff(desk.runtime, "ana@fernhill.example", name="Ana")
    link(desk.runtime, "ana@fernhill.example", ANA)
    desk.customer_writes(COMPLAINT)
    [post] = desk.posts()

    malformed = desk.to_slack(b"payload=%7Bnot-json")
    click = json.loads(
        urllib.parse.parse_qs(block_actions(post, "support_take", user=ANA).decode())["payload"][0]
    )
    click["actions"][0]["value"] = "not-a-conversation"
    no_id = desk.to_slack(urllib.parse.urlencode({"payload": json.dumps(click)}).encode())
    click["actions"][0]["value"] = "999"
    gone = desk.to_slack(urllib.parse.urlencode({"payload": json.dumps(click)}).encode())

    assert malformed.status_code == 400 and "malformed" in malformed.text
    assert no_id.status_code == gone.status_code == 200
    assert desk.conversation().assignee_id is None and desk.posts()[0].edits == 0
    [notice] = desk.notices
    assert notice.user == ANA and "Conversation 999 no longer exists" in notice.text


def test_a_support_channel_given_by_name_stops_start_up_naming_the_setting(make_settings):
    from bot.runtime.settings import SettingsError

    with pytest.raises(SettingsError, match=r"slack\.support_channel: .*not a channel id"):
        make_settings(slack={"support_channel": "#support"})
    assert make_settings(slack={"support_channel": "C024BE91L"}).slack.support_channel == "C024BE91L"
