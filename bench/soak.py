"""Chaos soak: messages on every channel through `socialbot serve --workers 3` on a real PostgreSQL while
workers are killed at random; afterwards, from the fake platforms' records and the database, was anything
lost, decided twice or answered twice?

What runs (all on loopback): a throw-away PostgreSQL cluster (tests/pg.py), the fake Slack, Telegram and X
APIs and a real SMTP server (tests/fakes), and `socialbot serve --workers 3` pointed at them. Clients post
Slack events, Telegram updates, e-mails (the inbound webhook) and web chat messages, and put mentions on the
fake X timeline for the poller; a share of each is delivered twice (a platform's retry, a client's retry).
Customers write several times (the same Slack user, Telegram chat, e-mail address). While that runs:

- a chaos loop SIGKILLs a random worker a few seconds after all of them are ready (uvicorn's supervisor
  starts a new one), once kills the worker holding the X poller's lock, once restarts PostgreSQL;
- follow-ups are scheduled for conversations already open, due a few seconds later;
- /readyz is probed every 0.25 s, and every web chat request's latency is recorded.

Clients retry what was not acknowledged (connection cut by a kill, 5xx, 503 while the database restarts), as
the platforms do; a message is "accepted" once it got a 200. When the traffic is done and every worker is
back, the soak waits for the backlog to drain, then checks: every accepted message stored once and decided
once; every reply the outbox holds sent once (counted on the fake platform: Slack by the message metadata,
Telegram by chat + replied-to message + text, X by replied-to post + text, e-mail by Message-ID; web chat
replies are stored); every due follow-up sent once on its platform (one replaced by a newer one in its
conversation before it was queued: never sent); nothing pending or claimed left; failed rows with a reason;
/metrics consistent with the database. It prints one table, and for each duplicate the kill or restart that
fell between its queueing and its send.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 nice -n 10 python bench/soak.py [--messages 10000]

`tests/test_soak.py` runs it with about 1,000 messages.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.scale_out import metric_sum  # noqa: E402
from tests.conftest import TELEGRAM_SECRET, TELEGRAM_TOKEN, free_port  # noqa: E402
from tests.fakes.env import slack_env, telegram_env  # noqa: E402
from tests.fakes.slack import BOT_USER_ID, FakeSlack, event_callback, signed_headers  # noqa: E402
from tests.fakes.smtp import LocalSMTP  # noqa: E402
from tests.fakes.telegram import FakeTelegram  # noqa: E402
from tests.fakes.twitter import FakeX  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402

__all__ = ["SoakOptions", "SoakReport", "run_soak"]

CHANNELS = ("slack", "telegram", "twitter", "email", "webchat")
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
EMAIL_SECRET = "inbound-secret"
METRICS_TOKEN = "soak-metrics-token"
BRAND_DOMAIN = "fernhill.example"
X_BRAND_ID = "1000"
TEXTS = (
    "how long does delivery take?",
    "love my new tent, thank you!",
    "what is your return policy?",
    "my order hasn't arrived yet, where is it?",
    "you should sell kids' hiking boots",
    "do you ship to Canada?",
)
RETRYABLE = {429, 500, 502, 503, 504}


@dataclass
class SoakOptions:
    """What to run. `kill_after` is the pause (random in the range, seconds) between all workers being ready
    and the next kill."""

    messages: int = 10_000
    workers: int = 3
    clients: int = 6
    duplicate_share: float = 0.15
    customers_share: float = 0.5  # customers per message: 0.5 -> each customer writes about twice
    followups: int | None = None  # default: one per 50 messages
    kill_after: tuple[float, float] = (2.0, 5.0)
    min_kills: int = 2  # random workers killed at least, even if the traffic is done sooner
    settle_seconds: float = 300.0
    seed: int = 24
    workdir: Path | None = None
    onnx_cache: Path | None = None  # a folder to keep the encoder's ONNX export in across runs


@dataclass
class ChannelRow:
    """One channel's line of the table."""

    sent: int = 0  # distinct messages the clients sent (or put on X's timeline)
    deliveries: int = 0  # deliveries including the duplicates
    accepted: int = 0  # acknowledged with a 200 at least once (X: every mention on the timeline)
    stored: int = 0  # of the accepted, stored (once: the unique key)
    lost: int = 0  # accepted but not stored
    decided: int = 0  # stored and decided
    undecided: int = 0  # stored, never decided
    replies: int = 0  # outbox rows for this channel (replies and follow-ups)
    delivered: int = 0  # of those, on the platform exactly once
    duplicated: int = 0  # on the platform more than once
    not_sent: int = 0  # still pending, or recorded sent but never on the platform
    failed: int = 0  # failed for good (with the reason)
    stray: int = 0  # on the platform but matching no outbox row
    refused: int = 0  # never acknowledged by any worker after every retry
    max_reply_seconds: float = 0.0  # worst time from queueing a reply to sending it


