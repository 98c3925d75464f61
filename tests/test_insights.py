"""Marketers read what happened: the response log (filters, keyset paging), CSV exports (contents, formula
guard, batched streaming, audit), the dashboard's figures (hand-checked response times, complaint topics,
ladder), the ideas board, roles, the `socialbot export` command, and the dashboard in a real browser.

Traffic goes through the real pipeline (POST /api/v1/chat); rows are inserted by hand only where a test needs
timestamps it can check by hand."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import AuditEvent, Contact, Conversation, FollowUp, Idea, LadderChange, Message, utcnow
from bot.insights.dashboard import dashboard_data
from bot.insights.response_log import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    LogFilters,
    csv_lines,
    iter_message_rows,
    response_log,
    safe_cell,
)
from bot.support.staff import create_staff, issue_api_token
from tests.history import ScriptedHistory
from tests.test_topics import LATE, ZIP

PASSWORD = "correct horse battery staple"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
INJECTION = '=HYPERLINK("http://evil.example","click")'

#: Scripted customers: (session, name, messages). Mixed intents so every filter and chart has something.
TRAFFIC = [
    (
        "web-ana-session",
        "Ana",
        ["how much does delivery cost?", "thanks, that was really helpful, love your shop!"],
    ),
    (
        "web-ben-session",
        "Ben",
        ["my order is late AGAIN, this is a joke", "the replacement arrived broken, worst shop"],
    ),
    ("web-cem-session", "Cem", ["you should sell the jacket in more colours, a green one would be great"]),
    ("web-dee-session", "Dee", [INJECTION, "+cmd|' /C calc'!A0 what is your returns policy?"]),
    (
        "web-eli-session",
        "Eli",
        ["I love your boots, best purchase this year!", "can I return a jacket I bought online?"],
    ),
    ("web-fay-session", "Fay", ["the zip on my jacket broke after one week, really disappointed"]),
]


def add_staff(runtime, email: str, role: str) -> tuple[int, str]:
    with session_scope(runtime.engine) as session:
        staff = create_staff(session, email, role=role, password=PASSWORD)
        return staff.id, issue_api_token(session, staff)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def log_in(client, email: str):
    page = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"email": email, "password": PASSWORD, "csrf": csrf_of(page.text), "next": "/console"},
        follow_redirects=False,
    )


@pytest.fixture
def traffic(client):
    """The scripted customers' messages, pushed through the pipeline; returns {session: conversation id}."""
    conversations = {}
    for session_id, name, texts in TRAFFIC:
        for text in texts:
            response = client.post(
                "/api/v1/chat", json={"session_id": session_id, "text": text, "name": name}
            )
            assert response.status_code == 200, response.text
            conversations[session_id] = response.json()["conversation_id"]
    return conversations


@pytest.fixture
def marketer(client, runtime):
    staff_id, token = add_staff(runtime, "mia@fernhill.example", "marketer")
    assert log_in(client, "mia@fernhill.example").headers["location"] == "/console/insights"
    return staff_id, token


def all_messages(runtime) -> list[Message]:
    with Session(runtime.engine) as session:
        return session.exec(select(Message).order_by(Message.id)).all()


def log_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr class="log__row[^"]*" data-id="(\d+)"', html)]


def test_the_log_shows_every_message_and_each_filter_narrows_it(client, runtime, traffic, marketer):
    messages = all_messages(runtime)
    page = client.get("/console/log")
    assert page.status_code == 200
    assert log_ids(page.text) == [m.id for m in reversed(messages)]
    # customer text is escaped, not markup
    assert "&lt;" not in INJECTION and "=HYPERLINK(&#34;http://evil.example&#34;" in page.text

    complaints = log_ids(client.get("/console/log", params={"intent": "complaint"}).text)
    assert complaints and complaints == [m.id for m in reversed(messages) if m.intent == "complaint"]
    by_bot = log_ids(client.get("/console/log", params={"author": "bot"}).text)
    assert by_bot == [m.id for m in reversed(messages) if m.author_kind == "bot"]
    found = log_ids(client.get("/console/log", params={"q": "JACKET"}).text)
    assert found == [m.id for m in reversed(messages) if "jacket" in m.text.lower()]
    negative = log_ids(client.get("/console/log", params={"sentiment": "negative"}).text)
    assert negative == [m.id for m in reversed(messages) if m.sentiment == "negative"]
    with Session(runtime.engine) as session:
        escalated = {c.id for c in session.exec(select(Conversation).where(Conversation.state == "human"))}
    assert escalated
    human = log_ids(client.get("/console/log", params={"state": "human"}).text)
    assert human == [m.id for m in reversed(messages) if m.conversation_id in escalated]
    one = log_ids(client.get("/console/log", params={"conversation": traffic["web-ben-session"]}).text)
    assert one == [m.id for m in reversed(messages) if m.conversation_id == traffic["web-ben-session"]]
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    assert log_ids(client.get("/console/log", params={"since": tomorrow}).text) == []
    assert "No messages match" in client.get("/console/log", params={"channel": "telegram"}).text

    bad = client.get("/console/log", params={"since": "last tuesday"})
    assert bad.status_code == 422 and "since" in bad.text
    assert client.get("/console/log", params={"author": "robot"}).status_code == 422


