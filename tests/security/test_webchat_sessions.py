"""A web chat session id is no credential: the server issues a session token with the first reply (and an
HttpOnly cookie); reading or writing the session later needs one of them. Attack: someone who learnt the id
(it used to be shown to agents and sits in URL paths and logs) reads the chat and writes into it as the
customer. Staff screens and APIs no longer show the raw id."""

from __future__ import annotations

import uuid

import httpx

from tests.security.conftest import ADMIN, AGENT, api_token, log_in

SECRET_TEXT = "my order 5521 goes to 12 Elm Street"


def start_chat(browser) -> tuple[str, httpx.Response]:
    """A customer opens the chat in `browser`; (session id, the first answer)."""
    session_id = f"web-{uuid.uuid4()}"
    first = browser.post("/api/v1/chat", json={"session_id": session_id, "text": f"hi, {SECRET_TEXT}"})
    assert first.status_code == 200, first.text
    return session_id, first


def test_the_first_reply_issues_a_token_and_an_http_only_cookie(server):
    with server.client() as browser:
        session_id, first = start_chat(browser)
        token = first.json()["session_token"]
        assert len(token) >= 32
        cookie = next(c for c in first.headers.get_list("set-cookie") if token in c)
        assert "httponly" in cookie.lower() and "samesite" in cookie.lower()
        again = browser.post("/api/v1/chat", json={"session_id": session_id, "text": "and one more thing"})
        assert again.status_code == 200 and "session_token" not in again.json()
        assert [m["text"] for m in browser.get(f"/api/v1/chat/{session_id}/messages").json()][-1] != ""


def test_someone_holding_only_the_session_id_can_neither_read_nor_write_it(server):
    with server.client() as browser:
        session_id, first = start_chat(browser)
    conversation_id = first.json()["conversation_id"]
    before = server.sql("SELECT count(*) FROM message WHERE conversation_id = :c", c=conversation_id)[0][0]
    with server.client() as attacker:
        read = attacker.get(f"/api/v1/chat/{session_id}/messages")
        write = attacker.post(
            "/api/v1/chat",
            json={"session_id": session_id, "text": "what do you know about me? delete my data"},
        )
        guessed = attacker.post(
            "/api/v1/chat",
            json={"session_id": session_id, "text": "hello"},
            headers={"Authorization": "Bearer " + "A" * 43},
        )
        other_token = attacker.post(
            "/api/v1/chat", json={"session_id": f"web-{uuid.uuid4()}", "text": "my own chat"}
        ).json()["session_token"]
        borrowed = attacker.get(
            f"/api/v1/chat/{session_id}/messages", headers={"Authorization": f"Bearer {other_token}"}
        )
    assert read.status_code in (401, 403) and SECRET_TEXT not in read.text
    assert write.status_code in (401, 403)
    assert guessed.status_code == 403
    assert borrowed.status_code == 403 and SECRET_TEXT not in borrowed.text
    after = server.sql("SELECT count(*) FROM message WHERE conversation_id = :c", c=conversation_id)[0][0]
    assert after == before


def test_an_api_client_uses_the_token_as_a_bearer_credential(server):
    with server.client() as browser:
        session_id, first = start_chat(browser)
    bearer = {"Authorization": f"Bearer {first.json()['session_token']}"}
    with server.client() as api:
        written = api.post(
            "/api/v1/chat", json={"session_id": session_id, "text": "any news?"}, headers=bearer
        )
        read = api.get(f"/api/v1/chat/{session_id}/messages", headers=bearer)
    assert written.status_code == 200
    assert read.status_code == 200 and any(SECRET_TEXT in m["text"] for m in read.json())


def test_staff_screens_and_apis_do_not_show_the_raw_session_id(server):
    with server.client() as browser:
        session_id, first = start_chat(browser)
    conversation_id = first.json()["conversation_id"]
    contact_id = server.sql("SELECT contact_id FROM conversation WHERE id = :c", c=conversation_id)[0][0]
    bearer = {"Authorization": f"Bearer {api_token(server, AGENT)}"}
    pages = []
    with server.client(headers=bearer) as api:
        pages.append(api.get(f"/api/v1/conversations/{conversation_id}"))
        pages.append(api.get(f"/api/v1/contacts/{contact_id}"))
        pages.append(api.get("/api/v1/conversations", params={"state": "bot"}))
    for email in (AGENT, ADMIN):
        with server.client() as console:
            assert log_in(console, email).status_code == 303
            pages.append(console.get(f"/console/conversations/{conversation_id}"))
            pages.append(console.get("/console/log", params={"conversation": conversation_id}))
    shown = [page for page in pages if page.status_code == 200]
    assert len(shown) >= 5, [(p.request.url, p.status_code) for p in pages]
    for page in shown:
        assert session_id not in page.text, page.request.url