@dataclass
class SoakReport:
    """What the soak saw; `problems()` lists every broken guarantee."""

    options: SoakOptions
    channels: dict[str, ChannelRow]
    kills: list[dict[str, Any]] = field(default_factory=list)
    followups_scheduled: int = 0
    followups_replaced: int = 0  # by a newer one in the same conversation before it was queued (never sent)
    followups_due: int = 0  # scheduled and not replaced: each must reach its platform once
    followups_sent_once: int = 0
    followups_duplicated: int = 0  # sent more than once on Telegram or e-mail (their duplicate window)
    followup_max_queue_seconds: float = 0.0  # worst time from due to queued in the outbox
    followups_problems: list[str] = field(default_factory=list)
    outbox_left: int = 0
    failed_without_reason: int = 0
    failure_reasons: Counter = field(default_factory=Counter)
    duplicate_reasons: list[str] = field(default_factory=list)
    metrics_mismatch: list[str] = field(default_factory=list)
    webchat_latencies: list[float] = field(default_factory=list)
    webchat_failed_attempts: int = 0
    webchat_sessions_lost: int = 0
    readyz: Counter = field(default_factory=Counter)
    max_decide_seconds: float = 0.0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Every guarantee the run broke, one line each (empty when all held)."""
        found = []
        for name, row in self.channels.items():
            if row.lost:
                found.append(f"{name}: {row.lost} accepted message(s) not stored")
            if row.undecided:
                found.append(f"{name}: {row.undecided} stored message(s) never decided")
            if row.not_sent:
                found.append(f"{name}: {row.not_sent} queued message(s) never sent")
            if row.stray:
                found.append(f"{name}: {row.stray} platform message(s) matching no outbox row")
            if row.duplicated and name not in ("telegram", "email"):
                found.append(
                    f"{name}: {row.duplicated} message(s) sent twice on a platform that can be asked"
                )
        if self.outbox_left:
            found.append(f"{self.outbox_left} outbox row(s) still pending")
        if self.failed_without_reason:
            found.append(f"{self.failed_without_reason} failed outbox row(s) without a reason")
        found += self.followups_problems + self.metrics_mismatch
        done = Counter(event["what"] for event in self.kills)
        if not (done["X poller holder"] and done["PostgreSQL restarted"] and done["worker"]):
            found.append(f"the chaos did not do all it should: {dict(done)}")
        return found


# The server


class Cluster:
    """`socialbot serve --workers N` as a child process: its worker processes, which of them are ready (from
    the log), and stopping it."""

    def __init__(self, env: dict[str, str], workers: int, port: int, log_path: Path) -> None:
        self.workers, self.port, self.log_path = workers, port, log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--workers", str(workers), "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._ready: set[int] = set()
        self._offset = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The live worker processes (the supervisor's children started by multiprocessing)."""
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            return []
        pids = []
        for child in children:
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
                status = Path(f"/proc/{child}/stat").read_text().split()[2]
            except OSError:
                continue
            if b"spawn_main" in command and b"resource_tracker" not in command and status != "Z":
                pids.append(int(child))
        return pids

    def ready_pids(self) -> set[int]:
        """Live workers that said they are ready."""
        with self.log_path.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        self._ready |= {int(pid) for pid in re.findall(rb"worker (\d+) ready", chunk[:end])}
        return self._ready & set(self.worker_pids())

    def wait_ready(self, timeout: float) -> float:
        """Wait until every worker is ready; return how long it took.

        Raises:
            RuntimeError: the server exited, or not every worker was ready in time.
        """
        started = time.monotonic()
        while len(self.ready_pids()) < self.workers:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.log_path}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the workers were not ready after {timeout:.0f} s; see {self.log_path}")
            time.sleep(0.2)
        return time.monotonic() - started

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()


