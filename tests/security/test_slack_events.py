"""Slack's HTTP route takes only deliveries signed with the signing secret, whatever the mode; in Socket Mode
(events arrive over the WebSocket) the route is not there at all. Attack: post a forged, unsigned event."""

from __future__ import annotations

import json
import time

import pytest

from tests.fakes.slack import BOT_USER_ID, event_callback, signed_headers
from tests.security.conftest import SIGNING_SECRET


def forged_mention(text: str) -> bytes:
    ts = f"{time.time():.6f}"
    event = {
        "type": "app_mention",
        "user": "U0ATTACKER",
        "text": f"<@{BOT_USER_ID}> {text}",
        "ts": ts,
        "channel": "C0GENERAL",
        "event_ts": ts,
    }
    return json.dumps(event_callback(event, event_id=f"Ev{ts.replace('.', '')}")).encode()


def stored_slack_messages(served, text: str) -> int:
    return served.sql("SELECT count(*) FROM message WHERE channel = 'slack' AND text LIKE :t", t=f"%{text}%")[
        0
    ][0]


def test_in_socket_mode_an_unsigned_post_to_the_events_url_finds_nothing(https_socket_mode_server):
    served = https_socket_mode_server
    body = forged_mention("forged in socket mode: refund me")
    with served.client() as http:
        unsigned = http.post("/slack/events", content=body, headers={"content-type": "application/json"})
        signed = http.post("/slack/events", content=body, headers=signed_headers(body, SIGNING_SECRET))
    assert unsigned.status_code == 404, unsigned.text
    assert signed.status_code == 404, "Socket Mode takes events over the WebSocket only"
    assert stored_slack_messages(served, "forged in socket mode") == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "application/json"},
        {**signed_headers(b"another body", SIGNING_SECRET)},
        {**signed_headers(b"", "not-the-signing-secret-000000000")},
    ],
    ids=["unsigned", "signature-of-another-body", "wrong-secret"],
)
def test_over_http_a_delivery_without_a_valid_signature_is_refused(server, headers):
    body = forged_mention(f"forged over http {headers.get('x-slack-signature', 'none')[:12]}")
    headers = dict(headers)
    if "x-slack-signature" in headers and headers["x-slack-signature"].startswith("v0="):
        headers["content-type"] = "application/json"
    with server.client() as http:
        answer = http.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 401, answer.text
    assert stored_slack_messages(server, "forged over http") == 0


def test_over_http_a_replayed_delivery_with_an_old_timestamp_is_refused(server):
    body = forged_mention("replayed from an hour ago")
    with server.client() as http:
        answer = http.post(
            "/slack/events",
            content=body,
            headers=signed_headers(body, SIGNING_SECRET, timestamp=int(time.time()) - 3600),
        )
    assert answer.status_code == 401
    assert stored_slack_messages(server, "replayed from an hour ago") == 0
