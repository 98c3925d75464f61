"""`socialbot demo`'s way in: a demo admin whose password is printed at every start, and a week of sample
history so the queue, the moderation queue and the dashboard have something to show.

The history is real: every customer message goes through the pipeline (the shipped models read it, the
policy decides, the bot answers or hands over) and staff work the hand-overs through the same functions the
console calls. Each step runs now and is then moved back to its place in the week: every time stamped
during the step (a message, its reply's delivery, an escalation, an audit row) is shifted by the same amount,
so the figures built from them (response times, daily volumes) are as the real path makes them. Times set
ahead (a snooze's end, a follow-up's due time) stay where they are, counted from the real now.

Only an empty database is seeded (no staff, no messages): a demo never writes into a real one.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, DateTime, func, or_
from sqlmodel import SQLModel, select

from bot.crm.db import session_scope
from bot.crm.ladder import decide_stage, load_history
from bot.crm.models import ConversationState, LadderChange, Message, Staff, StaffRole, utcnow
from bot.delivery.outbox import deliver_due
from bot.pipeline.inbound import handle_inbound
from bot.runtime.container import Runtime
from bot.support.canned import save_canned
from bot.support.conversations import add_tag, apply_action, reply_as_staff, set_priority
from bot.support.snooze import snooze
from bot.support.staff import create_staff, set_password
from channels.base import Author, InboundMessage

__all__ = ["DEMO_ADMIN", "DemoAccess", "prepare_demo"]

DEMO_ADMIN = "demo@socialbot.example"
TEAM = (("ana@socialbot.example", "Ana Lopez"), ("ben@socialbot.example", "Ben Okafor"))


CANNED = (
    (
        "refund",
        "Refund on its way",
        "Hi {first_name}, your refund is on its way: 3 to 5 working days to reach your account. {agent_name}",
    ),
    (
        "tracking",
        "Tracking link",
        "Hi {first_name}, the tracking link is in your inbox. {agent_name}, {brand}",
    ),
    (
        "sorry",
        "Apology",
        "I'm sorry, {first_name}, that is not the experience we want for you. Let me put it right.",
    ),
)


@dataclass(frozen=True, slots=True)
class Visit:
    """One customer's conversation in the sample week.

    Args:
        hours_ago: when the customer first wrote.
        says: what they write (a few minutes apart).
        agent: who answers if the bot hands over (an index into TEAM), None: nobody yet.
        answer: the agent's reply.
        then: "resolve", "snooze" (for a few hours) or "" (it waits in the queue).
        tag, priority: what the agent sets on it.
    """

    name: str
    hours_ago: float
    says: tuple[str, ...]
    agent: int | None = None
    answer: str = ""
    then: str = ""
    tag: str = ""
    priority: int = 0


WEEK = (
    Visit("Olivia Bennett", 160, ("How long does delivery take?",)),
    Visit(
        "Tom Walsh",
        150,
        ("My parcel never arrived and nobody answers my emails!!",),
        agent=0,
        answer="Sorry Tom, that should not happen. I've sent a replacement by express today.",
        then="resolve",
    ),
    Visit("Priya Shah", 140, ("love my new tent, it survived a storm on Snowdon!",)),
    Visit("Lucas Martin", 120, ("you should sell kids' hiking boots",)),
    Visit("Hannah Cole", 100, ("What's your returns policy?",)),
    Visit(
        "Jake Turner",
        96,
        ("I want to talk to a human about my refund",),
        agent=1,
        answer="Hi Jake, your refund went out this morning; it takes 3 to 5 working days to arrive.",
        then="resolve",
    ),
    Visit(
        "Emma Davies",
        75,
        ("I'm fucking sick of waiting, my order is two weeks late and nobody tells me anything",),
        agent=0,
        answer="Emma, I'm sorry. Your order left our warehouse today; the tracking link is in your inbox.",
        then="resolve",
    ),
    Visit("Sam Patel", 70, ("Do the Ridge boots come in half sizes?",)),
    Visit("Chloe Evans", 52, ("you should do a repair service for old jackets",)),
    Visit("Mark Stone", 50, ("You are a stupid idiot and I hope you die",)),
    Visit("Ruby Ward", 40, ("a repair service for worn jackets would be great",)),
    Visit(
        "Noah Price",
        30,
        ("The zip on my jacket broke after one week, I want a refund",),
        tag="faulty-product",
        priority=1,
    ),
    Visit(
        "Daniel Reed",
        2.5,
        ("I was charged twice for my order, please fix this now!", "hello?? anyone there?"),
        agent=1,
        tag="billing",
    ),
    Visit("Ella Brooks", 5, ("I want to talk to a human about my refund",), agent=0, then="snooze"),
    Visit(
        "Mia Jensen",
        1.5,
        ("My jacket fell apart after two days and nobody answers my emails!!",),
        priority=2,
    ),
    Visit("Leo Fischer", 0.7, ("Can I speak to someone about changing my delivery address?",)),
    Visit("Oscar Hughes", 0.4, ("love the new trail shoes, thanks!",)),
)


@dataclass(frozen=True, slots=True)
class DemoAccess:
    """How to get into the demo's console: None password when the database was not the demo's."""

    email: str
    password: str | None
    seeded: bool


def prepare_demo(runtime: Runtime) -> DemoAccess:
    """Give the demo admin a new password and, in an empty database, add the team and the sample week."""
    password = secrets.token_urlsafe(12)
    with session_scope(runtime.engine) as session:
        admin = session.exec(select(Staff).where(Staff.email == DEMO_ADMIN)).first()
        staff_count = session.exec(select(func.count(Staff.id))).one()
        messages = session.exec(select(func.count(Message.id))).one()
        if admin is not None:
            set_password(session, admin, password)
            return DemoAccess(DEMO_ADMIN, password, seeded=False)
        if staff_count or messages:
            return DemoAccess(DEMO_ADMIN, None, seeded=False)
        admin = create_staff(session, DEMO_ADMIN, role=StaffRole.ADMIN, password=password, name="Demo Admin")
        for shortcut, title, text in CANNED:
            save_canned(session, shortcut=shortcut, title=title, text=text, staff_id=admin.id)
        team = [
            create_staff(
                session, email, role=StaffRole.AGENT, password=secrets.token_urlsafe(12), name=name
            ).id
            for email, name in TEAM
        ]
    now = utcnow()
    for visit in WEEK:
        _play(runtime, visit, team, start=now - timedelta(hours=visit.hours_ago))
    return DemoAccess(DEMO_ADMIN, password, seeded=True)


def _play(runtime: Runtime, visit: Visit, team: list[int], *, start: datetime) -> None:
    """Run `visit` now, each step moved back to `start` plus a few minutes per step."""
    thread = f"demo-{uuid.uuid4().hex}"
    conversation_id = None
    for step, text in enumerate(visit.says):
        with _moved_to(runtime, start + timedelta(minutes=7 * step)):
            result = handle_inbound(
                runtime,
                InboundMessage(
                    channel="webchat",
                    external_id=f"{thread}:{step}",
                    thread_id=thread,
                    author=Author(external_id=thread, display_name=visit.name),
                    text=text,
                ),
            )
            conversation_id = result.conversation_id
    if conversation_id is None or result.state != ConversationState.HUMAN:
        return
    with _moved_to(runtime, start + timedelta(minutes=7 * len(visit.says) + 4)):
        if visit.agent is not None:
            agent = team[visit.agent]
            apply_action(runtime.engine, conversation_id, "take", staff_id=agent)
            if visit.tag:
                add_tag(runtime.engine, conversation_id, visit.tag, staff_id=agent)
            if visit.answer:
                reply_as_staff(
                    runtime.engine,
                    conversation_id,
                    staff_id=agent,
                    text=visit.answer,
                    idempotency_key=f"demo:{thread}",
                    force=True,
                )
            if visit.then == "snooze":
                snooze(runtime.engine, conversation_id, until=utcnow() + timedelta(hours=8), staff_id=agent)
        elif visit.tag:
            add_tag(runtime.engine, conversation_id, visit.tag, staff_id=team[0])
        if visit.priority:
            set_priority(runtime.engine, conversation_id, visit.priority, staff_id=team[0])
    if visit.then == "resolve":
        with _moved_to(runtime, start + timedelta(minutes=7 * len(visit.says) + 25)):
            apply_action(
                runtime.engine,
                conversation_id,
                "resolve",
                staff_id=team[visit.agent or 0],
                followup_settings=runtime.settings.followups,
            )


class _moved_to:
    """Within the block, rows are written now; on leaving it, every time written in the block is moved so
    that the block's start falls at `when`."""

    def __init__(self, runtime: Runtime, when: datetime) -> None:
        self.runtime, self.when = runtime, when

    def __enter__(self) -> None:
        self.started = utcnow()

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None:
            return
        deliver_due(self.runtime.engine, self.runtime.channels)  # the web chat's replies are sent at once
        _shift_times_between(self.runtime, self.started, utcnow(), self.when - self.started)
        _redate_ladder_moves(self.runtime, self.when)