def serve_env(url: str, data_dir: Path, slack: FakeSlack, telegram: FakeTelegram, x: FakeX, smtp: LocalSMTP):
    """The environment of `serve`: PostgreSQL, every channel pointed at its fake, follow-ups at any hour."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "SOCIALBOT_DATABASE__URL": url,
        "SOCIALBOT_DATA__DIR": str(data_dir),
        "SOCIALBOT_SECRET_KEY": "soak-secret-key-that-signs-unsubscribe-links",
        "SOCIALBOT_SERVER__METRICS_TOKEN": METRICS_TOKEN,
        "SOCIALBOT_LOGGING__LEVEL": "INFO",
        "SOCIALBOT_INTENTS__THREADS": "1",
        "SOCIALBOT_KNOWLEDGE__REFRESH_SECONDS": "0",
        "SOCIALBOT_WEBCHAT__MESSAGES_PER_MINUTE_PER_IP": "0",  # every chat comes from this one machine
        "SOCIALBOT_FOLLOWUPS__QUIET_HOURS_START": "00:00",
        "SOCIALBOT_FOLLOWUPS__QUIET_HOURS_END": "00:00",
        **slack_env(slack, SIGNING_SECRET),
        **telegram_env(telegram, TELEGRAM_SECRET),
        "SOCIALBOT_TWITTER__ENABLED": "true",
        "SOCIALBOT_TWITTER__BEARER_TOKEN": "app-bearer-token",
        "SOCIALBOT_TWITTER__CONSUMER_KEY": "consumer-key",
        "SOCIALBOT_TWITTER__CONSUMER_SECRET": "consumer-secret",
        "SOCIALBOT_TWITTER__ACCESS_TOKEN": "access-token",
        "SOCIALBOT_TWITTER__ACCESS_TOKEN_SECRET": "access-token-secret",
        "SOCIALBOT_TWITTER__USER_ID": X_BRAND_ID,
        "SOCIALBOT_TWITTER__API_BASE_URL": x.base_url,
        "SOCIALBOT_TWITTER__POLL_INTERVAL_SECONDS": "1",
        "SOCIALBOT_EMAIL__ENABLED": "true",
        "SOCIALBOT_EMAIL__SMTP_HOST": "127.0.0.1",
        "SOCIALBOT_EMAIL__SMTP_PORT": str(smtp.port),
        "SOCIALBOT_EMAIL__SMTP_SECURITY": "none",
        "SOCIALBOT_EMAIL__FROM_ADDRESS": f"care@{BRAND_DOMAIN}",
        "SOCIALBOT_EMAIL__INBOUND_SECRET": EMAIL_SECRET,
    }


# Traffic


@dataclass
class Job:
    channel: str
    number: int
    customer: int
    text: str
    attempt: int = 0  # 0: the first delivery; 1: delivered again


class Traffic:
    """The clients: build every delivery, send each until a worker acknowledges it, remember what was
    accepted and the web chat's latencies."""

    def __init__(self, base_url: str, telegram: FakeTelegram, x: FakeX, options: SoakOptions) -> None:
        self.base_url, self.telegram, self.x, self.options = base_url, telegram, x, options
        rng = random.Random(options.seed)
        customers = max(1, int(options.messages * options.customers_share / len(CHANNELS)))
        self.jobs = [
            Job(CHANNELS[n % len(CHANNELS)], n, rng.randrange(customers), f"{rng.choice(TEXTS)} (#{n})")
            for n in range(options.messages)
        ]
        again = [
            Job(job.channel, job.number, job.customer, job.text, attempt=1)
            for job in self.jobs
            if job.channel != "twitter" and rng.random() < options.duplicate_share
        ]
        for duplicate in again:  # a retry comes a little after its original
            self.jobs.insert(min(len(self.jobs), duplicate.number + 1 + rng.randrange(20)), duplicate)
        self.slack_epoch = int(time.time())
        self.updates: dict[int, dict[str, Any]] = {}  # Telegram updates, made when first sent (dated then)
        self.accepted: dict[str, set[str]] = defaultdict(set)  # channel -> external ids acknowledged
        self.refused: Counter = Counter()
        self.sent_numbers: dict[str, set[int]] = defaultdict(set)
        self.tokens: dict[int, str] = {}  # web chat customer -> session token
        self.session_lost: set[int] = set()
        self.latencies: list[float] = []
        self.failed_attempts = 0
        self.done = 0
        self._lock = threading.Lock()
        self._session_locks: dict[int, threading.Lock] = defaultdict(threading.Lock)

    def external_id(self, job: Job) -> str:
        """The (channel, external id) the bot stores the job's message under."""
        from bot.web.chat_sessions import thread_of

        if job.channel == "slack":
            return f"C0GENERAL:{self._slack_ts(job)}"
        if job.channel == "telegram":
            message = self._update(job)["message"]
            return f"{message['chat']['id']}:{message['message_id']}"
        if job.channel == "email":
            return f"<soak-{job.number}@customers.example>"
        return f"{thread_of(f'soak-session-{job.customer:06d}')}:m{job.number}"

    def _slack_ts(self, job: Job) -> str:
        return f"{self.slack_epoch}.{job.number:06d}"

    def _update(self, job: Job) -> dict[str, Any]:
        with self._lock:
            if job.number not in self.updates:
                self.updates[job.number] = self.telegram.private_message(20_000 + job.customer, job.text)
            return self.updates[job.number]

    def run(self) -> None:
        with ThreadPoolExecutor(self.options.clients) as pool:
            for _ in pool.map(self._deliver, self.jobs):
                pass

    def _deliver(self, job: Job) -> None:
        if job.channel == "twitter":
            tweet = self.x.mention(
                f"5{job.customer:07d}", f"@fernhill {job.text}", username=f"x{job.customer}"
            )
            with self._lock:
                self.accepted["twitter"].add(tweet["id"])
                self.sent_numbers["twitter"].add(job.number)
                self.done += 1
            return
        deadline = time.monotonic() + 180
        with httpx.Client(base_url=self.base_url, timeout=60) as http:
            while True:
                status = self._attempt(http, job)
                if status == 200 or status in (401, 403) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        external_id = self.external_id(job)
        with self._lock:
            self.sent_numbers[job.channel].add(job.number)
            self.done += 1
            if status == 200:
                self.accepted[job.channel].add(external_id)
            else:
                self.refused[job.channel] += 1

    def _attempt(self, http: httpx.Client, job: Job) -> int:
        """One delivery attempt; its HTTP status, or 0 when the connection failed (a worker was killed)."""
        try:
            if job.channel == "webchat":
                return self._chat(http, job)
            body, headers = self._request(job)
            path = {"slack": "/slack/events", "telegram": "/telegram/webhook", "email": "/email/inbound"}
            return http.post(path[job.channel], content=body, headers=headers).status_code
        except httpx.HTTPError:
            return 0

    def _request(self, job: Job) -> tuple[bytes, dict[str, str]]:
        if job.channel == "slack":
            ts = self._slack_ts(job)
            event = {
                "type": "app_mention",
                "user": f"U{job.customer:06d}",
                "text": f"<@{BOT_USER_ID}> {job.text}",
                "ts": ts,
                "channel": "C0GENERAL",
                "event_ts": ts,
            }
            body = json.dumps(event_callback(event, event_id=f"Ev{job.number:07d}")).encode()
            headers = {"content-type": "application/json", **signed_headers(body, SIGNING_SECRET)}
            if job.attempt:
                headers |= {"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
            return body, headers
        if job.channel == "telegram":
            body = json.dumps(self._update(job)).encode()
            return body, {
                "content-type": "application/json",
                "x-telegram-bot-api-secret-token": TELEGRAM_SECRET,
            }
        mail = {
            "from": f"Customer {job.customer} <customer{job.customer}@customers.example>",
            "to": f"care@{BRAND_DOMAIN}",
            "subject": "Question",
            "text": job.text,
            "message_id": f"<soak-{job.number}@customers.example>",
        }
        return json.dumps(mail).encode(), {
            "content-type": "application/json",
            "x-socialbot-secret": EMAIL_SECRET,
        }

    def _chat(self, http: httpx.Client, job: Job) -> int:
        # One customer's messages go one at a time, as from one browser; its session token is its cookie.
        with self._session_locks[job.customer]:
            token = self.tokens.get(job.customer)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            started = time.perf_counter()
            try:
                answer = http.post(
                    "/api/v1/chat",
                    json={
                        "session_id": f"soak-session-{job.customer:06d}",
                        "text": job.text,
                        "message_id": f"m{job.number}",
                    },
                    headers=headers,
                )
            except httpx.HTTPError:
                with self._lock:
                    self.failed_attempts += 1
                raise
            with self._lock:
                if answer.status_code == 200:
                    self.latencies.append(time.perf_counter() - started)
                    if answer.json().get("session_token"):
                        self.tokens[job.customer] = answer.json()["session_token"]
                else:
                    self.failed_attempts += 1
                if answer.status_code == 401:  # its first answer (the token) was cut off by a kill
                    self.session_lost.add(job.customer)
            return answer.status_code


# Chaos


class Chaos(threading.Thread):
    """A few seconds after all workers are ready: first kill the X poller's holder, then restart PostgreSQL,
    then kill a random worker, again and again until stopped (and `min_kills` workers were killed)."""

    def __init__(
        self, cluster: Cluster, postgres: PostgresServer, url: str, traffic: Traffic, options
    ) -> None:
        super().__init__(name="chaos", daemon=True)
        self.cluster, self.postgres, self.url, self.traffic, self.options = (
            cluster,
            postgres,
            url,
            traffic,
            options,
        )
        self.events: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self.rng = random.Random(options.seed + 1)

    def done(self) -> bool:
        """Whether the poller holder was killed, PostgreSQL restarted and `min_kills` workers killed."""
        return len(self.events) >= 2 + self.options.min_kills

    def run(self) -> None:
        poller_killed = restarted = False
        while not (self.stopping.is_set() and self.done()):
            try:
                self.cluster.wait_ready(600)
            except RuntimeError as error:
                self.events.append({"what": "workers did not come back", "error": str(error)})
                return
            time.sleep(self.rng.uniform(*self.options.kill_after))
            if not poller_killed:
                poller_killed = True
                self._kill_poller_holder()
            elif not restarted:
                restarted = True
                started = time.monotonic()
                self.postgres.restart()
                self.events.append(
                    {
                        "what": "PostgreSQL restarted",
                        "down_seconds": time.monotonic() - started,
                        "wall": time.time(),
                    }
                )
            else:
                ready = sorted(self.cluster.ready_pids())
                if ready:
                    self._kill(self.rng.choice(ready), "worker")

    def _kill(self, pid: int, what: str) -> None:
        killed_at = time.monotonic()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        event = {"what": what, "pid": pid, "at": killed_at, "wall": time.time()}
        self.events.append(event)
        try:
            self.cluster.wait_ready(600)
            event["back_seconds"] = time.monotonic() - killed_at
        except RuntimeError:
            event["back_seconds"] = None

    def _kill_poller_holder(self) -> None:
        holder = self.poller_holder()
        if holder is None:
            self.events.append({"what": "X poller holder not found"})
            return
        killed_at = time.monotonic()
        os.kill(holder, signal.SIGKILL)
        event: dict[str, Any] = {"what": "X poller holder", "pid": holder, "at": killed_at}
        event["wall"] = time.time()
        self.events.append(event)
        while time.monotonic() - killed_at < 120:
            taken = self.poller_holder()
            if taken is not None and taken != holder:
                event["takeover_seconds"] = time.monotonic() - killed_at
                break
            time.sleep(0.1)

    def poller_holder(self) -> int | None:
        """The pid of the worker holding the X poller's advisory lock (from its connection's name)."""
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                names = connection.execute(
                    text(
                        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE :name"
                    ),
                    {"name": "%poller:twitter:%"},
                ).scalars()
                pids = [int(m.group(1)) for name in names if (m := re.search(r"pid (\d+)", name))]
        except Exception:
            return None
        finally:
            engine.dispose()
        return pids[0] if pids else None


class Prober(threading.Thread):
    """GET /readyz every 0.25 s on a new connection, as a load balancer does; count the answers."""

    def __init__(self, base_url: str) -> None:
        super().__init__(name="readyz", daemon=True)
        self.base_url = base_url
        self.answers: Counter = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.25):
            try:
                status = httpx.get(f"{self.base_url}/readyz", timeout=5).status_code
                self.answers[str(status)] += 1
            except httpx.HTTPError as error:
                self.answers[type(error).__name__] += 1


