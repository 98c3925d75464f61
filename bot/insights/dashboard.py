"""The insights dashboard's figures: volumes by channel, intent and sentiment per UTC day, response and
resolution times, complaint topics, the advocacy ladder and who moved on it.

Every query is plain SQLAlchemy that runs the same on SQLite and PostgreSQL. Days are grouped with `date()`,
which both engines have (SQLite on its ISO text timestamps, PostgreSQL as a function-style cast; timestamps
are stored in UTC, so days are UTC days).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, or_
from sqlmodel import select

from bot.crm.db import session_scope
from bot.crm.ladder import count_by_stage
from bot.crm.models import (
    Contact,
    Conversation,
    Direction,
    LadderChange,
    LadderStage,
    Message,
    utcnow,
)
from bot.insights.response_log import iso_text, seconds_between
from bot.insights.response_times import percentile

__all__ = ["complaint_topics", "dashboard_data"]

#: Complaint topics are computed over at most this many recent complaints (the dashboard stays fast).
TOPIC_SAMPLE = 5000
STOPWORDS = frozenset(
    re.split(
        r"\s+",
        """a about after again all am an and any are as at be been before being but by can cannot could did do
    does doing don't for from get got had has have having he her here hers him his how i i'm if in into is
    it it's its just me more most my no nor not now of off on once one only or other our out over own same
    she so some still such than that the their them then there these they this those through to too under
    until up very was we were what when where which while who why will with would you your yours also ever
    never really even am pm u im dont cant wont didnt isnt thats ive youre please thanks thank hi hello hey
    get still again want need know like yet two days day week weeks time""".strip(),
    )
)
_WORD = re.compile(r"[a-z][a-z']{2,}")


def _day_series(rows: Iterable[tuple[Any, str | None, int]], days: list[str]) -> dict[str, list[int]]:
    index = {day: i for i, day in enumerate(days)}
    series: dict[str, list[int]] = {}
    for day, key, count in rows:
        position = index.get(str(day)[:10])
        if position is None:
            continue
        series.setdefault(key or "unknown", [0] * len(days))[position] += count
    return dict(sorted(series.items()))


def _timing(pairs: list[tuple[float | None, float | None]]) -> dict[str, Any]:
    first = [f for f, _ in pairs if f is not None]
    resolution = [r for _, r in pairs if r is not None]
    return {
        "conversations": len(pairs),
        "first_response_median": percentile(first, 0.5),
        "first_response_p90": percentile(first, 0.9),
        "resolution_median": percentile(resolution, 0.5),
        "resolution_p90": percentile(resolution, 0.9),
    }


def _keywords(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def complaint_topics(texts_and_articles: list[tuple[str, str | None]], *, top: int = 10) -> list[dict]:
    """Group complaints by the KB article they matched; those that matched none by their most telling word.

    The keyword of an unmatched complaint is the word of it that is most frequent across all unmatched
    complaints (stopwords left out): complaints about the same thing share their commonest content word
    ("zip", "refund", "courier"), and the label says in one word what breaks. It is explainable and needs no
    model; embedding clusters would merge paraphrases better, at the cost of a label nobody can check.
    """
    counts: Counter[tuple[str, str]] = Counter()
    unmatched: list[list[str]] = []
    for text, article in texts_and_articles:
        if article:
            counts[("article", article)] += 1
        else:
            unmatched.append(_keywords(text))
    frequency = Counter(word for words in unmatched for word in set(words))
    for words in unmatched:
        if words:
            counts[("keyword", max(set(words), key=lambda w: (frequency[w], w)))] += 1
        else:
            counts[("keyword", "(no words)")] += 1
    return [{"kind": kind, "label": label, "count": n} for (kind, label), n in counts.most_common(top)]


def _direction(rank: dict[str, int], change: LadderChange) -> str:
    return "up" if rank.get(change.to_stage, 0) > rank.get(change.from_stage or "", 0) else "down"


def dashboard_data(engine: Engine, *, days: int = 30, now: datetime | None = None) -> dict[str, Any]:
    """Every figure of the insights dashboard for the last `days` UTC days, JSON-ready."""
    now = now or utcnow()
    first_day = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first_day, time.min, tzinfo=UTC)
    day_labels = [(first_day + timedelta(days=i)).isoformat() for i in range(days)]
    day = func.date(Message.created_at)
    inbound = and_(Message.direction == Direction.INBOUND.value, Message.created_at >= since)
    with session_scope(engine, read_only=True) as session:
        # One pass over the period's messages; the three breakdowns are summed up from its groups.
        groups = session.exec(
            select(day, Message.channel, Message.intent, Message.sentiment, func.count())
            .where(inbound)
            .group_by(day, Message.channel, Message.intent, Message.sentiment)
        ).all()
        by_channel = _day_series(((d, c, n) for d, c, _i, _s, n in groups), day_labels)
        by_intent = _day_series(((d, i, n) for d, _c, i, _s, n in groups), day_labels)
        by_sentiment = _day_series(((d, s, n) for d, _c, _i, s, n in groups), day_labels)

        conversations = session.exec(
            select(
                Conversation.channel,
                Conversation.opened_at,
                Conversation.first_response_at,
                Conversation.resolved_at,
                Conversation.escalated_at,
                Conversation.csat,
            ).where(Conversation.opened_at >= since)
        ).all()
        per_channel: dict[str, list] = defaultdict(list)
        per_handler: dict[str, list] = defaultdict(list)
        csat: dict[str, list[int]] = defaultdict(list)
        for channel, opened, first, resolved, escalated, score in conversations:
            pair = (seconds_between(opened, first), seconds_between(opened, resolved))
            per_channel[channel].append(pair)
            per_handler["staff" if escalated else "bot"].append(pair)
            if score is not None:
                csat[channel].append(score)

        complaints = session.exec(
            select(Message.text, Message.kb_article_id)
            .where(inbound, Message.intent == "complaint")
            .order_by(Message.id.desc())
            .limit(TOPIC_SAMPLE)
        ).all()
        top_articles = session.exec(
            select(Message.kb_article_id, func.count())
            .where(inbound, Message.action == "answer", Message.kb_article_id.is_not(None))
            .group_by(Message.kb_article_id)
            .order_by(func.count().desc())
            .limit(10)
        ).all()
        gaps = session.exec(
            select(Message.id, Message.created_at, Message.channel, Message.text)
            .where(
                inbound,
                Message.intent == "question",
                or_(Message.kb_article_id.is_(None), Message.action != "answer"),
            )
            .order_by(Message.id.desc())
            .limit(10)
        ).all()
        ladder = count_by_stage(session)
        moves = session.exec(
            select(LadderChange, Contact.display_name)
            .join(Contact, Contact.id == LadderChange.contact_id)
            .where(LadderChange.changed_at >= now - timedelta(days=7), LadderChange.from_stage.is_not(None))
            .order_by(LadderChange.id.desc())
            .limit(20)
        ).all()

    rank = {stage.value: i for i, stage in enumerate(LadderStage)}
    return {
        "days": day_labels,
        "volume_by_channel": by_channel,
        "volume_by_intent": by_intent,
        "sentiment": by_sentiment,
        "response_times": {
            "by_channel": {channel: _timing(pairs) for channel, pairs in sorted(per_channel.items())},
            "by_handler": {handler: _timing(pairs) for handler, pairs in sorted(per_handler.items())},
        },
        "handled": {handler: len(pairs) for handler, pairs in sorted(per_handler.items())},
        "csat": {
            channel: {"average": round(statistics.fmean(scores), 2), "responses": len(scores)}
            for channel, scores in sorted(csat.items())
        },
        "complaint_topics": complaint_topics(list(complaints)),
        "top_articles": [{"article": a, "answers": n} for a, n in top_articles],
        "content_gaps": [
            {"message_id": i, "at": iso_text(at), "channel": channel, "text": text}
            for i, at, channel, text in gaps
        ],
        "ladder": [{"stage": stage.value, "contacts": ladder.get(stage.value, 0)} for stage in LadderStage],
        "ladder_moves": [
            {
                "contact_id": change.contact_id,
                "contact": name or f"contact #{change.contact_id}",
                "from": change.from_stage,
                "to": change.to_stage,
                "direction": "up"
                if rank.get(change.to_stage, 0) > rank.get(change.from_stage, 0)
                else "down",
                "reason": change.reason,
                "at": iso_text(change.changed_at),
            }
            for change, name in moves
        ],
    }
