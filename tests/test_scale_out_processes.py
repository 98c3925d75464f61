"""Three `socialbot serve` worker processes on one real PostgreSQL, behind the fake Slack and Telegram and the
web chat: 2,000 inbound messages, a fifth of them delivered twice (the platforms' retries and a client's
retry), get exactly one reply each and none is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import REPO, TELEGRAM_SECRET, TELEGRAM_TOKEN, free_port
from tests.fakes.slack import BOT_USER_ID, FakeSlack, event_callback, signed_headers
from tests.fakes.telegram import FakeTelegram

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_MESSAGES, TELEGRAM_MESSAGES, WEBCHAT_MESSAGES = 700, 700, 600
TEXT = "love the new tent, thanks!"


@pytest.fixture
def workers(pg_url, tmp_path):
    """`serve --workers 3` on PostgreSQL with Slack and Telegram pointed at the fakes."""
    with FakeSlack() as slack, FakeTelegram(TELEGRAM_TOKEN) as telegram:
        port = free_port()
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "SOCIALBOT_DATABASE__URL": pg_url,
            "SOCIALBOT_DATA__DIR": str(tmp_path / "d"),
            "SOCIALBOT_INTENTS__THREADS": "1",
            "SOCIALBOT_WEBCHAT__MESSAGES_PER_MINUTE_PER_IP": "0",  # 600 chats from one test client
            "SOCIALBOT_SLACK__ENABLED": "true",
            "SOCIALBOT_SLACK__BOT_TOKEN": slack.bot_token,
            "SOCIALBOT_SLACK__SIGNING_SECRET": SIGNING_SECRET,
            "SOCIALBOT_SLACK__API_BASE_URL": slack.api_base_url,
            "SOCIALBOT_TELEGRAM__ENABLED": "true",
            "SOCIALBOT_TELEGRAM__TOKEN": TELEGRAM_TOKEN,
            "SOCIALBOT_TELEGRAM__WEBHOOK_SECRET": TELEGRAM_SECRET,
            "SOCIALBOT_TELEGRAM__API_BASE_URL": telegram.api_base_url,
        }
        log = (tmp_path / "serve.log").open("w")
        server = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--workers", "3", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline, ready = time.monotonic() + 300, 0
            while ready < 6:  # several ready answers in a row: every worker is up
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the workers did not become ready"
                try:
                    ready = ready + 1 if httpx.get(f"{base}/readyz", timeout=5).status_code == 200 else 0
                except httpx.HTTPError:
                    ready = 0
                time.sleep(0.5)
            yield base, slack, telegram, pg_url
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()


def slack_delivery(number: int) -> tuple[bytes, dict[str, str]]:
    ts = f"1700000000.{number:06d}"
    event = {
        "type": "app_mention",
        "user": f"U{number:05d}",
        "text": f"<@{BOT_USER_ID}> {TEXT}",
        "ts": ts,
        "channel": "C0GENERAL",
        "event_ts": ts,
    }
    body = json.dumps(event_callback(event, event_id=f"Ev{number:06d}")).encode()
    return body, {"content-type": "application/json", **signed_headers(body, SIGNING_SECRET)}


def test_two_thousand_messages_across_three_worker_processes_get_one_reply_each(workers):
    base, slack, telegram, pg_url = workers
    updates = [telegram.private_message(10_000 + n, TEXT) for n in range(TELEGRAM_MESSAGES)]
    # A web chat retry presents the session token its first answer gave (the browser's cookie).
    tokens: dict[int, str] = {}
    answered = {number: threading.Event() for number in range(WEBCHAT_MESSAGES)}

    def send(job: tuple[str, int, int]) -> int:
        channel, number, attempt = job
        with httpx.Client(base_url=base, timeout=120) as http:
            if channel == "slack":
                body, headers = slack_delivery(number)
                if attempt:
                    headers["X-Slack-Retry-Num"] = str(attempt)
                return http.post("/slack/events", content=body, headers=headers).status_code
            if channel == "telegram":
                return http.post(
                    "/telegram/webhook",
                    content=json.dumps(updates[number]),
                    headers={
                        "content-type": "application/json",
                        "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET,
                    },
                ).status_code
            headers = {}
            if attempt:
                answered[number].wait(120)
                headers["Authorization"] = f"Bearer {tokens.get(number)}"
            answer = http.post(
                "/api/v1/chat",
                json={"session_id": f"web-session-{number:04d}", "text": TEXT, "message_id": f"m{number}"},
                headers=headers,
            )
            if not attempt:
                tokens[number] = answer.json().get("session_token")
                answered[number].set()
            return answer.status_code

    jobs = [("slack", n, 0) for n in range(SLACK_MESSAGES)]
    jobs += [("telegram", n, 0) for n in range(TELEGRAM_MESSAGES)]
    jobs += [("webchat", n, 0) for n in range(WEBCHAT_MESSAGES)]
    jobs += [(channel, number, 1) for channel, number, _ in jobs[::5]]  # a fifth delivered twice
    jobs.sort(key=lambda job: (job[1], job[2]))  # interleave the channels; a retry follows its original

    with ThreadPoolExecutor(8) as pool:
        statuses = Counter(pool.map(send, jobs))
    assert statuses == {200: len(jobs)}, statuses

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if len(slack.bot_replies()) >= SLACK_MESSAGES and len(telegram.sent) >= TELEGRAM_MESSAGES:
            break
        time.sleep(1)
    time.sleep(3)  # anything sent twice would show up now

    slack_threads = Counter(reply.thread_ts for reply in slack.bot_replies())
    assert len(slack_threads) == SLACK_MESSAGES and set(slack_threads.values()) == {1}
    telegram_chats = Counter(sent["request"]["chat_id"] for sent in telegram.sent)
    assert len(telegram_chats) == TELEGRAM_MESSAGES and set(telegram_chats.values()) == {1}
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        inbound = dict(
            connection.execute(
                text("SELECT channel, count(*) FROM message WHERE direction = 'in' GROUP BY channel")
            ).all()
        )
        web_replies = connection.execute(
            text(
                "SELECT count(*), count(DISTINCT reply_to_id) FROM message "
                "WHERE channel = 'webchat' AND direction = 'out' AND status = 'sent'"
            )
        ).one()
    engine.dispose()
    assert inbound == {"slack": SLACK_MESSAGES, "telegram": TELEGRAM_MESSAGES, "webchat": WEBCHAT_MESSAGES}
    assert tuple(web_replies) == (WEBCHAT_MESSAGES, WEBCHAT_MESSAGES)
