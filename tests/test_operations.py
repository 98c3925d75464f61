"""Operating socialbot: liveness vs readiness, Prometheus metrics from the pipeline and the outbox, JSON logs
with request and message ids, and `serve --workers N` (refused on SQLite; on PostgreSQL N processes answer
the web chat and stop cleanly on SIGTERM)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import create_engine

from bot.runtime.logs import JsonFormatter, RequestIdFilter
from tests.conftest import REPO, free_port


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = (
        rf"^{re.escape(name)}(\{{{re.escape(label_text)}\}})? ([0-9.e+-]+)$" if labels else rf"^{name} (.+)$"
    )
    for line in text.splitlines():
        found = re.match(pattern, line)
        if found:
            return float(found.groups()[-1])
    return 0.0


METRICS_TOKEN = "scraper-token-for-tests"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture
def runtime(make_settings, models):
    """A worker whose /metrics answers the scraper holding METRICS_TOKEN."""
    from bot.worker.build import build_runtime

    built = build_runtime(make_settings(server={"metrics_token": METRICS_TOKEN}), models=models)
    yield built
    built.close()


def test_metrics_count_messages_decisions_and_deliveries(client):
    assert client.get("/metrics").status_code == 401  # only for the scraper
    before = client.get("/metrics", headers=SCRAPER).text
    reply = client.post("/api/v1/chat", json={"session_id": "metrics-session-1", "text": "love my new tent!"})
    assert reply.status_code == 200 and reply.json()["replies"]

    after = client.get("/metrics", headers=SCRAPER)
    assert after.status_code == 200 and after.headers["content-type"].startswith("text/plain")
    text = after.text
    for name, labels in [
        ("socialbot_messages_in_total", {"channel": "webchat"}),
        ("socialbot_messages_out_total", {"channel": "webchat"}),
        ("socialbot_decisions_total", {"action": "thank", "intent": "praise"}),
    ]:
        assert metric(text, name, **labels) == metric(before, name, **labels) + 1, name
    assert metric(text, "socialbot_pipeline_seconds_count") >= 1
    assert metric(text, "socialbot_outbox_backlog") == 0


def test_healthz_is_liveness_and_readyz_fails_when_the_database_is_gone_or_the_worker_stops(client, runtime):
    assert client.get("/readyz").status_code == 200
    working = runtime.engine
    runtime.engine = create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["database"] is False
        assert client.get("/healthz").status_code == 200  # alive: don't restart it for a database outage
    finally:
        runtime.engine = working
    runtime.stopping.set()
    stopping = client.get("/readyz")
    assert stopping.status_code == 503 and stopping.json()["accepting"] is False


def test_json_logs_carry_the_request_and_message_ids(client, caplog):
    response = client.get("/healthz", headers={"X-Request-ID": "req-abc-123"})
    assert response.headers["X-Request-ID"] == "req-abc-123"
    assert re.fullmatch(r"[0-9a-f]{32}", client.get("/healthz").headers["X-Request-ID"])
    assert client.get("/healthz", headers={"X-Request-ID": "<script>"}).headers["X-Request-ID"] != "<script>"

    # A record logged while the request is handled (in the endpoint's thread) carries the request's id.
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.addFilter(RequestIdFilter())
    handler.emit = seen.append
    pipeline_log = logging.getLogger("socialbot.pipeline")
    pipeline_log.addHandler(handler)
    previous_level = pipeline_log.level
    pipeline_log.setLevel(logging.INFO)
    try:
        client.post(
            "/api/v1/chat",
            json={"session_id": "request-id-session", "text": "how long does delivery take?"},
            headers={"X-Request-ID": "req-chat-42"},
        )
    finally:
        pipeline_log.removeHandler(handler)
        pipeline_log.setLevel(previous_level)
    assert seen and all(record.request_id == "req-chat-42" for record in seen)

    record = logging.LogRecord(
        "socialbot.pipeline", logging.INFO, __file__, 1, "message %s: %s", (7, "thank"), None
    )
    record.message_id = 7
    RequestIdFilter().filter(record)
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "message 7: thank" and entry["message_id"] == 7 and entry["level"] == "INFO"
    assert entry["logger"] == "socialbot.pipeline" and "request_id" in entry and "\n" not in line


def run_cli(tmp_path, *args, env=None, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=timeout,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),  # the code under test, in a worktree too
            "SOCIALBOT_DATA__DIR": str(tmp_path / "d"),
            **(env or {}),
        },
    )


def test_several_workers_on_sqlite_are_refused_with_one_clear_line(tmp_path):
    result = run_cli(tmp_path, "serve", "--workers", "3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "socialbot: --workers 3 needs a server database shared by the workers; set [database] url to "
        "postgresql+psycopg://... (SOCIALBOT_DATABASE__URL); SQLite runs one worker"
    ]


@pytest.mark.timeout(300)
def test_serve_with_two_workers_on_postgresql_answers_and_stops_cleanly_on_sigterm(pg_url, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "SOCIALBOT_DATABASE__URL": pg_url,
        "SOCIALBOT_DATA__DIR": str(tmp_path / "d"),
        "SOCIALBOT_LOGGING__FORMAT": "json",
        "SOCIALBOT_SERVER__METRICS_TOKEN": METRICS_TOKEN,
        "SOCIALBOT_INTENTS__THREADS": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--workers", "2", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        ready = 0
        while ready < 4:  # several answers in a row: both workers are up (each only answers once ready)
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "the workers did not become ready"
            try:
                ready = ready + 1 if httpx.get(f"{base}/readyz", timeout=5).status_code == 200 else 0
            except httpx.HTTPError:
                ready = 0
            time.sleep(0.5)
        with httpx.Client(base_url=base, timeout=60) as http:
            answers = [
                http.post(
                    "/api/v1/chat", json={"session_id": f"multi-worker-{n:03d}", "text": "love my tent!"}
                )
                for n in range(12)
            ]
            assert all(a.status_code == 200 and len(a.json()["replies"]) == 1 for a in answers)
            metrics = http.get("/metrics", headers=SCRAPER).text
        assert metric(metrics, "socialbot_messages_in_total", channel="webchat") == 12  # summed over workers
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            output, _ = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    assert server.returncode == 0, output[-3000:]
    entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    stopped = [e for e in entries if e["logger"] == "socialbot.workers" and e["message"].endswith("stopped")]
    assert len(stopped) == 2, output[-3000:]  # each worker finished its shutdown
    # Jobs run every two seconds; the log is for what happened, not for the scheduler's every tick.
    assert not [e for e in entries if e["logger"].startswith("apscheduler") and e["level"] == "INFO"]


def test_a_router_serves_on_its_own_with_only_the_runtime_on_the_app(runtime):
    """Routes are module-level handlers that find the runtime on `app.state`: one router can be tried in a
    bare app, without the rest of the web layer."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from bot.web import operations

    app = FastAPI()
    app.state.runtime = runtime
    app.include_router(operations.router)
    with TestClient(app) as bare:
        ready = bare.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] is True
