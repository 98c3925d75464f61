"""The insights dashboard's figures: volumes by channel, intent and sentiment per UTC day, response times that
mean what they say, complaint topics, the advocacy ladder and who moved on it.

Every figure comes from the one function that defines it: response times from
bot/insights/response_times.py (bot response, first reply by a person, wait for a person per handover,
resolution, SLA breaches; by channel and by agent), complaint topics from bot/insights/topics.py (the
encoder's vectors clustered, named by their matched article or distinctive words, counted per week), the
knowledge gaps from bot/insights/knowledge_gaps.py (unanswered questions, grouped the same way). The
README's "Dashboard figures" table defines each one.

Grouping is the costly part (quadratic in the messages grouped): its result is kept for `GROUPS_TTL`
seconds per period and encoder, and only while no message or vector was added since (the newest ids are
part of the key), so a marketer reloading the page does not cluster again and a new message is seen at once.

Every query is plain SQLAlchemy that runs the same on SQLite and PostgreSQL. Days are grouped with `date()`,
which both engines have (SQLite on its ISO text timestamps, PostgreSQL as a function-style cast; timestamps
are stored in UTC, so days are UTC days).
"""

from __future__ import annotations

import statistics
import threading
import time as clock
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.ladder import count_by_stage
from bot.crm.models import (
    Contact,
    Conversation,
    Direction,
    LadderChange,
    LadderStage,
    Message,
    MessageVector,
    utcnow,
)
from bot.insights.knowledge_gaps import knowledge_gaps
from bot.insights.response_log import iso_text
from bot.insights.response_times import response_times
from bot.insights.topics import complaint_topics
from bot.runtime.settings import SupportSettings

__all__ = ["GROUPS_TTL", "dashboard_data", "newest_encoder"]

#: Seconds a period's complaint topics and knowledge gaps are reused while nothing new arrived.
GROUPS_TTL = 60.0
#: Knowledge gaps shown, and the questions of each a draft article is made from (by id: a link carries them).
GAPS_SHOWN = 10
DRAFT_IDS = 40
_GROUPS_KEPT = 32
_groups: OrderedDict[tuple, tuple[float, dict[str, Any]]] = OrderedDict()
_groups_lock = threading.Lock()


def _day_series(rows: Iterable[tuple[Any, str | None, int]], days: list[str]) -> dict[str, list[int]]:
    index = {day: i for i, day in enumerate(days)}
    series: dict[str, list[int]] = {}
    for day, key, count in rows:
        position = index.get(str(day)[:10])
        if position is None:
            continue
        series.setdefault(key or "unknown", [0] * len(days))[position] += count
    return dict(sorted(series.items()))


def newest_encoder(session: Session) -> str | None:
    """The name of the encoder that wrote the newest stored vector (None before any): the one a caller without
    the loaded model (the digest from the command line) groups complaints by."""
    return session.exec(
        select(MessageVector.encoder).order_by(MessageVector.message_id.desc()).limit(1)
    ).first()


def _grouped(
    session: Session,
    engine: Engine,
    *,
    since: datetime,
    until: datetime,
    encoder: str,
    article_titles: Mapping[str, str],
) -> dict[str, Any]:
    """The period's complaint topics and knowledge gaps, clustered again only when something was added or
    `GROUPS_TTL` passed (see the module doc)."""
    key = (
        id(engine),
        str(engine.url),
        since,
        until,
        encoder,
        tuple(sorted(article_titles.items())),
        session.exec(select(func.max(Message.id))).one(),
        session.exec(select(func.max(MessageVector.message_id))).one(),
    )
    now = clock.monotonic()
    with _groups_lock:
        kept = _groups.get(key)
        if kept is not None and now - kept[0] < GROUPS_TTL:
            _groups.move_to_end(key)
            return kept[1]
    gaps = knowledge_gaps(session, since=since, until=until, encoder=encoder, top=GAPS_SHOWN)
    grouped = {
        "complaint_topics": complaint_topics(
            session, since=since, until=until, encoder=encoder, article_titles=article_titles
        ),
        "knowledge_gaps": [
            {
                "label": gap.label,
                "questions": gap.questions,
                "examples": gap.examples,
                "message_ids": gap.message_ids[-DRAFT_IDS:],
                "words": gap.words,
                "last_asked": iso_text(gap.last_asked),
            }
            for gap in gaps
        ],
    }
    with _groups_lock:
        _groups[key] = (now, grouped)
        while len(_groups) > _GROUPS_KEPT:
            _groups.popitem(last=False)
    return grouped


def _direction(rank: dict[str, int], change: LadderChange) -> str:
    return "up" if rank.get(change.to_stage, 0) > rank.get(change.from_stage or "", 0) else "down"


def dashboard_data(
    engine: Engine,
    *,
    days: int = 30,
    now: datetime | None = None,
    first_response_target: timedelta | None = None,
    encoder: str | None = None,
    article_titles: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Every figure of the insights dashboard for the last `days` UTC days (up to `now`), JSON-ready.

    Args:
        first_response_target: `[support] first_response_target`: a wait for a person longer than this is an
            SLA breach (default: the setting's default).
        encoder: the name of the encoder whose stored vectors group complaints into topics (default: the one
            that wrote the newest vector).
        article_titles: knowledge-base article id -> title (a topic is named after its article; by its id
            when the title is not given).
    """
    now = now or utcnow()
    target = first_response_target or SupportSettings().first_response_target
    first_day = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first_day, time.min, tzinfo=UTC)
    until = since + timedelta(days=days)
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

        times = response_times(session, since=since, until=until, target=target, now=now)
        conversations = session.exec(
            select(Conversation.channel, Conversation.escalated_at, Conversation.csat).where(
                Conversation.opened_at >= since, Conversation.opened_at < until
            )
        ).all()
        handled: dict[str, int] = defaultdict(int)
        csat: dict[str, list[int]] = defaultdict(list)
        for channel, escalated, score in conversations:
            handled["staff" if escalated else "bot"] += 1
            if score is not None:
                csat[channel].append(score)

        # Before any vector is stored (encoder ""), every complaint of the period counts as ungrouped.
        grouped = _grouped(
            session,
            engine,
            since=since,
            until=until,
            encoder=encoder or newest_encoder(session) or "",
            article_titles=article_titles or {},
        )
        top_articles = session.exec(
            select(Message.kb_article_id, func.count())
            .where(inbound, Message.action == "answer", Message.kb_article_id.is_not(None))
            .group_by(Message.kb_article_id)
            .order_by(func.count().desc())
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
        "response_times": times,
        "handled": dict(sorted(handled.items())),
        "csat": {
            channel: {"average": round(statistics.fmean(scores), 2), "responses": len(scores)}
            for channel, scores in sorted(csat.items())
        },
        "complaint_topics": grouped["complaint_topics"],
        "top_articles": [{"article": a, "answers": n} for a, n in top_articles],
        "knowledge_gaps": grouped["knowledge_gaps"],
        "ladder": [{"stage": stage.value, "contacts": ladder.get(stage.value, 0)} for stage in LadderStage],
        "ladder_moves": [
            {
                "contact_id": change.contact_id,
                "contact": name or f"contact #{change.contact_id}",
                "from": change.from_stage,
                "to": change.to_stage,
                "direction": _direction(rank, change),
                "reason": change.reason,
                "at": iso_text(change.changed_at),
            }
            for change, name in moves
        ],
    }