class FollowupPlanner(threading.Thread):
    """Schedule follow-ups (written by hand, as staff do) for conversations already open on Telegram, e-mail
    and web chat, due a few seconds later, spread over the traffic."""

    def __init__(self, url: str, traffic: Traffic, count: int, seed: int) -> None:
        super().__init__(name="followups", daemon=True)
        self.url, self.traffic, self.count = url, traffic, count
        self.scheduled: list[int] = []
        self.rng = random.Random(seed + 2)
        self.stopping = threading.Event()

    def run(self) -> None:
        from sqlmodel import Session, select

        from bot.crm.models import Conversation
        from bot.engagement.followups import CUSTOM, schedule_followup

        engine = create_engine(self.url, pool_pre_ping=True)
        number = 0
        try:
            while len(self.scheduled) < self.count and not self.stopping.is_set():
                self.stopping.wait(max(0.2, 60 / max(1, self.count)))
                try:
                    with Session(engine) as session:
                        open_ones = session.exec(
                            select(Conversation).where(
                                Conversation.channel.in_(["telegram", "email", "webchat"])
                            )
                        ).all()
                        if not open_ones:
                            continue
                        conversation = self.rng.choice(open_ones)
                        number += 1
                        due = datetime.now(UTC) + timedelta(seconds=self.rng.uniform(2, 20))
                        rows = schedule_followup(
                            session,
                            conversation,
                            template=CUSTOM,
                            due_at=due,
                            channels=[conversation.channel],
                            text=f"Checking in: did everything work out? (soak follow-up {number})",
                        )
                        session.commit()
                        self.scheduled += [row.id for row in rows]
                except Exception:  # the database restarting; try the next one
                    continue
        finally:
            engine.dispose()


