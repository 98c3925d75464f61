"""Knowledge gaps: only the questions the knowledge base could not answer (no small talk, data requests,
abuse, unsure readings or answered questions), grouped with counts; a draft article prefilled from a group,
finished by an admin and saved into the knowledge base, which answers it at once without a restart."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sqlmodel import Session, select

from bot.crm.models import AuditEvent
from bot.insights.knowledge_gaps import (
    ANSWER_PLACEHOLDER,
    ArticleRefused,
    draft_article,
    knowledge_gaps,
    save_article,
)
from bot.runtime.analysis import sample_knowledge_dir
from knowledge import KnowledgeBase, parse_article
from tests.history import ScriptedHistory

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
