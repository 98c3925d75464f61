"""Knowledge gaps: only the questions the knowledge base could not answer (no small talk, data requests,
abuse, unsure readings or answered questions), grouped with counts; a draft article prefilled from a group,
finished by an admin and saved into the knowledge base, which answers it at once without a restart."""

from __future__ import annotations

import html
import re
import shutil
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_plus, urlencode

import pytest
import yaml
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import AuditEvent, Message
from bot.insights.knowledge_gaps import (
    ANSWER_PLACEHOLDER,
    ArticleRefused,
    draft_article,
    knowledge_gaps,
    save_article,
)
from bot.runtime.analysis import Models, sample_knowledge_dir
from bot.support.staff import create_staff
from bot.worker.build import build_runtime
from intents import Understander
from knowledge import KnowledgeBase, parse_article
from tests.history import ScriptedHistory
from tests.test_insights import (
    ARTIFACTS,
    PASSWORD,
    csrf_of,
    dashboard_ready,
    log_in,
    open_dashboard,
)

NOW = datetime(2026, 3, 25, 15, 0, tzinfo=UTC)
GIFT_WRAP = [
    "do you offer gift wrapping?",
    "can you gift wrap my order for a birthday?",
    "Is gift wrapping available when I order online?",
]
DOGS = ["can I bring my dog into your shop?", "are dogs allowed in the stores?"]
UNANSWERED = {
    "action": "escalate",
    "intent": "question",
    "intent_confidence": 0.97,
    "low_confidence": False,
    "abusive": False,
}


def scripted(history: ScriptedHistory) -> None:
    conversation = history.conversation(history.customer("Ola"), "webchat", -600)
    for i, text in enumerate(GIFT_WRAP + DOGS):
        history.says(conversation, text, -300 + i, **UNANSWERED)
    # none of these is a gap
    history.says(conversation, "ok thanks", -200, intent="other", action="small_talk")
    history.says(conversation, "ok thank you", -200, **{**UNANSWERED, "intent_confidence": 0.61})
    history.says(conversation, "delete my data", -199, intent="question", action="data_request")
    history.says(
        conversation, "where do you idiots hide the gift wrap", -198, **{**UNANSWERED, "abusive": True}
    )
    history.says(conversation, "=HYPERLINK(1)", -197, **{**UNANSWERED, "low_confidence": True})
    history.says(conversation, "gift wrap for a person please", -196, **UNANSWERED, wants_human=True)
    history.says(
        conversation,
        "how long does delivery take?",
        -195,
        intent="question",
        action="answer",
        kb_article_id="delivery-times",
    )
    history.says(conversation, "gift wrapping, anyone?", -194, **UNANSWERED, kind="listened")
    history.says(conversation, "do you gift wrap?", -60 * 24 * 40, **UNANSWERED)  # before the period


def gaps(engine, encoder):
    with Session(engine) as session:
        return knowledge_gaps(session, since=NOW - timedelta(days=30), until=NOW, encoder=encoder.name)


def test_only_unanswered_questions_are_gaps_grouped_biggest_first(db_engine, encoder):
    scripted(ScriptedHistory(db_engine, NOW, encoder=encoder))
    found = gaps(db_engine, encoder)
    assert [gap.questions for gap in found] == [3, 2]
    wrap, dogs = found
    assert set(wrap.examples) == set(GIFT_WRAP) and set(dogs.examples) == set(DOGS)
    assert "gift" in wrap.words or "wrapping" in wrap.words
    assert "dog" in dogs.words or "dogs" in dogs.words
    assert wrap.last_asked == NOW + timedelta(minutes=-300 + 2)


def test_a_draft_carries_the_questions_in_front_matter_that_survives_any_text(db_engine, encoder):
    history = ScriptedHistory(db_engine, NOW, encoder=encoder)
    conversation = history.conversation(history.customer("Pat"), "webchat", -10)
    tricky = [
        history.says(conversation, "gift wrap: yes or no? # really", -5, **UNANSWERED),
        history.says(conversation, "- =SUM(A1) 'gift' \"wrap\"", -4, **UNANSWERED),
        history.says(conversation, "GIFT wrap:   YES or no? # really", -3, **UNANSWERED),  # the same, again
    ]
    with Session(db_engine) as session:
        draft = draft_article(session, tricky, words=["gift", "wrap"])
    assert draft.startswith("---\n") and draft.endswith(f"---\n{ANSWER_PLACEHOLDER}\n")
    article = parse_article(
        __import__("pathlib").Path("x.md"), draft.replace(ANSWER_PLACEHOLDER, "We do, for 3 EUR.")
    )
    assert article.id == "gift-wrap"
    assert article.questions == ("gift wrap: yes or no? # really", "- =SUM(A1) 'gift' \"wrap\"")
    assert article.title == "Gift wrap: yes or no? # really"


