"""The shipped abuse head against issue 25's definition (abuse aimed at people, see
tests/data/ABUSE_DEFINITION.md): recall and precision on the 600 labelled real first tweets to support
accounts (`abuse_at_people`) and on the sample brand's written traffic (`abusive`, dev and test rows apart).

    python scripts/measure_abuse_at_people.py

Evaluation only: none of these rows trains or calibrates the head.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intents import public_data  # noqa: E402
from intents.encoder import load_encoder  # noqa: E402
from intents.understand import Understander  # noqa: E402


def report(name: str, gold: list[bool], flagged: list[bool]) -> None:
    hits = sum(g and f for g, f in zip(gold, flagged, strict=True))
    print(
        f"{name}: {sum(gold)} abusive, {sum(flagged)} flagged; recall {hits}/{sum(gold)}, "
        f"precision {hits}/{sum(flagged)}"
    )


def main() -> None:
    understander, encoder = Understander.load(), load_encoder()

    def flags(texts: list[str]) -> list[bool]:
        return [u.abusive for u in understander.understand_batch(texts, encoder.encode(texts))]

    source = public_data.datasets_dir() / "twcs_sample" / "twcs_sample.csv"
    with source.open(encoding="utf-8", newline="") as handle:
        tweets = {row["tweet_id"]: row["text"] for row in csv.DictReader(handle)}
    with (ROOT / "tests" / "data" / "twcs_support_labels.csv").open(encoding="utf-8", newline="") as handle:
        labelled = list(csv.DictReader(handle))
    report(
        "real support tweets (600)",
        [row["abuse_at_people"] == "yes" for row in labelled],
        flags([tweets[row["tweet_id"]] for row in labelled]),
    )
    with (ROOT / "tests" / "data" / "fernhill_traffic.csv").open(encoding="utf-8", newline="") as handle:
        traffic = list(csv.DictReader(handle))
    for split in ("dev", "test"):
        rows = [row for row in traffic if row["split"] == split]
        report(
            f"sample brand traffic, {split} ({len(rows)})",
            [row["abusive"] == "yes" for row in rows],
            flags([row["text"] for row in rows]),
        )


if __name__ == "__main__":
    main()
