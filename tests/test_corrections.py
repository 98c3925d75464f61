"""Corrections: how staff say a message should have been read, stored once per message and aspect and
audited (the one function the console and the moderation queue call), and labelled CSVs imported."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import AuditEvent, Correction
from bot.insights.corrections import CorrectionError, import_corrections, record_correction
from tests.history import ScriptedHistory

NOW = datetime(2026, 3, 25, 15, 0, tzinfo=UTC)


@pytest.fixture
def messages(db_engine) -> dict[str, int]:
    history = ScriptedHistory(db_engine, NOW)
    conversation = history.conversation(history.customer("Ann"), "webchat", 0)
    answered = history.says(
        conversation,
        "how long is delivery?",
        1,
        intent="question",
        sentiment="neutral",
        abusive=False,
        kb_article_id="delivery-times",
        kb_score=0.71,
    )
    unanswered = history.says(conversation, "ok thanks", 2, intent="question", sentiment="neutral")
    reply = history.replies(conversation, 3, to=answered)
    return {"answered": answered, "unanswered": unanswered, "reply": reply}


def correct(engine, message_id: int, aspect: str, value, staff_id: int | None = None, source="console"):
    with session_scope(engine) as session:
        return record_correction(
            session, message_id=message_id, aspect=aspect, value=value, staff_id=staff_id, source=source
        )


def test_a_correction_is_stored_once_per_message_and_aspect_and_audited(db_engine, messages):
    correct(db_engine, messages["unanswered"], "intent", "other")
    correct(db_engine, messages["unanswered"], "intent", "praise")  # changed their mind: replaced
    correct(db_engine, messages["unanswered"], "abusive", False, source="moderation")
    correct(db_engine, messages["answered"], "article", "wrong")
    with Session(db_engine) as session:
        rows = session.exec(select(Correction).order_by(Correction.id)).all()
        audits = session.exec(select(AuditEvent).where(AuditEvent.action == "message.corrected")).all()
    assert [(r.message_id, r.aspect, r.value, r.was, r.source) for r in rows] == [
        (messages["unanswered"], "intent", "praise", "question", "console"),
        (messages["unanswered"], "abusive", "false", None, "moderation"),
        (messages["answered"], "article", "wrong", "delivery-times", "console"),
    ]
    assert (rows[2].article_id, rows[2].score) == ("delivery-times", 0.71)
    assert [a.details for a in audits][:2] == [
        {"aspect": "intent", "from": "question", "to": "other", "source": "console"},
        {"aspect": "intent", "from": "question", "to": "praise", "source": "console"},
    ]
    assert len(audits) == 4 and all(a.subject_type == "message" for a in audits)


@pytest.mark.parametrize(
    ("which", "aspect", "value", "error"),
    [
        ("answered", "tone", "x", "aspect: expected one of intent, sentiment, abusive, article"),
        ("answered", "intent", "rant", "intent: expected one of complaint, question"),
        ("answered", "intent", "not_praise", "intent: expected one of .*, other, got 'not_praise'"),
        ("answered", "abusive", "maybe", "abusive: expected one of true, false"),
        ("unanswered", "article", "right", "the bot used no article for it"),
        ("reply", "intent", "praise", "there is no customer message with this id"),
    ],
)
def test_a_correction_that_cannot_be_stored_says_why(db_engine, messages, which, aspect, value, error):
    with pytest.raises(CorrectionError, match=error):
        correct(db_engine, messages[which], aspect, value)
    with Session(db_engine) as session:
        assert session.exec(select(Correction)).all() == []


def test_a_labelled_csv_is_imported_once_and_checked_before_anything_is_stored(db_engine, tmp_path):
    good = tmp_path / "brand.csv"
    good.write_text(
        "text,intent,sentiment,abusive\n"
        '"ok thanks",other,positive,\n'
        '"where is my parcel, you clowns",complaint,negative,no\n'
        '"do you sell tents?",question,,\n'
        '"the room was on the fourth floor",not_recommendation,,\n',
        encoding="utf-8",
    )
    report = import_corrections(db_engine, good)
    assert dict(report.added) == {"intent": 4, "sentiment": 2, "abusive": 1} and report.skipped == 0
    assert import_corrections(db_engine, good).skipped == 7
    bad = tmp_path / "bad.csv"
    bad.write_text("text,intent\nhello,other\nhi,greeting\n", encoding="utf-8")
    with pytest.raises(CorrectionError, match="bad.csv: line 3: intent: expected one of"):
        import_corrections(db_engine, bad)
    # "not a recommendation" is what a labelled file may know of a text; staff in the console pick an intent.
    negative = tmp_path / "negative.csv"
    negative.write_text("text,sentiment\nfine,not_positive\n", encoding="utf-8")
    with pytest.raises(CorrectionError, match="negative.csv: line 2: sentiment: expected one of"):
        import_corrections(db_engine, negative)
    with Session(db_engine) as session:
        rows = session.exec(select(Correction)).all()
    assert ("the room was on the fourth floor", "not_recommendation") in {(r.text, r.value) for r in rows}
    assert len(rows) == 7 and {r.source for r in rows} == {"csv:brand.csv"}
    assert {(r.text, r.aspect, r.value) for r in rows if r.aspect == "abusive"} == {
        ("where is my parcel, you clowns", "abusive", "false")
    }


def test_the_import_command_says_what_it_added_or_what_is_wrong(tmp_path):
    env = {**os.environ, "SOCIALBOT_DATA__DIR": str(tmp_path / "data")}
    data = tmp_path / "labels.csv"
    data.write_text("text,sentiment\nlovely boots,positive\n", encoding="utf-8")

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "bot", "intents", "import-corrections", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )

    done = run(str(data))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "added 1 sentiment from labels.csv (0 already there)"
    missing = run(str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and missing.stderr.strip().endswith("nope.csv: file not found")
    (tmp_path / "cols.csv").write_text("message,label\nx,y\n", encoding="utf-8")
    columns = run(str(tmp_path / "cols.csv"))
    assert columns.returncode == 2 and "expected a 'text' column" in columns.stderr
    assert "Traceback" not in missing.stderr + columns.stderr
