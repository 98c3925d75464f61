"""Servers for the attack suite: a real `socialbot serve` on loopback (SQLite, one worker) with the web chat,
e-mail (over a loopback SMTP server) and Slack's Events API on, and a second one with Slack in Socket Mode
and an https public URL. tests/security/test_limits_across_workers.py starts its own `--workers 2` on
PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import LocalSMTP
from tests.security.server import PASSWORD, SECRET_KEY, Served, start_server

ADMIN = "admin@fernhill.example"
AGENT = "agent@fernhill.example"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
INBOUND_SECRET = "inbound-shared-secret-for-tests"
#: The receiving mail server whose Authentication-Results the e-mail channel believes.
TRUSTED_AUTHSERV_ID = "mx.fernhill.example"
#: The limits the attack suite's servers run with (small, so an attack crosses them quickly).
LIMITS = {
    "SOCIALBOT_WEBCHAT__MESSAGES_PER_MINUTE_PER_IP": "12",
    "SOCIALBOT_CONSOLE__LOGIN_ATTEMPTS": "5",
    "SOCIALBOT_CONSOLE__LOGIN_ATTEMPTS_PER_IP": "10",
    "SOCIALBOT_VERIFICATION__CODES_PER_ADDRESS_PER_HOUR": "3",
    "SOCIALBOT_VERIFICATION__CODES_PER_IP_PER_HOUR": "4",
}
METRICS_TOKEN = "metrics-token-for-the-attack-suite"


def email_env(smtp: LocalSMTP) -> dict[str, str]:
    """E-mail on, over the loopback SMTP server (verification codes go out this way); raw mails posted to
    /email/inbound are believed only as far as TRUSTED_AUTHSERV_ID vouches for their senders."""
    return {
        "SOCIALBOT_EMAIL__ENABLED": "true",
        "SOCIALBOT_EMAIL__SMTP_HOST": "127.0.0.1",
        "SOCIALBOT_EMAIL__SMTP_PORT": str(smtp.port),
        "SOCIALBOT_EMAIL__SMTP_SECURITY": "none",
        "SOCIALBOT_EMAIL__FROM_ADDRESS": "care@fernhill.example",
        "SOCIALBOT_EMAIL__INBOUND_SECRET": INBOUND_SECRET,
        "SOCIALBOT_EMAIL__TRUSTED_AUTHSERV_ID": TRUSTED_AUTHSERV_ID,
    }


def slack_env(fake_slack: FakeSlack, *, socket_mode: bool) -> dict[str, str]:
    """Slack on, against the fake; a signing secret set in both modes (and an app token in Socket Mode)."""
    env = {
        "SOCIALBOT_SLACK__ENABLED": "true",
        "SOCIALBOT_SLACK__BOT_TOKEN": fake_slack.bot_token,
        "SOCIALBOT_SLACK__SIGNING_SECRET": SIGNING_SECRET,
        "SOCIALBOT_SLACK__API_BASE_URL": fake_slack.api_base_url,
    }
    if socket_mode:
        env |= {"SOCIALBOT_SLACK__SOCKET_MODE": "true", "SOCIALBOT_SLACK__APP_TOKEN": fake_slack.app_token}
    return env


@pytest.fixture(scope="session")
def caches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder for the suite's servers: the encoder is exported and the articles encoded once."""
    return tmp_path_factory.mktemp("security-caches")


@pytest.fixture(scope="session")
def smtp() -> Iterator[LocalSMTP]:
    with LocalSMTP() as server:
        yield server


@pytest.fixture(scope="session")
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


@pytest.fixture(scope="session")
def server(tmp_path_factory, caches, smtp, fake_slack) -> Iterator[Served]:
    """`socialbot serve` on SQLite: web chat, e-mail, Slack's Events API over HTTP; an admin and an agent.
    Verified customers' data requests are fulfilled at once (`auto_fulfil`, what an attacker hopes for)."""
    served = start_server(
        tmp_path_factory.mktemp("server"),
        caches=caches,
        env={
            "SOCIALBOT_SECRET_KEY": SECRET_KEY,
            **email_env(smtp),
            **slack_env(fake_slack, socket_mode=False),
            "SOCIALBOT_SERVER__METRICS_TOKEN": METRICS_TOKEN,
            "SOCIALBOT_DATA_RIGHTS__AUTO_FULFIL": "true",
            **LIMITS,
        },
        staff={ADMIN: "admin", AGENT: "agent"},
    )
    yield served
    served.stop()


@pytest.fixture(scope="session")
def https_socket_mode_server(tmp_path_factory, caches, fake_slack) -> Iterator[Served]:
    """`socialbot serve` with Slack in Socket Mode (a signing secret set too) and an https public URL."""
    served = start_server(
        tmp_path_factory.mktemp("socket-mode-server"),
        caches=caches,
        env={
            "SOCIALBOT_SECRET_KEY": SECRET_KEY,
            "SOCIALBOT_SERVER__PUBLIC_URL": "https://chat.fernhill.example",
            **slack_env(fake_slack, socket_mode=True),
        },
        staff={ADMIN: "admin"},
    )
    yield served
    served.stop()


def csrf_of(html: str) -> str:
    """The CSRF token of the first console form on a page."""
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def log_in(http: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    """Log in to the console with `http` (its cookie jar keeps the session); the answer to the form post."""
    page = http.get("/console/login")
    return http.post(
        "/console/login",
        data={"email": email, "password": password, "csrf": csrf_of(page.text), "next": "/console"},
        follow_redirects=False,
    )


def parallel_wrong_guesses(http: httpx.Client, email: str, count: int = 20) -> list[int]:
    """`count` wrong passwords for `email` posted at the same moment; the status codes of the answers."""
    csrf = csrf_of(http.get("/console/login").text)

    def guess(number: int) -> int:
        form = {"email": email, "password": f"wrong guess {number:02d}", "csrf": csrf, "next": "/console"}
        return http.post("/console/login", data=form).status_code

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(guess, range(count)))


def api_token(served: Served, email: str) -> str:
    """A fresh staff API token (`socialbot staff token`)."""
    issued = served.cli("staff", "token", email)
    assert issued.returncode == 0, issued.stderr
    return issued.stdout.strip()
