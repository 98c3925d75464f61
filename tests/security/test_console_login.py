"""Staff logins: the limit can't be raced, an attacker elsewhere can't lock the owner out, every login and
failed login is audited, logging out revokes the session cookie, and cookies are Secure on https."""

from __future__ import annotations

import uuid

from tests.security.conftest import LIMITS, csrf_of, log_in, parallel_wrong_guesses
from tests.security.server import PASSWORD

ATTEMPTS = int(LIMITS["SOCIALBOT_CONSOLE__LOGIN_ATTEMPTS"])


def new_account(served, role: str = "agent") -> str:
    email = f"owner-{uuid.uuid4().hex[:8]}@fernhill.example"
    added = served.cli("staff", "add", email, "--role", role, "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    return email


def test_twenty_parallel_guesses_get_no_more_tries_than_the_limit(server):
    email = new_account(server)
    with server.client() as http:
        answers = parallel_wrong_guesses(http, email)
    assert answers.count(401) <= ATTEMPTS, answers
    assert answers.count(429) >= 20 - ATTEMPTS, answers


def test_an_attacker_elsewhere_cannot_lock_the_owner_out(server):
    email = new_account(server)
    with server.client() as attacker:
        answers = [log_in(attacker, email, f"guess number {n}").status_code for n in range(ATTEMPTS + 3)]
    assert answers[-1] == 429, answers
    with server.client() as owner:
        assert log_in(owner, email).status_code == 303
        assert owner.get("/console").status_code == 200


def test_logins_and_failed_logins_are_audited_with_the_client_address(server):
    email = new_account(server)
    with server.client(source="127.0.9.9") as http:
        assert log_in(http, email, "not my password").status_code == 401
        assert log_in(http, email).status_code == 303
    staff_id = server.sql("SELECT id FROM staff WHERE email = :e", e=email)[0][0]
    events = server.sql(
        "SELECT action, subject_id, details FROM auditevent"
        " WHERE action IN ('staff.login', 'staff.login_failed') AND details LIKE :e ORDER BY id",
        e=f"%{email}%",
    )
    assert [event.action for event in events] == ["staff.login_failed", "staff.login"]
    assert events[1].subject_id == staff_id
    assert all("127.0.9.9" in event.details for event in events)


def test_logging_out_revokes_the_session_cookie_everywhere(server):
    email = new_account(server)
    with server.client() as browser:
        assert log_in(browser, email).status_code == 303
        stolen = browser.cookies.get("socialbot_session")
        assert stolen and browser.get("/console").status_code == 200
        csrf = csrf_of(browser.get("/console").text)
        assert browser.post("/console/logout", data={"csrf": csrf}).status_code == 303
    with server.client(cookies={"socialbot_session": stolen}) as thief:
        replay = thief.get("/console", follow_redirects=False)
    assert replay.status_code == 303 and replay.headers["location"].startswith("/console/login")


def test_cookies_are_secure_when_the_public_url_is_https(https_socket_mode_server):
    with https_socket_mode_server.client() as http:
        page = http.get("/console/login")
        chat = http.post("/api/v1/chat", json={"session_id": "secure-cookie-0001", "text": "hello"})
    session_cookie = page.headers["set-cookie"].lower()
    assert "socialbot_session=" in session_cookie and "; secure" in session_cookie
    assert "httponly" in session_cookie
    chat_cookies = chat.headers.get_list("set-cookie")
    assert chat_cookies and all("; secure" in c.lower() and "httponly" in c.lower() for c in chat_cookies)