def test_the_log_pages_by_message_id_without_gaps_or_repeats(client, runtime, traffic):
    expected = [m.id for m in reversed(all_messages(runtime))]
    seen, before, pages = [], None, 0
    while True:
        page = response_log(runtime.engine, LogFilters(), before=before, limit=4)
        seen += [r.id for r in page.rows]
        pages += 1
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == expected and pages == -(-len(expected) // 4)

    # an inbound message answered by the bot carries the time to its reply
    question = next(
        r for r in response_log(runtime.engine, LogFilters(text="delivery cost", author="customer")).rows
    )
    assert question.direction == "in" and question.response_seconds is not None
    assert 0 <= question.response_seconds < 60


def test_the_log_page_links_to_older_pages(client, runtime, marketer):
    insert_volume(runtime, 120)
    first = client.get("/console/log", params={"channel": "email"})
    ids = log_ids(first.text)
    assert len(ids) == 50
    older = re.search(r'href="/console/log\?([^"]+)" id="older"', first.text).group(1).replace("&amp;", "&")
    assert "before=" in older and "channel=email" in older
    second = log_ids(client.get("/console/log?" + older).text)
    assert len(second) == 50 and max(second) < min(ids)


def read_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_messages_export_has_every_row_and_neutralises_formulas(client, runtime, traffic, marketer):
    staff_id, token = marketer
    response = client.post("/api/v1/export/messages.csv", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = read_csv(response.text)
    messages = all_messages(runtime)
    assert response.text.splitlines()[0] == ",".join(MESSAGE_COLUMNS)
    assert [int(r["message_id"]) for r in rows] == [m.id for m in messages]
    texts = [r["text"] for r in rows]
    assert "'" + INJECTION in texts and INJECTION not in texts
    assert any(t.startswith("'+cmd|") for t in texts)
    assert not any(t.startswith(("=", "+", "-", "@")) for t in texts)
    answered = next(r for r in rows if r["text"] == "how much does delivery cost?")
    assert answered["intent"] == "question" and answered["action"] == "answer" and answered["kb_article_id"]
    assert float(answered["response_seconds"]) >= 0

    filtered = read_csv(
        client.post(
            "/api/v1/export/messages.csv",
            params={"intent": "complaint"},
            headers={"Authorization": f"Bearer {token}"},
        ).text
    )
    assert filtered and {r["intent"] for r in filtered} == {"complaint"}

    with Session(runtime.engine) as session:
        audits = session.exec(select(AuditEvent).where(AuditEvent.action == "export.messages")).all()
    assert [(a.actor_id, a.details["via"]) for a in audits] == [(staff_id, "api"), (staff_id, "api")]
    assert audits[1].details["filters"] == {"intent": "complaint"}


def test_the_console_export_uses_the_session_and_the_page_filters(client, runtime, traffic, marketer):
    page = client.get("/console/log", params={"sentiment": "negative"}).text
    link = (
        re.search(r'action="(/console/export/conversations.csv\?[^"]+)"', page).group(1).replace("&amp;", "&")
    )
    assert client.get(link).status_code == 405  # an export is audited: never on a GET
    response = client.post(link, data={"csrf": csrf_of(page)})
    assert response.status_code == 200
    rows = read_csv(response.text)
    assert response.text.splitlines()[0] == ",".join(CONVERSATION_COLUMNS)
    with Session(runtime.engine) as session:
        negative = sorted(
            {m.conversation_id for m in session.exec(select(Message).where(Message.sentiment == "negative"))}
        )
        audit = session.exec(select(AuditEvent).where(AuditEvent.action == "export.conversations")).one()
    assert [int(r["conversation_id"]) for r in rows] == negative
    assert audit.details == {"filters": {"sentiment": "negative"}, "via": "console", "format": "csv"}
    ben = next(r for r in rows if int(r["conversation_id"]) == traffic["web-ben-session"])
    assert ben["contact_name"] == "Ben" and "complaint" in ben["intents_seen"].split()
    assert ben["state"] == "human" and ben["escalated"] == "true" and ben["outcome"] == "with staff"
    assert int(ben["messages"]) >= 2


def test_an_export_reads_in_batches_and_never_all_rows_at_once(runtime):
    insert_volume(runtime, 25)
    statements = []

    def count(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT") and "FROM message" in statement:
            statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        batches = iter_message_rows(runtime.engine, LogFilters(), batch_size=10)
        first = next(batches)
        assert len(first) == 10
        reads_for_first_batch = len([s for s in statements if "LIMIT" in s.upper()])
        rest = list(batches)
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count)
    assert reads_for_first_batch == 1  # the generator had read only one batch when it yielded
    assert [len(b) for b in rest] == [10, 5]
    assert len([s for s in statements if "LIMIT" in s.upper()]) == 3


def test_agents_cannot_read_the_log_or_export_and_logged_out_users_are_sent_to_log_in(client, runtime):
    _agent_id, agent_token = add_staff(runtime, "ana@fernhill.example", "agent")
    assert (
        client.get("/console/insights", follow_redirects=False)
        .headers["location"]
        .startswith("/console/login?next=/console/insights")
    )
    assert client.get("/console/log", follow_redirects=False).status_code == 303
    assert client.get("/console/insights/data", follow_redirects=False).status_code == 303
    no_token = client.post("/api/v1/export/messages.csv")
    assert no_token.status_code == 401 and "token" in no_token.json()["error"]
    bad_token = client.post("/api/v1/export/messages.csv", headers={"Authorization": "Bearer sbt_nope"})
    assert bad_token.status_code == 401
    as_agent = client.post(
        "/api/v1/export/conversations.csv", headers={"Authorization": f"Bearer {agent_token}"}
    )
    assert as_agent.status_code == 403

    assert log_in(client, "ana@fernhill.example").headers["location"] == "/console"
    for path in ("/console/log", "/console/insights", "/console/insights/data"):
        assert client.get(path).status_code == 403, path
    csrf = csrf_of(client.get("/console").text)
    assert client.post("/console/export/messages.csv", data={"csrf": csrf}).status_code == 403
    with Session(runtime.engine) as session:
        assert session.exec(select(AuditEvent).where(AuditEvent.action.startswith("export."))).all() == []


def test_a_marketer_moves_an_idea_along_the_board_and_it_is_audited(client, runtime, traffic, marketer):
    staff_id, _ = marketer
    with Session(runtime.engine) as session:
        idea = session.exec(select(Idea)).one()
    assert "green one" in idea.text and idea.status == "new"
    page = client.get("/console/insights")
    assert f'data-idea="{idea.id}"' in page.text
    csrf = csrf_of(page.text)

    moved = client.post(
        f"/console/ideas/{idea.id}/status", data={"status": "planned", "csrf": csrf}, follow_redirects=False
    )
    assert moved.status_code == 303
    assert "new+-%3E+planned" in moved.headers["location"] or "new -> planned" in moved.headers["location"]
    assert (
        client.post(f"/console/ideas/{idea.id}/status", data={"status": "someday", "csrf": csrf}).status_code
        == 422
    )
    assert (
        client.post(f"/console/ideas/{idea.id}/status", data={"status": "done"}).status_code == 403
    )  # no CSRF
    assert client.post("/console/ideas/9999/status", data={"status": "done", "csrf": csrf}).status_code == 404
    with Session(runtime.engine) as session:
        assert session.get(Idea, idea.id).status == "planned"
        audit = session.exec(select(AuditEvent).where(AuditEvent.action == "idea.status_changed")).one()
    assert (audit.actor_id, audit.subject_id, audit.details) == (
        staff_id,
        idea.id,
        {"from": "new", "to": "planned", "customers_told": 1},
    )
    with Session(runtime.engine) as session:
        followups = session.exec(select(FollowUp).where(FollowUp.template == "idea_update")).all()
    # the customer who suggested it hears about it on their channel (bot/engagement/followups.py sends it)
    assert [(f.contact_id, f.channel, f.status) for f in followups] == [
        (idea.contact_id, "webchat", "pending")
    ]

    add_staff(runtime, "ana@fernhill.example", "agent")
    client.cookies.clear()
    log_in(client, "ana@fernhill.example")
    agent_page_csrf = csrf_of(client.get("/console").text)
    refused = client.post(
        f"/console/ideas/{idea.id}/status", data={"status": "done", "csrf": agent_page_csrf}
    )
    assert refused.status_code == 403


def test_the_dashboard_figures_match_the_traffic(client, runtime, traffic, marketer):
    data = client.get("/console/insights/data", params={"days": 7}).json()
    inbound = [m for m in all_messages(runtime) if m.direction == "in"]
    assert len(data["days"]) == 7 and data["days"][-1] == utcnow().date().isoformat()
    assert sum(data["volume_by_channel"]["webchat"]) == len(inbound)
    assert data["volume_by_channel"]["webchat"][-1] == len(inbound)
    by_intent = {intent: sum(series) for intent, series in data["volume_by_intent"].items()}
    assert by_intent["complaint"] == sum(1 for m in inbound if m.intent == "complaint") >= 2
    assert sum(sum(s) for s in data["sentiment"].values()) == len(inbound)
    assert data["handled"]["staff"] >= 1 and data["handled"]["bot"] >= 1
    assert sum(data["handled"].values()) == len(TRAFFIC)
    topics = data["complaint_topics"]
    assert sum(t["complaints"] for t in topics["topics"]) + topics["other"] == by_intent["complaint"]
    assert topics["ungrouped"] == 0  # the pipeline kept every complaint's vector
    # the bot answered each message it replied to at once (not those sent after a handover); nobody on staff
    # has replied yet
    answered = {m.reply_to_id for m in all_messages(runtime) if m.author_kind == "bot"}
    times = data["response_times"]["overall"]
    assert times["bot_response"]["count"] == len(answered) < len(inbound)
    assert times["bot_response"]["p90"] < 60
    assert times["first_human_response"]["count"] == 0 and times["sla"]["still_waiting"] >= 1
    ladder = {row["stage"]: row["contacts"] for row in data["ladder"]}
    assert list(ladder) == ["detractor", "tire-kicker", "owner", "loyal", "advocate"]
    assert sum(ladder.values()) == len(TRAFFIC) and ladder["detractor"] >= 1
    ben = next(m for m in data["ladder_moves"] if m["contact"] == "Ben")
    assert (ben["from"], ben["to"], ben["direction"]) == ("owner", "detractor", "down")
    assert data["top_articles"] and all(a["answers"] >= 1 for a in data["top_articles"])


#: The scripted history's "now": Wednesday 25 March 2026, 15:00 UTC; the dashboard's 14 days are 12-25 March,
#: its weeks start on Monday 9, 16 and 23 March.
DASH_NOW = datetime(2026, 3, 25, 15, 0, tzinfo=UTC)
DAY = 24 * 60
#: DASH_NOW in minutes from the scripted history's start (its times must not be negative).
Z = 21 * DAY


def script_dashboard(engine, encoder) -> None:
    """A fortnight worked out by hand (minutes from the start, Z being DASH_NOW; each comment says what it
    adds).

    Response times: bot replies webchat 3 s, 6 s; telegram 30 s, 0 s. First reply by a person: c2 1200 s
    (webchat), c3 5430 s (telegram), both Mia. Waits for a person: c2 1194 s, c3 5400 s (late: target 1 h);
    c4 still waiting for 7200 s (a breach, nobody assigned). Resolution: c2 3600 s, by Mia. c5 is before the
    period: none of it counts. Complaint topics: six late parcels (the lost-parcel article) and four broken
    zips (no article)."""
    h = ScriptedHistory(engine, DASH_NOW - timedelta(minutes=Z), encoder=encoder)
    mia = h.staff("Mia")
    complaint = {"intent": "complaint", "sentiment": "negative"}

    # c1 webchat, a day ago: a question the bot answers from an article in 3 s; then praise. CSAT 5.
    c1 = h.conversation(h.customer("Ana"), "webchat", Z - DAY, csat=5)
    question = h.says(
        c1,
        "how much is delivery?",
        Z - DAY,
        intent="question",
        sentiment="neutral",
        action="answer",
        kb_article_id="delivery-costs",
    )
    h.replies(c1, Z - DAY, to=question, sent_minutes=Z - DAY + 0.05)
    h.says(c1, "thanks, love your shop", Z - DAY + 1, intent="praise", sentiment="positive")

    # c2 webchat, opened a day ago + 10 min: a late parcel, apology in 6 s, handed over at once, Mia answers
    # 20 min after it opened and resolves it an hour after. CSAT 2.
    d = Z - DAY + 10
    c2 = h.conversation(h.customer("Ben"), "webchat", d, csat=2)
    late = h.says(c2, LATE[0], d, kb_article_id="lost-parcel", **complaint)
    h.replies(c2, d, to=late, sent_minutes=d + 0.1)
    h.escalates(c2, d + 0.1)
    h.replies(c2, d + 20, staff_id=mia)
    h.resolves(c2, d + 60, staff_id=mia)

    # c3 telegram, 8 days ago: a broken zip, apology in 30 s with the handover, Mia answers 90 min later.
    d = Z - 8 * DAY
    c3 = h.conversation(h.customer("Cem"), "telegram", d)
    zip_ = h.says(c3, ZIP[0], d, **complaint)
    h.replies(c3, d, to=zip_, sent_minutes=d + 0.5)
    h.escalates(c3, d + 0.5)
    h.replies(c3, d + 90.5, staff_id=mia)

    # c4 telegram, two hours ago: a stuck zip, apology at once, handed over, nobody has answered.
    c4 = h.conversation(h.customer("Dee"), "telegram", Z - 120)
    h.replies(c4, Z - 120, to=h.says(c4, ZIP[1], Z - 120, **complaint))
    h.escalates(c4, Z - 120)

    # Kim by e-mail, opened 13 days ago: five more late parcels, two more zips, an unanswered question.
    kim = h.conversation(h.customer("Kim"), "email", Z - 13 * DAY)
    for days, text in zip((2, 3, 4, 5, 9), LATE[1:], strict=True):
        h.says(kim, text, Z - days * DAY, kb_article_id="lost-parcel", **complaint)
    for days, text in zip((12, 11), ZIP[2:], strict=True):
        h.says(kim, text, Z - days * DAY, **complaint)
    question = {"intent": "question", "intent_confidence": 0.95, "sentiment": "neutral", "action": "escalate"}
    h.says(kim, "do you sell gift cards?", Z - 6 * DAY, **question)

    # c5 webchat, 20 days ago: outside the period.
    d = Z - 20 * DAY
    c5 = h.conversation(h.customer("Eve"), "webchat", d)
    h.replies(c5, d, to=h.says(c5, "where is my refund", d, **complaint), sent_minutes=d + 9)
    h.escalates(c5, d)
    h.replies(c5, d + 30, staff_id=mia)
    h.resolves(c5, d + 40, staff_id=mia)

    # The ladder: Ana loyal, Ben a detractor since yesterday (a move 9 days ago is not this week's).
    with session_scope(engine) as session:
        stages = {"Ana": "loyal", "Ben": "detractor"}
        for contact in session.exec(select(Contact)).all():
            contact.ladder_stage = stages.get(contact.display_name, contact.ladder_stage)
            session.add(contact)
            if contact.display_name != "Ben":
                continue
            for before, after, why, minutes in (
                ("owner", "detractor", "an open complaint about a lost parcel", Z - DAY + 11),
                ("tire-kicker", "owner", "old", Z - 9 * DAY),
            ):
                session.add(
                    LadderChange(
                        contact_id=contact.id,
                        from_stage=before,
                        to_stage=after,
                        reason=why,
                        changed_at=h.at(minutes),
                    )
                )


def timing(count: int, median: float | None, p90: float | None) -> dict:
    return {"count": count, "median": median, "p90": p90}


def sla(handovers, answered, late, waiting, waiting_late, closed=0) -> dict:
    return {
        "handovers": handovers,
        "answered": answered,
        "answered_within_target": answered - late,
        "answered_late": late,
        "still_waiting": waiting,
        "still_waiting_past_target": waiting_late,
        "closed_unanswered": closed,
        "breaches": late + waiting_late,
    }


def test_every_dashboard_figure_on_a_scripted_history(db_engine, encoder):
    script_dashboard(db_engine, encoder)
    data = dashboard_data(
        db_engine,
        days=14,
        now=DASH_NOW,
        first_response_target=timedelta(hours=1),
        encoder=encoder.name,
        article_titles={"lost-parcel": "Lost, late or missing parcel"},
    )
    assert data["days"][0] == "2026-03-12" and data["days"][-1] == "2026-03-25" and len(data["days"]) == 14

    def on(series: list[int]) -> dict[str, int]:  # day -> count, days with messages only
        return {day[5:]: n for day, n in zip(data["days"], series, strict=True) if n}

    assert {k: on(v) for k, v in data["volume_by_channel"].items()} == {
        "email": {
            "03-13": 1,
            "03-14": 1,
            "03-16": 1,
            "03-19": 1,
            "03-20": 1,
            "03-21": 1,
            "03-22": 1,
            "03-23": 1,
        },
        "telegram": {"03-17": 1, "03-25": 1},
        "webchat": {"03-24": 3},
    }
    assert {k: sum(v) for k, v in data["volume_by_intent"].items()} == {
        "complaint": 10,
        "praise": 1,
        "question": 2,
    }
    assert {k: sum(v) for k, v in data["sentiment"].items()} == {"negative": 10, "neutral": 2, "positive": 1}

    times = data["response_times"]
    assert times["target_seconds"] == 3600
    overall = times["overall"]
    assert overall["bot_response"] == timing(4, 3.0, 30.0)  # 0, 3, 6, 30 s
    assert overall["first_human_response"] == timing(2, 1200.0, 5430.0)
    assert overall["waiting_for_person"] == timing(2, 1194.0, 5400.0)
    assert overall["resolution"] == timing(1, 3600.0, 3600.0)
    assert overall["sla"] == sla(3, 2, 1, 1, 1)
    webchat, telegram = times["by_channel"]["webchat"], times["by_channel"]["telegram"]
    assert list(times["by_channel"]) == ["telegram", "webchat"]  # Kim's e-mails: no timed event
    assert webchat["bot_response"] == timing(2, 3.0, 6.0) and telegram["bot_response"] == timing(2, 0.0, 30.0)
    assert webchat["first_human_response"] == timing(1, 1200.0, 1200.0)
    assert telegram["waiting_for_person"] == timing(1, 5400.0, 5400.0)
    assert webchat["sla"] == sla(1, 1, 0, 0, 0) and telegram["sla"] == sla(2, 1, 1, 1, 1)
    assert list(times["by_agent"]) == ["Mia", "unassigned"]
    assert times["by_agent"]["Mia"]["first_human_response"] == timing(2, 1200.0, 5430.0)
    assert times["by_agent"]["Mia"]["resolution"] == timing(1, 3600.0, 3600.0)
    assert times["by_agent"]["Mia"]["sla"] == sla(2, 2, 1, 0, 0)
    assert times["by_agent"]["unassigned"]["sla"] == sla(1, 0, 0, 1, 1)
    assert data["handled"] == {"bot": 2, "staff": 3}  # c1 and Kim's; c2, c3, c4 were handed over
    assert data["csat"] == {"webchat": {"average": 3.5, "responses": 2}}

    topics = data["complaint_topics"]
    assert topics["weeks"] == ["2026-03-09", "2026-03-16", "2026-03-23"]
    assert (topics["other"], topics["ungrouped"]) == (0, 0)
    by_label = {t["label"]: t for t in topics["topics"]}
    late = by_label["Lost, late or missing parcel"]
    # a day ago and 2 days ago (this week); 3, 4, 5 and 9 days ago (the week of 16 March)
    assert (late["complaints"], late["article_id"], late["weekly"]) == (6, "lost-parcel", [0, 4, 2])
    [zips] = [t for t in topics["topics"] if t["article_id"] is None]
    # 12 and 11 days ago (week of 9 March), 8 days ago, two hours ago
    assert (zips["complaints"], zips["weekly"]) == (4, [2, 1, 1])
    assert "zip" in zips["words"] and zips["label"] == ", ".join(zips["words"])
    assert len(topics["topics"]) == 2

    assert data["top_articles"] == [{"article": "delivery-costs", "answers": 1}]
    [gap] = data["knowledge_gaps"]
    assert (gap["questions"], gap["examples"], len(gap["message_ids"])) == (1, ["do you sell gift cards?"], 1)
    assert {row["stage"]: row["contacts"] for row in data["ladder"]} == {
        "detractor": 1,
        "tire-kicker": 4,
        "owner": 0,
        "loyal": 1,
        "advocate": 0,
    }
    assert [(m["contact"], m["from"], m["to"], m["direction"]) for m in data["ladder_moves"]] == [
        ("Ben", "owner", "detractor", "down")
    ]


def test_the_sla_target_comes_from_the_settings(make_settings, models):
    """The page's figures count breaches against `[support] first_response_target`, not a default."""
    from fastapi.testclient import TestClient

    from bot.web.app import create_app
    from bot.worker.build import build_runtime

    runtime = build_runtime(make_settings(support={"first_response_target": "PT15M"}), models=models)
    try:
        with TestClient(create_app(runtime)) as client:
            add_staff(runtime, "mia@fernhill.example", "marketer")
            assert log_in(client, "mia@fernhill.example").status_code == 303
            data = client.get("/console/insights/data", params={"days": 7}).json()
    finally:
        runtime.close()
    assert data["response_times"]["target_seconds"] == 15 * 60


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_cells_that_would_run_as_formulas_get_a_leading_quote(prefix):
    assert safe_cell(prefix + "1+1") == "'" + prefix + "1+1"
    assert safe_cell("fine " + prefix) == "fine " + prefix
    assert safe_cell(-3) == -3


def insert_volume(runtime, count: int) -> None:
    """`count` inbound messages on the email channel, one conversation, for paging and batching tests."""
    with session_scope(runtime.engine) as session:
        contact = Contact(display_name="Volume")
        session.add(contact)
        session.flush()
        conversation = Conversation(contact_id=contact.id, channel="email", thread_id="volume")
        session.add(conversation)
        session.flush()
        start = utcnow() - timedelta(hours=1)
        session.add_all(
            Message(
                conversation_id=conversation.id,
                contact_id=contact.id,
                channel="email",
                external_id=f"v{i}",
                direction="in",
                author_kind="customer",
                text=f"message {i}",
                created_at=start + timedelta(seconds=i),
                intent="question",
                sentiment="neutral",
            )
            for i in range(count)
        )


def test_the_export_command_writes_a_filtered_csv_and_is_audited(tmp_path, make_settings):
    from bot.crm.db import create_db_engine, upgrade_database

    settings = make_settings()
    upgrade_database(settings.database_url)
    engine = create_db_engine(settings.database_url)

    class Holder:
        pass

    runtime = Holder()
    runtime.engine = engine
    insert_volume(runtime, 30)
    with session_scope(engine) as session:
        session.add(
            Message(
                conversation_id=1,
                contact_id=1,
                channel="email",
                external_id="old",
                direction="in",
                author_kind="customer",
                text="@SUM(A1:A9) from last year",
                created_at=datetime(2025, 1, 5, 12, tzinfo=UTC),
            )
        )
    engine.dispose()
    env = {**os.environ, "SOCIALBOT_DATA__DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "old.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "export",
            "messages",
            "--since",
            "2025-01-01",
            "--until",
            "2025-01-31",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote 1 messages to {out}"
    rows = read_csv(out.read_text(encoding="utf-8"))
    assert [r["text"] for r in rows] == ["'@SUM(A1:A9) from last year"]

    everything = subprocess.run(
        [sys.executable, "-m", "bot", "export", "conversations", "--out", str(tmp_path / "c.csv")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert everything.returncode == 0 and "wrote 1 conversations" in everything.stdout

    bad = subprocess.run(
        [sys.executable, "-m", "bot", "export", "messages", "--since", "yesterday", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2 and "since: expected YYYY-MM-DD" in bad.stderr
    engine = create_db_engine(settings.database_url)
    with Session(engine) as session:
        audits = session.exec(select(AuditEvent).where(AuditEvent.action.startswith("export."))).all()
    engine.dispose()
    assert [(a.action, a.actor_kind, a.details["via"]) for a in audits] == [
        ("export.messages", "operator", "cli"),
        ("export.conversations", "operator", "cli"),
    ]
    assert audits[0].details["filters"]["since"].startswith("2025-01-01")


def dashboard_ready(page) -> None:
    # A function, not an expression: Playwright runs a bare expression through eval(), which the CSP forbids.
    page.wait_for_function(
        "() => document.getElementById('insights').dataset.ready === 'true'", timeout=20_000
    )


def open_dashboard(page, server_url: str, email: str) -> None:
    """Log `email` in on a desktop-sized page and wait until the dashboard has drawn its figures."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(server_url + "/console/insights")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server_url + "/console/insights")
    dashboard_ready(page)


@pytest.mark.browser
def test_the_dashboard_renders_every_chart_with_data_in_a_browser(server_url, runtime, page):
    import httpx

    with httpx.Client(base_url=server_url, timeout=60) as customers:  # its cookies open each chat session
        for session_id, name, texts in TRAFFIC:
            for text in texts:
                response = customers.post(
                    "/api/v1/chat", json={"session_id": session_id, "text": text, "name": name}
                )
                assert response.status_code == 200, response.text
                if response.json()["state"] == "human":
                    handed_over = response.json()["conversation_id"]
        # a person answers one handed-over conversation through the staff API: the person clocks have data
        with session_scope(runtime.engine) as session:
            create_staff(session, "mia@fernhill.example", role="marketer", password=PASSWORD, name="Mia")
            agent = create_staff(session, "ana@fernhill.example", role="agent", password=PASSWORD, name="Ana")
            token = issue_api_token(session, agent)
        answered = customers.post(
            f"/api/v1/conversations/{handed_over}/reply",
            json={"text": "Sorry about that, I am on it."},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answered.status_code == 202, answered.text
    assert runtime.wait_idle()
    open_dashboard(page, server_url, "mia@fernhill.example")

    canvases = page.locator("#insights canvas")
    assert canvases.count() == 7
    charts = page.evaluate(
        """() => window.insightsCharts.map((c) => ({
            id: c.canvas.id,
            // A response time of 0.0 s (rounded) is a measurement; a day with no messages is not.
            points: c.data.datasets.reduce(
                (n, d) =>
                    n + d.data.filter((v) => (c.canvas.id === "chart-response-times" ? v != null : v)).length,
                0,
            ),
            width: c.width,
        }))"""
    )
    assert len(charts) == 7 and all(c["points"] > 0 and c["width"] > 100 for c in charts), charts
    assert page.evaluate("Object.keys(Chart.instances).length") == 7
    assert page.locator("#ladder-moves tbody tr").count() >= 1
    assert page.locator("#knowledge-gaps").count() == 1
    # the response-time and topic tables are filled: a row per channel, a row per topic with its weeks
    webchat = page.locator("#channel-times tr[data-channel='webchat'] td")
    assert "p90" in webchat.nth(2).inner_text()  # the first reply by a person: a median and a p90
    assert page.locator("#agent-times tr[data-agent='Ana']").count() == 1
    assert page.locator("#topic-weeks tr").count() >= 2
    assert "target" in page.locator("#sla-summary").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    dashboard_ready(page)
    # on a phone nothing sticks out sideways: wide tables scroll inside their card
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "dashboard-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    # the log's filters change what it shows
    page.get_by_role("link", name="Response log").click()
    page.wait_for_url(server_url + "/console/log")
    everything = page.locator("#log tbody tr").count()
    page.get_by_label("Intent").select_option("complaint")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(lambda url: "intent=complaint" in url)
    complaints = page.locator("#log tbody tr").count()
    assert 0 < complaints < everything
    assert page.locator("#log").inner_text().count("complaint") >= complaints
    page.screenshot(path=str(ARTIFACTS / "response-log.png"), full_page=True)


def test_the_log_exports_and_dashboard_run_the_same_on_postgresql(pg_url, encoder):
    from bot.crm.db import create_db_engine, upgrade_database
    from bot.crm.vectors import store_vector
    from bot.insights.ideas import set_idea_status
    from bot.insights.response_log import iter_conversation_rows

    upgrade_database(pg_url)
    engine = create_db_engine(pg_url)
    try:
        now = utcnow()
        with session_scope(engine) as session:
            contact = Contact(display_name="Pia")
            session.add(contact)
            session.flush()
            conversation = Conversation(
                contact_id=contact.id,
                channel="telegram",
                thread_id="pg",
                state="resolved",
                opened_at=now - timedelta(minutes=10),
                first_response_at=now - timedelta(minutes=9),
                resolved_at=now - timedelta(minutes=5),
            )
            session.add(conversation)
            session.flush()
            common = {"conversation_id": conversation.id, "contact_id": contact.id, "channel": "telegram"}
            complaint = Message(
                **common,
                external_id="1",
                direction="in",
                author_kind="customer",
                text="-1 stars, the ZIP broke",
                intent="complaint",
                sentiment="negative",
                created_at=now - timedelta(minutes=10),
            )
            session.add(complaint)
            session.flush()
            store_vector(session, complaint.id, encoder.encode([complaint.text])[0], encoder=encoder.name)
            session.add(
                Message(
                    **common,
                    direction="out",
                    author_kind="bot",
                    text="Sorry to hear that.",
                    reply_to_id=complaint.id,
                    created_at=now - timedelta(minutes=9),
                )
            )
            complaint_id = complaint.id
            idea = Idea(message_id=complaint.id, contact_id=contact.id, text="a stronger zip")
            session.add(idea)
            session.flush()
            idea_id = idea.id

        page = response_log(
            engine,
            LogFilters.parse(
                text="zip", state="resolved", since=(now - timedelta(days=1)).date().isoformat()
            ),
        )
        assert [r.text for r in page.rows] == ["-1 stars, the ZIP broke"]
        assert page.rows[0].response_seconds == 60.0
        exported = "".join(csv_lines(MESSAGE_COLUMNS, iter_message_rows(engine, LogFilters(), batch_size=1)))
        assert [r["text"] for r in read_csv(exported)] == ["'-1 stars, the ZIP broke", "Sorry to hear that."]
        (conversation_row,) = [
            r for b in iter_conversation_rows(engine, LogFilters(intent="complaint")) for r in b
        ]
        assert conversation_row[7:10] == [60.0, 300.0, "complaint"]
        data = dashboard_data(engine, days=3)  # topics by the encoder of the newest stored vector
        assert sum(data["volume_by_channel"]["telegram"]) == 1
        [topic] = data["complaint_topics"]["topics"]
        assert (topic["complaints"], sum(topic["weekly"]), topic["message_ids"]) == (1, 1, [complaint_id])
        assert data["response_times"]["by_channel"]["telegram"]["resolution"]["median"] == 300.0
        assert set_idea_status(engine, idea_id, "under review", staff_id=None) == "new"
    finally:
        engine.dispose()
