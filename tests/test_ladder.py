"""The advocacy ladder's rules, on scripted customer histories."""

from __future__ import annotations

import pytest

from bot.crm.ladder import Behaviour, compute_stage
from bot.crm.models import LadderStage


@pytest.mark.parametrize(
    ("behaviour", "stage"),
    [
        (Behaviour(), LadderStage.TIRE_KICKER),
        (Behaviour(owner_questions=1), LadderStage.OWNER),
        (Behaviour(complaints=1, negative=1), LadderStage.OWNER),
        (Behaviour(complaints=2, negative=2, positive=1), LadderStage.DETRACTOR),
        (Behaviour(complaints=2, negative=2, positive=3, praise=2), LadderStage.ADVOCATE),
        (Behaviour(positive=2, positive_conversations=2), LadderStage.LOYAL),
        (Behaviour(ideas=1, positive=1), LadderStage.ADVOCATE),
        (Behaviour(praise=2, positive=2), LadderStage.ADVOCATE),
    ],
)
def test_stage_rules(behaviour, stage):
    computed, reason = compute_stage(behaviour)
    assert computed == stage
    assert reason


def test_a_customer_moves_down_the_ladder_with_repeated_angry_complaints(client, runtime):
    from sqlmodel import Session, select

    from bot.crm.models import Contact, LadderChange

    session_id = "ladder-session-1"
    for text in ("my order is late AGAIN, this is a joke", "the replacement arrived broken, worst shop ever"):
        client.post("/api/v1/chat", json={"session_id": session_id, "text": text})
    with Session(runtime.engine) as session:
        contact = session.exec(select(Contact)).one()
        changes = session.exec(select(LadderChange).order_by(LadderChange.id)).all()
    assert contact.ladder_stage == "detractor"
    assert changes[-1].to_stage == "detractor" and changes[-1].from_stage == "owner"


def test_behaviour_is_counted_over_the_contacts_inbound_messages_only(runtime):
    from sqlmodel import Session

    from bot.crm.ladder import _behaviour
    from bot.crm.models import Contact, Conversation, Message

    with Session(runtime.engine) as session:
        contact, other = Contact(), Contact()
        session.add_all([contact, other])
        session.flush()
        first, second = (
            Conversation(contact_id=contact.id, channel="webchat", thread_id=f"t-{n}") for n in (1, 2)
        )
        session.add_all([first, second])
        session.flush()

        def say(conversation, intent, sentiment, *, article=None, who=contact, direction="in"):
            session.add(
                Message(
                    conversation_id=conversation.id,
                    contact_id=who.id,
                    channel="webchat",
                    direction=direction,
                    author_kind="customer" if direction == "in" else "bot",
                    text="...",
                    intent=intent,
                    sentiment=sentiment,
                    kb_article_id=article,
                )
            )

        say(first, "complaint", "negative")
        say(first, "question", "neutral", article="delivery-times")
        say(first, "praise", "positive")
        say(first, "praise", "positive")
        say(second, "recommendation", "positive")
        say(second, "question", "neutral", article="opening-hours")
        say(second, "complaint", "negative", direction="out")  # the bot's words don't count
        say(second, "complaint", "negative", who=other)  # nor another customer's
        session.flush()
        behaviour = _behaviour(session, contact.id, {"delivery-times", "returns"})
        assert _behaviour(session, other.id, set()).complaints == 1

    assert behaviour == Behaviour(
        complaints=1,
        praise=2,
        ideas=1,
        positive=3,
        negative=1,
        positive_conversations=2,
        owner_questions=1,
    )
