"""The abuse head's written rows (issue 25) follow the labelling guide's conventions, and the rows that
measure the head never train it: `intents/data/abuse_at_people.csv` has a known kind per row and a dev split
fixed by the text's hash; its dev rows, the sample brand's traffic and the labelled real support tweets are
not in the abusive head's training mix (tests/data/ABUSE_DEFINITION.md)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from intents import public_data
from intents.corpus import ABUSE_AT_PEOPLE, abuse_at_people, training_rows
from tests.parts import missing_part

DATA = Path(__file__).resolve().parent / "data"
ABUSE_KINDS = {
    "insult_person",
    "insult_staff",
    "insult_customer",
    "threat",
    "hate",
    "sexual",
    "harassment",
    "doxxing",
    "spam",
    "abuse_request",
}
OTHER_KINDS = {
    "profanity",
    "question_rude",
    "insult_company",
    "hostile_company",
    "criticism",
    "staff_conduct",
    "sarcasm",
    "reported_abuse",
    "recourse",
    "mild_threat_legit",
    "hyperbole",
    "praise_sworn",
    "praise_staff",
    "neutral_people",
    "customer_reply",
    "competitor",
    "staff_question",
    "find_out",
    "visit_store",
    "bot_insult",
    "own_details",
    "self_promo",
}


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def test_every_written_row_has_a_kind_that_decides_its_label_and_a_split_fixed_by_its_hash():
    with ABUSE_AT_PEOPLE.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and list(rows[0]) == ["text", "abusive", "kind", "split"]
    assert len({_normal(row["text"]) for row in rows}) == len(rows), "a row is written twice"
    for row in rows:
        assert row["kind"] in ABUSE_KINDS | OTHER_KINDS, row
        assert row["abusive"] == ("yes" if row["kind"] in ABUSE_KINDS else "no"), row
        dev = int(hashlib.sha1(row["text"].encode()).hexdigest(), 16) % 4 == 0
        assert row["split"] == ("dev" if dev else "train"), row
    assert len(abuse_at_people("dev")) + len(abuse_at_people("train")) == len(rows)


def test_an_unknown_split_is_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown split 'test'; expected train or dev"):
        abuse_at_people("test")


def test_no_measuring_row_trains_the_abuse_head():
    try:
        rows = training_rows("abusive")
    except public_data.DatasetMissingError as error:
        missing_part("datasets", str(error))
    trained = {_normal(text) for text in rows.texts}
    with (DATA / "fernhill_traffic.csv").open(encoding="utf-8", newline="") as handle:
        brand = [row["text"] for row in csv.DictReader(handle)]
    source = public_data.datasets_dir() / "twcs_sample" / "twcs_sample.csv"
    with source.open(encoding="utf-8", newline="") as handle:
        tweets = {row["tweet_id"]: row["text"] for row in csv.DictReader(handle)}
    with (DATA / "twcs_support_labels.csv").open(encoding="utf-8", newline="") as handle:
        real = [tweets[row["tweet_id"]] for row in csv.DictReader(handle)]
    dev = [row["text"] for row in abuse_at_people("dev")]
    for name, texts in (
        ("fernhill_traffic.csv", brand),
        ("twcs_support_labels.csv", real),
        ("abuse_at_people.csv dev", dev),
    ):
        leaked = [text for text in texts if _normal(text) in trained]
        assert not leaked, f"{name} rows in the abuse head's training mix: {leaked[:3]}"
