"""Ideas: suggestions in other words grouped into one idea (measured on hand-grouped ideas), a vote per
distinct customer, and every customer behind an idea told when its status changes."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text
from sqlmodel import Session, select

from bot.crm.db import create_db_engine, session_scope, upgrade_database
from bot.crm.ideas import IDEA_SIMILARITIES, record_idea
from bot.crm.models import FollowUp, Idea, IdeaMention, Message
from bot.engagement.followups import send_due_followups
from bot.insights.ideas import list_ideas, set_idea_status
from intents.encoder import load_encoder
from tests.history import ScriptedHistory

NOW = datetime(2026, 3, 25, 15, 0, tzinfo=UTC)
GROUPS = yaml.safe_load((Path(__file__).parent / "data" / "idea_groups.yaml").read_text(encoding="utf-8"))


def suggest(history: ScriptedHistory, conversation: int, words: str, minutes: float = 0, **join) -> Idea:
    """`words` said as a suggestion and recorded; `join`: record_idea's `join_at`, when not the default."""
    message_id = history.says(conversation, words, minutes, intent="recommendation")
    with session_scope(history.engine) as session:
        message = session.get(Message, message_id)
        idea = record_idea(session, message, encoder=history.encoder.name, **join)
        session.flush()
        return idea


def pairwise(groups: list[list[str]], found: dict[str, int]) -> tuple[float, float]:
    """Precision and recall of "these two suggestions are one idea" over every pair."""
    label = {words: number for number, group in enumerate(groups) for words in group}
    pairs = list(itertools.combinations(list(label), 2))
    same = [(label[a] == label[b], found[a] == found[b]) for a, b in pairs]
    true_positive = sum(1 for truth, guess in same if truth and guess)
    precision = true_positive / max(1, sum(1 for _, guess in same if guess))
    recall = true_positive / max(1, sum(1 for truth, _ in same if truth))
    return precision, recall


@pytest.mark.parametrize("variant", ["default", "permissive"])
@pytest.mark.parametrize("split", ["dev", "test"])
def test_suggestions_in_other_words_become_one_idea(db_engine, encoder, split, variant):
    groups = [group["ideas"] for group in GROUPS if group["split"] == split]
    if variant != "default":
        encoder = load_encoder(variant=variant)
    history = ScriptedHistory(db_engine, NOW, encoder=encoder)
    order = [words for group in groups for words in group]
    random.Random(7).shuffle(order)  # as they would arrive: mixed
    found = {}
    for n, words in enumerate(order):
        customer = history.customer(f"customer {n}")
        conversation = history.conversation(customer, "webchat", n)
        found[words] = suggest(history, conversation, words, n, join_at=IDEA_SIMILARITIES[variant]).id
    precision, recall = pairwise(groups, found)
    # dev chose IDEA_SIMILARITIES; test measures them (README "Insights")
    print(f"{variant} {split}: pairwise precision {precision:.3f}, recall {recall:.3f}")
    assert precision == 1.0, "two different ideas were merged"
    assert recall >= (0.8 if split == "dev" else 0.7)
    with Session(db_engine) as session:
        ideas = session.exec(select(Idea)).all()
    assert sum(idea.votes for idea in ideas) == len(order)  # one vote per customer, each a different one


def test_a_vote_per_distinct_customer(db_engine, encoder):
    history = ScriptedHistory(db_engine, NOW, encoder=encoder)
    ann, bob = history.customer("Ann"), history.customer("Bob")
    anns, bobs = history.conversation(ann, "webchat", 0), history.conversation(bob, "telegram", 0)
    first = suggest(history, anns, "you should sell the Ridge jacket in green", 1)
    again = suggest(history, anns, "please make the Ridge jacket in a green colour", 2)
    other = suggest(history, bobs, "a green version of the Ridge jacket would be great", 3)
    apart = suggest(history, bobs, "open a shop in Bristol please", 4)
    assert first.id == again.id == other.id != apart.id
    [board_first, board_second] = list_ideas(db_engine)
    assert (board_first.id, board_first.votes, board_first.text) == (
        first.id,
        2,
        "you should sell the Ridge jacket in green",
    )
    assert board_first.also_said == (
        "a green version of the Ridge jacket would be great",
        "please make the Ridge jacket in a green colour",
    )
    assert board_second.votes == 1
    with session_scope(db_engine) as session:  # recording a message again changes nothing
        message = session.exec(select(Message).where(Message.text.startswith("a green"))).one()
        assert record_idea(session, message, encoder=encoder.name).id == first.id
    with Session(db_engine) as session:
        assert len(session.exec(select(IdeaMention)).all()) == 4


