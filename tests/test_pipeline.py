"""Scenarios through the web chat JSON API: one customer message at a time, the real model and sample KB."""

from __future__ import annotations

import uuid

from sqlmodel import Session, func, select

from bot.crm.models import AuditEvent, Contact, Conversation, Idea, Message, Outbox
from bot.web.chat_sessions import thread_of


def new_session() -> str:
    return f"test-{uuid.uuid4().hex}"


def say(client, session_id: str, text: str, **extra) -> dict:
    response = client.post("/api/v1/chat", json={"session_id": session_id, "text": text, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_question_is_answered_from_the_sample_knowledge_base(client, runtime):
    body = say(client, new_session(), "how long does delivery take?")

    assert body["state"] == "bot"
    assert len(body["replies"]) == 1
    with Session(runtime.engine) as session:
        message = session.get(Message, body["message_id"])
    assert message.intent == "question"
    assert message.action == "answer"
    assert message.kb_article_id is not None and "deliver" in message.kb_article_id
    article = next(a for a in runtime.models.knowledge.articles if a.id == message.kb_article_id)
    assert article.body.split()[0] in body["replies"][0]["text"]


def test_a_complaint_is_apologised_for_escalated_and_the_bot_then_stays_silent(client, runtime):
    session_id = new_session()
    first = say(
        client, session_id, "My order arrived broken and nobody answers my emails. This is terrible!!"
    )

    assert first["state"] == "human"
    assert len(first["replies"]) == 1
    assert "sorry" in first["replies"][0]["text"].lower()

    second = say(client, session_id, "hello?? is anyone there?")
    assert second["state"] == "human"
    assert second["replies"] == []
    with Session(runtime.engine) as session:
        silent = session.get(Message, second["message_id"])
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "conversation.escalated")).all()
    assert silent.action == "human_owns"
    assert silent.intent is not None  # still understood, for staff
    assert len(events) == 1


def test_praise_is_thanked_and_recommending_us_makes_an_advocate(client, runtime):
    session_id = new_session()
    body = say(client, session_id, "Just got my new tent from you guys and I absolutely love it, thank you!")
    assert body["state"] == "bot"
    assert "thank" in body["replies"][0]["text"].lower()
    say(client, session_id, "Your staff in the Leeds store were so helpful, amazing service!")

    def stage() -> str:
        with Session(runtime.engine) as session:
            return (
                session.exec(
                    select(Contact).join(Conversation).where(Conversation.thread_id == thread_of(session_id))
                )
                .one()
                .ladder_stage
            )

    assert stage() == "owner"  # praise alone is not advocacy (bot/crm/ladder.py)
    say(client, session_id, "I've told all my friends to buy their tents from you!")
    assert stage() == "advocate"


def test_an_idea_is_thanked_and_recorded(client, runtime):
    body = say(client, new_session(), "You should really start selling kids' hiking boots, I'd buy them")
    with Session(runtime.engine) as session:
        ideas = session.exec(select(Idea).where(Idea.message_id == body["message_id"])).all()
    assert len(ideas) == 1
    assert "idea" in body["replies"][0]["text"].lower()


def test_a_question_the_knowledge_base_cannot_answer_is_escalated(client, runtime):
    body = say(client, new_session(), "What is the boiling point of tungsten in a vacuum chamber?")
    with Session(runtime.engine) as session:
        message = session.get(Message, body["message_id"])
    assert message.kb_article_id is None
    assert message.action == "escalate"
    assert body["state"] == "human"


def test_the_same_message_delivered_twice_is_stored_once_and_answered_once(client, runtime):
    session_id = new_session()
    first = say(client, session_id, "how do I return a jacket?", message_id="m-1")
    again = say(client, session_id, "how do I return a jacket?", message_id="m-1")

    assert again["duplicate"] is True
    assert again["message_id"] == first["message_id"]
    assert again["replies"] == first["replies"]
    with Session(runtime.engine) as session:
        inbound = session.exec(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        ).one()
        outbox = session.exec(select(func.count()).select_from(Outbox)).one()
    assert inbound == 1
    assert outbox == 1


def test_the_conversation_survives_a_restart(make_settings, models):
    from fastapi.testclient import TestClient

    from bot.web.app import create_app
    from bot.worker.build import build_runtime

    settings = make_settings()
    session_id = new_session()
    first_runtime = build_runtime(settings, models=models)
    with TestClient(create_app(first_runtime)) as first:
        complaint = say(first, session_id, "Third time my delivery is late, I'm fed up with you")
    first_runtime.engine.dispose()
    assert complaint["state"] == "human"

    second_runtime = build_runtime(settings, models=models)
    with TestClient(create_app(second_runtime)) as second:
        second.headers["Authorization"] = f"Bearer {complaint['session_token']}"  # another browser, same chat
        history = second.get(f"/api/v1/chat/{session_id}/messages").json()
        after = say(second, session_id, "still waiting")
    assert [m["id"] for m in history][:1] == [complaint["message_id"]]
    assert len(history) == 2  # the complaint and the bot's apology
    assert after["conversation_id"] == complaint["conversation_id"]
    assert after["state"] == "human" and after["replies"] == []


def test_a_message_stored_before_a_crash_is_decided_at_start(runtime):
    from bot.pipeline.inbound import recover_unprocessed, store_inbound
    from channels.base import Author, InboundMessage

    inbound = InboundMessage(
        channel="webchat",
        external_id="crash-1",
        thread_id="crash-session",
        author=Author("crash-session"),
        text="what payment methods do you accept?",
    )
    message_id, duplicate = store_inbound(runtime, inbound)  # stored, then the process "stopped"
    assert not duplicate

    assert recover_unprocessed(runtime, older_than_seconds=0) == 1
    assert recover_unprocessed(runtime, older_than_seconds=0) == 0
    with Session(runtime.engine) as session:
        message = session.get(Message, message_id)
        replies = session.exec(select(Message).where(Message.reply_to_id == message_id)).all()
    assert message.status == "processed"
    assert len(replies) == 1 and replies[0].status == "sent"
