"""Telegram customers get one answer, as a reply to their message, whether Telegram posts updates to the
webhook or the bot polls for them; retries, forged deliveries, other bots and chatter not addressed to the bot
get nothing. python-telegram-bot runs unmodified against a fake Bot API on loopback."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.crm.models import ChannelCursor, Direction, Message, Outbox, utcnow
from bot.delivery.outbox import deliver_due
from bot.web.app import create_app
from bot.worker.build import build_runtime
from channels.base import ChannelError
from channels.telegram import OFFSET_CURSOR, TelegramChannel
from knowledge import format_reply
from tests.fakes.server import FakeResponse
from tests.fakes.telegram import BOT_USER, FakeTelegram, flood_control, server_error

TOKEN = "123456:TEST-token"
SECRET = "telegram-webhook-s3cret"
QUESTION = "how long does delivery take?"
GROUP = -1001234567890
STICKER = {
    "file_id": "CAACAgIAAxkBAAEB",
    "file_unique_id": "AgADBAAD",
    "width": 512,
    "height": 512,
    "is_animated": False,
    "is_video": False,
    "type": "regular",
}


@pytest.fixture
def telegram():
    with FakeTelegram(TOKEN) as fake:
        yield fake


@pytest.fixture
def telegram_settings(make_settings, telegram):
    def settings(mode: str = "webhook"):
        return make_settings(
            telegram={
                "enabled": True,
                "token": TOKEN,
                "webhook_secret": SECRET,
                "mode": mode,
                "api_base_url": telegram.api_base_url,
            }
        )

    return settings


@pytest.fixture
def bot(telegram_settings, models):
    """The bot in webhook mode, behind the real web app."""
    runtime = build_runtime(telegram_settings("webhook"), models=models)
    with TestClient(create_app(runtime)) as client:
        yield runtime, client
    runtime.close()


def post(client, update, secret: str | None = SECRET):
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    return client.post("/telegram/webhook", content=body, headers=headers)


def inbound_messages(runtime) -> list[Message]:
    with Session(runtime.engine) as session:
        return session.exec(select(Message).where(Message.direction == Direction.INBOUND.value)).all()


def outbox_rows(runtime) -> list[Outbox]:
    with Session(runtime.engine) as session:
        return session.exec(select(Outbox)).all()


def expected_answer(runtime, question: str) -> str:
    return format_reply(runtime.models.analyse(question).answer.article, "telegram")


def reply_to(sent: dict) -> int:
    return json.loads(sent["request"]["reply_parameters"])["message_id"]


# Webhook: who gets an answer


def test_a_private_question_gets_exactly_one_reply_to_that_message(bot, telegram):
    runtime, client = bot
    update = telegram.private_message(42, QUESTION)

    response = post(client, update)
    assert response.status_code == 200 and response.json()["new"] is True
    assert runtime.wait_idle()

    assert len(telegram.sent) == 1
    reply = telegram.sent[0]
    assert reply["request"]["chat_id"] == "42"
    assert reply_to(reply) == update["message"]["message_id"]
    assert reply["request"]["text"] == expected_answer(runtime, QUESTION)
    assert "parse_mode" not in reply["request"]
    [row] = outbox_rows(runtime)
    assert (row.status, row.external_id) == ("sent", f"42:{reply['message_id']}")
    [message] = inbound_messages(runtime)
    assert (message.external_id, message.public, message.action) == (
        f"42:{update['message']['message_id']}",
        False,
        "answer",
    )


def test_the_same_update_delivered_twice_is_answered_once(bot, telegram):
    runtime, client = bot
    update = telegram.private_message(43, QUESTION)

    assert post(client, update).json()["new"] is True
    assert runtime.wait_idle()
    again = post(client, update)
    assert again.status_code == 200 and again.json()["new"] is False
    assert runtime.wait_idle()

    assert len(telegram.sent) == 1
    assert len(inbound_messages(runtime)) == 1


@pytest.mark.parametrize("secret", ["forged-secret", "", None])
def test_a_delivery_with_a_wrong_or_missing_secret_is_refused_and_stores_nothing(bot, telegram, secret):
    runtime, client = bot
    assert post(client, telegram.private_message(44, QUESTION), secret=secret).status_code == 403
    assert runtime.wait_idle()
    assert inbound_messages(runtime) == [] and telegram.sent == []


def test_group_chatter_is_ignored_but_a_mention_or_a_reply_to_the_bot_is_answered(bot, telegram):
    runtime, client = bot
    chatter = telegram.group_message(GROUP, 51, "anyone tried the new tents?")
    mention_text = f"@{BOT_USER['username'].lower()} {QUESTION}"
    mention = telegram.group_message(
        GROUP, 52, mention_text, entities=[{"type": "mention", "offset": 0, "length": 12}]
    )
    earlier_answer = telegram.bot_message({"id": GROUP, "type": "supergroup", "title": "x"}, "Hi there!")
    reply = telegram.group_message(GROUP, 53, QUESTION, reply_to_message=earlier_answer)

    ignored = post(client, chatter)
    assert ignored.status_code == 200 and ignored.json()["ignored"] is True
    assert post(client, mention).json()["new"] is True
    assert post(client, reply).json()["new"] is True
    assert runtime.wait_idle()

    assert [m.external_id for m in inbound_messages(runtime)] == [
        f"{GROUP}:{mention['message']['message_id']}",
        f"{GROUP}:{reply['message']['message_id']}",
    ]
    assert all(m.public for m in inbound_messages(runtime))
    assert sorted(reply_to(sent) for sent in telegram.sent) == sorted(
        [mention["message"]["message_id"], reply["message"]["message_id"]]
    )
    assert {sent["request"]["chat_id"] for sent in telegram.sent} == {str(GROUP)}
    assert len(telegram.calls("getMe")) == 1  # the bot's identity is fetched once


def test_a_mention_of_another_bot_in_a_group_is_not_for_us(bot, telegram):
    runtime, client = bot
    other = telegram.group_message(
        GROUP, 54, "@FernhillBotFan how long?", entities=[{"type": "mention", "offset": 0, "length": 14}]
    )
    assert post(client, other).json()["ignored"] is True
    assert runtime.wait_idle()
    assert inbound_messages(runtime) == []


@pytest.mark.parametrize("command", ["/start", "/start@FernhillBot"])
def test_start_in_a_private_chat_gets_the_greeting(bot, telegram, command):
    runtime, client = bot
    entity = {"type": "bot_command", "offset": 0, "length": len(command)}
    post(client, telegram.private_message(45, command, entities=[entity]))
    assert runtime.wait_idle()

    [message] = inbound_messages(runtime)
    assert (message.kind, message.action) == ("greeting", "greet")
    assert len(telegram.sent) == 1
    assert runtime.settings.brand.name in telegram.sent[0]["request"]["text"]


def test_messages_from_bots_and_messages_without_text_are_ignored(bot, telegram):
    runtime, client = bot
    from_bot = telegram.private_message(46, QUESTION)
    from_bot["message"]["from"]["is_bot"] = True
    sticker = telegram.private_message(47, None, sticker=STICKER)

    for update in (from_bot, sticker):
        response = post(client, update)
        assert response.status_code == 200 and response.json()["ignored"] is True
    assert runtime.wait_idle()
    assert inbound_messages(runtime) == [] and telegram.sent == []


def test_bad_input_gets_a_4xx_or_is_acknowledged_and_ignored_never_answered(bot, telegram):
    runtime, client = bot
    edited = {
        "update_id": telegram.next_update_id(),
        "edited_message": telegram.private_message(48, "x")["message"],
    }
    broken_message = {"update_id": telegram.next_update_id(), "message": {"text": "no chat, no date"}}

    assert post(client, b"{not json").status_code == 400
    assert post(client, b'["a list"]').status_code == 400
    assert "update_id" in post(client, {"message": {}}).json()["error"]
    assert post(client, broken_message).status_code == 400
    assert post(client, edited).status_code == 200
    assert post(client, b'{"update_id": 1, "text": "' + b"x" * 1_100_000 + b'"}').status_code == 413
    assert runtime.wait_idle()
    assert inbound_messages(runtime) == [] and telegram.sent == []


# Out: failures and retries


def test_flood_control_is_waited_out_and_the_reply_goes_once(bot, telegram):
    runtime, client = bot
    telegram.fail("sendMessage", flood_control(retry_after=30))

    post(client, telegram.private_message(61, QUESTION))
    assert runtime.wait_idle()
    assert len(telegram.calls("sendMessage")) == 1 and telegram.sent == []
    [row] = outbox_rows(runtime)
    assert row.status == "pending" and "Flood control" in row.last_error

    early = deliver_due(runtime.engine, runtime.channels, now=utcnow() + timedelta(seconds=20))
    assert early.sent == [] and len(telegram.calls("sendMessage")) == 1  # retry_after honoured

    later = deliver_due(runtime.engine, runtime.channels, now=utcnow() + timedelta(seconds=31))
    assert later.sent == [row.id]
    deliver_due(runtime.engine, runtime.channels, now=utcnow() + timedelta(hours=1))
    assert len(telegram.sent) == 1 and telegram.sent[0]["request"]["chat_id"] == "61"


def test_a_server_error_is_retried(bot, telegram):
    runtime, client = bot
    telegram.fail("sendMessage", server_error())

    post(client, telegram.private_message(62, QUESTION))
    assert runtime.wait_idle()
    assert telegram.sent == [] and outbox_rows(runtime)[0].attempts == 1

    report = deliver_due(runtime.engine, runtime.channels, now=utcnow() + timedelta(minutes=1))
    assert len(report.sent) == 1 and len(telegram.sent) == 1


def test_a_bot_blocked_by_the_customer_fails_the_reply_without_retrying(bot, telegram):
    runtime, client = bot
    blocked = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
    telegram.fail("sendMessage", FakeResponse(403, blocked))

    post(client, telegram.private_message(63, QUESTION))
    assert runtime.wait_idle()
    [row] = outbox_rows(runtime)
    assert row.status == "failed" and "blocked" in row.last_error
    deliver_due(runtime.engine, runtime.channels, now=utcnow() + timedelta(hours=1))
    assert len(telegram.calls("sendMessage")) == 1


# Identity


def test_check_names_the_bot_or_says_why_not(bot, telegram):
    runtime, _client = bot
    channel = runtime.channels["telegram"]
    assert channel.check() == f"@{BOT_USER['username']} (id {BOT_USER['id']})"

    telegram.fail("getMe", FakeResponse(401, {"ok": False, "error_code": 401, "description": "Unauthorized"}))
    with pytest.raises(ChannelError, match="token"):
        channel.check()


# Polling


def wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def stored_offset(runtime) -> str | None:
    with Session(runtime.engine) as session:
        row = session.get(ChannelCursor, OFFSET_CURSOR)
        return row.value if row is not None else None


def test_polling_answers_each_update_once_and_a_restart_resumes_from_the_saved_offset(
    telegram_settings, models, telegram, monkeypatch
):
    monkeypatch.setattr(TelegramChannel, "poll_timeout_seconds", 1)
    monkeypatch.setattr(TelegramChannel, "retry_interval_seconds", 0.05)
    settings = telegram_settings("polling")
    first = telegram.private_message(71, QUESTION)
    telegram.queue(first)

    runtime = build_runtime(settings, models=models)
    try:
        runtime.start_channels()
        wait_for(lambda: stored_offset(runtime) == str(first["update_id"] + 1))
        assert runtime.wait_idle()
        assert len(telegram.sent) == 1 and reply_to(telegram.sent[0]) == first["message"]["message_id"]
        assert len(telegram.calls("deleteWebhook")) == 1
    finally:
        started = time.monotonic()
        runtime.close()
    assert time.monotonic() - started < 2, "stop() should cancel the long poll, not wait it out"

    second = telegram.private_message(72, "do you ship to Norway?")
    telegram.queue(second)
    restarted = build_runtime(settings, models=models)
    try:
        polls_before = len(telegram.calls("getUpdates"))
        restarted.start_channels()
        wait_for(lambda: stored_offset(restarted) == str(second["update_id"] + 1))
        assert restarted.wait_idle()
    finally:
        restarted.close()

    resumed = telegram.calls("getUpdates")[polls_before]
    assert resumed.params["offset"] == str(first["update_id"] + 1)
    assert [reply_to(sent) for sent in telegram.sent] == [
        first["message"]["message_id"],
        second["message"]["message_id"],
    ]


def test_polling_survives_a_failing_get_updates_and_keeps_the_batch(
    telegram_settings, models, telegram, monkeypatch
):
    monkeypatch.setattr(TelegramChannel, "poll_timeout_seconds", 1)
    monkeypatch.setattr(TelegramChannel, "retry_interval_seconds", 0.05)
    telegram.fail(
        "getUpdates",
        server_error(),
        FakeResponse(409, {"ok": False, "error_code": 409, "description": "Conflict"}),
    )
    update = telegram.private_message(73, QUESTION)
    telegram.queue(update)

    runtime = build_runtime(telegram_settings("polling"), models=models)
    try:
        runtime.start_channels()
        wait_for(lambda: stored_offset(runtime) == str(update["update_id"] + 1))
        assert runtime.wait_idle()
    finally:
        runtime.close()
    assert len(telegram.sent) == 1