@pytest.fixture
def own_knowledge(tmp_path, encoder) -> KnowledgeBase:
    folder = tmp_path / "kb"
    shutil.copytree(sample_knowledge_dir(), folder)
    return KnowledgeBase.build(folder, encoder, cache_dir=tmp_path / "kb-cache")


def test_an_admin_finishes_the_draft_and_the_knowledge_base_answers_it_at_once(
    db_engine, encoder, own_knowledge
):
    history = ScriptedHistory(db_engine, NOW, encoder=encoder)
    scripted(history)
    [wrap, _dogs] = gaps(db_engine, encoder)
    with Session(db_engine) as session:
        draft = draft_article(session, wrap.message_ids, words=wrap.words)
    front = yaml.safe_load(draft.split("---")[1])
    assert sorted(front["questions"]) == sorted(GIFT_WRAP)

    with pytest.raises(ArticleRefused, match="write the answer"):
        save_article(db_engine, own_knowledge, draft, staff_id=1)
    finished = draft.replace(
        ANSWER_PLACEHOLDER, "Yes: tick *gift wrap* at checkout (3 EUR) and add a message for the card."
    )
    with pytest.raises(ArticleRefused, match="sample shipped"):
        save_article(db_engine, own_knowledge, finished, staff_id=1, sample_dir=own_knowledge.directory)
    with pytest.raises(ArticleRefused, match="line 3: invalid front matter"):
        save_article(db_engine, own_knowledge, finished.replace("id:", "id: [", 1), staff_id=1)
    with pytest.raises(ArticleRefused, match="exists already"):
        save_article(
            db_engine, own_knowledge, finished.replace(f"id: {front['id']}", "id: returns"), staff_id=1
        )

    before = own_knowledge.answer("can you gift wrap a present for me?", encoder.encode(["x"])[0])
    article = save_article(db_engine, own_knowledge, finished, staff_id=1, sample_dir=sample_knowledge_dir())
    assert (own_knowledge.directory / f"{article.id}.md").read_text(encoding="utf-8").endswith("card.\n")
    question = "could you gift wrap my parcel?"
    answer = own_knowledge.answer(question, encoder.encode([question])[0])
    assert answer.article is not None and answer.article.id == article.id, (before, answer)
    with Session(db_engine) as session:
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "knowledge.article_added")).all()
    assert (event.actor_id, event.details["id"]) == (1, article.id)


def test_a_question_the_bot_could_not_answer_through_the_pipeline_is_a_gap(client, runtime, encoder):
    for session_id, text in (
        ("web-gap-session-1", "can I bring my dog into your shop?"),
        ("web-gap-session-2", "ok thanks"),  # read as a question, but at 0.61
        ("web-gap-session-3", "how long does delivery take?"),
        ("web-gap-session-4", "please delete my data"),
    ):
        assert client.post("/api/v1/chat", json={"session_id": session_id, "text": text}).status_code == 200
    now = datetime.now(UTC)
    with Session(runtime.engine) as session:
        found = knowledge_gaps(
            session, since=now - timedelta(hours=1), until=now + timedelta(minutes=1), encoder=encoder.name
        )
    assert [gap.examples for gap in found] == [["can I bring my dog into your shop?"]]


@pytest.fixture
def runtime(make_settings, encoder, tmp_path):
    """A worker whose knowledge base is a copy of the sample in a folder of the brand's own (articles can be
    added), shared by the console tests below (and `client`, `server_url` over it)."""
    folder = tmp_path / "brand-kb"
    shutil.copytree(sample_knowledge_dir(), folder)
    knowledge = KnowledgeBase.build(folder, encoder, cache_dir=tmp_path / "brand-kb-cache")
    built = build_runtime(
        make_settings(knowledge={"dir": folder}),
        models=Models(encoder, Understander.load(), knowledge, refresh_seconds=0),
    )
    yield built
    built.close()


def ask(client, i: int, text: str) -> int:
    response = client.post("/api/v1/chat", json={"session_id": f"web-dog-session-{i}", "text": text})
    assert response.status_code == 200, response.text
    return response.json()["message_id"]


def add_staff(runtime) -> int:
    with session_scope(runtime.engine) as session:
        create_staff(session, "mo@fernhill.example", role="marketer", password=PASSWORD)
        return create_staff(session, "ada@fernhill.example", role="admin", password=PASSWORD).id


