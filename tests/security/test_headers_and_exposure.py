"""What every answer carries and what is not public: security headers on every page (a CSP without inline
script, no framing, nosniff, a Referrer-Policy), pages that need no inline script or style to work, /metrics
and the API docs closed to outsiders, and no GET that changes anything (exports are audited, so they are
POSTs with the console's CSRF token)."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser

import pytest

from tests.security.conftest import ADMIN, METRICS_TOKEN, api_token, csrf_of, log_in
from tests.security.server import PASSWORD

PUBLIC_PATHS = ["/", "/console/login", "/static/chat.js", "/healthz", "/no/such/page", "/api/v1/chat"]
CONSOLE_PAGES = [
    "/console",
    "/console/log",
    "/console/insights",
    "/console/audit",
    "/console/webhooks",
    "/console/moderation",
    "/console/data-requests",
]


def assert_security_headers(response) -> None:
    headers = response.headers
    where = f"{response.request.method} {response.request.url.path}"
    csp = headers.get("content-security-policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert "default-src" in directives, f"{where}: no CSP"
    assert directives.get("frame-ancestors") == ["'none'"], where
    script = directives.get("script-src", directives["default-src"])
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, where
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("x-frame-options") == "DENY", where
    assert headers.get("referrer-policy") in ("no-referrer", "same-origin", "strict-origin-when-cross-origin")


def test_every_public_answer_carries_the_security_headers(server):
    with server.client() as http:
        for path in PUBLIC_PATHS:
            assert_security_headers(http.get(path))
        assert_security_headers(http.post("/api/v1/chat", json={"text": "no session"}))


class InlineCode(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block: inline scripts, style blocks and attributes,
    event handler attributes and javascript: URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and "src" not in names:
            self._in_script = True
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if name in ("href", "action", "src") and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:...>")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append("<script> with inline code")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def test_no_page_needs_inline_script_or_style(server):
    with server.client() as http:
        assert log_in(http, ADMIN).status_code == 303
        conversation = http.post("/api/v1/chat", json={"session_id": f"web-{uuid.uuid4()}", "text": "hello"})
        pages = ["/", "/console/login", *CONSOLE_PAGES]
        pages.append(f"/console/conversations/{conversation.json()['conversation_id']}")
        for path in pages:
            page = http.get(path)
            assert page.status_code == 200, path
            assert_security_headers(page)
            assert inline_code(page.text) == [], path


@pytest.mark.browser
def test_the_console_and_the_chat_run_under_the_policy_without_a_violation(server, page):
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security" in message.text else None,
    )
    page.goto(server.base_url + "/")
    page.fill("#text", "how much does delivery cost?")
    page.press("#text", "Enter")
    page.locator(".bubble--bot").nth(1).wait_for(timeout=60_000)
    page.goto(server.base_url + "/console/login")
    page.get_by_label("E-mail").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/console(\?.*)?$"))
    for path in CONSOLE_PAGES:
        page.goto(server.base_url + path)
        page.wait_for_load_state("networkidle")
    assert violations == []


def test_metrics_need_the_token_and_the_api_docs_are_off(server):
    with server.client() as outsider:
        assert outsider.get("/metrics").status_code in (401, 404)
        assert outsider.get("/metrics", headers={"Authorization": "Bearer wrong-token"}).status_code in (
            401,
            403,
        )
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert outsider.get(path).status_code == 404, path
        scraped = outsider.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scraped.status_code == 200 and "socialbot_messages_in_total" in scraped.text


def audit_count(server) -> int:
    return server.sql("SELECT count(*) FROM auditevent")[0][0]


def test_nothing_changes_on_a_get(server):
    """Exports are recorded in the audit log: a GET (a link, an <img> on another site) must not make one."""
    with server.client() as console:
        assert log_in(console, ADMIN).status_code == 303
        before = audit_count(server)
        for path in (
            "/console/contacts/export.json",
            "/console/audit.csv",
            "/console/export/messages.csv",
            "/console/export/conversations.csv",
        ):
            assert console.get(path).status_code == 405, path
        assert audit_count(server) == before
        refused = console.post("/console/audit.csv", data={"csrf": "forged"})
        assert refused.status_code == 403
        csrf = csrf_of(console.get("/console/audit").text)
        exported = console.post("/console/audit.csv", data={"csrf": csrf})
        assert exported.status_code == 200 and exported.text.startswith("id,at,")
    with server.client(headers={"Authorization": f"Bearer {api_token(server, ADMIN)}"}) as api:
        before = audit_count(server)
        for path in (
            "/api/v1/export/messages.csv",
            "/api/v1/export/conversations.csv",
            "/api/v1/contacts/1/export",
        ):
            assert api.get(path).status_code == 405, path
        assert audit_count(server) == before
        assert api.post("/api/v1/export/messages.csv").status_code == 200
