"""Given a customer who complains on Telegram, when an agent takes the thread in the console, then the bot
stays silent on the customer's next message, the agent's reply reaches the customer's Telegram chat, and
resolving closes the thread. python-telegram-bot runs unmodified against the fake Bot API."""

from __future__ import annotations

import json

from sqlmodel import Session, select

from bot.crm.models import Conversation
from tests.conftest import TELEGRAM_SECRET as SECRET
from tests.test_staff_console import add_staff, conversation_form, log_in

CUSTOMER = 4242


def customer_writes(client, telegram, text: str) -> None:
    response = client.post(
        "/telegram/webhook",
        content=json.dumps(telegram.private_message(CUSTOMER, text)),
        headers={"content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert response.status_code == 200, response.text


def test_a_telegram_complaint_is_taken_answered_and_resolved_by_an_agent(telegram_bot):
    runtime, client, telegram = telegram_bot
    add_staff(runtime, "ana@fernhill.example", name="Ana")

    customer_writes(client, telegram, "My tent arrived with a broken pole and nobody answers my emails!!")
    assert runtime.wait_idle()
    assert len(telegram.sent) == 1 and "sorry" in telegram.sent[0]["request"]["text"].lower()

    assert log_in(client, "ana@fernhill.example").status_code == 303
    queue = client.get("/console").text
    assert "broken pole" in queue
    with Session(runtime.engine) as session:
        [conversation] = session.exec(select(Conversation)).all()
    assert conversation.channel == "telegram" and conversation.state == "human"

    form = conversation_form(client, conversation.id)
    client.post(
        f"/console/conversations/{conversation.id}/action", data={"action": "take", "csrf": form["csrf"]}
    )

    customer_writes(client, telegram, "so what now?")
    assert runtime.wait_idle()
    assert len(telegram.sent) == 1  # the bot stayed silent
    assert "so what now?" in client.get(f"/console/conversations/{conversation.id}").text

    form = conversation_form(client, conversation.id)
    client.post(
        f"/console/conversations/{conversation.id}/reply",
        data={**form, "text": "Ana here: a new pole is on its way, tracking by e-mail today."},
    )
    assert runtime.wait_idle()
    assert len(telegram.sent) == 2
    staff_reply = telegram.sent[1]["request"]
    assert staff_reply["chat_id"] == str(CUSTOMER)
    assert staff_reply["text"] == "Ana here: a new pole is on its way, tracking by e-mail today."

    client.post(
        f"/console/conversations/{conversation.id}/action", data={"action": "resolve", "csrf": form["csrf"]}
    )
    with Session(runtime.engine) as session:
        assert session.get(Conversation, conversation.id).state == "resolved"
