"""Bad input to the web chat API gets a clear 4xx; a locked database gets a 503 that says to retry."""

from __future__ import annotations

import sqlite3

import pytest
from sqlmodel import Session, func, select

from bot.crm.models import Message


def stored_messages(runtime) -> int:
    with Session(runtime.engine) as session:
        return session.exec(select(func.count()).select_from(Message)).one()


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"session_id": "session-123", "text": ""}, 422, "text: Value error, must not be empty"),
        ({"session_id": "session-123", "text": " \n\t "}, 422, "must not be empty or only whitespace"),
        ({"text": "hello"}, 422, "session_id: required"),
        ({"session_id": "session-123", "text": "hi", "colour": "red"}, 422, "colour: unknown field"),
        ({"session_id": "bad id with spaces", "text": "hi"}, 422, "session_id: String should match pattern"),
        ({"session_id": "session-123", "text": 42}, 422, "text: Input should be a valid string"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason_and_nothing_is_stored(
    client, runtime, body, status, says
):
    response = client.post("/api/v1/chat", json=body)
    assert response.status_code == status
    assert says in response.json()["error"]
    assert stored_messages(runtime) == 0


def test_text_over_the_limit_is_refused_with_the_limit(client, runtime):
    response = client.post("/api/v1/chat", json={"session_id": "session-123", "text": "a" * 100_000})
    assert response.status_code == 413
    assert "the limit is 4000" in response.json()["error"]
    assert stored_messages(runtime) == 0


def test_invalid_json_and_invalid_utf8_are_refused(client, runtime):
    for raw in (
        b'{"session_id": "session-123", "text": "hi"',
        b'{"session_id": "session-123", "text": "\xff\xfe"}',
    ):
        response = client.post("/api/v1/chat", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert "not valid JSON" in response.json()["error"]
    assert stored_messages(runtime) == 0


def test_a_body_over_one_megabyte_is_refused_before_it_is_read(client):
    response = client.post(
        "/api/v1/chat", content=b"x" * 1_000_001, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


def test_a_locked_database_answers_503_and_loses_nothing(make_settings, models):
    from fastapi.testclient import TestClient

    from bot.web.app import create_app
    from bot.worker.build import build_runtime

    runtime = build_runtime(make_settings(database={"busy_timeout_seconds": 0.2}), models=models)
    path = runtime.engine.url.database
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with TestClient(create_app(runtime)) as client:
            response = client.post(
                "/api/v1/chat", json={"session_id": "session-123", "text": "hello", "message_id": "a1"}
            )
            assert response.status_code == 503
            assert response.json()["retry"] is True
            assert response.headers["Retry-After"]
            blocker.execute("ROLLBACK")
            retried = client.post(
                "/api/v1/chat", json={"session_id": "session-123", "text": "hello", "message_id": "a1"}
            )
            assert retried.status_code == 200
            assert retried.json()["duplicate"] is False
    finally:
        blocker.close()
        runtime.engine.dispose()
    assert stored_messages(runtime) == 2  # the message and its one reply


def test_the_chat_page_is_served_with_the_brand(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "<h1>Fernhill Outdoor</h1>" in page.text
    assert client.get("/static/chat.js").status_code == 200


def test_health_is_liveness_and_readiness_reports_database_and_model(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": True, "model": True, "accepting": True}


def test_the_reply_is_in_the_response_even_when_another_worker_delivers_it(client, runtime):
    runtime.channels.pop("webchat")  # this worker's outbox doesn't deliver web chat; another worker's does
    response = client.post(
        "/api/v1/chat", json={"session_id": "other-worker-delivers", "text": "how long does delivery take?"}
    )
    assert response.status_code == 200
    assert len(response.json()["replies"]) == 1
