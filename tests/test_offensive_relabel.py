"""The TweetEval offensive relabel for "abuse aimed at people" (issue 25) joins its source exactly.

`intents/data/offensive_relabel.csv` holds split, row index, SHA-1 of the text and the new label for every
row TweetEval labels offensive; the join with `../shared/datasets/tweeteval/offensive.csv` is checked here
(skipped when the shared data is absent, unless SOCIALBOT_REQUIRE names datasets).
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

from intents import public_data
from tests.parts import missing_part

RELABEL = Path(__file__).resolve().parents[1] / "intents" / "data" / "offensive_relabel.csv"
ABUSE_KINDS = {"insult_person", "threat", "hate", "slur", "harassment", "spam", "doxxing"}
OTHER_KINDS = {"profanity", "criticism", "other"}


def _relabel_rows() -> list[dict[str, str]]:
    with RELABEL.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _offensive_rows() -> dict[tuple[str, int], str]:
    """Texts of TweetEval's offensive rows keyed by (split, index of the row within its split)."""
    source = public_data.datasets_dir() / "tweeteval" / "offensive.csv"
    if not source.exists():
        missing_part("datasets", f"public data sets not found at {source}")
    offensive: dict[tuple[str, int], str] = {}
    position: Counter[str] = Counter()
    with source.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            split = row["split"]
            if row["label"] == "1":
                offensive[(split, position[split])] = row["text"]
            position[split] += 1
    return offensive


def test_every_row_has_a_known_kind_that_decides_the_label():
    rows = _relabel_rows()
    assert rows and list(rows[0]) == ["split", "row", "text_sha1", "abuse_at_people", "kind"]
    for row in rows:
        assert row["kind"] in ABUSE_KINDS | OTHER_KINDS, row
        assert row["abuse_at_people"] == ("yes" if row["kind"] in ABUSE_KINDS else "no"), row


def test_every_offensive_row_of_both_splits_appears_once_with_its_text_hash():
    offensive = _offensive_rows()
    rows = _relabel_rows()
    keys = [(row["split"], int(row["row"])) for row in rows]
    assert len(keys) == len(set(keys)), "a row is labelled twice"
    assert set(keys) == set(offensive), "the relabel and TweetEval's offensive rows differ"
    for row, key in zip(rows, keys, strict=True):
        assert row["text_sha1"] == hashlib.sha1(offensive[key].encode("utf-8")).hexdigest(), key
    assert Counter(split for split, _ in keys) == {"val": 459, "train": 3941}
