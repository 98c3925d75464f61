"""Complaint topics: complaints grouped by the encoder's own vectors (kept by the pipeline), named by their
article or distinctive words, counted per week; and a spike in one topic alerted once, to the Slack support
channel and as a webhook event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import pytest
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import ComplaintSpike, Message, MessageVector, SupportPost, WebhookEvent
from bot.delivery.webhooks import add_endpoint, capture_webhook_events
from bot.insights.clustering import distinctive_words
from bot.insights.topics import check_complaint_spikes, complaint_topics
from tests.history import ScriptedHistory

NOW = datetime(2026, 3, 25, 15, 0, tzinfo=UTC)  # a Wednesday
TITLES = {"lost-parcel": "Lost, late or missing parcel", "faulty-item": "Faulty or damaged item"}
LATE = [
    "my parcel still hasn't arrived after two weeks",
    "where is my delivery? it was due last Monday",
    "the courier never delivered my order",
    "my package is late again, tracking hasn't moved in days",
    "order shipped ten days ago and still not here",
    "delivery was supposed to be yesterday, nothing arrived",
]
ZIP = [
    "the zip on my jacket broke after one week",
    "zipper came off the first time I used the coat",
    "jacket zip is stuck and won't close",
    "the zip of my new jacket split open",
]
#: Four weeks of late parcels, written as customers write them, and today's (new words, the same problem).
BASE_LATE = [
    "my parcel is a week late",
    "still waiting for my delivery",
    "order not arrived yet",
    "where is my package?",
    "delivery is late, nobody tells me anything",
    "tracking hasn't updated for days",
    "my order was due on friday, still nothing",
    "the parcel never came",
    "courier says delivered but nothing here",
    "two weeks and no delivery",
    "late delivery again",
    "my boots haven't arrived",
    "parcel stuck in transit",
    "no sign of my order",
]
TODAY_LATE = [
    "my parcel still hasn't arrived",
    "where is my delivery?",
    "the courier never delivered my order",
    "my package is late",
    "order shipped ten days ago and still not here",
    "delivery was due yesterday, nothing arrived",
    "my order hasn't been delivered",
    "parcel delayed again, no delivery",
]
REFUND = [
    "I returned the boots a month ago and still no refund",
    "where is my refund? you received the return weeks ago",
    "refund for my returned tent never came",
]


def test_distinctive_words_name_each_group_by_what_sets_it_apart():
    texts = [
        "the zip broke on my jacket",
        "jacket zip stuck",
        "my jacket zip split",
        "parcel late, jacket not here",
        "parcel lost by the courier",
    ]
    words = distinctive_words(texts, [0, 0, 0, 1, 1], top=2)
    assert words[0] == ["zip", "broke"] or words[0][0] == "zip"
    assert words[1][0] == "parcel"
    assert "jacket" not in words[1]  # frequent in both groups: it names neither


@pytest.fixture
def history(db_engine, encoder) -> ScriptedHistory:
    return ScriptedHistory(db_engine, NOW, encoder=encoder)


def minutes(days: float) -> float:
    return days * 24 * 60


def test_the_periods_complaints_are_grouped_named_and_counted_per_week(history, db_engine, encoder):
    contact = history.customer("Kim")
    conversation = history.conversation(contact, "webchat", minutes(-30))
    # Late parcels in the last two weeks (matched to the lost-parcel article), broken zips and missing refunds
    # the week before; the scripted days are worked out per Monday-based week.
    for i, text in enumerate(LATE):
        history.says(conversation, text, minutes(-i - 1), intent="complaint", kb_article_id="lost-parcel")
    for i, text in enumerate(ZIP):
        history.says(conversation, text, minutes(-10 - i), intent="complaint", kb_article_id=None)
    for i, text in enumerate(REFUND):
        history.says(conversation, text, minutes(-3 - i), intent="complaint", kb_article_id="refund-timing")
    history.says(conversation, "how much is delivery?", minutes(-1), intent="question")  # not a complaint
    old = history.says(conversation, "old complaint about sizes", minutes(-2), intent="complaint")
    with session_scope(db_engine) as session:  # stored before vectors were kept
        session.delete(session.get(MessageVector, old))

    with Session(db_engine) as session:
        data = complaint_topics(
            session,
            since=NOW - timedelta(days=21),
            until=NOW,
            encoder=encoder.name,
            article_titles=TITLES,
        )
    assert data["weeks"] == ["2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23"]
    assert data["ungrouped"] == 1
    topics = {topic["label"]: topic for topic in data["topics"]}
    late = topics["Lost, late or missing parcel"]
    assert late["complaints"] == 6 and late["article_id"] == "lost-parcel"
    # days -1, -2 (Tue, Mon: this week), -3..-6 (the week before)
    assert late["weekly"] == [0, 0, 4, 2]
    assert late["examples"][0] in LATE and len(late["examples"]) == 3
    [zip_topic] = [t for t in data["topics"] if "zip" in t["words"]]
    assert zip_topic["complaints"] == 4 and zip_topic["article_id"] is None
    assert zip_topic["label"] == ", ".join(zip_topic["words"])
    assert zip_topic["weekly"] == [0, 4, 0, 0]
    [refund] = [t for t in data["topics"] if t["article_id"] == "refund-timing"]
    assert refund["complaints"] == 3 and refund["label"] == "refund-timing"  # no title known: its id
    assert sum(t["complaints"] for t in data["topics"]) + data["other"] == 13


def spike_scenario(history: ScriptedHistory) -> int:
    """Four weeks of a late parcel every other day and a broken zip a week; today, eight late parcels."""
    contact = history.customer("Lee")
    conversation = history.conversation(contact, "telegram", minutes(-40))
    for n, day in enumerate(range(2, 29, 2)):  # most matched the article about late parcels
        article = None if n % 4 == 3 else "lost-parcel"
        history.says(conversation, BASE_LATE[n], minutes(-day), intent="complaint", kb_article_id=article)
    for day in (3, 10, 17, 24):
        history.says(conversation, ZIP[day % len(ZIP)], minutes(-day), intent="complaint")
    for i, text in enumerate(TODAY_LATE):
        article = None if i % 4 == 3 else "lost-parcel"
        history.says(conversation, text, -60 + i, intent="complaint", kb_article_id=article)
    history.says(conversation, ZIP[0], -30, intent="complaint")
    return conversation


def check(engine, encoder, now=NOW):
    return check_complaint_spikes(
        engine,
        encoder=encoder.name,
        article_titles=TITLES,
        support_channel="C0SUPPORT",
        ratio=3.0,
        min_complaints=5,
        now=now,
    )


def test_a_spike_is_alerted_once_to_slack_and_integrations(history, db_engine, encoder, make_settings):
    capture_webhook_events()
    with session_scope(db_engine) as session:
        add_endpoint(
            session,
            "https://hooks.example/x",
            ["complaints.spike"],
            settings=make_settings(),
            resolve=lambda _host, _port: [ip_address("93.184.215.14")],  # a public address, no DNS query
        )
    conversation = spike_scenario(history)

    [spike] = check(db_engine, encoder)
    assert spike.label == "Lost, late or missing parcel" and spike.article_id == "lost-parcel"
    # the eight late parcels against 14 in 28 days
    assert spike.today == 8 and spike.daily_average == 0.5
    assert spike.text.startswith("Complaint spike: Lost, late or missing parcel: 8 complaints today, ")
    assert "x their 4-week average" in spike.text
    with Session(db_engine) as session:
        [post] = session.exec(select(SupportPost)).all()
        [event] = session.exec(select(WebhookEvent).where(WebhookEvent.type == "complaints.spike")).all()
    assert (post.kind, post.text, post.conversation_id, post.status) == ("alert", spike.text, None, "pending")
    assert event.data["topic"] == spike.label and event.data["complaints_today"] == 8
    assert len(event.data["message_ids"]) == 8

    # The next checks find the same spike: no second alert, the count follows the day.
    assert check(db_engine, encoder, NOW + timedelta(minutes=15)) == []
    history.says(conversation, "still waiting for my parcel, it's late", 5, intent="complaint")
    history.says(conversation, "no delivery yet, where is my order", 6, intent="complaint")
    assert check(db_engine, encoder, NOW + timedelta(minutes=30)) == []
    with Session(db_engine) as session:
        [spike] = session.exec(select(ComplaintSpike)).all()
        assert len(session.exec(select(SupportPost)).all()) == 1
        assert len(session.exec(select(WebhookEvent)).all()) == 1
    assert spike.today == 10 and len(spike.message_ids) == 10


def test_no_spike_when_today_is_like_every_day(history, db_engine, encoder):
    contact = history.customer("Max")
    conversation = history.conversation(contact, "telegram", minutes(-40))
    for day in range(0, 29):
        for n in range(2):  # two late parcels a day, every day, today too (plus a few more today)
            history.says(
                conversation, LATE[(day + n) % len(LATE)], minutes(-day) - 60 - n, intent="complaint"
            )
    for n in range(3):
        history.says(conversation, LATE[n], -10 - n, intent="complaint")
    assert check(db_engine, encoder) == []
    with Session(db_engine) as session:
        assert session.exec(select(SupportPost)).all() == []


def test_too_few_complaints_today_are_never_a_spike(history, db_engine, encoder):
    contact = history.customer("Ned")
    conversation = history.conversation(contact, "telegram", -600)
    for i, text in enumerate(LATE[:4]):
        history.says(conversation, text, -60 + i, intent="complaint")
    assert check(db_engine, encoder) == []


def test_the_pipeline_keeps_each_messages_vector_from_its_one_encoder_pass(client, runtime, encoder):
    response = client.post(
        "/api/v1/chat", json={"session_id": "web-vector-session", "text": "my parcel is late again"}
    )
    assert response.status_code == 200
    with Session(runtime.engine) as session:
        [message] = session.exec(select(Message).where(Message.direction == "in")).all()
        row = session.get(MessageVector, message.id)
    assert row.encoder == encoder.name
    from bot.crm.vectors import unpack_vector

    expected = encoder.encode(["my parcel is late again"])[0]
    assert float(unpack_vector(row.vector) @ expected) > 0.999


def test_the_alert_is_posted_once_to_the_slack_support_channel(make_settings, models):
    from bot.support.slack_posts import deliver_support_posts
    from bot.worker.build import build_runtime
    from tests.fakes.slack import FakeSlack

    with FakeSlack() as slack:
        settings = make_settings(
            slack={
                "enabled": True,
                "bot_token": slack.bot_token,
                "signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
                "api_base_url": slack.api_base_url,
                "support_channel": "C0SUPPORT",
            }
        )
        runtime = build_runtime(settings, models=models)
        try:
            text = 'Complaint spike: zip, broke: 6 complaints today, 4x ...\n- "<!channel> my zip broke"'
            with session_scope(runtime.engine) as session:
                session.add(SupportPost(kind="alert", text=text, support_channel="C0SUPPORT"))
            first = deliver_support_posts(runtime)
            again = deliver_support_posts(runtime)
        finally:
            runtime.close()
    [posted] = slack.in_channel("C0SUPPORT")
    assert posted.text == text.replace("<", "&lt;").replace(">", "&gt;")  # no @channel from customer text
    assert len(first.posted) == 1 and again.posted == again.updated == []
    with Session(runtime.engine) as session:
        [post] = session.exec(select(SupportPost)).all()
    assert (post.status, post.ts) == ("posted", posted.ts)