# Checking


def _comparable(text_: str) -> str:
    return re.sub(r"^(@\w+\s+)+", "", text_).strip()


def platform_records(
    slack: FakeSlack, telegram: FakeTelegram, x: FakeX, smtp: LocalSMTP
) -> dict[str, Counter]:
    """What each platform received from the bot, as keys an outbox row can be matched with, counted."""
    slack_keys = Counter(
        (m.metadata or {}).get("event_payload", {}).get("idempotency_key") for m in slack.bot_replies()
    )
    telegram_keys = Counter()
    for sent in list(telegram.sent):
        request = sent["request"]
        reply = request.get("reply_parameters")
        reply = json.loads(reply) if isinstance(reply, str) else reply
        replied = f"{request['chat_id']}:{reply['message_id']}" if reply else None
        telegram_keys[(str(request["chat_id"]), replied, request["text"])] += 1
    x_keys = Counter(
        (t["referenced_tweets"][0]["id"], _comparable(t["text"])) for t in list(x.replies_by_brand())
    )
    with smtp.lock:
        email_keys = Counter(str(mail["Message-ID"]) for mail in smtp.mails)
    return {"slack": slack_keys, "telegram": telegram_keys, "twitter": x_keys, "email": email_keys}


def outbox_key(row: Any) -> Any:
    """The key of an outbox row in `platform_records`."""
    if row.channel == "slack":
        return row.idempotency_key
    if row.channel == "telegram":
        return (row.thread_id, row.reply_to_external_id, row.text)
    if row.channel == "twitter":
        return (row.reply_to_external_id, _comparable(row.text))
    if row.channel == "email":  # its Message-ID, the same on every attempt (signed: only the bot makes it)
        return row.external_id
    return row.idempotency_key


