"""The knowledge base's answer threshold recalibrated from staff's right / wrong marks on its answers: chosen
on scripted marks whose right threshold is known, checked on the held-out marks, stored with a new version of
the heads, used by a worker from its next refresh, undone by a rollback, and left alone when pinned."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from bot.crm.db import create_db_engine, session_scope, upgrade_database
from bot.insights.answer_threshold import MIN_HELD_OUT_MARKS, Mark, article_marks, calibrate
from bot.insights.corrections import record_correction
from bot.insights.learning import held_out, train_from_crm
from bot.runtime.analysis import THRESHOLD_KEY, Models, head_versions, sample_knowledge_dir
from intents import Understander
from intents.versions import SHIPPED
from knowledge import DEFAULT_THRESHOLD, KnowledgeBase
from tests.history import ScriptedHistory

NOW = datetime(2026, 3, 25, 15, 0, tzinfo=UTC)


# The threshold in use before the marks, below every scripted mark (marks exist only for answers given).
BEFORE = 0.45


def scripted(boundary: float, n: int = 120, low: float = 0.46, high: float = 0.98) -> list[Mark]:
    """`n` marks on distinct questions, scores evenly from `low` to `high`, right from `boundary` up."""
    step = (high - low) / (n - 1)
    scores = [round(low + i * step, 6) for i in range(n)]
    return [Mark(f"where is my order number {i}?", s, s >= boundary) for i, s in enumerate(scores)]


def test_the_threshold_is_where_the_marks_turn_right_and_beats_the_old_one_on_held_out_marks():
    marks = scripted(0.62)
    result = calibrate(marks, BEFORE, held_out)
    wrong_below = max(m.score for m in marks if not m.right and not held_out(m.text))
    right_above = min(m.score for m in marks if m.right and not held_out(m.text))
    assert wrong_below < result.after <= right_above and result.after == pytest.approx(0.62, abs=0.01)
    test = [m for m in marks if held_out(m.text)]
    assert result.held_out == len(test) >= MIN_HELD_OUT_MARKS and result.train == len(marks) - len(test)
    assert result.agreed_after == len(test)  # every held-out mark agrees with the new threshold
    assert result.agreed_before == sum(m.right for m in test) < len(test)  # the old answered the wrong ones
    assert result.installed
    assert result.line().startswith("answer threshold: ") and result.line().endswith("; installed")


def test_marks_that_say_nothing_new_keep_the_threshold():
    all_right = calibrate(scripted(0.0), BEFORE, held_out)
    assert all_right.after == BEFORE and not all_right.installed
    assert all_right.reason == "not better on the held-out marks"
    few = calibrate(scripted(0.62, n=20), BEFORE, held_out)
    assert few.after is None and not few.installed and few.held_out < MIN_HELD_OUT_MARKS
    assert few.line().endswith(
        f"kept: too few held-out marks to tell better from worse (need {MIN_HELD_OUT_MARKS})"
    )
    # Marks exist only for answers given: the threshold never goes below the lowest mark's score.
    lower = calibrate(scripted(0.0, low=0.70), BEFORE, held_out)
    assert lower.after == BEFORE and not lower.installed


def mark_answers(engine, marks: list[Mark]) -> None:
    """Each mark as the console stores it: a customer's question answered from an article, marked by staff."""
    history = ScriptedHistory(engine, NOW)
    conversation = history.conversation(history.customer("Ann"), "webchat", 0)
    for i, mark in enumerate(marks):
        message = history.says(
            conversation, mark.text, i, intent="question", kb_article_id="delivery-times", kb_score=mark.score
        )
        with session_scope(engine) as session:
            record_correction(
                session,
                message_id=message,
                aspect="article",
                value="right" if mark.right else "wrong",
                staff_id=None,
            )


def test_a_worker_answers_with_the_recalibrated_threshold_after_its_refresh_and_a_rollback_undoes_it(
    make_settings, encoder, tmp_path
):
    settings = make_settings()
    upgrade_database(settings.database_url)
    engine = create_db_engine(settings.database_url)
    knowledge = KnowledgeBase.build(sample_knowledge_dir(), encoder, cache_dir=tmp_path / "kb")
    versions = head_versions(settings)
    worker = Models(
        encoder, Understander.load(), knowledge, refresh_seconds=0, heads=versions, heads_version=SHIPPED
    )
    question = "how many days until my parcel arrives"
    before = knowledge.answer(question, encoder.encode([question])[0])
    assert before.article is not None and before.article.id == "delivery-times"
    # Staff marked answers right only from just above this question's score: it should now be escalated.
    marks = scripted(before.score + 0.01, low=DEFAULT_THRESHOLD + 0.01)
    try:
        mark_answers(engine, marks)
        assert article_marks(engine) == sorted(marks)
        report = train_from_crm(engine, versions, encoder)
    finally:
        engine.dispose()
    assert report.heads == [] and report.threshold.installed and report.version == "v1"
    assert report.lines()[-1] == "installed heads v1 (was shipped); undo: socialbot intents heads rollback"
    calibrated = versions.calibration("v1")[THRESHOLD_KEY]
    # Between the training marks either side of the boundary (held-out ones may widen that gap).
    assert before.score < calibrated < before.score + 0.02
    assert versions.manifest("v1")["answer_threshold"]["after"] == calibrated

    assert knowledge.threshold == DEFAULT_THRESHOLD  # until the worker's refresh
    assert worker.refresh_heads() and knowledge.threshold == calibrated
    after = knowledge.answer(question, encoder.encode([question])[0])
    assert after.article is None and after.best_article_id == "delivery-times"

    listed = socialbot("intents", "heads", "list", data_dir=settings.data.dir)
    assert listed.returncode == 0, listed.stderr
    assert f"answer threshold {DEFAULT_THRESHOLD:.3f} -> {calibrated:.3f}" in listed.stdout.splitlines()[1]
    versions.rollback()
    assert worker.refresh_heads() and knowledge.threshold == DEFAULT_THRESHOLD


def socialbot(*args: str, data_dir, **env: str) -> subprocess.CompletedProcess:
    """`socialbot ARGS` as an operator runs it, on the CRM in `data_dir`, with `env` added."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SOCIALBOT_DATA__DIR": str(data_dir), **env},
        timeout=600,
    )


def test_a_pinned_threshold_is_not_recalibrated(make_settings):
    settings = make_settings()
    upgrade_database(settings.database_url)
    engine = create_db_engine(settings.database_url)
    try:
        mark_answers(engine, scripted(0.62))
    finally:
        engine.dispose()
    done = socialbot(
        "intents", "train", "--from-crm", data_dir=settings.data.dir, SOCIALBOT_KNOWLEDGE__THRESHOLD="0.5"
    )
    assert done.returncode == 0, done.stderr
    held = sum(held_out(mark.text) for mark in scripted(0.62))
    assert done.stdout.splitlines() == [
        f"answer threshold 0.500: {120 - held} training / {held} held-out right/wrong marks; "
        "kept: [knowledge] threshold pins it",
        "nothing installed: heads shipped stay active",
    ]
    assert head_versions(settings).versions() == []