def test_every_customer_behind_an_idea_hears_of_its_new_status_in_their_own_words(runtime, encoder):
    history = ScriptedHistory(runtime.engine, NOW, encoder=encoder)
    ann, bob = history.customer("Ann"), history.customer("Bob")
    anns, bobs = history.conversation(ann, "webchat", 0), history.conversation(bob, "webchat", 0)
    idea = suggest(history, anns, "open a shop in Bristol please", 1)
    suggest(history, anns, "you need a store in Bristol!", 2)
    suggest(history, bobs, "any chance of a Fernhill shop in Bristol?", 3)

    assert set_idea_status(runtime.engine, idea.id, "planned", staff_id=None) == "new"
    with Session(runtime.engine) as session:
        rows = session.exec(select(FollowUp).order_by(FollowUp.id)).all()
    assert sorted((row.conversation_id, row.template) for row in rows) == [
        (anns, "idea_update"),
        (bobs, "idea_update"),
    ]
    send_due_followups(runtime)
    with Session(runtime.engine) as session:
        sent = {
            m.conversation_id: m.text
            for m in session.exec(select(Message).where(Message.direction == "out")).all()
        }
    assert '("you need a store in Bristol!")' in sent[anns] and "it is now planned" in sent[anns]
    assert '("any chance of a Fernhill shop in Bristol?")' in sent[bobs]


def test_the_migration_makes_every_existing_idea_its_first_mention(tmp_path):
    url = f"sqlite:///{tmp_path / 'i.sqlite3'}"
    upgrade_database(url, "0007_vectors")
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO contact (id, ladder_stage, opted_out, created_at, last_seen_at) "
                "VALUES (1, 'owner', 0, '2026-01-01', '2026-01-01')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO conversation (id, contact_id, channel, thread_id, state, priority, opened_at, "
                "last_message_at) VALUES (1, 1, 'webchat', 't', 'bot', 0, '2026-01-01', '2026-01-01')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO message (id, conversation_id, contact_id, channel, direction, author_kind, "
                "text, public, kind, created_at, status) VALUES (1, 1, 1, 'webchat', 'in', 'customer', "
                "'green jacket', 0, 'message', '2026-01-01', 'processed')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO idea (message_id, contact_id, text, status, votes, created_at) "
                "VALUES (1, 1, 'green jacket', 'new', 3, '2026-01-01')"
            )
        )
    upgrade_database(url)
    with Session(engine) as session:
        [mention] = session.exec(select(IdeaMention)).all()
        [idea] = session.exec(select(Idea)).all()
    assert (mention.idea_id, mention.message_id, mention.contact_id, idea.votes) == (idea.id, 1, 1, 1)
    engine.dispose()


def test_ideas_from_the_web_chat_are_grouped(client, runtime):
    for session_id, words in (
        ("web-idea-session-1", "You should sell waterproof dog coats, that would be great"),
        ("web-idea-session-2", "Please make waterproof coats for dogs, I'd buy one"),
    ):
        assert client.post("/api/v1/chat", json={"session_id": session_id, "text": words}).status_code == 200
    with Session(runtime.engine) as session:
        ideas = session.exec(select(Idea)).all()
        mentions = session.exec(select(IdeaMention)).all()
    assert len(mentions) == 2 and [idea.votes for idea in ideas] == [2]


def test_an_idea_sent_while_a_person_owns_the_conversation_reaches_the_board(client, runtime):
    session_id = "web-idea-person-session"
    first = client.post(
        "/api/v1/chat",
        json={"session_id": session_id, "text": "my tent pole snapped, I want a replacement now"},
    ).json()
    assert first["state"] == "human"
    idea = client.post(
        "/api/v1/chat",
        json={
            "session_id": session_id,
            "text": "You should sell spare tent poles on your website, I'd buy them",
        },
    ).json()
    assert idea["state"] == "human" and idea["replies"] == []  # the bot stays silent
    with Session(runtime.engine) as session:
        [recorded] = session.exec(select(Idea)).all()
        message = session.get(Message, idea["message_id"])
    assert recorded.message_id == message.id
    assert message.action == "human_owns" and message.reason.endswith("recorded as an idea")