def _is_time(column: Column) -> bool:
    kind = column.type
    return isinstance(kind, DateTime) or isinstance(getattr(kind, "impl_instance", None), DateTime)


def _shift_times_between(runtime: Runtime, since: datetime, until: datetime, delta: timedelta) -> None:
    """Add `delta` to every time column value from `since` to `until`, in every table."""
    with session_scope(runtime.engine) as session:
        for table in SQLModel.metadata.sorted_tables:
            times = [c for c in table.columns if _is_time(c)]
            keys = list(table.primary_key.columns)
            if not times or not keys:
                continue
            stamped = or_(*(c.between(since, until) for c in times))
            for row in session.execute(table.select().where(stamped)).mappings().all():
                written = [c.name for c in times if row[c.name] is not None and since <= row[c.name] <= until]
                moved = {name: row[name] + delta for name in written}
                session.execute(table.update().where(*(k == row[k.name] for k in keys)).values(**moved))


def _redate_ladder_moves(runtime: Runtime, since: datetime) -> None:
    """Word the ladder moves made since `since` (moved back) again from the moved history: a move's sentence
    names the day of the message it rests on, which was today while the step ran."""
    with session_scope(runtime.engine) as session:
        for move in session.exec(select(LadderChange).where(LadderChange.changed_at >= since)).all():
            at = move.changed_at if move.changed_at.tzinfo else move.changed_at.replace(tzinfo=UTC)
            history = [said for said in load_history(session, move.contact_id) if said.at <= at]
            placement = decide_stage(history, now=at, brand_handles=runtime.settings.brand.handles)
            if placement.stage.value == move.to_stage:
                move.reason = placement.reason
                session.add(move)
