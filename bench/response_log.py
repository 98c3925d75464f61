"""Benchmark: the response log and the CSV and Parquet exports over a SQLite database of 1,000,000 messages.

Fills a fresh SQLite file (migrated to head) with synthetic traffic - contacts, conversations and messages
spread over 90 days across five channels, intents and sentiments, every other message a bot reply - with
plain executemany in large transactions, then times the first page and a deep page of the log with and without
filters, a text search, the query plans, and streaming exports. Run:

    HF_HUB_OFFLINE=1 python bench/response_log.py [--messages 1000000] [--db /tmp/bench.sqlite] [--keep]

It is a measurement, not a test: it prints a table of timings.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from bot.crm.db import create_db_engine, upgrade_database
from bot.insights.dashboard import dashboard_data
from bot.insights.response_log import (
    CONVERSATION_COLUMNS,
    CONVERSATION_TYPES,
    MESSAGE_COLUMNS,
    MESSAGE_TYPES,
    LogFilters,
    csv_lines,
    iter_conversation_records,
    iter_conversation_rows,
    iter_message_records,
    iter_message_rows,
    parquet_chunks,
    response_log,
)

CHANNELS = ("webchat", "slack", "telegram", "twitter", "email")
INTENTS = ("question", "question", "complaint", "praise", "recommendation", "other")
SENTIMENTS = ("negative", "neutral", "neutral", "positive")
WORDS = ("order", "delivery", "late", "refund", "jacket", "zip", "broken", "size", "colour", "courier")


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def fill(path: Path, messages: int, seed: int = 7) -> None:
    """Create and fill the database at `path` with `messages` messages (half inbound, half bot replies)."""
    url = f"sqlite:///{path}"
    upgrade_database(url)
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=90)
    contacts = max(1, messages // 50)
    conversations = max(1, messages // 10)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = _stamp(start)
    db.executemany(
        "INSERT INTO contact (id, display_name, ladder_stage, opted_out, created_at, last_seen_at)"
        " VALUES (?, ?, 'tire-kicker', 0, ?, ?)",
        ((i, f"Customer {i}", now, now) for i in range(1, contacts + 1)),
    )
    span = 90 * 86400
    conv_rows = []
    for i in range(1, conversations + 1):
        opened = start + timedelta(seconds=span * i / conversations)
        conv_rows.append(
            (
                i,
                rng.randint(1, contacts),
                CHANNELS[i % len(CHANNELS)],
                f"t{i}",
                rng.choice(("bot", "bot", "resolved", "human")),
                _stamp(opened),
                _stamp(opened),
                _stamp(opened + timedelta(seconds=rng.randint(1, 600))),
            )
        )
    db.executemany(
        "INSERT INTO conversation (id, contact_id, channel, thread_id, state, priority, opened_at,"
        " last_message_at, first_response_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
        conv_rows,
    )
    conv_by_id = {row[0]: row for row in conv_rows}

    def rows():
        for i in range(1, messages + 1):
            conversation_id = 1 + (i - 1) * conversations // messages
            _, contact_id, channel, *_ = conv_by_id[conversation_id]
            at = _stamp(start + timedelta(seconds=span * i / messages))
            if i % 2:
                text_ = " ".join(rng.choices(WORDS, k=8))
                yield (
                    i,
                    conversation_id,
                    contact_id,
                    channel,
                    f"x{i}",
                    "in",
                    "customer",
                    text_,
                    at,
                    None,
                    "processed",
                    rng.choice(INTENTS),
                    rng.random(),
                    rng.choice(SENTIMENTS),
                    0,
                    "answer",
                    "policy",
                )
            else:
                yield (
                    i,
                    conversation_id,
                    contact_id,
                    channel,
                    f"x{i}",
                    "out",
                    "bot",
                    "Thanks, here it is.",
                    at,
                    i - 1,
                    "sent",
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                )

    db.executemany(
        "INSERT INTO message (id, conversation_id, contact_id, channel, external_id, direction, author_kind,"
        " text, created_at, reply_to_id, status, intent, intent_confidence, sentiment, abusive, action,"
        " reason, public, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'message')",
        rows(),
    )
    db.commit()
    db.execute("ANALYZE")
    db.close()


def timed(label: str, fn, repeat: int = 3) -> float:
    best = float("inf")
    result = None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - began)
    detail = f"{len(result.rows)} rows" if hasattr(result, "rows") else str(result)
    print(f"{label:<62} {best * 1000:9.1f} ms   ({detail})")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/socialbot-bench.sqlite"))
    parser.add_argument("--keep", action="store_true", help="reuse an existing database file")
    parser.add_argument("--full-export", action="store_true", help="also export every message (slow)")
    args = parser.parse_args()
    if not (args.keep and args.db.exists()):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        began = time.perf_counter()
        fill(args.db, args.messages)
        print(f"filled {args.messages:,} messages in {time.perf_counter() - began:.1f} s")
    engine = create_db_engine(f"sqlite:///{args.db}")
    with engine.connect() as connection:
        total = connection.execute(text("SELECT max(id) FROM message")).scalar_one()
    deep = total // 100  # a cursor 99% of the way down the log
    recent = datetime.now(UTC) - timedelta(days=7)
    cases = {
        "no filter": LogFilters(),
        "channel=telegram": LogFilters(channel="telegram"),
        "channel+intent+sentiment": LogFilters(channel="telegram", intent="complaint", sentiment="negative"),
        "last 7 days + intent=complaint": LogFilters(since=recent, intent="complaint"),
        "state=human + author=customer": LogFilters(state="human", author="customer"),
        "text contains 'refund'": LogFilters(text="refund"),
    }
    print(f"\nresponse log over {total:,} messages (best of 3)")
    for name, filters in cases.items():
        timed(f"first page, {name}", lambda f=filters: response_log(engine, f))
        timed(f"deep page (id < {deep:,}), {name}", lambda f=filters: response_log(engine, f, before=deep))
    timed(
        "text contains 'no such phrase' (full scan)",
        lambda: response_log(engine, LogFilters(text="no such phrase")),
        repeat=1,
    )
    print("\ninsights dashboard")
    timed("dashboard figures, last 30 days", lambda: f"{len(dashboard_data(engine, days=30)['days'])} days")
    timed("dashboard figures, last 90 days", lambda: f"{len(dashboard_data(engine, days=90)['days'])} days")
    print("\nexport (streamed, batches of 1000)")

    def export(rows, filters) -> str:
        size = sum(len(chunk) for chunk in csv_lines(["x"], rows(engine, filters)))
        return f"{size / 1e6:.1f} MB"

    timed(
        "messages.csv, channel=telegram, last 7 days",
        lambda: export(iter_message_rows, LogFilters(channel="telegram", since=recent)),
        repeat=1,
    )
    timed(
        "conversations.csv, last 7 days",
        lambda: export(iter_conversation_rows, LogFilters(since=recent)),
        repeat=1,
    )

    def parquet(columns, types, records, filters) -> str:
        size = sum(len(chunk) for chunk in parquet_chunks(columns, types, records(engine, filters)))
        return f"{size / 1e6:.1f} MB"

    timed(
        "messages.parquet, channel=telegram, last 7 days",
        lambda: parquet(
            MESSAGE_COLUMNS, MESSAGE_TYPES, iter_message_records, LogFilters(channel="telegram", since=recent)
        ),
        repeat=1,
    )
    timed(
        "conversations.parquet, last 7 days",
        lambda: parquet(
            CONVERSATION_COLUMNS, CONVERSATION_TYPES, iter_conversation_records, LogFilters(since=recent)
        ),
        repeat=1,
    )
    if args.full_export:
        timed("messages.csv, everything", lambda: export(iter_message_rows, LogFilters()), repeat=1)
        timed(
            "messages.parquet, everything",
            lambda: parquet(MESSAGE_COLUMNS, MESSAGE_TYPES, iter_message_records, LogFilters()),
            repeat=1,
        )


if __name__ == "__main__":
    main()
