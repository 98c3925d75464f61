"""Full-text search across conversations (every message's text) and contacts (names, e-mail addresses and
channel handles), for the console's search box.

One function, `search`, with one implementation per database: SQLite's FTS5 tables and PostgreSQL's
`to_tsvector` GIN indexes, both made by migration 0010 and kept in sync by the database on every write
(triggers on SQLite; on PostgreSQL the index is over the column itself). Words are runs of letters and digits
on both; every word of the query must appear, each as a word or the start of one ("refun" finds "refund").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlmodel import Session, select

from bot.crm.contacts import contact_names
from bot.crm.db import session_scope
from bot.crm.models import Conversation, Identity, Message
from bot.support.queue import ConversationSummary, summarise

__all__ = ["ContactHit", "ConversationHit", "SearchResults", "highlight", "search", "search_terms"]

MAX_TERMS = 8
# A message's or a contact's words on PostgreSQL: the very expressions migration 0010 indexed (the planner
# uses an index only for the same expression).
_PG_MESSAGE = "to_tsvector('simple', regexp_replace(text, '[^[:alnum:]]+', ' ', 'g'))"
_PG_CONTACT = (
    "to_tsvector('simple', regexp_replace(coalesce(display_name, '') || ' ' || coalesce(email, ''), "
    "'[^[:alnum:]]+', ' ', 'g'))"
)
_PG_IDENTITY = (
    "to_tsvector('simple', regexp_replace(coalesce(handle, '') || ' ' || coalesce(display_name, '') || "
    "' ' || CASE WHEN channel = 'email' THEN external_user_id ELSE '' END, '[^[:alnum:]]+', ' ', 'g'))"
)
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class ConversationHit:
    """A conversation with messages matching the search: its queue row, the newest matching message and
    how many matched."""

    conversation: ConversationSummary
    message_id: int
    text: str
    matches: int


@dataclass(frozen=True, slots=True)
class ContactHit:
    contact_id: int
    name: str
    # Their most recent conversation (where the console opens them), None if they have none.
    conversation_id: int | None
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SearchResults:
    terms: tuple[str, ...]
    conversations: list[ConversationHit]
    contacts: list[ContactHit]


def search_terms(query: str) -> tuple[str, ...]:
    """The words of a search query, lower-cased (at most `MAX_TERMS`)."""
    return tuple(dict.fromkeys(word.lower() for word in _WORD.findall(query)))[:MAX_TERMS]


def _sqlite_ids(session: Session, terms: tuple[str, ...], limit: int) -> tuple[list[int], list[int]]:
    match = " ".join(f'"{term}"*' for term in terms)
    messages = session.exec(
        text("SELECT rowid FROM message_fts WHERE message_fts MATCH :match ORDER BY rowid DESC LIMIT :n"),
        params={"match": match, "n": limit},
    ).all()
    contacts = session.exec(
        text("SELECT rowid FROM contact_fts WHERE contact_fts MATCH :match ORDER BY rowid DESC LIMIT :n"),
        params={"match": match, "n": limit},
    ).all()
    return [row[0] for row in messages], [row[0] for row in contacts]


def _postgresql_ids(session: Session, terms: tuple[str, ...], limit: int) -> tuple[list[int], list[int]]:
    match = " & ".join(f"{term}:*" for term in terms)
    messages = session.exec(
        text(
            f"SELECT id FROM message WHERE {_PG_MESSAGE} @@ to_tsquery('simple', :match) "
            "ORDER BY id DESC LIMIT :n"
        ),
        params={"match": match, "n": limit},
    ).all()
    contacts = session.exec(
        text(
            f"SELECT id FROM contact WHERE {_PG_CONTACT} @@ to_tsquery('simple', :match) "
            f"UNION SELECT contact_id FROM identity WHERE {_PG_IDENTITY} @@ to_tsquery('simple', :match) "
            "ORDER BY 1 DESC LIMIT :n"
        ),
        params={"match": match, "n": limit},
    ).all()
    return [row[0] for row in messages], [row[0] for row in contacts]


def search(engine: Engine, query: str, *, staff_id: int | None = None, limit: int = 30) -> SearchResults:
    """Conversations whose messages contain every word of `query` (newest first, one row per conversation)
    and contacts found by name, e-mail or handle; nothing for a query without words.

    Args:
        staff_id: the viewer (unread counts on the conversation rows).
    """
    terms = search_terms(query)
    if not terms:
        return SearchResults((), [], [])
    find = _postgresql_ids if engine.dialect.name == "postgresql" else _sqlite_ids
    with session_scope(engine, read_only=True) as session:
        message_ids, contact_ids = find(session, terms, limit * 10)
        hits: dict[int, list[Message]] = {}
        if message_ids:
            for message in session.exec(
                select(Message).where(Message.id.in_(message_ids)).order_by(Message.id.desc())
            ).all():
                if len(hits) < limit or message.conversation_id in hits:
                    hits.setdefault(message.conversation_id, []).append(message)
        conversations = session.exec(select(Conversation).where(Conversation.id.in_(list(hits)))).all()
        by_id = {row.id: row for row in summarise(session, conversations, staff_id=staff_id)}
        found = [
            ConversationHit(by_id[cid], matched[0].id, matched[0].text, len(matched))
            for cid, matched in hits.items()
        ]
        contacts = _contact_hits(session, contact_ids[:limit])
    return SearchResults(terms, found, contacts)


def _contact_hits(session: Session, contact_ids: list[int]) -> list[ContactHit]:
    if not contact_ids:
        return []
    names = contact_names(session, contact_ids)
    latest: dict[int, int] = {}
    for conversation in session.exec(
        select(Conversation)
        .where(Conversation.contact_id.in_(contact_ids))
        .order_by(Conversation.last_message_at)
    ).all():
        latest[conversation.contact_id] = conversation.id
    channels: dict[int, set[str]] = {}
    for contact_id, channel in session.exec(
        select(Identity.contact_id, Identity.channel).where(Identity.contact_id.in_(contact_ids))
    ).all():
        channels.setdefault(contact_id, set()).add(channel)
    return [
        ContactHit(cid, names[cid], latest.get(cid), tuple(sorted(channels.get(cid, ()))))
        for cid in contact_ids
    ]


def highlight(value: str, words: Iterable[str], *, around: int | None = None) -> list[tuple[str, bool]]:
    """`value` cut into (part, is_match) pieces where a word starts with one of `words` (case-insensitive),
    for showing matches marked; `around`: keep only about that many characters around the first match."""
    prefixes = tuple(word.lower() for word in words if word)
    spans = (
        [(m.start(), m.end()) for m in _WORD.finditer(value) if m.group().lower().startswith(prefixes)]
        if prefixes
        else []
    )
    start, end = 0, len(value)
    if around is not None and len(value) > around:
        first = spans[0][0] if spans else 0
        start = max(0, first - around // 3)
        end = min(len(value), start + around)
    pieces: list[tuple[str, bool]] = [("…", False)] if start > 0 else []
    cursor = start
    for span_start, span_end in spans:
        if span_end <= start or span_start >= end:
            continue
        if span_start > cursor:
            pieces.append((value[cursor:span_start], False))
        pieces.append((value[max(span_start, cursor) : span_end], True))
        cursor = span_end
    if cursor < end:
        pieces.append((value[cursor:end], False))
    if end < len(value):
        pieces.append(("…", False))
    return pieces