def check(report: SoakReport, url: str, traffic: Traffic, records: dict[str, Counter], metrics: str) -> None:
    """Fill `report` from the database and the platforms' records."""
    engine = create_engine(url)
    with engine.connect() as connection:
        inbound = connection.execute(
            text(
                "SELECT channel, external_id, status, action, created_at, processed_at FROM message "
                "WHERE direction = 'in'"
            )
        ).all()
        outbox = connection.execute(
            text(
                "SELECT id, channel, idempotency_key, thread_id, reply_to_external_id, text, status, "
                "external_id, last_error, created_at, sent_at, claimed_until, attempts FROM outbox"
            )
        ).all()
        followups = connection.execute(
            text(
                "SELECT f.id, f.status, f.last_error, f.due_at, f.claimed_until, m.created_at AS queued_at, "
                "o.id AS outbox_id, o.channel, o.status AS sent, o.idempotency_key, o.thread_id, "
                "o.reply_to_external_id, o.text, o.external_id FROM followup f "
                "LEFT JOIN message m ON m.id = f.message_id LEFT JOIN outbox o ON o.message_id = f.message_id"
            )
        ).all()
    engine.dispose()

    stored = defaultdict(dict)
    for row in inbound:
        stored[row.channel][row.external_id] = row
    for channel in CHANNELS:
        line = report.channels[channel]
        line.sent = len(traffic.sent_numbers[channel])
        line.deliveries = sum(1 for job in traffic.jobs if job.channel == channel)
        line.accepted = len(traffic.accepted[channel])
        line.refused = traffic.refused[channel]
        line.stored = sum(1 for key in traffic.accepted[channel] if key in stored[channel])
        line.lost = line.accepted - line.stored
        line.decided = sum(1 for row in stored[channel].values() if row.status == "processed" and row.action)
        line.undecided = len(stored[channel]) - line.decided
        decide_times = [
            (row.processed_at - row.created_at).total_seconds()
            for row in stored[channel].values()
            if row.processed_at is not None
        ]
        report.max_decide_seconds = max([report.max_decide_seconds, *decide_times])

    matched: dict[str, Counter] = defaultdict(Counter)
    for row in outbox:
        line = report.channels[row.channel]
        line.replies += 1
        if row.status == "failed":
            line.failed += 1
            report.failure_reasons[(row.channel, (row.last_error or "")[:80])] += 1
            if not row.last_error:
                report.failed_without_reason += 1
            continue
        if row.status == "pending":
            report.outbox_left += 1
        if row.channel == "webchat":
            line.delivered += row.status == "sent"
            line.not_sent += row.status != "sent"
            continue
        key = outbox_key(row)
        matched[row.channel][key] += 1
        copies = records[row.channel].get(key, 0)
        if copies == 0:
            line.not_sent += 1
        elif copies == 1:
            line.delivered += 1
        else:
            line.duplicated += 1
            report.duplicate_reasons.append(
                f"{row.channel} outbox {row.id} ({row.idempotency_key}): {copies} copies, "
                f"{row.attempts} attempt(s); {_during(report.kills, row)}"
            )
        if row.sent_at is not None:
            seconds = (row.sent_at - row.created_at).total_seconds()
            line.max_reply_seconds = max(line.max_reply_seconds, seconds)
    for channel, counted in records.items():
        report.channels[channel].stray = sum(n for key, n in counted.items() if key not in matched[channel])

    check_followups(report, followups, records)

    # /metrics sums every worker's counters, the killed ones' included (their files stay).
    for channel in CHANNELS:
        counted_in = metric_sum(metrics, f'socialbot_messages_in_total{{channel="{channel}"}}')
        in_db = len(stored[channel])
        if abs(counted_in - in_db) > len(report.kills):
            report.metrics_mismatch.append(
                f"metrics: {channel} messages in {counted_in:.0f}, database {in_db}"
            )
        counted_out = metric_sum(metrics, f'socialbot_messages_out_total{{channel="{channel}"}}')
        sent_db = sum(1 for row in outbox if row.channel == channel and row.status == "sent")
        if abs(counted_out - sent_db) > len(report.kills):
            report.metrics_mismatch.append(
                f"metrics: {channel} messages out {counted_out:.0f}, database {sent_db}"
            )
    p99 = bucket_quantile(metrics, "socialbot_send_seconds", 0.99)
    report.notes.append(
        f"sends to the platforms: p99 under {p99} s (socialbot_send_seconds; sizes the leases)"
    )
    report.notes.append(
        f"metrics: in {metric_sum(metrics, 'socialbot_messages_in_total'):.0f}, out "
        f"{metric_sum(metrics, 'socialbot_messages_out_total'):.0f}, duplicates "
        f"{metric_sum(metrics, 'socialbot_duplicate_deliveries_total'):.0f}, decisions "
        f"{metric_sum(metrics, 'socialbot_decisions_total'):.0f}"
    )


def _during(events: list[dict[str, Any]], row: Any) -> str:
    """Which chaos event fell between the outbox row's queueing and its (last) send: why it went out twice."""
    queued, sent = row.created_at.timestamp(), (row.sent_at or row.created_at).timestamp()
    near = [e for e in events if "wall" in e and queued - 1 <= e["wall"] <= sent + 1]
    if not near:
        return "no kill or restart while it was in the outbox"
    return "; ".join(
        f"{e['what']} {e['wall'] - queued:.1f} s after it was queued, {sent - e['wall']:.1f} s before it was "
        "recorded sent"
        for e in near
    )


REPLACED = "replaced by a newer follow-up"


