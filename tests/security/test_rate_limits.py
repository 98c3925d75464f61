"""Limits on what anonymous visitors can make the bot do: web chat messages per client address per minute
(429 with Retry-After, before the model runs), and verification-code e-mails per destination address and per
client address (anonymous sessions used to mail codes to a stranger's address as often as they liked)."""

from __future__ import annotations

import time
import uuid

from tests.security.conftest import LIMITS
from tests.security.server import source_address

PER_MINUTE = int(LIMITS["SOCIALBOT_WEBCHAT__MESSAGES_PER_MINUTE_PER_IP"])
CODES_PER_ADDRESS = int(LIMITS["SOCIALBOT_VERIFICATION__CODES_PER_ADDRESS_PER_HOUR"])
CODES_PER_IP = int(LIMITS["SOCIALBOT_VERIFICATION__CODES_PER_IP_PER_HOUR"])


def test_a_burst_of_chat_messages_from_one_address_gets_429_with_retry_after(server):
    marker = uuid.uuid4().hex[:10]
    with server.client() as flood:
        answers = [
            flood.post(
                "/api/v1/chat", json={"session_id": f"web-{uuid.uuid4()}", "text": f"spam {marker} {n}"}
            )
            for n in range(PER_MINUTE + 8)
        ]
    with server.client() as neighbour:
        elsewhere = neighbour.post(
            "/api/v1/chat", json={"session_id": f"web-{uuid.uuid4()}", "text": "hello"}
        )
    codes = [answer.status_code for answer in answers]
    assert codes == [200] * PER_MINUTE + [429] * 8, codes
    assert all(1 <= int(answer.headers["retry-after"]) <= 60 for answer in answers[PER_MINUTE:])
    stored = server.sql("SELECT count(*) FROM message WHERE text LIKE :m", m=f"spam {marker} %")[0][0]
    assert stored == PER_MINUTE, "refused messages must not be stored nor run through the model"
    assert elsewhere.status_code == 200


def code_mails(server, smtp, address: str) -> int:
    """Verification codes queued for `address`, once the outbox has sent them (the SMTP server's count)."""
    queued = server.sql(
        "SELECT count(*) FROM outbox"
        " WHERE channel = 'email' AND thread_id = :a AND idempotency_key LIKE 'verify:%'",
        a=address,
    )[0][0]
    deadline = time.monotonic() + 60
    while len(smtp.to(address)) < queued and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(smtp.to(address)) == queued
    return queued


def ask_for_code(server, address: str, *, source: str) -> str:
    with server.client(source=source) as http:
        answer = http.post("/api/v1/chat", json={"session_id": f"web-{uuid.uuid4()}", "text": address})
    assert answer.status_code == 200, answer.text
    return answer.json()["replies"][0]["text"]


def test_anonymous_sessions_cannot_mail_codes_to_a_stranger_again_and_again(server, smtp):
    stranger = f"stranger-{uuid.uuid4().hex[:8]}@victim.example"
    replies = [ask_for_code(server, stranger, source=source_address()) for _ in range(CODES_PER_ADDRESS + 3)]
    assert code_mails(server, smtp, stranger) == CODES_PER_ADDRESS
    assert all("code" in reply for reply in replies[CODES_PER_ADDRESS:])
    assert all(stranger not in reply or "wait" in reply.lower() for reply in replies[CODES_PER_ADDRESS:])


def test_one_client_address_cannot_mail_codes_to_many_addresses(server, smtp):
    source = source_address()
    addresses = [f"victim-{n}-{uuid.uuid4().hex[:6]}@victim.example" for n in range(CODES_PER_IP + 3)]
    for address in addresses:
        ask_for_code(server, address, source=source)
    assert sum(code_mails(server, smtp, address) for address in addresses) == CODES_PER_IP
