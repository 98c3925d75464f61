"""Given a brand's Telegram group, when a customer posts abuse aimed at people with nothing to act on, then
the bot doesn't answer and the post waits in the moderation queue, blurred and escaped, until staff mark it
fine (the bot answers once), hide it (Telegram deleteMessage) or block its author; an abusive post that also
asks for something is never silenced: it goes to a person with a reply that doesn't repeat its words; and a
thread turning into a flame war goes to a person while the bot pauses. python-telegram-bot runs unmodified
against the fake Bot API. (What counts as abuse: tests/data/ABUSE_DEFINITION.md.)"""

from __future__ import annotations

import json
import re

from sqlmodel import Session, select

from bot.crm.models import AuditEvent, ContactBlock, Conversation, Message, ModerationItem
from tests.conftest import TELEGRAM_SECRET as SECRET
from tests.test_staff_console import add_staff, csrf_of, log_in

GROUP = -100777
ANNA, BORIS, CLARA = 4242, 4343, 4444
#: Abuse at a person along with a complaint: escalated to a person, never silenced.
# The examples sit well inside the heads' decisions (abuse 0.995 and 0.69 against a threshold of 0.547 since
# the head learned issue 25's definition, the idea clear of its threshold); before, "your driver is a gormless
# oaf" scored within 0.01 of the threshold (0.999 now).
ABUSIVE_COMPLAINT = "@FernhillBot your driver is a stupid moron and my parcel is soaked"
#: An idea sworn at the company: not abuse by the definition but the shipped head still flags it (0.69;
#: insults at the company are its commonest false flag, MODEL_CARD.md), which is what "fine" is for.
FLAGGED_IDEA = "@FernhillBot you absolute morons, you should really start selling kids boots"
#: Abuse aimed at people with nothing to act on: held for moderation without a reply.
ABUSE = [
    "@FernhillBot @kate_walks shut up you stupid cow, nobody cares",
    "@FernhillBot whoever runs this account is a brain-dead moron",
    "@FernhillBot your staff are inbred idiots",
]


def posts_in_group(runtime, client, telegram, user: int, text: str) -> dict:
    update = telegram.group_message(GROUP, user, text)
    response = client.post(
        "/telegram/webhook",
        content=json.dumps(update),
        headers={"content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert response.status_code == 200, response.text
    assert runtime.wait_idle()
    return update


def queue_items(runtime) -> list[ModerationItem]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(ModerationItem).order_by(ModerationItem.id)).all())


