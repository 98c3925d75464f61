"""Shared fixtures: the repository root, the real encoder and models (loaded once per session), settings in
a temporary data folder, a runtime over them, a web client, and for browser tests a real server on a free
port and a Playwright page in Debian's chromium."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from intents.encoder import Encoder, load_encoder
from tests.parts import missing_part, required_parts

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """The sentence encoder the product runs (the shipped int8 ONNX model), loaded once per test session."""
    return load_encoder()


@pytest.fixture(scope="session")
def models(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory):
    """The encoder, the shipped heads and the sample knowledge base, shared by every test."""
    from bot.runtime.analysis import Models, sample_knowledge_dir
    from intents import Understander
    from knowledge import KnowledgeBase

    knowledge = KnowledgeBase.build(
        sample_knowledge_dir(), encoder, cache_dir=tmp_path_factory.mktemp("knowledge-cache")
    )
    return Models(encoder, Understander.load(), knowledge, refresh_seconds=0)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Any]:
    """Settings with the data folder in `tmp_path`; keyword arguments override sections."""
    from bot.runtime.settings import load_settings

    def make(**overrides: Any):
        data = {"dir": tmp_path / "data", **overrides.pop("data", {})}
        # No quiet hours unless a test asks: a test run at night must send follow-ups like one run at noon.
        followups = {
            "quiet_hours_start": "00:00",
            "quiet_hours_end": "00:00",
            **overrides.pop("followups", {}),
        }
        return load_settings(data=data, followups=followups, **overrides)

    return make


@pytest.fixture
def db_engine(tmp_path: Path) -> Iterator[Any]:
    """A migrated SQLite database of its own, for service tests that need no models."""
    from bot.crm.db import create_db_engine, upgrade_database

    url = f"sqlite:///{tmp_path / 'socialbot.sqlite3'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def runtime(make_settings: Callable[..., Any], models) -> Iterator[Any]:
    from bot.worker.build import build_runtime

    built = build_runtime(make_settings(), models=models)
    yield built
    built.close()


@pytest.fixture
def client(runtime) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from bot.web.app import create_app

    with TestClient(create_app(runtime)) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Call `check` until it returns something true, and return that; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def server_url(runtime) -> Iterator[str]:
    """The app served by a real uvicorn in a thread on a free port, over the `runtime` fixture."""
    import uvicorn

    from bot.web.app import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page() -> Iterator[Any]:
    """A Playwright page in Debian's chromium (520x760; tests may resize it)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        missing_part("chromium", "Debian's chromium is not installed (scripts/test installs it)")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-background-networking"]
        )
        page = browser.new_page(viewport={"width": 520, "height": 760})
        yield page
        browser.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL server for the session (see tests/pg.py); skips when the binaries are absent (fails
    when `SOCIALBOT_REQUIRE` names postgres); a server that won't start is an error."""
    from tests.pg import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer()
    except PostgresUnavailable as error:
        missing_part("postgres", str(error))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(postgres_server) -> str:
    """The URL of a fresh, empty PostgreSQL database (`postgresql+psycopg://...`)."""
    return postgres_server.database()


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[Any]:
    """A real Dovecot IMAP server for the session (see tests/dovecot.py); skips when Dovecot is not installed
    (fails when `SOCIALBOT_REQUIRE` names dovecot); a server that won't start is an error."""
    from tests.dovecot import DovecotServer, DovecotUnavailable

    try:
        server = DovecotServer()
    except DovecotUnavailable as error:
        missing_part("dovecot", str(error))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def mailbox(dovecot_server) -> tuple[Any, str]:
    """A fresh, empty mailbox on the Dovecot server: (server, user); it logs in with `server.password`."""
    import uuid

    return dovecot_server, f"help-{uuid.uuid4().hex[:8]}@fernhill.example"


TELEGRAM_TOKEN = "123456:TEST-token"
TELEGRAM_SECRET = "telegram-webhook-s3cret"


@pytest.fixture
def telegram_bot(make_settings, models):
    """A worker with Telegram on in webhook mode against a fake Bot API: (runtime, web client, fake)."""
    from fastapi.testclient import TestClient

    from bot.web.app import create_app
    from bot.worker.build import build_runtime
    from tests.fakes.telegram import FakeTelegram

    with FakeTelegram(TELEGRAM_TOKEN) as telegram:
        settings = make_settings(
            telegram={
                "enabled": True,
                "token": TELEGRAM_TOKEN,
                "webhook_secret": TELEGRAM_SECRET,
                "api_base_url": telegram.api_base_url,
            }
        )
        runtime = build_runtime(settings, models=models)
        with TestClient(create_app(runtime)) as client:
            yield runtime, client, telegram
        runtime.close()


def pytest_configure(config: pytest.Config) -> None:
    required_parts()  # a typo in SOCIALBOT_REQUIRE stops the run before any test


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Where parts are required (CI), no test may skip, whatever the reason: a skip becomes a failure."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and required_parts():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped while SOCIALBOT_REQUIRE is set (CI must run every test): {reason}"
