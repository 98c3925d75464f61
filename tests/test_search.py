"""Full-text search across conversations and contacts, the same scenarios on SQLite (FTS5 kept by triggers)
and on a real PostgreSQL (to_tsvector GIN indexes): what staff type finds the messages and customers it
should, stays in sync as rows are written, changed and erased, and PostgreSQL answers from its index."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from bot.crm.data_rights import erase_contact
from bot.crm.db import create_db_engine, session_scope, upgrade_database
from bot.crm.models import Contact, Conversation, Identity, Message
from bot.support.search import highlight, search, search_terms


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'search.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_url")
    upgrade_database(url)
    engine = create_db_engine(url)
    yield engine
    engine.dispose()


def customer(
    session: Session, name: str | None, channel: str, user: str, handle: str | None = None
) -> Contact:
    contact = Contact(display_name=name)
    session.add(contact)
    session.flush()
    session.add(
        Identity(contact_id=contact.id, channel=channel, external_user_id=user, handle=handle, verified=True)
    )
    return contact


def says(session: Session, contact: Contact, channel: str, words: str, thread: str | None = None) -> Message:
    conversation = Conversation(contact_id=contact.id, channel=channel, thread_id=thread or f"t-{contact.id}")
    session.add(conversation)
    session.flush()
    message = Message(
        conversation_id=conversation.id,
        contact_id=contact.id,
        channel=channel,
        external_id=f"m-{contact.id}-{words[:10]}",
        direction="in",
        author_kind="customer",
        text=words,
        status="processed",
    )
    session.add(message)
    session.flush()
    return message


@pytest.fixture
def shop(engine):
    """Three customers on three channels, each with a conversation."""
    with session_scope(engine) as session:
        mia = customer(session, "Mia Jensen", "webchat", "web-1")
        tom = customer(session, None, "telegram", "4242", handle="tom_berg")
        lee = customer(session, "Lee Park", "email", "lee.park@example.com")
        jacket = says(session, mia, "webchat", "My jacket fell apart after two days, I want a refund!")
        late = says(session, tom, "telegram", "My order is late again: third time this month")
        zip_ = says(session, lee, "email", "The zip on my backpack broke. Refunds take how long?")
        return {
            "mia": mia.id,
            "tom": tom.id,
            "lee": lee.id,
            "jacket": jacket.conversation_id,
            "late": late.conversation_id,
            "zip": zip_.conversation_id,
        }


def conversations(engine, query: str) -> set[int]:
    return {hit.conversation.id for hit in search(engine, query).conversations}


def contacts(engine, query: str) -> set[int]:
    return {hit.contact_id for hit in search(engine, query).contacts}


def test_every_word_must_appear_each_as_a_word_or_its_start(engine, shop):
    assert conversations(engine, "jacket") == {shop["jacket"]}
    assert conversations(engine, "refund") == {shop["jacket"], shop["zip"]}  # "refund" starts "Refunds"
    assert conversations(engine, "REFUND jacket") == {shop["jacket"]}
    assert conversations(engine, "refun") == {shop["jacket"], shop["zip"]}
    assert conversations(engine, "jacket late") == set()
    assert conversations(engine, "efund") == set()  # the middle of a word is not a match


def test_customers_are_found_by_name_handle_and_address(engine, shop):
    assert contacts(engine, "mia") == {shop["mia"]}
    assert contacts(engine, "jensen mia") == {shop["mia"]}
    assert contacts(engine, "tom_berg") == {shop["tom"]}  # a handle, written as it is shown
    assert contacts(engine, "@tom") == {shop["tom"]}
    assert contacts(engine, "lee.park@example.com") == {shop["lee"]}
    hit = search(engine, "tom").contacts[0]
    assert hit.name == "@tom_berg" and hit.channels == ("telegram",) and hit.conversation_id == shop["late"]


def test_a_query_with_no_words_or_only_punctuation_finds_nothing_and_is_not_an_error(engine, shop):
    for query in ("", "   ", '"', "'*' OR 1=1 --", "AND OR NOT", ":*&|!()"):
        results = search(engine, query)
        assert results.conversations == [] or all(t.isalnum() for t in results.terms)
    assert search(engine, "-- ;").terms == ()


def test_the_index_follows_every_write_new_changed_and_erased(engine, shop):
    with session_scope(engine) as session:
        later = says(
            session, session.get(Contact, shop["tom"]), "telegram", "Still no parcel, where is it?", "t-x"
        )
        identity = session.get(Contact, shop["mia"])
        identity.display_name = "Mia Holm"  # she married
        session.add(identity)
        tom_identity = session.exec(select(Identity).where(Identity.contact_id == shop["tom"])).one()
        tom_identity.handle = "tberg"
        session.add(tom_identity)
    assert conversations(engine, "parcel") == {later.conversation_id}
    assert contacts(engine, "holm") == {shop["mia"]} and contacts(engine, "jensen") == set()
    assert contacts(engine, "tberg") == {shop["tom"]} and contacts(engine, "tom_berg") == set()

    with session_scope(engine) as session:
        erase_contact(session, shop["mia"], actor_kind="operator", via="test")
    assert conversations(engine, "jacket") == set()
    assert contacts(engine, "mia") == set() and contacts(engine, "holm") == set()


def test_conversation_hits_carry_the_matching_text_and_the_queue_row(engine, shop):
    hit = search(engine, "jacket").conversations[0]
    assert hit.text.startswith("My jacket fell apart") and hit.matches == 1
    assert hit.conversation.contact_name == "Mia Jensen" and hit.conversation.channel == "webchat"


def test_postgresql_answers_from_its_full_text_indexes(pg_url):
    from bot.support.search import _PG_CONTACT, _PG_MESSAGE

    upgrade_database(pg_url)
    engine = create_db_engine(pg_url)
    with engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        plans = [
            "\n".join(
                row[0]
                for row in connection.execute(
                    text(f"EXPLAIN SELECT id FROM {table} WHERE {vector} @@ to_tsquery('simple', 'refund:*')")
                )
            )
            for table, vector in (("message", _PG_MESSAGE), ("contact", _PG_CONTACT))
        ]
    engine.dispose()
    # the query's expression is the index's: a search never reads the whole table
    assert "ix_message_text_search" in plans[0]
    assert "ix_contact_search" in plans[1]


def test_search_terms_and_highlighting():
    assert search_terms("Refund, refund  JACKET!") == ("refund", "jacket")
    assert search_terms("a_b") == ("a", "b")
    parts = highlight("My jacket: refunded? Not the Jackets.", ["jacket", "refund"])
    assert [p for p, marked in parts if marked] == ["jacket", "refunded", "Jackets"]
    assert "".join(p for p, _ in parts) == "My jacket: refunded? Not the Jackets."
    cut = highlight("x " * 200 + "refund here " + "y " * 200, ["refund"], around=60)
    assert cut[0] == ("…", False) and cut[-1] == ("…", False) and ("refund", True) in cut
