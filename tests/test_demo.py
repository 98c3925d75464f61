"""`socialbot demo`'s way in: a demo admin with a printed password, and a sample week of real pipeline
history spread over the last seven days (the queue, the moderation queue and the dashboard show it); only
an empty database is seeded."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlmodel import Session, func, select

from bot.cli.demo import DEMO_ADMIN, WEEK, prepare_demo
from bot.crm.ladder import _day
from bot.crm.models import Conversation, LadderChange, Message, ModerationItem, Staff, utcnow
from bot.insights.dashboard import dashboard_data
from bot.support.queue import QueueFilter, list_conversations
from tests.test_staff_console import add_staff, log_in

DAY = re.compile(r"\b\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b")


def test_the_demo_seeds_a_week_an_admin_can_log_in_to_and_never_seeds_twice(client, runtime):
    access = prepare_demo(runtime)
    assert access.seeded and access.email == DEMO_ADMIN and len(access.password) >= 12
    response = log_in(client, DEMO_ADMIN, access.password)
    assert response.status_code == 303 and response.headers["location"] == "/console"

    now = utcnow()
    with Session(runtime.engine) as session:
        times = session.exec(select(Message.created_at)).all()
        customers = session.exec(select(func.count(Message.id)).where(Message.direction == "in")).one()
        admin = session.exec(select(Staff).where(Staff.email == DEMO_ADMIN)).one()
        assert session.exec(select(ModerationItem)).all()  # the abuse aimed at a person waits for staff
    assert customers == sum(len(visit.says) for visit in WEEK)
    oldest, newest = min(times), max(times)
    assert now - oldest > timedelta(days=6) and now - newest < timedelta(hours=1)
    waiting = list_conversations(runtime.engine, staff_id=admin.id)
    assert waiting and all(row.waiting_seconds > 60 for row in waiting)  # moved back, not written now
    assert max(row.waiting_seconds for row in waiting) > 3600
    snoozed = list_conversations(runtime.engine, QueueFilter(state="snoozed"), staff_id=admin.id)
    assert snoozed and all(row.snoozed_until > now for row in snoozed)  # a time set ahead is not moved back
    assert "Web chat visitor" not in client.get("/console").text
    figures = dashboard_data(runtime.engine, days=8)
    per_day = [sum(counts) for counts in zip(*figures["volume_by_channel"].values(), strict=True)]
    assert len([count for count in per_day if count]) >= 5  # the week, not one day
    staff = figures["response_times"]["by_handler"]["staff"]
    assert 600 < staff["resolution_median"] < 3600  # resolved half an hour in, as the script has it

    again = prepare_demo(runtime)  # a restart: a new password, the same history
    assert not again.seeded and again.password != access.password
    with Session(runtime.engine) as session:
        assert (
            session.exec(select(func.count(Message.id)).where(Message.direction == "in")).one() == customers
        )
    assert log_in(client, DEMO_ADMIN, again.password).status_code == 303


def test_a_database_with_people_of_its_own_gets_no_demo_admin(runtime):
    add_staff(runtime, "owner@fernhill.example", role="admin")
    access = prepare_demo(runtime)
    assert access.password is None and not access.seeded
    with Session(runtime.engine) as session:
        assert session.exec(select(Staff).where(Staff.email == DEMO_ADMIN)).first() is None
        assert session.exec(select(func.count(Message.id))).one() == 0


def test_every_ladder_move_of_the_demo_says_the_date_of_the_message_it_rests_on(client, runtime):
    """The seeded week is played now and moved back: the ladder's sentences must name the moved dates (a
    message of five days ago is "on 29 Nov", not the day the demo started), and the customer panel shows
    them."""
    prepare_demo(runtime)
    with Session(runtime.engine) as session:
        moves = session.exec(select(LadderChange)).all()
        days = {
            contact_id: {
                _day(at)
                for at in session.exec(
                    select(Message.created_at).where(
                        Message.contact_id == contact_id, Message.direction == "in"
                    )
                ).all()
            }
            for contact_id in {move.contact_id for move in moves}
        }
    assert len(moves) >= len(WEEK)
    today = _day(utcnow())
    for move in moves:
        said = DAY.findall(move.reason)
        assert said, f"no date in the ladder's reason {move.reason!r}"
        assert set(said) <= days[move.contact_id], (move.reason, days[move.contact_id])
    assert any(today not in DAY.findall(move.reason) for move in moves), "every date is today's"

    admin = prepare_demo(runtime)
    log_in(client, DEMO_ADMIN, admin.password)
    newest = {move.contact_id: move for move in sorted(moves, key=lambda move: move.id)}
    old = next(move for move in newest.values() if today not in DAY.findall(move.reason))
    with Session(runtime.engine) as session:
        conversation_id = session.exec(
            select(Conversation.id).where(Conversation.contact_id == old.contact_id)
        ).first()
    page = client.get(f"/console/conversations/{conversation_id}").text
    why = page[page.index('class="facts__why"') :]
    assert why[why.index(">") + 1 : why.index("</span>")] == old.reason.replace('"', "&#34;")
