"""The agent's workspace behind the console pages: what a queue row says (the escalation's own sentiment and
reason, the customer's name, unread counts), the queue's filters, assignment only to people who work
conversations, the warning before resolving an unanswered customer, snoozing and waking, tags and priority,
canned replies with placeholders, corrections of the bot's reading, "not abuse" in the moderation queue, the
readable audit log, styled error pages, and pages without inline script or style (the CSP forbids them).
The customer side is the web chat API on the same app."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import AuditEvent, Conversation, Correction, Message, ModerationItem, utcnow
from bot.support.canned import fill_placeholders
from bot.support.queue import QueueFilter, list_conversations, queue_counts
from bot.support.snooze import wake_due_snoozes
from bot.web.app import ROUTERS
from tests.test_staff_console import add_staff, csrf_of, customer_sees, log_in

COMPLAINT = "My jacket fell apart after two days and nobody answers my emails!!"
ABUSE = "You are a stupid idiot and I hope you die"


def says(client, text: str, *, session_id: str | None = None, name: str | None = None) -> dict:
    body = {"session_id": session_id or f"web-{uuid.uuid4().hex}", "text": text, "name": name}
    response = client.post("/api/v1/chat", json=body)
    assert response.status_code == 200, response.text
    return {**response.json(), "session_id": body["session_id"]}


def form_post(client, url: str, page: str, **data):
    html = client.get(page).text
    return client.post(url, data={"csrf": csrf_of(html), **data}, follow_redirects=False)


def conversation(runtime, conversation_id: int) -> Conversation:
    with Session(runtime.engine) as session:
        return session.get(Conversation, conversation_id)


@pytest.fixture
def ana(client, runtime) -> int:
    staff_id, _ = add_staff(runtime, "ana@fernhill.example", role="admin", name="Ana Lopez")
    assert log_in(client, "ana@fernhill.example").status_code == 303
    return staff_id


def test_a_queue_row_shows_the_escalation_not_the_latest_message_and_a_real_name(client, runtime, ana):
    first = says(client, COMPLAINT, name="Mia Jensen")
    says(client, "Thank you!", session_id=first["session_id"])
    anonymous = says(client, "my order is late again, this is awful. third time this month")

    [row] = [r for r in list_conversations(runtime.engine, staff_id=ana) if r.id == first["conversation_id"]]
    assert row.escalation_text == COMPLAINT and row.escalation_sentiment == "negative"
    assert row.last_text == "Thank you!" and row.last_sentiment == "positive"
    assert row.reason.startswith("complaint") and row.unread == 2 and row.waiting_since is not None

    page = client.get("/console").text
    assert "Mia Jensen" in page and "contact #" not in page
    row_html = page[page.index(f'data-id="{first["conversation_id"]}"') :]
    row_html = row_html[: row_html.index("</tr>")]
    assert re.search(r'sentiment--negative">negative</span> <span class="snippet">My jacket', row_html)
    assert "Latest" in row_html and "Thank you!" in row_html
    if anonymous["state"] == "human":
        assert re.search(r"Web chat visitor [0-9a-f]{4}", page)


def test_opening_a_conversation_reads_it_and_the_counts_follow(client, runtime, ana):
    first = says(client, COMPLAINT, name="Mia Jensen")
    says(client, "I want to talk to a human about my refund", name="Sara")
    assert queue_counts(runtime.engine, ana).unread == 2
    assert client.get(f"/console/conversations/{first['conversation_id']}").status_code == 200
    counts = queue_counts(runtime.engine, ana)
    assert counts.unread == 1 and counts.waiting == 2 and counts.newest_unread[1] == "Sara"
    says(client, "hello?? anyone?", session_id=first["session_id"])
    assert queue_counts(runtime.engine, ana).unread == 2  # she wrote again


def test_the_queue_filters_by_channel_assignee_tag_priority_and_wait(client, runtime, ana):
    one = says(client, COMPLAINT, name="Mia")["conversation_id"]
    two = says(client, "I want to talk to a human about my refund", name="Sara")["conversation_id"]
    conversation_page = f"/console/conversations/{one}"
    assert (
        form_post(
            client, f"/console/conversations/{one}/tags", conversation_page, tag="Late delivery"
        ).status_code
        == 303
    )
    form_post(client, f"/console/conversations/{one}/priority", conversation_page, priority="2")
    form_post(client, f"/console/conversations/{one}/action", conversation_page, action="take")

    def ids(**filters) -> list[int]:
        return [row.id for row in list_conversations(runtime.engine, QueueFilter(**filters), staff_id=ana)]

    assert ids() == [one, two]  # urgent first
    assert ids(tag="late-delivery") == [one]
    assert ids(priority=2) == [one]
    assert ids(assignee="mine") == [one] and ids(assignee="unassigned") == [two]
    assert ids(channel="telegram") == []
    assert ids(waiting_minutes=60) == []
    with session_scope(runtime.engine) as session:  # Sara wrote two hours ago
        for message in session.exec(select(Message).where(Message.conversation_id == two)).all():
            message.created_at -= timedelta(hours=2)
            session.add(message)
        session.get(Conversation, two).escalated_at -= timedelta(hours=2)
    assert ids(waiting_minutes=60) == [two]
    page = client.get("/console?tag=late-delivery&priority=2").text
    assert f'data-id="{one}"' in page and f'data-id="{two}"' not in page and "#late-delivery" in page
    with Session(runtime.engine) as session:
        actions = {e.action for e in session.exec(select(AuditEvent)).all()}
    assert {"conversation.tagged", "conversation.priority_set"} <= actions


def test_conversations_are_assigned_only_to_people_whose_role_works_them(client, runtime, ana):
    conversation_id = says(client, COMPLAINT)["conversation_id"]
    marketer, _ = add_staff(runtime, "mo@fernhill.example", role="marketer", name="Mo")
    ben, ben_token = add_staff(runtime, "ben@fernhill.example", role="agent", name="Ben")
    page = client.get(f"/console/conversations/{conversation_id}").text
    assign_menu = page[page.index('id="assignee"') : page.index("</select>", page.index('id="assignee"'))]
    assert "Ben" in assign_menu and "Mo" not in assign_menu

    refused = form_post(
        client,
        f"/console/conversations/{conversation_id}/action",
        f"/console/conversations/{conversation_id}",
        action="assign",
        assignee_id=str(marketer),
    )
    assert refused.status_code == 422 and "marketer" in refused.text
    api = client.post(
        f"/api/v1/conversations/{conversation_id}/assign",
        json={"staff_id": marketer},
        headers={"Authorization": f"Bearer {ben_token}"},
    )
    assert api.status_code == 422 and "does not work conversations" in api.json()["error"]
    assert conversation(runtime, conversation_id).assignee_id is None
    ok = form_post(
        client,
        f"/console/conversations/{conversation_id}/action",
        f"/console/conversations/{conversation_id}",
        action="assign",
        assignee_id=str(ben),
    )
    assert ok.status_code == 303 and conversation(runtime, conversation_id).assignee_id == ben


def test_resolving_with_the_customers_last_message_unanswered_asks_first(client, runtime, ana):
    conversation_id = says(client, COMPLAINT)["conversation_id"]
    page = f"/console/conversations/{conversation_id}"
    asked = form_post(client, f"{page}/action", page, action="resolve")
    assert asked.status_code == 303 and asked.headers["location"] == f"{page}?confirm=resolve"
    assert conversation(runtime, conversation_id).state == "human"
    warning = client.get(asked.headers["location"]).text
    assert "The customer's last message has no answer yet" in warning and "Resolve anyway" in warning
    assert "fell apart" in warning[warning.index('id="unanswered"') :][:600]

    forced = form_post(client, f"{page}/action", page, action="resolve", force="true")
    assert forced.status_code == 303 and conversation(runtime, conversation_id).state == "resolved"


def test_a_snoozed_conversation_leaves_the_queue_until_its_time_or_the_customer_writes(client, runtime, ana):
    first = says(client, COMPLAINT, name="Mia")
    second = says(client, "I want to talk to a human about my refund", name="Sara")
    for conversation_id in (first["conversation_id"], second["conversation_id"]):
        page = f"/console/conversations/{conversation_id}"
        done = form_post(client, f"{page}/snooze", page, for_minutes="60")
        assert done.status_code == 303 and done.headers["location"] == "/console"
    assert list_conversations(runtime.engine, staff_id=ana) == []
    snoozed = client.get("/console?state=snoozed").text
    assert "Mia" in snoozed and "until" in snoozed

    again = says(client, "hello?", session_id=first["session_id"])
    assert again["state"] == "human" and again["replies"] == []  # the bot stays silent; a person is back
    assert [r.id for r in list_conversations(runtime.engine, staff_id=ana)] == [first["conversation_id"]]

    assert wake_due_snoozes(runtime.engine, now=utcnow() + timedelta(minutes=59)) == []
    assert wake_due_snoozes(runtime.engine, now=utcnow() + timedelta(minutes=61)) == [
        second["conversation_id"]
    ]
    assert conversation(runtime, second["conversation_id"]).state == "human"

    page = f"/console/conversations/{first['conversation_id']}"
    in_ten_days = (utcnow() + timedelta(days=10)).strftime("%Y-%m-%dT09:30")
    local = form_post(client, f"{page}/snooze", page, until_local=in_ten_days, tz_offset="-60")
    assert local.status_code == 303 and local.headers["location"] == "/console"
    until = conversation(runtime, first["conversation_id"]).snoozed_until
    assert (until.hour, until.minute) == (8, 30)  # 09:30 in UTC+1
    says(client, "still there?", session_id=first["session_id"])  # wakes it
    years = form_post(client, f"{page}/snooze", page, until_local="2099-01-02T09:30", tz_offset="0")
    assert "error=" in years.headers["location"] and "90%20days" in years.headers["location"]
    assert conversation(runtime, first["conversation_id"]).state == "human"
    too_far = form_post(client, f"{page}/snooze", page, for_minutes="200000")
    assert too_far.status_code == 422


def test_admins_keep_canned_replies_and_agents_get_them_filled_in(client, runtime, ana):
    canned = "/console/canned"
    bad = form_post(client, canned, canned, shortcut="refund", title="Refund", text="Hi {name}!", team="")
    assert bad.status_code == 422 and "unknown placeholder {name}" in bad.text
    ok = form_post(
        client,
        canned,
        canned,
        shortcut="/Refund",
        title="Refund on its way",
        text="Hi {first_name}, your refund is on its way. {agent_name}, {brand}",
        team="",
    )
    assert ok.status_code == 303
    form_post(
        client, canned, canned, shortcut="billing", title="Billing", text="Billing says hi", team="billing"
    )
    clash = form_post(client, canned, canned, shortcut="refund", title="Again", text="x", team="")
    assert clash.status_code == 422 and "taken" in clash.text

    conversation_id = says(client, COMPLAINT, name="Mia Jensen")["conversation_id"]
    page = client.get(f"/console/conversations/{conversation_id}").text
    assert 'data-shortcut="refund"' in page
    assert "Hi Mia, your refund is on its way. Ana Lopez, Fernhill Outdoor" in page
    assert 'data-shortcut="billing"' not in page  # another team's

    add_staff(runtime, "ben@fernhill.example", role="agent")
    log_in(client, "ben@fernhill.example")
    assert client.get(canned).status_code == 403
    assert fill_placeholders("Hi {first_name}", customer_name=None, agent_name="Ben", brand="X") == "Hi there"
    assert fill_placeholders("{x} {brand}", customer_name="{brand}", agent_name="", brand="B") == "{x} B"


def test_an_agent_corrects_the_bots_reading_of_a_message(client, runtime, ana):
    complaint = says(client, COMPLAINT)
    page = f"/console/conversations/{complaint['conversation_id']}"

    def correct(**fields: str):
        url = f"/console/messages/{complaint['message_id']}/correct"
        return form_post(client, url, page, conversation_id=str(complaint["conversation_id"]), **fields)

    done = correct(intent="question", sentiment="", abusive="false")
    assert done.status_code == 303 and "Correction+saved" in done.headers["location"].replace("%20", "+")
    with Session(runtime.engine) as session:
        stored = {c.aspect: c for c in session.exec(select(Correction)).all()}
    assert set(stored) == {"intent", "abusive"}
    assert stored["intent"].value == "question" and stored["intent"].was == "complaint"
    assert stored["intent"].staff_id == ana and stored["intent"].source == "console"
    assert "corrected: abusive &rarr; false, intent &rarr; question" in client.get(page).text

    assert "error=" in correct().headers["location"]  # nothing chosen
    judged = correct(article="wrong")
    with Session(runtime.engine) as session:
        used = session.get(Message, complaint["message_id"]).kb_article_id
        article = session.exec(select(Correction).where(Correction.aspect == "article")).first()
    if used is None:  # an article can only be judged where the bot used one
        assert "error=" in judged.headers["location"] and article is None
    else:
        assert "notice=" in judged.headers["location"] and article.article_id == used


def test_not_abuse_in_the_moderation_queue_is_a_correction_and_the_bot_answers(client, runtime, ana):
    flagged = says(client, ABUSE)
    assert flagged["replies"] == []  # held back, unanswered
    with Session(runtime.engine) as session:
        [item] = session.exec(select(ModerationItem)).all()
    assert item.message_id == flagged["message_id"]
    assert item.flagged_words and set(item.flagged_words) <= set(ABUSE.lower().split())

    page = client.get("/console/moderation").text
    assert f"{item.score:.2f}" in page
    for word in item.flagged_words:
        assert f"<mark>{word}</mark>" in page.lower()

    done = form_post(client, f"/console/moderation/{item.id}", "/console/moderation", action="fine")
    assert done.status_code == 303
    assert runtime.wait_idle()
    with Session(runtime.engine) as session:
        correction = session.exec(select(Correction)).one()
        assert session.get(ModerationItem, item.id).status == "fine"
    assert (correction.message_id, correction.aspect, correction.value, correction.was) == (
        flagged["message_id"],
        "abusive",
        "false",
        "true",
    )
    assert correction.source == "moderation" and correction.staff_id == ana
    assert [m["author"] for m in customer_sees(client, flagged["session_id"])] == ["customer", "bot"]


def test_the_audit_log_reads_as_sentences_with_names_and_the_details_behind_a_toggle(client, runtime, ana):
    conversation_id = says(client, COMPLAINT)["conversation_id"]
    page = f"/console/conversations/{conversation_id}"
    form_post(client, f"{page}/tags", page, tag="refund")
    audit = client.get("/console/audit").text
    assert f'Ana Lopez tagged conversation #{conversation_id} "refund"' in audit.replace("&#34;", '"')
    assert f"The bot handed conversation #{conversation_id} to staff: complaint" in audit
    assert '<details class="audit__details"><summary>Details</summary><pre>' in audit
    assert re.search(r'<time class="local" data-format="seconds" datetime="[^"]+\+00:00">', audit)


def test_error_pages_have_the_navigation_and_a_way_back_a_role_may_take(client, runtime, ana):
    missing = client.get("/console/conversations/999999")
    assert missing.status_code == 404 and 'class="topbar__nav"' in missing.text
    assert "conversation 999999 does not exist" in missing.text and "Back to the queue" in missing.text

    conversation_id = says(client, COMPLAINT)["conversation_id"]
    add_staff(runtime, "mo@fernhill.example", role="marketer")
    log_in(client, "mo@fernhill.example")
    refused = client.get(f"/console/conversations/{conversation_id}")
    assert refused.status_code == 403 and "Not for your role" in refused.text
    back = re.search(r'<a class="button primary" href="([^"]+)">', refused.text).group(1)
    assert back == "/console/insights" and client.get(back).status_code == 200
    assert 'href="/console?' not in refused.text and '"/console">Queue' not in refused.text


def test_every_console_post_checks_the_csrf_token_after_the_login_and_a_missing_thing_is_a_404_page(
    client, runtime, ana
):
    """One dependency checks the token on every console form (none forgets it) and app-wide handlers answer
    the services' not-found errors, so the handlers only act."""
    posts = sorted(
        route.path
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and "POST" in route.methods and route.path.startswith("/console")
    )
    assert len(posts) >= 20, posts
    missing = {"conversation_id": 999999, "contact_id": 999999, "idea_id": 999999, "message_id": 999999}

    def url(path: str) -> str:
        return re.sub(r"{(\w+)}", lambda m: str(missing.get(m.group(1), "remove")), path)

    guessed = {path: client.post(url(path), data={"csrf": "guess"}).status_code for path in posts}
    assert guessed == dict.fromkeys(posts, 403)
    header = client.post(url("/console/conversations/{conversation_id}/typing"), json={"typing": True})
    assert header.status_code == 403  # the console's fetch calls send the token as X-CSRF-Token

    page = client.get("/console").text
    for action in ("tags", "priority", "notes"):
        gone = form_post(
            client, f"/console/conversations/999999/{action}", "/console", tag="x", priority=1, text="x"
        )
        assert gone.status_code == 404 and "conversation 999999 does not exist" in gone.text
        assert 'class="topbar__nav"' in gone.text
    typing = client.post(
        "/console/conversations/999999/typing", json={"typing": True}, headers={"X-CSRF-Token": csrf_of(page)}
    )
    assert typing.status_code == 404 and typing.json() == {"error": "conversation 999999 does not exist"}
    idea = form_post(client, "/console/ideas/999999/status", "/console", status="planned")
    assert idea.status_code == 404 and 'class="topbar__nav"' in idea.text

    client.post("/console/logout", data={"csrf": csrf_of(page)})
    logged_out = client.post(
        url("/console/conversations/{conversation_id}/tags"), data={"tag": "x"}, follow_redirects=False
    )
    assert logged_out.status_code == 303 and logged_out.headers["location"].startswith("/console/login")


def test_an_unexpected_error_is_a_styled_500_that_reveals_nothing(runtime, ana, client, monkeypatch):
    import bot.web.console as console

    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(console, "queue_context", broken)
    with TestClient(client.app, raise_server_exceptions=False, cookies=client.cookies) as browser:
        page = browser.get("/console")
    assert page.status_code == 500 and "Something went wrong on our side" in page.text
    assert "secret internals" not in page.text and 'class="topbar' in page.text


CONSOLE_PAGES = (
    "/console",
    "/console?state=snoozed",
    "/console?q=jacket",
    "/console/moderation",
    "/console/canned",
    "/console/audit",
    "/console/webhooks",
    "/console/data-requests",
    "/console/log",
    "/console/conversations/999999",
)


def test_console_pages_carry_no_inline_script_handlers_or_styles(client, runtime, ana):
    conversation_id = says(client, COMPLAINT)["conversation_id"]
    says(client, ABUSE)
    for path in (*CONSOLE_PAGES, f"/console/conversations/{conversation_id}", "/console/login"):
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert not re.search(r"\sstyle\s*=", html) and "<style" not in html, path
