"""Outgoing webhooks must not reach into the server's own network (SSRF): loopback, private, link-local,
unique-local, CGNAT, multicast, unspecified and IPv4-mapped addresses are refused in every spelling, when an
endpoint is registered and again when a delivery connects; and the delivery log must not tell an admin
which internal ports are open. Every target here is on loopback or is refused before any packet leaves."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import free_port
from tests.fakes.server import FakeResponse, FakeServer
from tests.security.conftest import ADMIN, csrf_of, log_in


@pytest.fixture(scope="module")
def internal_service():
    """Something listening on the server's own loopback, which an attacker would like to reach."""
    service = FakeServer()
    service.route("POST", "/hook", lambda request: FakeResponse(200, {"ok": True}))
    with service:
        yield service


def loopback_spellings(port: int) -> list[str]:
    """The server's own loopback, spelled every way a URL parser and a resolver accept. Only these are
    registered on the running server: if one were accepted, its deliveries would still stay on loopback."""
    urls = [
        f"http://127.0.0.1:{port}/hook",
        f"http://127.1:{port}/hook",
        f"http://2130706433:{port}/hook",
        f"http://0x7f000001:{port}/hook",
        f"http://0177.0.0.1:{port}/hook",
        f"http://[::ffff:127.0.0.1]:{port}/hook",
        f"http://[::ffff:7f00:1]:{port}/hook",
        f"http://[::1]:{port}/hook",
        f"http://0.0.0.0:{port}/hook",
        f"http://0:{port}/hook",
        f"http://localhost:{port}/hook",
        f"https://LOCALHOST:{port}/hook",
    ]
    own_name = socket.gethostname()
    try:
        if socket.gethostbyname(own_name).startswith("127."):  # a name that resolves to loopback (/etc/hosts)
            urls.append(f"http://{own_name}:{port}/hook")
    except OSError:
        pass
    return urls


#: Internal targets that are not loopback, and loopback hidden in IPv6 transition prefixes. Never registered
#: where a server delivers: they are checked with a scratch database no worker reads.
OTHER_INTERNAL_URLS = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://10.0.0.7/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.10/hook",
    "http://100.64.0.1/hook",
    "http://[fd12:3456::1]/hook",
    "http://[fe80::1]/hook",
    "http://224.0.0.251/hook",
    "http://255.255.255.255/hook",
    "http://[::127.0.0.1]:8080/hook",
    "http://[64:ff9b::7f00:1]:8080/hook",
    "http://[64:ff9b::a00:7]/hook",
    "http://[2002:7f00:1::]:8080/hook",
    "http://[2001::8000:ffff:80ff:fffe]/hook",
]


def registered(served, url: str) -> bool:
    return bool(served.sql("SELECT 1 FROM webhookendpoint WHERE url = :url", url=url))


def test_the_console_refuses_every_spelling_of_loopback(server, internal_service):
    with server.client() as http:
        assert log_in(http, ADMIN).status_code == 303
        accepted = []
        for url in loopback_spellings(internal_service.port):
            csrf = csrf_of(http.get("/console/webhooks").text)
            answer = http.post(
                "/console/webhooks", data={"url": url, "events": "message.received", "csrf": csrf}
            )
            if answer.status_code != 422 or registered(server, url):
                accepted.append(url)
                server.execute("DELETE FROM webhookendpoint WHERE url = :url", url=url)
    assert accepted == []


@pytest.mark.parametrize("url", OTHER_INTERNAL_URLS)
def test_registration_refuses_every_other_internal_address(url, make_settings):
    from bot.delivery.webhooks import WebhookError, validate_url

    with pytest.raises(WebhookError, match="address"):
        validate_url(url, make_settings())


@pytest.mark.parametrize(
    "url",
    ["http://2130706433:{port}/hook", "http://[::ffff:127.0.0.1]:{port}/hook", "http://169.254.169.254/"],
)
def test_the_command_line_refuses_internal_targets_with_one_line(server, internal_service, url, tmp_path):
    url = url.format(port=internal_service.port)
    scratch = f"sqlite:///{tmp_path / 'scratch.sqlite3'}"  # no server delivers from this one
    result = server.cli(
        "webhooks", "add", url, "--events", "message.received", extra_env={"SOCIALBOT_DATABASE__URL": scratch}
    )
    assert result.returncode == 2, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and url in result.stderr