def test_an_admin_drafts_an_article_from_a_dashboard_gap_in_the_console_and_the_bot_answers_from_it(
    client, runtime
):
    asked = [ask(client, i, text) for i, text in enumerate(DOGS)]
    admin = add_staff(runtime)
    folder = runtime.models.knowledge.directory

    log_in(client, "mo@fernhill.example")
    [gap] = client.get("/console/insights/data?days=7").json()["knowledge_gaps"]
    assert (gap["questions"], sorted(gap["examples"]), gap["message_ids"]) == (2, sorted(DOGS), asked)
    assert "data-can-draft" not in client.get("/console/insights").text  # marketers see, admins draft
    link = "/console/knowledge/draft?" + urlencode({"ids": ",".join(map(str, asked)), "words": "dogs"})
    assert client.get(link, follow_redirects=False).status_code == 403

    log_in(client, "ada@fernhill.example")
    assert 'data-can-draft="true"' in client.get("/console/insights").text
    page = client.get(link)
    assert page.status_code == 200
    draft = html.unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", page.text, re.S).group(1))
    assert sorted(yaml.safe_load(draft.split("---")[1])["questions"]) == sorted(DOGS)
    csrf = csrf_of(page.text)
    refused = client.post("/console/knowledge/articles", data={"markdown": draft, "csrf": csrf})
    assert refused.status_code == 422 and "write the answer in place of" in html.unescape(refused.text)
    assert draft in html.unescape(refused.text)  # the admin's text is kept
    bad = client.get("/console/knowledge/draft?ids=1,x")
    assert bad.status_code == 422 and "ids: expected 1 to" in bad.text

    finished = draft.replace(ANSWER_PLACEHOLDER, "Dogs on a lead are welcome in all our stores.")
    saved = client.post(
        "/console/knowledge/articles", data={"markdown": finished, "csrf": csrf}, follow_redirects=False
    )
    assert saved.status_code == 303 and "saved" in unquote_plus(saved.headers["location"])
    article_id = yaml.safe_load(draft.split("---")[1])["id"]
    assert (folder / f"{article_id}.md").is_file()
    again = ask(client, 9, "may I bring my dog in the shop?")
    with session_scope(runtime.engine, read_only=True) as session:
        assert session.get(Message, again).kb_article_id == article_id
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "knowledge.article_added")).all()
    assert event.actor_id == admin
    # The dashboard sees the new message at once (its grouping is reused only while nothing arrived): the
    # question answered from the new article is no gap, the two before it still are.
    assert client.get("/console/insights/data?days=7").json()["knowledge_gaps"][0]["message_ids"] == asked


def test_the_dashboard_reuses_its_grouping_until_a_message_arrives(client, runtime, monkeypatch):
    from bot.insights import dashboard

    calls = []
    real = dashboard.knowledge_gaps
    monkeypatch.setattr(dashboard, "knowledge_gaps", lambda *a, **k: calls.append(1) or real(*a, **k))
    ask(client, 0, DOGS[0])
    add_staff(runtime)
    log_in(client, "mo@fernhill.example")
    first = client.get("/console/insights/data?days=7").json()["knowledge_gaps"]
    assert client.get("/console/insights/data?days=7").json()["knowledge_gaps"] == first and len(calls) == 1
    ask(client, 1, DOGS[1])
    [gap] = client.get("/console/insights/data?days=7").json()["knowledge_gaps"]
    assert gap["questions"] == 2 and len(calls) == 2
    monkeypatch.setattr(dashboard, "GROUPS_TTL", 0.0)  # expired: grouped again though nothing arrived
    client.get("/console/insights/data?days=7")
    client.get("/console/insights/data?days=7")
    assert len(calls) == 4


@pytest.mark.browser
def test_the_gaps_and_the_draft_page_in_a_browser(server_url, runtime, page):
    import httpx

    with httpx.Client(base_url=server_url, timeout=60) as customers:
        for i, text in enumerate(DOGS):
            ask(customers, i, text)
    add_staff(runtime)
    open_dashboard(page, server_url, "ada@fernhill.example")
    gap = page.locator("#knowledge-gaps li.gap")
    assert gap.count() == 1 and "2 questions" in gap.inner_text()
    assert sorted(gap.locator(".gap__examples li").all_inner_texts()) == sorted(DOGS)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#gaps").screenshot(path=str(ARTIFACTS / "knowledge-gaps.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    dashboard_ready(page)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.locator("#gaps").screenshot(path=str(ARTIFACTS / "knowledge-gaps-390.png"))

    page.get_by_role("link", name="Draft an article").click()
    page.wait_for_url(lambda url: "/console/knowledge/draft?" in url)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "article-draft-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    box = page.get_by_label("Article (Markdown with front matter)")
    box.fill(box.input_value().replace(ANSWER_PLACEHOLDER, "Dogs on a lead are welcome in all our stores."))
    page.screenshot(path=str(ARTIFACTS / "article-draft.png"), full_page=True)
    page.get_by_role("button", name="Save into the knowledge base").click()
    page.wait_for_url(lambda url: "/console/insights?" in url)
    assert "saved: the bot answers from it now" in page.locator(".alert--ok").inner_text()
