"""Response times on a scripted history with answers worked out by hand: the bot's replies, the first reply
by a person, the wait for a person after each handover, resolution, and SLA breaches, by channel and agent;
and the same figures from conversations that went through the real pipeline and staff API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from bot.insights.response_times import percentile, response_times
from bot.support.staff import create_staff, issue_api_token
from tests.history import ScriptedHistory

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TARGET = timedelta(minutes=30)


def scripted(engine) -> ScriptedHistory:
    """Eight conversations (see each comment for the figures they contribute)."""
    h = ScriptedHistory(engine, START)
    ana, ben = h.staff("Ana"), h.staff("Ben")

    # c1 webchat: a question the bot answers in 3 s; never handed over.
    c1 = h.conversation(h.customer("Cleo"), "webchat", 0)
    h.replies(c1, 0, to=h.says(c1, "how much is delivery?", 0), sent_minutes=0.05)

    # c2 webchat: complaint, apology in 6 s, handed over at 10.1, Ana answers at 30 (waited 1194 s; first
    # person 1200 s after opening), Ana resolves at 70 (resolution 3600 s).
    c2 = h.conversation(h.customer("Dan"), "webchat", 10)
    h.replies(c2, 10, to=h.says(c2, "my parcel is lost", 10), sent_minutes=10.1)
    h.escalates(c2, 10.1)
    h.replies(c2, 30, staff_id=ana)
    h.resolves(c2, 70, staff_id=ana)

    # c3 telegram: answered in 30 s, then asks for a person (reply in 0 s), Ben answers 60 min later: late.
    c3 = h.conversation(h.customer("Eve"), "telegram", 20)
    h.replies(c3, 20, to=h.says(c3, "do you ship to Norway?", 20), sent_minutes=20.5)
    h.replies(c3, 25, to=h.says(c3, "let me talk to a person", 25))
    h.escalates(c3, 25)
    h.replies(c3, 85, staff_id=ben)

    # c4 telegram: handed over at 40, the apology still unsent, assigned to Ana, unanswered at 120: breach.
    c4 = h.conversation(h.customer("Fay"), "telegram", 40)
    h.replies(c4, 40, to=h.says(c4, "wrong size again", 40), sent_minutes=-1)
    h.escalates(c4, 40)
    h.assigns(c4, ana)

    # c5 webchat: handed over at 50, Ben hands back at 55 without replying (closed unanswered); the customer
    # writes again, the bot answers in 12 s and hands over at 60; Ben answers at 65 (waited 300 s).
    c5 = h.conversation(h.customer("Gus"), "webchat", 50)
    h.replies(c5, 50, to=h.says(c5, "the zip broke", 50))
    h.escalates(c5, 50)
    h.hands_back(c5, ben, 55)
    h.replies(c5, 60, to=h.says(c5, "still broken", 60), sent_minutes=60.2)
    h.escalates(c5, 60)
    h.replies(c5, 65, staff_id=ben)

    # c6 webchat: handed over at 90, nobody assigned, has waited exactly the target at 120: no breach.
    c6 = h.conversation(h.customer("Hal"), "webchat", 90)
    h.replies(c6, 90, to=h.says(c6, "need an invoice", 90))
    h.escalates(c6, 90)

    # c7 webchat: before the period: none of it counts.
    c7 = h.conversation(h.customer("Ivo"), "webchat", -2 * 24 * 60)
    h.replies(c7, -2 * 24 * 60, to=h.says(c7, "hello?", -2 * 24 * 60), sent_minutes=-2 * 24 * 60 + 9)
    h.escalates(c7, -2 * 24 * 60)

    # c8 webchat: handed over at 100, Ana answers at 102 (120 s) and resolves at 104; the customer writes at
    # 110 and it reopens to Ana, who answers at 118 (480 s). Not resolved now.
    c8 = h.conversation(h.customer("Jo"), "webchat", 100)
    h.says(c8, "my refund?", 100)
    h.escalates(c8, 100)
    h.assigns(c8, ana)
    h.replies(c8, 102, staff_id=ana)
    h.resolves(c8, 104, staff_id=ana)
    h.says(c8, "it did not arrive", 110)
    h.reopens(c8, 110, to="human")
    h.replies(c8, 118, staff_id=ana)
    return h


def figures(engine) -> dict:
    with Session(engine) as session:
        return response_times(
            session,
            since=START - timedelta(hours=1),
            until=START + timedelta(days=1),
            target=TARGET,
            now=START + timedelta(minutes=120),
        )


def timing(count: int, median: float | None, p90: float | None) -> dict:
    return {"count": count, "median": median, "p90": p90}


def test_each_clock_on_the_scripted_history(db_engine):
    scripted(db_engine)
    data = figures(db_engine)
    overall = data["overall"]
    assert data["target_seconds"] == 1800
    # bot replies: 0, 0, 0, 3, 6, 12, 30 s
    assert overall["bot_response"] == timing(7, 3.0, 30.0)
    # first person: 120 (c8), 900 (c5), 1200 (c2), 3900 (c3) s after opening
    assert overall["first_human_response"] == timing(4, 900.0, 3900.0)
    # waits that a person ended: 120, 300, 480, 1194, 3600 s
    assert overall["waiting_for_person"] == timing(5, 480.0, 3600.0)
    assert overall["resolution"] == timing(1, 3600.0, 3600.0)
    assert overall["sla"] == {
        "handovers": 8,
        "answered": 5,
        "answered_within_target": 4,
        "answered_late": 1,
        "still_waiting": 2,
        "still_waiting_past_target": 1,
        "closed_unanswered": 1,
        "breaches": 2,
    }


def test_by_channel_and_by_agent(db_engine):
    scripted(db_engine)
    data = figures(db_engine)
    webchat, telegram = data["by_channel"]["webchat"], data["by_channel"]["telegram"]
    assert webchat["bot_response"] == timing(5, 3.0, 12.0)
    assert telegram["bot_response"] == timing(2, 0.0, 30.0)
    assert webchat["waiting_for_person"] == timing(4, 300.0, 1194.0)
    assert (webchat["sla"]["handovers"], webchat["sla"]["breaches"], webchat["sla"]["closed_unanswered"]) == (
        6,
        0,
        1,
    )
    assert telegram["sla"]["breaches"] == 2 and telegram["sla"]["answered_late"] == 1

    agents = data["by_agent"]
    assert list(agents) == ["Ana", "Ben", "unassigned"]
    ana, ben, nobody = agents["Ana"], agents["Ben"], agents["unassigned"]
    assert "bot_response" not in ana
    assert ana["waiting_for_person"] == timing(3, 480.0, 1194.0)
    assert ana["sla"]["handovers"] == 4 and ana["sla"]["breaches"] == 1  # c4, still waiting for her
    assert ana["first_human_response"] == timing(2, 120.0, 1200.0)
    assert ana["resolution"] == timing(1, 3600.0, 3600.0)
    assert ben["waiting_for_person"] == timing(2, 300.0, 3600.0)
    assert ben["sla"]["answered_late"] == 1 and ben["resolution"]["count"] == 0
    assert nobody["sla"] == {
        "handovers": 1,
        "answered": 0,
        "answered_within_target": 0,
        "answered_late": 0,
        "still_waiting": 1,
        "still_waiting_past_target": 0,
        "closed_unanswered": 0,
        "breaches": 0,
    }


def test_percentiles_are_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([1, 2, 3, 4], 0.5) == 2.0
    assert percentile(list(range(1, 11)), 0.9) == 9.0


def test_the_real_path_gives_the_shape_the_scripted_history_assumes(client, runtime):
    """A complaint through the web chat is handed over; a person answers and resolves through the staff API:
    one bot reply, one handover answered by that person, one first human response, one resolution."""
    with Session(runtime.engine) as session:
        staff = create_staff(
            session, "ana@fernhill.example", role="agent", name="Ana", password="correct horse battery"
        )
        token = issue_api_token(session, staff)
        session.commit()
    chat = client.post(
        "/api/v1/chat", json={"session_id": "web-sla-1", "text": "my parcel never arrived, this is awful"}
    ).json()
    assert chat["state"] == "human"
    headers = {"Authorization": f"Bearer {token}"}
    conversation = chat["conversation_id"]
    assert (
        client.post(
            f"/api/v1/conversations/{conversation}/reply", json={"text": "Sorry! On it."}, headers=headers
        ).status_code
        == 202
    )
    assert runtime.wait_idle()
    assert client.post(f"/api/v1/conversations/{conversation}/resolve", headers=headers).status_code == 200

    now = datetime.now(UTC)
    with Session(runtime.engine) as session:
        data = response_times(
            session, since=now - timedelta(hours=1), until=now + timedelta(minutes=1), target=TARGET, now=now
        )
    overall = data["overall"]
    assert overall["bot_response"]["count"] == 1
    assert overall["sla"]["handovers"] == 1 and overall["sla"]["answered"] == 1
    assert overall["first_human_response"]["count"] == 1 and overall["resolution"]["count"] == 1
    assert list(data["by_agent"]) == ["Ana"]
    assert data["by_agent"]["Ana"]["waiting_for_person"]["count"] == 1
