"""The limits hold across worker processes: `socialbot serve --workers 2` on PostgreSQL, hit concurrently
over fresh connections (which the kernel spreads over both workers). A limit kept in each worker's memory
would let through up to twice as much; a limit checked before it is counted would let a burst through."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.security.conftest import LIMITS, email_env, log_in, parallel_wrong_guesses
from tests.security.server import SECRET_KEY, Served, source_address, start_server
from tests.security.test_rate_limits import code_mails

PER_MINUTE = int(LIMITS["SOCIALBOT_WEBCHAT__MESSAGES_PER_MINUTE_PER_IP"])
LOGIN_ATTEMPTS = int(LIMITS["SOCIALBOT_CONSOLE__LOGIN_ATTEMPTS"])
CODES_PER_ADDRESS = int(LIMITS["SOCIALBOT_VERIFICATION__CODES_PER_ADDRESS_PER_HOUR"])
OWNER = "owner@fernhill.example"


@pytest.fixture(scope="module")
def workers(postgres_server, tmp_path_factory, caches, smtp) -> Iterator[Served]:
    served = start_server(
        tmp_path_factory.mktemp("workers"),
        caches=caches,
        database_url=postgres_server.database(),
        workers=2,
        env={"SOCIALBOT_SECRET_KEY": SECRET_KEY, **email_env(smtp), **LIMITS},
        staff={OWNER: "agent"},
    )
    yield served
    served.stop()


def fresh_connections(served: Served, source: str) -> httpx.Client:
    """A client that opens a new connection for every request (so requests spread over the workers)."""
    return httpx.Client(
        base_url=served.base_url,
        transport=httpx.HTTPTransport(local_address=source, limits=httpx.Limits(max_keepalive_connections=0)),
        timeout=120,
    )


def test_the_chat_limit_per_address_holds_across_workers(workers):
    with fresh_connections(workers, source_address()) as http, ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda n: (
                    http.post(
                        "/api/v1/chat", json={"session_id": f"web-{uuid.uuid4()}", "text": f"burst {n}"}
                    ).status_code
                ),
                range(PER_MINUTE + 12),
            )
        )
    assert answers.count(200) == PER_MINUTE, answers
    assert answers.count(429) == 12, answers


def test_parallel_login_guesses_across_workers_get_no_more_tries_than_the_limit(workers):
    with fresh_connections(workers, source_address()) as http:
        answers = parallel_wrong_guesses(http, OWNER)
    assert answers.count(401) <= LOGIN_ATTEMPTS, answers
    with fresh_connections(workers, source_address()) as owner:
        assert log_in(owner, OWNER).status_code == 303


def test_codes_to_one_address_are_limited_across_workers(workers, smtp):
    stranger = f"stranger-{uuid.uuid4().hex[:8]}@victim.example"

    def ask(_number: int) -> int:
        with fresh_connections(workers, source_address()) as http:
            return http.post(
                "/api/v1/chat", json={"session_id": f"web-{uuid.uuid4()}", "text": stranger}
            ).status_code

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(ask, range(CODES_PER_ADDRESS + 4))) == {200}
    assert code_mails(workers, smtp, stranger) == CODES_PER_ADDRESS


def test_a_session_token_from_one_worker_opens_the_session_on_the_other(workers):
    session_id = f"web-{uuid.uuid4()}"
    with fresh_connections(workers, source_address()) as browser:
        first = browser.post("/api/v1/chat", json={"session_id": session_id, "text": "hello"})
    bearer = {"Authorization": f"Bearer {first.json()['session_token']}"}
    with fresh_connections(workers, source_address()) as api:
        later = [api.get(f"/api/v1/chat/{session_id}/messages", headers=bearer).status_code for _ in range(8)]
    with fresh_connections(workers, source_address()) as outsider:
        stranger = outsider.get(f"/api/v1/chat/{session_id}/messages")
    assert later == [200] * 8
    assert stranger.status_code in (401, 403)