def check_followups(report: SoakReport, followups: list[Any], records: dict[str, Counter]) -> None:
    """Every follow-up scheduled went out once (on the platform), unless staff replaced it by a newer one
    before it was queued, in which case it never went out; nothing is left claimed; how long the due ones
    waited to be queued."""
    report.followups_scheduled = len(followups)
    for followup in followups:
        if followup.status == "pending" and followup.claimed_until is not None:
            report.followups_problems.append(f"follow-up {followup.id}: claimed to {followup.claimed_until}")
        if followup.status == "cancelled" and followup.last_error == REPLACED:
            report.followups_replaced += 1
            if followup.outbox_id is not None:
                report.followups_problems.append(
                    f"follow-up {followup.id}: replaced by a newer one, yet queued ({followup.outbox_id})"
                )
            continue
        report.followups_due += 1
        if followup.queued_at is not None:
            waited = (followup.queued_at - followup.due_at).total_seconds()
            report.followup_max_queue_seconds = max(report.followup_max_queue_seconds, waited)
        if followup.channel == "webchat":
            copies = int(followup.sent == "sent")
        elif followup.outbox_id is not None:
            copies = records[followup.channel].get(outbox_key(followup), 0)
        else:
            copies = 0
        if followup.status == "sent" and followup.sent == "sent" and copies == 1:
            report.followups_sent_once += 1
        elif followup.status == "sent" and copies > 1 and followup.channel in ("telegram", "email"):
            report.followups_duplicated += 1  # the window of a platform that can't be asked (counted above)
            report.notes.append(f"follow-up {followup.id}: {copies} copies on {followup.channel}")
        else:
            report.followups_problems.append(
                f"follow-up {followup.id}: {followup.status} ({followup.last_error}), outbox "
                f"{followup.outbox_id} {followup.sent}, {copies} cop{'y' if copies == 1 else 'ies'} on "
                f"{followup.channel}"
            )


def bucket_quantile(metrics: str, name: str, share: float) -> float | None:
    """The upper bound of the histogram bucket holding the `share` quantile of `name` (all label sets
    summed), from a Prometheus exposition; None without observations."""
    buckets: dict[float, float] = defaultdict(float)
    for match in re.finditer(
        rf'^{re.escape(name)}_bucket\{{[^}}]*le="([^"]+)"[^}}]*\}} ([0-9.e+-]+)$', metrics, re.M
    ):
        buckets[float(match.group(1))] += float(match.group(2))
    total = buckets.get(float("inf"), 0.0)
    if not total:
        return None
    return next(bound for bound in sorted(buckets) if buckets[bound] >= share * total)


def _backlog(url: str) -> tuple[int, int, int]:
    """(inbound undecided, outbox pending, follow-ups pending) now."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return tuple(
                connection.execute(text(query)).scalar_one()
                for query in (
                    "SELECT count(*) FROM message WHERE direction = 'in' AND status = 'received'",
                    "SELECT count(*) FROM outbox WHERE status = 'pending'",
                    "SELECT count(*) FROM followup WHERE status = 'pending'",
                )
            )
    finally:
        engine.dispose()


def _x_stored(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(
                text("SELECT count(*) FROM message WHERE channel = 'twitter' AND direction = 'in'")
            ).scalar_one()
    finally:
        engine.dispose()


def run_soak(options: SoakOptions, *, postgres: PostgresServer | None = None, say=print) -> SoakReport:
    """Run the soak and return what it found (see the module's docstring)."""
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="socialbot-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    own_postgres = postgres is None
    if own_postgres:
        postgres = PostgresServer()
        postgres.start()
    url = postgres.database()
    report = SoakReport(options, {channel: ChannelRow() for channel in CHANNELS})
    started = time.monotonic()
    try:
        with (
            FakeSlack() as slack,
            FakeTelegram(TELEGRAM_TOKEN) as telegram,
            FakeX(brand_id=X_BRAND_ID, brand_username="fernhill", refuse_duplicate_text=False) as x,
            LocalSMTP() as smtp,
        ):
            env = serve_env(url, workdir / "data", slack, telegram, x, smtp)
            if options.onnx_cache is not None:  # export the encoder once, not once per run
                options.onnx_cache.mkdir(parents=True, exist_ok=True)
                (workdir / "data" / "cache").mkdir(parents=True, exist_ok=True)
                (workdir / "data" / "cache" / "onnx").symlink_to(options.onnx_cache.resolve())
            cluster = Cluster(env, options.workers, free_port(), workdir / "serve.log")
            try:
                say(f"starting {options.workers} workers (log: {cluster.log_path})")
                cluster.wait_ready(900)
                deadline = time.monotonic() + 120  # the poller's first round notes where the timeline is
                while not x.server.calls(f"/2/users/{X_BRAND_ID}/mentions") and time.monotonic() < deadline:
                    time.sleep(0.2)
                traffic = Traffic(cluster.base_url, telegram, x, options)
                chaos = Chaos(cluster, postgres, url, traffic, options)
                prober = Prober(cluster.base_url)
                planner = FollowupPlanner(
                    url,
                    traffic,
                    options.followups if options.followups is not None else options.messages // 50,
                    options.seed,
                )
                for thread in (chaos, prober, planner):
                    thread.start()
                say(f"sending {len(traffic.jobs)} deliveries of {options.messages} messages")
                traffic.run()
                say("traffic done; stopping the chaos and waiting for the backlog to drain")
                chaos.stopping.set()
                planner.stopping.set()
                chaos.join(timeout=900)
                planner.join(timeout=60)
                cluster.wait_ready(900)
                settle_until = time.monotonic() + options.settle_seconds
                while time.monotonic() < settle_until:
                    if _backlog(url) == (0, 0, 0) and _x_stored(url) >= len(traffic.accepted["twitter"]):
                        break
                    time.sleep(2)
                time.sleep(3)  # anything sent twice would show up now
                prober.stopping.set()
                scraped = httpx.get(
                    f"{cluster.base_url}/metrics",
                    headers={"Authorization": f"Bearer {METRICS_TOKEN}"},  # /metrics needs its token
                    timeout=30,
                )
                scraped.raise_for_status()
                metrics = scraped.text
            finally:
                cluster.stop()
            report.kills = chaos.events
            report.readyz = prober.answers
            report.webchat_latencies = sorted(traffic.latencies)
            report.webchat_failed_attempts = traffic.failed_attempts
            report.webchat_sessions_lost = len(traffic.session_lost)
            check(report, url, traffic, platform_records(slack, telegram, x, smtp), metrics)
    finally:
        if own_postgres:
            postgres.cleanup()
    report.seconds = time.monotonic() - started
    return report


# The table


def _percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(len(values) * share))] if values else 0.0


