"""The learning loop: `socialbot intents train --from-crm` retrains a head on the brand's corrections and
installs a new version of the heads only if it is better on the held-out corrections; `intents heads
rollback` goes back; a worker picks the active version up at its refresh. Real encoder, real training."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.crm.db import create_db_engine, upgrade_database
from bot.insights.corrections import import_corrections
from bot.insights.learning import MIN_HELD_OUT, LearningError, held_out, macro_f1, train_from_crm
from bot.runtime.analysis import Models, head_versions
from intents import INTENTS, Understander, public_data
from intents.versions import SHIPPED, HeadVersionError, HeadVersions

if not public_data.datasets_dir().is_dir():
    from tests.parts import missing_part

    missing_part("datasets", f"public data sets not found at {public_data.datasets_dir()}", module=True)

NAMES = ["Tom", "Priya", "Sam", "Kate", "Omar", "Lena", "Jack", "Ava"]
PLACES = ["Leeds store", "warehouse", "head office", "Bristol shop", "call centre"]
# Stalking questions about a member of staff's private life: no insult or threat word in them, and the shipped
# abusive head reads them as harmless (the veiled threats it was taught since issue 25, "I know where Tom from
# your warehouse lives", it now flags; these score up to 0.51 against its threshold of 0.547).
THREATS = [
    "is {n} from the {p} still at the same address? asking for a friend",
    "does {n} from the {p} still get the 6pm bus? asking for a friend",
]
KIND_WORDS = [
    "{n} at the {p} was so helpful, thank you",
    "is the {p} open on Sunday? {n} said to ask",
]
INSULTS = ["{n} at the {p} is a useless fucking idiot", "you stupid morons at the {p}, {n} is a joke"]


def fill(templates: list[str]) -> list[str]:
    return [t.format(n=n, p=p) for t in templates for n in NAMES for p in PLACES]


def write_labels(path: Path, abusive: list[str], fine: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "abusive"])
        writer.writerows([(text, "yes") for text in abusive] + [(text, "no") for text in fine])
    return path


@pytest.fixture
def brand(make_settings):
    """A brand's settings (data folder in tmp) and its migrated CRM."""
    settings = make_settings()
    upgrade_database(settings.database_url)
    engine = create_db_engine(settings.database_url)
    yield settings, engine
    engine.dispose()


def run(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SOCIALBOT_DATA__DIR": str(settings.data.dir)}
    return subprocess.run(
        [sys.executable, "-m", "bot", "intents", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=settings.data.dir.parent,
        timeout=900,
    )


def test_corrections_install_a_better_version_that_workers_load_and_rollback_restores(
    brand, tmp_path, encoder, models
):
    settings, engine = brand
    threats, kind = fill(THREATS)[:80], fill(KIND_WORDS)[:80]
    import_corrections(engine, write_labels(tmp_path / "staff.csv", threats, kind))
    test_threats = [t for t in threats if held_out(t)]
    versions = head_versions(settings)
    worker = Models(
        encoder,
        Understander.load(),
        models.knowledge,
        refresh_seconds=0,
        heads=versions,
        heads_version=SHIPPED,
    )

    def reads_abusive() -> list[bool]:
        vectors = encoder.encode(test_threats)
        return [r.abusive for r in worker.understander.understand_batch(test_threats, vectors)]

    assert not any(reads_abusive())  # the shipped head misses them: what staff corrected

    done = run(settings, "train", "--from-crm")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("abusive: ") and lines[0].endswith("installed"), lines
    assert lines[-1].startswith("installed heads v1 (was shipped)")
    assert versions.versions() == ["v1"] and versions.current() == "v1"
    figures = versions.manifest("v1")["heads"]["abusive"]
    assert figures["after"] > figures["before"] and figures["held_out"] >= MIN_HELD_OUT
    assert figures["train"] + figures["held_out"] == 160

    assert worker.refresh_heads() and worker.heads_version == "v1"
    assert sum(reads_abusive()) >= 0.8 * len(test_threats)
    listed = run(settings, "heads", "list").stdout.splitlines()
    assert listed[0] == "  shipped  the heads shipped with socialbot"
    assert listed[1].startswith("* v1  ") and "abusive " in listed[1]

    back = run(settings, "heads", "rollback")
    assert (back.returncode, back.stdout.strip()) == (0, "heads shipped active (was v1)")
    assert worker.refresh_heads() and worker.heads_version == SHIPPED
    assert not any(reads_abusive())
    unknown = run(settings, "heads", "rollback", "v9")
    assert unknown.returncode == 2 and unknown.stderr.strip().endswith(
        f"no heads version 'v9' in {versions.root} (installed: shipped, v1)"
    )
    assert "Traceback" not in unknown.stderr


def test_held_out_figures_count_a_not_label_only_for_its_own_label():
    gold = ["recommendation", "recommendation", "not_recommendation", "not_recommendation", "not_question"]
    read = ["recommendation", "complaint", "praise", "recommendation", "question"]
    # recommendation: 1 right, 1 missed, 1 false alarm (the praise is right to be no recommendation); the
    # "not_question" row says nothing about recommendation, and question has no positive example to score.
    assert macro_f1(gold, read, INTENTS) == round(2 / 4, 4)
    assert macro_f1(["question", "praise"], ["question", "other"], INTENTS) == round((1 + 0) / 2, 4)
    assert macro_f1(["not_praise"], ["praise"], INTENTS) is None
    # the abusive head's labels are abusive and not_abusive: both are whole labels there
    flags = ("abusive", "not_abusive")
    assert macro_f1(
        ["abusive", "not_abusive", "not_abusive"], ["abusive", "abusive", "not_abusive"], flags
    ) == (round((2 / 3 + 2 / 3) / 2, 4))


def test_too_few_or_no_better_corrections_change_nothing(brand, tmp_path, encoder):
    settings, engine = brand
    versions = head_versions(settings)
    with pytest.raises(LearningError, match="no corrections to learn from"):
        train_from_crm(engine, versions, encoder)

    few = fill(THREATS)[:6]
    import_corrections(engine, write_labels(tmp_path / "few.csv", few, []))
    report = train_from_crm(engine, versions, encoder)
    assert report.version is None and report.heads[0].before is None
    assert "too few held-out corrections" in report.lines()[0]
    assert report.lines()[-1] == "nothing installed: heads shipped stay active"

    # Corrections the shipped head already reads right: the retrained head can't be better, so it is refused.
    plain = write_labels(tmp_path / "plain.csv", fill(INSULTS)[:60], fill(KIND_WORDS)[:60])
    other = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    upgrade_database(other)
    fresh = create_db_engine(other)
    try:
        import_corrections(fresh, plain)
        report = train_from_crm(fresh, versions, encoder)
    finally:
        fresh.dispose()
    (result,) = report.heads
    assert result.held_out >= MIN_HELD_OUT and result.before == 1.0
    assert result.after <= result.before and not result.installed and report.version is None
    assert versions.versions() == [] and versions.current() == SHIPPED
    assert not (versions.root / "current").exists()
    with pytest.raises(HeadVersionError, match="the shipped heads are active"):
        HeadVersions(versions.root).rollback()
