"""Abuse means abuse (issue 25): on 600 real first tweets customers sent to brands' support accounts
(tests/data/twcs_support_labels.csv, labelled by tests/data/ABUSE_DEFINITION.md; the texts are joined from
`../shared/datasets/twcs_sample`), every tweet goes through the whole pipeline with the shipped models, as a
public mention, and the decision is measured, not the abuse head: at most 1 % of the service requests may be
silenced (no reply and not handed to a person). A customer who swears about a real problem still gets help.
"""

from __future__ import annotations

import csv
from pathlib import Path

from channels.base import Author, InboundMessage
from intents import public_data
from tests.parts import missing_part

LABELS = Path(__file__).resolve().parent / "data" / "twcs_support_labels.csv"
#: Issue 25's target: the share of service requests the product may silence.
MAX_SILENCED_SHARE = 0.01


def labelled_tweets() -> list[dict[str, str]]:
    """The labelled rows with their text, joined on tweet_id with the shared twcs sample."""
    source = public_data.datasets_dir() / "twcs_sample" / "twcs_sample.csv"
    if not source.exists():
        missing_part("datasets", f"the Customer Support on Twitter sample is not at {source}")
    with source.open(encoding="utf-8", newline="") as handle:
        tweets = {row["tweet_id"]: row for row in csv.DictReader(handle)}
    with LABELS.open(encoding="utf-8", newline="") as handle:
        return [{**tweets[row["tweet_id"]], **row} for row in csv.DictReader(handle)]


def test_no_more_than_one_percent_of_real_service_requests_are_silenced(runtime):
    from bot.pipeline.inbound import handle_inbound

    rows = labelled_tweets()
    assert len(rows) == 600
    silenced: list[str] = []
    flagged_but_helped = 0
    for row in rows:
        result = handle_inbound(
            runtime,
            InboundMessage(
                channel="twitter",
                external_id=row["tweet_id"],
                thread_id=f"tweet-{row['tweet_id']}",
                author=Author(external_id=row["author_id"]),
                text=row["text"],
                public=True,
            ),
        )
        if row["service_request"] != "yes":
            continue
        helped = bool(result.replies) or result.state == "human"  # answered, or a person has it
        if not helped:
            silenced.append(f"{row['tweet_id']}: {result.action} ({result.reason}) {row['text'][:80]!r}")
        elif "abusive" in (result.reason or ""):
            flagged_but_helped += 1
    requests = sum(row["service_request"] == "yes" for row in rows)
    assert requests == 464
    print(
        f"\nservice requests silenced: {len(silenced)} of {requests} ({len(silenced) / requests:.1%}); "
        f"flagged abusive but answered or escalated: {flagged_but_helped}"
    )
    assert len(silenced) <= MAX_SILENCED_SHARE * requests, "\n".join(silenced)