def render(report: SoakReport) -> None:
    """Print the report as one table (Rich), with the events and problems under it."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 170))
    table = Table(title=f"Chaos soak: {report.options.messages} messages, {report.options.workers} workers")
    columns = (
        ("channel", "channel"),
        ("sent", "sent"),
        ("deliveries", "deliveries"),
        ("accepted", "accepted"),
        ("lost", "lost"),
        ("decided", "decided"),
        ("undecided", "undecided"),
        ("replies", "outbox rows"),
        ("delivered", "sent once"),
        ("duplicated", "sent twice+"),
        ("not_sent", "not sent"),
        ("failed", "failed"),
        ("max_reply_seconds", "worst queue->sent s"),
    )
    for _, title in columns:
        table.add_column(title, justify="left" if title == "channel" else "right")
    for name, row in report.channels.items():
        cells = [name]
        for attribute, _ in columns[1:]:
            value = getattr(row, attribute)
            cells.append(f"{value:.1f}" if isinstance(value, float) else str(value))
        table.add_row(*cells)
    console.print(table)
    kills = [k for k in report.kills if k["what"] in ("worker", "X poller holder")]
    back = [k["back_seconds"] for k in kills if k.get("back_seconds")]
    latencies = report.webchat_latencies
    lines = [
        f"kills: {len(kills)} (SIGKILL); a new worker ready after {statistics.median(back):.1f} s median, "
        f"{max(back):.1f} s worst"
        if back
        else f"kills: {len(kills)}",
        *[
            f"{event['what']}: "
            + ", ".join(
                f"{key} {value:.1f}" for key, value in event.items() if key.endswith("seconds") and value
            )
            for event in report.kills
            if event["what"] != "worker"
        ],
        f"follow-ups scheduled {report.followups_scheduled} (replaced before going out "
        f"{report.followups_replaced}), due {report.followups_due}, sent once {report.followups_sent_once}, "
        f"twice+ {report.followups_duplicated}; "
        f"worst due->queued {report.followup_max_queue_seconds:.1f} s",
        f"web chat: p50 {_percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {_percentile(latencies, 0.99) * 1000:.0f} ms over {len(latencies)} answers; "
        f"{report.webchat_failed_attempts} attempts cut off or refused (retried), "
        f"{report.webchat_sessions_lost} session(s) lost",
        "/readyz: " + ", ".join(f"{status} x{count}" for status, count in sorted(report.readyz.items())),
        f"worst in->decided {report.max_decide_seconds:.1f} s; outbox left pending {report.outbox_left}",
        *report.notes[:20],
        *[
            f"failed: {channel}: {reason} x{count}"
            for (channel, reason), count in report.failure_reasons.items()
        ],
        *report.duplicate_reasons[:20],
        f"took {report.seconds:.0f} s",
    ]
    for line in lines:
        console.print(line)
    problems = report.problems()
    console.print("[bold green]every guarantee held[/]" if not problems else "[bold red]broken:[/]")
    for problem in problems:
        console.print(f"  {problem}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--workdir", type=Path, default=None, help="where the data folder and serve.log go")
    parser.add_argument("--onnx-cache", type=Path, default=None, help="keep the encoder's ONNX export here")
    args = parser.parse_args()
    report = run_soak(
        SoakOptions(
            messages=args.messages,
            workers=args.workers,
            clients=args.clients,
            seed=args.seed,
            workdir=args.workdir,
            onnx_cache=args.onnx_cache,
        )
    )
    render(report)
    sys.exit(1 if report.problems() else 0)


if __name__ == "__main__":
    main()
