"""Complaint topics: complaints grouped by meaning, named, counted per week, and alerted on when one spikes.

`complaint_topics` clusters the period's complaints by the encoder's own vectors (kept from the pass that
understood them; bot/crm/vectors.py) and names each group by the knowledge-base article most of it
matched, else by its distinctive words (bot/insights/clustering.py), with a count per week.

`check_complaint_spikes` is the loop back to operations: the complaints of today and of the previous
`baseline_days` days are grouped together the same way; a topic **spikes** when it has at least
`min_complaints` complaints today and `ratio` times its daily average over the previous days. A spike is
written once (`ComplaintSpike`), with an alert to the Slack support channel (a `SupportPost` of kind "alert",
posted by bot/support/slack_posts.py) and a `complaints.spike` webhook event (bot/delivery/webhooks.py), in
one transaction; a later check that finds mostly the same complaints updates the counts and alerts no more.
Checks may run in every worker: on PostgreSQL they queue on an advisory lock, on SQLite on the write lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, text
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import ComplaintSpike, Direction, Message, SupportPost, utcnow
from bot.crm.vectors import vectors_of
from bot.insights.clustering import group_messages

__all__ = [
    "SPIKE_LOCK_KEY",
    "Topic",
    "check_complaint_spikes",
    "complaint_topics",
    "week_of",
]

#: Complaints grouped for the dashboard, newest first (clustering is quadratic in their number).
TOPIC_SAMPLE = 2000
#: A check that finds at least this share of an earlier spike's complaints of the day is the same spike.
SAME_SPIKE_OVERLAP = 0.5
#: PostgreSQL advisory lock taken by a spike check ("spikes" in ASCII).
SPIKE_LOCK_KEY = 0x737069_6B6573


@dataclass(frozen=True, slots=True)
class Topic:
    """A group of complaints that say much the same thing.

    Args:
        label: what the group is about: the title of the article most of it matched, else its words.
        words: its distinctive words (c-TF-IDF), most telling first.
        article_id: the knowledge-base article at least half of its complaints matched, if any.
        complaints: how many complaints it has.
        examples: up to three of its complaints, the most typical first.
        weekly: complaints per week, aligned with the weeks of the result.
    """

    label: str
    words: list[str]
    article_id: str | None
    complaints: int
    examples: list[str]
    weekly: list[int]
    message_ids: list[int]


def week_of(moment: datetime) -> date:
    """The Monday (UTC) of the week `moment` falls in."""
    day = moment.astimezone(UTC).date() if moment.tzinfo else moment.date()
    return day - timedelta(days=day.weekday())


def _label(article_id: str | None, words: list[str], titles: Mapping[str, str]) -> str:
    if article_id:
        return titles.get(article_id, article_id)
    return ", ".join(words) if words else "(no words)"


def _complaints(session: Session, since: datetime, until: datetime, limit: int) -> list[Any]:
    return session.exec(
        select(Message.id, Message.text, Message.kb_article_id, Message.created_at)
        .where(
            Message.direction == Direction.INBOUND.value,
            Message.intent == "complaint",
            Message.created_at >= since,
            Message.created_at < until,
        )
        .order_by(Message.id.desc())
        .limit(limit)
    ).all()


def _weeks(since: datetime, until: datetime) -> list[date]:
    weeks, week = [], week_of(since)
    while datetime.combine(week, time.min, tzinfo=UTC) < until:
        weeks.append(week)
        week += timedelta(days=7)
    return weeks


def complaint_topics(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    encoder: str,
    article_titles: Mapping[str, str],
    top: int = 10,
) -> dict[str, Any]:
    """The period's complaint topics, biggest first, with their counts per week (JSON-ready).

    Returns {"weeks": [Monday ISO dates], "topics": [Topic as dict], "other": complaints in smaller topics,
    "ungrouped": complaints without a vector by `encoder` (stored before vectors were kept)}.
    """
    rows = _complaints(session, since, until, TOPIC_SAMPLE)
    vectors = vectors_of(session, (row.id for row in rows), encoder=encoder)
    grouped = [row for row in rows if row.id in vectors]
    weeks = _weeks(since, until)
    index = {week: i for i, week in enumerate(weeks)}
    result: dict[str, Any] = {
        "weeks": [week.isoformat() for week in weeks],
        "topics": [],
        "other": 0,
        "ungrouped": len(rows) - len(grouped),
    }
    groups = group_messages(
        [row.text for row in grouped],
        np.stack([vectors[row.id] for row in grouped]) if grouped else np.zeros((0, 1)),
        [row.kb_article_id for row in grouped],
    )
    for rank, group in enumerate(groups):
        if rank >= top:
            result["other"] += len(group.positions)
            continue
        weekly = [0] * len(weeks)
        for i in group.positions:
            position = index.get(week_of(grouped[i].created_at))
            if position is not None:
                weekly[position] += 1
        topic = Topic(
            label=_label(group.article_id, group.words, article_titles),
            words=group.words,
            article_id=group.article_id,
            complaints=len(group.positions),
            examples=[grouped[i].text for i in group.positions[:3]],
            weekly=weekly,
            message_ids=sorted(grouped[i].id for i in group.positions),
        )
        result["topics"].append(asdict(topic))
    return result


@dataclass(frozen=True, slots=True)
class _Candidate:
    message_ids: list[int]
    texts: list[str]
    article_id: str | None
    words: list[str]
    today: int
    daily_average: float


def _spike_text(label: str, candidate: _Candidate, baseline_days: int) -> str:
    weeks = f"{baseline_days // 7}-week" if baseline_days % 7 == 0 else f"{baseline_days}-day"
    if candidate.daily_average == 0:
        head = (
            f"Complaint spike: {label}: {candidate.today} complaints today, none like them in the previous "
            f"{weeks} period."
        )
    else:
        multiple = candidate.today / candidate.daily_average
        head = (
            f"Complaint spike: {label}: {candidate.today} complaints today, {multiple:.0f}x their {weeks} "
            f"average ({candidate.daily_average:.1f} a day)."
        )
    examples = "\n".join(f'- "{example[:200]}"' for example in candidate.texts[:2])
    return f"{head}\n{examples}" if examples else head


def _candidates(
    session: Session,
    *,
    now: datetime,
    encoder: str,
    ratio: float,
    min_complaints: int,
    baseline_days: int,
) -> list[_Candidate]:
    """The topics of today's and the baseline's complaints (grouped together) that spike today."""
    today_start = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    today = _complaints(session, today_start, now + timedelta(seconds=1), TOPIC_SAMPLE)
    if len(today) < min_complaints:
        return []
    since = today_start - timedelta(days=baseline_days)
    before = _complaints(session, since, today_start, TOPIC_SAMPLE)
    vectors = vectors_of(session, [row.id for row in today + before], encoder=encoder)
    today = [row for row in today if row.id in vectors]
    if len(today) < min_complaints:
        return []
    # A busy baseline is sampled (its newest complaints); each sampled one then stands for several.
    before_total = session.exec(
        select(func.count()).where(
            Message.direction == Direction.INBOUND.value,
            Message.intent == "complaint",
            Message.created_at >= since,
            Message.created_at < today_start,
        )
    ).one()
    before = [row for row in before if row.id in vectors]
    weight = before_total / len(before) if before else 0.0
    rows = today + before
    groups = group_messages(
        [row.text for row in rows],
        np.stack([vectors[row.id] for row in rows]),
        [row.kb_article_id for row in rows],
    )
    found = []
    for group in groups:
        todays = [i for i in group.positions if i < len(today)]
        average = (len(group.positions) - len(todays)) * weight / baseline_days
        if len(todays) < min_complaints or len(todays) < ratio * average:
            continue
        found.append(
            _Candidate(
                message_ids=[today[i].id for i in todays],
                texts=[today[i].text for i in todays],
                article_id=group.article_id,
                words=group.words,
                today=len(todays),
                daily_average=round(average, 2),
            )
        )
    return found


def _overlaps(ids: set[int], earlier: list[int]) -> bool:
    """Whether `ids` hold at least SAME_SPIKE_OVERLAP of an earlier spike's complaints."""
    return len(ids & set(earlier)) >= SAME_SPIKE_OVERLAP * len(earlier)