def test_a_delivery_to_an_internal_address_is_refused_and_the_log_does_not_tell_open_from_closed(
    server, internal_service
):
    """An endpoint registered while its name pointed outside now points at loopback (the row is written
    straight into the database, as registration would refuse it): the delivery must not connect, and the
    log says the same thing for an open and a closed port."""
    open_url = f"http://127.0.0.1:{internal_service.port}/hook"
    closed_url = f"http://127.0.0.1:{free_port()}/hook"
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    for url in (open_url, closed_url):
        server.execute(
            "INSERT INTO webhookendpoint (url, secret, events, active, consecutive_failures, created_at)"
            " VALUES (:url, 'whsec_0123456789abcdef0123', '[\"message.received\"]', true, 0, :now)",
            url=url,
            now=now,
        )
    with server.client() as http:
        answer = http.post("/api/v1/chat", json={"session_id": "ssrf-trigger-0001", "text": "hello"})
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = server.sql(
            "SELECT e.url, d.status, d.last_status_code, d.last_error FROM webhookdelivery d"
            " JOIN webhookendpoint e ON e.id = d.endpoint_id WHERE e.url IN (:a, :b) AND d.attempts > 0",
            a=open_url,
            b=closed_url,
        )
        if {row.url for row in rows} == {open_url, closed_url}:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the deliveries were not attempted within a minute")
    assert internal_service.calls("/hook") == [], "a delivery reached a loopback service"
    by_url = {row.url: row for row in rows}
    assert by_url[open_url].status != "delivered" and by_url[open_url].last_status_code is None
    assert by_url[open_url].last_error == by_url[closed_url].last_error, "the log tells open from closed"
    for row in rows:
        assert "Errno" not in row.last_error and "onnect" not in row.last_error, row.last_error


@pytest.fixture
def rebinding_scene(make_settings, models):
    """An internal service on 127.0.0.1:P and a partner's receiver on 127.0.0.2:P (the same port), with
    127.0.0.2 allowed as if it were the partner's public address; (runtime, partner, internal)."""
    from bot.worker.build import build_runtime

    internal = FakeServer("127.0.0.1")
    internal.route("POST", "/hook", lambda request: FakeResponse(200, {"internal": True}))
    with internal:
        partner = FakeServer("127.0.0.2", internal.port)
        partner.route("POST", "/hook", lambda request: FakeResponse(200, {"ok": True}))
        with partner:
            runtime = build_runtime(
                make_settings(webhooks={"allowed_networks": ["127.0.0.2/32"]}), models=models
            )
            yield runtime, partner, internal
            runtime.close()


class ScriptedResolver:
    """A resolver the test controls (no DNS query leaves the machine): answers in order, one per call."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked = 0

    def __call__(self, host: str, port: int) -> list:
        from ipaddress import ip_address

        self.asked += 1
        return [ip_address(self.answers.pop(0))]


def test_a_name_rebound_inside_after_registration_or_between_check_and_connect_is_not_followed(
    rebinding_scene,
):
    """DNS rebinding: `localhost` here stands for the partner's name (the system would resolve it to
    127.0.0.1, the internal service, if anything asked it behind the check's back)."""
    from bot.crm.db import session_scope
    from bot.delivery.webhooks import add_endpoint, deliver_webhooks, list_deliveries
    from bot.pipeline.inbound import handle_inbound
    from channels.base import Author, InboundMessage

    runtime, partner, internal = rebinding_scene
    url = f"http://localhost:{partner.port}/hook"
    with session_scope(runtime.engine) as session:
        add_endpoint(
            session,
            url,
            ["message.received"],
            settings=runtime.settings,
            resolve=ScriptedResolver("127.0.0.2"),
        )

    handle_inbound(
        runtime,
        InboundMessage(
            channel="webchat", external_id="rebind-1", thread_id="rebind", author=Author("rebind"), text="hi"
        ),
    )
    rebound = ScriptedResolver("127.0.0.1")  # the name now points inside
    deliver_webhooks(runtime.engine, runtime.settings.webhooks, resolve=rebound)
    assert internal.calls("/hook") == [] and partner.calls("/hook") == []
    with session_scope(runtime.engine) as session:
        assert [entry.last_error for entry in list_deliveries(session)] == ["address not allowed"]

    # The retry: the name answers the partner's address once, and the internal one to anyone asking again.
    flipping = ScriptedResolver("127.0.0.2", "127.0.0.1", "127.0.0.1")
    later = datetime.now(UTC) + timedelta(hours=2)
    deliver_webhooks(runtime.engine, runtime.settings.webhooks, resolve=flipping, now=later)
    assert internal.calls("/hook") == []
    (delivered,) = partner.calls("/hook")
    assert delivered.headers["host"] == f"localhost:{partner.port}" and flipping.asked == 1


def test_a_name_that_does_not_resolve_yet_is_accepted_and_checked_at_each_delivery(make_settings):
    from bot.delivery.outbound_http import NameNotResolved
    from bot.delivery.webhooks import validate_url

    def nothing_yet(host: str, port: int) -> list:
        raise NameNotResolved(f"{host} does not resolve")

    url = "https://hooks.not-live-yet.example/in"
    assert validate_url(url, make_settings(), resolve=nothing_yet) == url
