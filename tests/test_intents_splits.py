"""Honest evaluation, checked on the data itself: nothing the encoder trains on is a calibration or test
row, CLINC150 never trains it, and the shipped model says it was trained on exactly this corpus."""

from __future__ import annotations

import csv

import pytest

from intents import public_data
from intents.corpus import calibration_rows, encoder_corpus
from intents.splits import CALIBRATE, TEST, TRAIN, split_of
from tests.parts import missing_part

if not (public_data.datasets_dir() / "README.md").exists():
    missing_part("datasets", f"public data sets not found at {public_data.datasets_dir()}", module=True)


@pytest.fixture(scope="module")
def corpus():
    return encoder_corpus()


def _trained_texts(corpus) -> set[str]:
    texts = set(corpus.intent.texts) | set(corpus.sentiment.texts) | set(corpus.abusive.texts)
    return texts | {text for group in corpus.pairs.values() for text in group}


def _held_out_texts() -> set[str]:
    held = set()
    for items in (
        public_data.complaints(),
        public_data.suggestions(),
        public_data.offensive(),
        public_data.tweeteval_sentiment(),
        public_data.airline_sentiment(),
        public_data.banking77_intent(),
        public_data.bitext_abuse(),
    ):
        held |= {
            t for t, g in zip(items.texts, items.groups, strict=True) if split_of(items.name, t, g) == TEST
        }
    return held


def test_no_test_or_calibration_row_is_trained_on(corpus):
    trained = _trained_texts(corpus)
    assert not trained & _held_out_texts()
    for head in ("intent", "abusive"):
        assert not trained & set(calibration_rows(head).texts), head


def test_clinc150_never_trains_the_encoder(corpus):
    with (public_data.datasets_dir() / "clinc150" / "clinc150.csv").open(encoding="utf-8", newline="") as f:
        clinc = {row["text"] for row in csv.DictReader(f)}
    assert not _trained_texts(corpus) & clinc
    assert all(split_of("clinc150", text) == TEST for text in list(clinc)[:50])


def test_the_split_roles_are_stable_and_roughly_the_documented_shares():
    texts = public_data.complaints().texts
    roles = [split_of("twitter_complaints", t) for t in texts]
    assert roles == [split_of("twitter_complaints", t) for t in texts]
    assert 0.55 < roles.count(TRAIN) / len(roles) < 0.65
    assert 0.10 < roles.count(CALIBRATE) / len(roles) < 0.20
    with pytest.raises(ValueError, match="unknown data set"):
        split_of("imdb", "a film")