def check_complaint_spikes(
    engine: Engine,
    *,
    encoder: str,
    article_titles: Mapping[str, str],
    support_channel: str,
    ratio: float,
    min_complaints: int,
    baseline_days: int = 28,
    now: datetime | None = None,
) -> list[ComplaintSpike]:
    """Find today's complaint spikes; record and alert each new one once. Returns the new spikes.

    Args:
        encoder: the name of the encoder whose vectors are compared.
        article_titles: knowledge-base article id -> title (a topic is named after its article).
        support_channel: the Slack channel id to alert ("" for none; the webhook event goes out anyway).
        ratio: how many times its daily average a topic must reach today.
        min_complaints: the fewest complaints today that can make a spike.
        baseline_days: the days before today the average is taken over.
    """
    now = now or utcnow()
    day = now.astimezone(UTC).date().isoformat()
    created: list[ComplaintSpike] = []
    with session_scope(engine) as session:
        if engine.dialect.name == "postgresql":
            session.exec(text("SELECT pg_advisory_xact_lock(:key)"), params={"key": SPIKE_LOCK_KEY})
        candidates = _candidates(
            session,
            now=now,
            encoder=encoder,
            ratio=ratio,
            min_complaints=min_complaints,
            baseline_days=baseline_days,
        )
        earlier = session.exec(select(ComplaintSpike).where(ComplaintSpike.day == day)).all()
        for candidate in candidates:
            ids = set(candidate.message_ids)
            same = next(
                (
                    s
                    for s in earlier
                    if len(ids & set(s.message_ids)) >= SAME_SPIKE_OVERLAP * len(s.message_ids)
                ),
                None,
            )
            if same is not None:
                same.message_ids = sorted(ids | set(same.message_ids))
                same.today, same.updated_at = max(same.today, candidate.today), now
                session.add(same)
                continue
            label = _label(candidate.article_id, candidate.words, article_titles)
            spike = ComplaintSpike(
                day=day,
                label=label,
                words=candidate.words,
                article_id=candidate.article_id,
                today=candidate.today,
                daily_average=candidate.daily_average,
                message_ids=sorted(ids),
                text=_spike_text(label, candidate, baseline_days),
                created_at=now,
                updated_at=now,
            )
            session.add(spike)
            if support_channel:
                session.add(SupportPost(kind="alert", text=spike.text, support_channel=support_channel))
            session.flush()
            earlier.append(spike)
            created.append(spike)
    return created
