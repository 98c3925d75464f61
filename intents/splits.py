"""Which rows of each public data set train the encoder, calibrate a threshold, or are held out for figures.

One place for the rule, so training (`intents.corpus`), calibration (`intents.calibration`) and evaluation
(`intents.quality`, the scripts) can never disagree. Sets without an official split are cut by a hash of the
text (sha1 of a per-set salt + the text), so the cut is stable across runs, machines and row orders.

- `train`: the encoder and its heads may learn from the row;
- `calibrate`: a threshold may be chosen on the row (never trained on);
- `test`: figures are reported on the row (never trained or calibrated on);
- `unused`: the row is not used at all.

CLINC150 is never trained on: it measures how the knowledge base does on a domain the encoder never saw.
"""

from __future__ import annotations

import hashlib

__all__ = ["CALIBRATE", "TEST", "TRAIN", "UNUSED", "hash_unit", "split_of"]

TRAIN, CALIBRATE, TEST, UNUSED = "train", "calibrate", "test", "unused"


def hash_unit(text: str, salt: str) -> float:
    """A number in [0, 1) fixed by the text and the salt."""
    digest = hashlib.sha1(f"{salt}\0{text}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _cut(text: str, salt: str, train: float, calibrate: float) -> str:
    """TRAIN below `train`, CALIBRATE below `train + calibrate`, TEST above."""
    unit = hash_unit(text, salt)
    if unit < train:
        return TRAIN
    return CALIBRATE if unit < train + calibrate else TEST


def split_of(dataset: str, text: str, group: str = "") -> str:
    """The role of one row of a data set (names as in `intents.public_data`; `group` is the row's split
    column or, for sets without one, its domain/label group).

    Raises:
        ValueError: an unknown data set name.
    """
    if dataset == "twitter_complaints":
        # No official split: 60 % train, 15 % calibrate, 25 % test (~520 rows), by hash.
        return _cut(text, "complaints", 0.60, 0.15)
    if dataset == "semeval2019_task9_suggestions":
        if group == "A_train":
            return _cut(text, "semeval", 0.85, 0.15)
        return TEST  # A_trial_test, B_trial_test: never trained or calibrated on
    if dataset in ("tweeteval_offensive", "tweeteval_hate"):
        if group == "train":
            return _cut(text, dataset, 0.85, 0.15)
        return TEST
    if dataset in ("tweeteval_sentiment", "tweeteval_emotion"):
        return TRAIN if group == "train" else TEST
    if dataset == "airline_tweets":
        # 70 % train, 10 % calibrate (intent thresholds), 20 % test (~1,470 rows, sentiment figures).
        return _cut(text, "airline", 0.70, 0.10)
    if dataset == "banking77":
        # 65 % train, 5 % calibrate, 30 % test: the knowledge-base figure asks held-out questions.
        return _cut(text, "banking77", 0.65, 0.05)
    if dataset == "bitext_customer_support":
        # The rude-request figure holds out half of the 20k release's flag-W rows (group "W-test").
        return TEST if group == "W-test" else TRAIN
    if dataset == "clinc150":
        return TEST
    if dataset == "fernhill_traffic":
        # The sample brand's written traffic: its own dev/test column (tune on dev, report on test).
        return CALIBRATE if group == "dev" else TEST
    if dataset in ("own", "brand_abuse_examples"):
        # The project's own written examples: 80 % train, 20 % calibrate (intent and abuse thresholds).
        return _cut(text, dataset, 0.80, 0.20)
    raise ValueError(f"unknown data set {dataset!r}")