def moderate(client, item_id: int, action: str):
    page = client.get("/console/moderation")
    return client.post(
        f"/console/moderation/{item_id}",
        data={"action": action, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )


def test_an_abusive_complaint_goes_to_a_person_with_a_reply_that_does_not_repeat_it(telegram_bot):
    runtime, client, telegram = telegram_bot
    posts_in_group(runtime, client, telegram, ANNA, ABUSIVE_COMPLAINT)
    [sent] = telegram.sent
    reply = sent["request"]["text"]
    assert "person" in reply and not {"stupid", "moron", "driver", "soaked"} & set(reply.lower().split())
    assert queue_items(runtime) == []  # answered, not held
    with Session(runtime.engine) as session:
        [conversation] = session.exec(select(Conversation)).all()
        message = session.exec(select(Message).where(Message.text == ABUSIVE_COMPLAINT)).one()
    assert conversation.state == "human"  # a person takes it from here
    assert message.abusive and message.action == "escalate" and "flagged" in message.reason
    add_staff(runtime, "ana@fernhill.example", name="Ana")
    log_in(client, "ana@fernhill.example")
    page = client.get(f"/console/conversations/{conversation.id}").text
    assert re.search(r'class="msg__text abuse"[^>]*>[^<]*stupid moron', page)  # blurred for staff


def test_abuse_in_a_group_is_queued_unanswered_then_marked_fine_and_answered_once(telegram_bot):
    runtime, client, telegram = telegram_bot
    add_staff(runtime, "ana@fernhill.example", name="Ana")

    posts_in_group(runtime, client, telegram, ANNA, FLAGGED_IDEA)
    assert telegram.sent == []  # no public reply to abuse
    [item] = queue_items(runtime)
    assert item.status == "open" and item.score is not None and item.score >= 0.5
    assert "abusive" in item.reason

    assert client.get("/console/moderation", follow_redirects=False).status_code == 303  # login first
    assert log_in(client, "ana@fernhill.example").status_code == 303
    page = client.get("/console/moderation").text
    shown = re.sub(r"</?mark>", "", page)  # the words that weighed most are highlighted
    assert 'class="abuse"' in page and "absolute morons" in shown and f"{item.score:.2f}" in page

    assert moderate(client, item.id, "fine").status_code == 303
    assert len(telegram.sent) == 1 and "idea" in telegram.sent[0]["request"]["text"]
    assert telegram.sent[0]["request"]["chat_id"] in (str(GROUP), GROUP)
    # A second click (or a second moderator) changes nothing and sends nothing.
    assert moderate(client, item.id, "fine").status_code == 409
    runtime.wait_idle()
    assert len(telegram.sent) == 1
    [item] = queue_items(runtime)
    assert item.status == "fine" and item.outcome.startswith("marked fine")
    with Session(runtime.engine) as session:
        replies = session.exec(select(Message).where(Message.reply_to_id == item.message_id)).all()
        assert len(replies) == 1
        assert session.exec(select(AuditEvent).where(AuditEvent.action == "moderation.fine")).one()
    assert client.get("/console/moderation").text.count('class="abuse"') == 0  # the queue is empty


def test_three_abusive_replies_in_one_thread_within_minutes_escalate_it_and_the_bot_stays_silent(
    telegram_bot,
):
    runtime, client, telegram = telegram_bot
    for user, text in zip((ANNA, BORIS, CLARA), ABUSE, strict=True):
        posts_in_group(runtime, client, telegram, user, text)
    with Session(runtime.engine) as session:
        [conversation] = session.exec(select(Conversation)).all()
        last = session.exec(select(Message).order_by(Message.id.desc())).first()
    assert conversation.state == "human" and "flame war" in conversation.escalation_reason
    assert last.action == "escalate"
    assert telegram.sent == []

    posts_in_group(runtime, client, telegram, ANNA, "@FernhillBot how long does delivery take?")
    assert telegram.sent == []  # paused: a person owns the thread now


def test_hide_deletes_the_post_on_telegram_or_flags_it_for_a_person_when_refused(telegram_bot):
    runtime, client, telegram = telegram_bot
    add_staff(runtime, "ana@fernhill.example", name="Ana")
    log_in(client, "ana@fernhill.example")
    first = posts_in_group(runtime, client, telegram, ANNA, ABUSE[0])
    posts_in_group(runtime, client, telegram, BORIS, ABUSE[1])
    one, two = queue_items(runtime)

    assert moderate(client, one.id, "hide").status_code == 303
    assert telegram.deleted == [(GROUP, first["message"]["message_id"])]
    telegram.not_admin_in.add(GROUP)
    assert moderate(client, two.id, "hide").status_code == 303
    one, two = queue_items(runtime)
    assert one.status == "hidden"
    assert two.status == "needs_human" and "refused" in two.outcome


def test_a_blocked_author_gets_no_bot_replies(telegram_bot):
    runtime, client, telegram = telegram_bot
    add_staff(runtime, "ana@fernhill.example", name="Ana")
    log_in(client, "ana@fernhill.example")
    posts_in_group(runtime, client, telegram, ANNA, ABUSE[0])
    [item] = queue_items(runtime)
    assert moderate(client, item.id, "block").status_code == 303
    with Session(runtime.engine) as session:
        [block] = session.exec(select(ContactBlock)).all()
    assert block.contact_id == item.contact_id

    posts_in_group(runtime, client, telegram, ANNA, "@FernhillBot how long does delivery take?")
    assert telegram.sent == []
    posts_in_group(runtime, client, telegram, BORIS, "@FernhillBot how long does delivery take?")
    assert len(telegram.sent) == 1  # others are still answered


def test_abusive_text_is_escaped_in_the_console_and_the_api_checks_its_input(telegram_bot):
    runtime, client, telegram = telegram_bot
    _, token = add_staff(runtime, "ana@fernhill.example", name="Ana")
    add_staff(runtime, "mo@fernhill.example", role="marketer")
    posts_in_group(
        runtime,
        client,
        telegram,
        ANNA,
        "@FernhillBot you stupid bots are pathetic losers <script>alert(1)</script>",
    )
    [item] = queue_items(runtime)

    log_in(client, "mo@fernhill.example")
    assert client.get("/console/moderation").status_code == 403  # marketers don't moderate
    log_in(client, "ana@fernhill.example")
    page = client.get("/console/moderation").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    unmarked = re.sub(r"</?mark>", "", page)  # the words that weighed most are highlighted
    assert re.search(r'<span class="abuse"[^>]*>[^<]*&lt;script&gt;', unmarked)

    auth = {"Authorization": f"Bearer {token}"}
    [entry] = client.get("/api/v1/moderation", headers=auth).json()
    assert entry["id"] == item.id and entry["text"].endswith("<script>alert(1)</script>")
    nuke = client.post(f"/api/v1/moderation/{item.id}", json={"action": "nuke"}, headers=auth)
    assert nuke.status_code == 422 and "one of fine, hide, block" in nuke.text
    assert client.post("/api/v1/moderation/999", json={"action": "hide"}, headers=auth).status_code == 404
