"""The weekly digest e-mail: a scripted week with known answers goes out through a real SMTP server (aiosmtpd)
as plain text plus HTML with the charts as inline PNG images; its numbers are the dashboard's; it is sent
once a week however many schedulers run, retried after a refused send; its setting is checked at start-up;
`socialbot insights digest --preview/--send`; and the preview looks right in a browser, also on a phone."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import (
    AuditEvent,
    Contact,
    Conversation,
    DigestRun,
    Idea,
    LadderChange,
    Message,
    Outbox,
    Staff,
)
from bot.crm.vectors import store_vector
from bot.insights.dashboard import dashboard_data
from bot.insights.digest import (
    RECLAIM_AFTER,
    build_digest,
    digest_html,
    send_due_digest,
    week_key,
)
from bot.worker.connectors import smtp_sender
from tests.fakes.smtp import LocalSMTP

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
#: The digest is made on Monday 30 November 2026 at 09:00 UTC: its 7 days are 24 to 30 November.
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
RECIPIENTS = ["mia@fernhill.example", "marketing@fernhill.example"]

#: The week's messages in: (days before NOW, hour, channel, contact, intent, sentiment, text, article).
WEEK = [
    (6, 10, "webchat", "Ana", "question", "neutral", "how much is delivery to Leeds?", "delivery-times"),
    (6, 11, "email", "Ben", "complaint", "negative", "my parcel is late again", "delivery-times"),
    (5, 9, "webchat", "Ana", "praise", "positive", "love the new boots", None),
    (4, 14, "telegram", "Cem", "complaint", "negative", "the zip broke on my jacket", None),
    (4, 15, "telegram", "Cem", "complaint", "negative", "zip stuck again, useless", None),
    (3, 8, "email", "Dee", "recommendation", "neutral", "please sell the jacket in green", None),
    (
        2,
        16,
        "webchat",
        "Eli",
        "complaint",
        "negative",
        "parcel still not here after two weeks",
        "delivery-times",
    ),
    (1, 12, "email", "Ben", "praise", "positive", "thanks, it arrived", None),
    (0, 8, "webchat", "Dee", "recommendation", "positive", "a green jacket would be great <b>bold</b>", None),
    (0, 8, "telegram", "Eli", "question", "neutral", "do you ship to Norway?", None),
    # Nine days before: outside the digest.
    (9, 10, "webchat", "Ana", "complaint", "negative", "an old complaint", "delivery-times"),
]
#: What the digest must say for WEEK, worked out by hand.
KNOWN = {
    "volume": {"webchat": 4, "email": 3, "telegram": 3},
    "sentiment": {"negative": 4, "neutral": 3, "positive": 3},
    # grouped by meaning: the two late parcels (named after their article), the two broken zips (by words)
    "topics": {"delivery-times": 2, "zip": 2},
    "moves": {("tire-kicker", "owner"): 2, ("owner", "detractor"): 2},
    "handled": {"bot": 6, "staff": 1},
    "ideas": [("sell the jacket in green", 3), ("zip repairs for $5 ^_^ not $50", 1)],
}


def script_week(engine, now: datetime = NOW, encoder=None) -> None:
    """WEEK as of `now` (each message `hour` minutes past the hour before `now`, `days` earlier), its
    conversations (Ben's e-mail one escalated 2 s after it opened, Mia answering 30 minutes after it
    opened), four ladder moves in the week (and two that don't count), and two ideas. With `encoder`, each
    message's vector is kept as the pipeline keeps it (complaint topics group them)."""
    with session_scope(engine) as session:
        contacts = {}
        for name in ("Ana", "Ben", "Cem", "Dee", "Eli"):
            contacts[name] = Contact(display_name=name)
            session.add(contacts[name])
        session.flush()
        conversations: dict[tuple[str, str, bool], Conversation] = {}
        messages = []
        for i, (days, hour, channel, name, intent, sentiment, text, article) in enumerate(WEEK):
            at = now - timedelta(days=days, hours=1) + timedelta(minutes=hour)
            key = (name, channel, days > 7)
            if key not in conversations:
                conversation = Conversation(
                    contact_id=contacts[name].id,
                    channel=channel,
                    thread_id=f"t{i}",
                    opened_at=at,
                    last_message_at=at,
                    first_response_at=at + timedelta(seconds=2),
                )
                if (name, channel) == ("Ben", "email"):
                    conversation.escalated_at = at + timedelta(seconds=2)
                    conversation.first_response_at = at + timedelta(minutes=30)
                    conversation.state = "human"
                session.add(conversation)
                session.flush()
                conversations[key] = conversation
            message = Message(
                conversation_id=conversations[key].id,
                contact_id=contacts[name].id,
                channel=channel,
                external_id=f"m{i}",
                direction="in",
                author_kind="customer",
                text=text,
                created_at=at,
                intent=intent,
                sentiment=sentiment,
                kb_article_id=article,
                action="answer" if article else "acknowledge",
            )
            session.add(message)
            messages.append(message)
        session.flush()
        if encoder is not None:
            for message, vector in zip(messages, encoder.encode([m.text for m in messages]), strict=True):
                store_vector(session, message.id, vector, encoder=encoder.name)
        ben = conversations[("Ben", "email", False)]
        mia = Staff(email="mia@fernhill.example", name="Mia", role="agent")
        session.add(mia)
        session.flush()
        session.add(
            AuditEvent(
                at=ben.escalated_at,
                subject_type="conversation",
                subject_id=ben.id,
                action="conversation.escalated",
                actor_kind="bot",
                details={"from": "bot", "to": "human"},
            )
        )
        answer_at = ben.opened_at + timedelta(minutes=30)
        answer = Message(
            conversation_id=ben.id,
            contact_id=ben.contact_id,
            channel="email",
            direction="out",
            author_kind="staff",
            staff_id=mia.id,
            text="Sorry, it is on its way",
            created_at=answer_at,
            status="sent",
        )
        session.add(answer)
        session.flush()
        session.add(
            Outbox(
                idempotency_key=f"out-{answer.id}",
                message_id=answer.id,
                channel="email",
                thread_id=ben.thread_id,
                text=answer.text,
                status="sent",
                sent_at=answer_at,
                created_at=answer_at,
            )
        )
        week_ago = now - timedelta(days=3)
        for name, before, after, why in (
            ("Ana", "tire-kicker", "owner", "asked about an order of hers"),
            ("Dee", "tire-kicker", "owner", "third order question this year"),
            ("Ben", "owner", "detractor", "complained twice in a week"),
            ("Cem", "owner", "detractor", "warned a friend off in a public thread"),
        ):
            session.add(
                LadderChange(
                    contact_id=contacts[name].id,
                    from_stage=before,
                    to_stage=after,
                    reason=why,
                    changed_at=week_ago,
                )
            )
        session.add(  # a first placement is no move; a move 10 days ago is not this week's
            LadderChange(
                contact_id=contacts["Eli"].id, to_stage="tire-kicker", reason="new", changed_at=week_ago
            )
        )
        session.add(
            LadderChange(
                contact_id=contacts["Ana"].id,
                from_stage="owner",
                to_stage="loyal",
                reason="old",
                changed_at=now - timedelta(days=10),
            )
        )
        for message, name, text, votes, status in (
            (messages[5], "Dee", "sell the jacket in green", 3, "new"),
            (messages[4], "Cem", "zip repairs for $5 ^_^ not $50", 1, "planned"),
        ):
            session.add(
                Idea(
                    message_id=message.id,
                    contact_id=contacts[name].id,
                    text=text,
                    votes=votes,
                    status=status,
                    created_at=week_ago,
                )
            )


def digest_settings(make_settings, smtp: LocalSMTP, **insights):
    return make_settings(
        email={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_security": "none",
            "from_address": "insights@fernhill.example",
        },
        insights={"digest_recipients": RECIPIENTS, **insights},
    )


class Tables(HTMLParser):
    """The digest HTML's figure tables, by section: [[cell, ...], ...] without the header row."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self._section: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table" and "data-section" in attributes:
            self._section = attributes["data-section"]
            self.tables[self._section] = []
        elif tag == "tr" and self._section:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(attributes)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self.tables[self._section].append(self._row)
            self._row = None
        elif tag == "table":
            self._section = None


def read_tables(html: str) -> Tables:
    parser = Tables()
    parser.feed(html)
    return parser


def assert_png(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def test_the_digest_reaches_a_real_smtp_server_with_charts_and_the_dashboards_numbers(
    db_engine, make_settings, encoder
):
    script_week(db_engine, encoder=encoder)
    dashboard = dashboard_data(db_engine, days=7, now=NOW, encoder=encoder.name)
    with LocalSMTP() as smtp:
        settings = digest_settings(make_settings, smtp)
        assert (
            send_due_digest(db_engine, settings, sender=smtp_sender(settings), now=NOW, encoder=encoder.name)
            == "2026-W49"
        )
        assert len(smtp.mails) == 1
        mail, (envelope_from, envelope_to) = smtp.mails[0], smtp.envelopes[0]
    assert envelope_from == "insights@fernhill.example" and envelope_to == RECIPIENTS
    assert mail["Subject"] == "Fernhill Outdoor: your week in social, 24 Nov - 30 Nov 2026"
    assert mail["From"].addresses[0].addr_spec == "insights@fernhill.example"

    # multipart/alternative: the plain text, then multipart/related holding the HTML and its five charts.
    assert mail.get_content_type() == "multipart/alternative"
    plain, related = mail.get_payload()
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.get_payload()
    assert html_part.get_content_type() == "text/html"
    assert [image.get_content_type() for image in images] == ["image/png"] * 5
    html = html_part.get_content()
    tables = read_tables(html)
    cids = {image["Content-ID"].strip("<>") for image in images}
    assert {img["src"].removeprefix("cid:") for img in tables.images} == cids and len(cids) == 5
    for image in images:
        assert image.get_content_disposition() == "inline"
        width, height = assert_png(image.get_content())
        assert width >= 880 and height >= 250  # drawn for a 640-px column at about 1.4x (sharp on phones)
    assert all(img["alt"] for img in tables.images)

    # The numbers: the dashboard's, and the ones worked out by hand for the scripted week.
    volume = {k: sum(v) for k, v in dashboard["volume_by_channel"].items()}
    sentiment = {k: sum(v) for k, v in dashboard["sentiment"].items()}
    assert volume == KNOWN["volume"] and sentiment == KNOWN["sentiment"]
    assert {channel: int(n) for channel, n in tables.tables["volumes"]} == volume
    assert {name: int(n) for name, n, _share in tables.tables["sentiment"]} == sentiment
    assert [share for *_, share in tables.tables["sentiment"]] == ["40%", "30%", "30%"]
    topics = {
        t["article_id"] or t["words"][0]: t["complaints"] for t in dashboard["complaint_topics"]["topics"]
    }
    assert topics == KNOWN["topics"]
    assert {label: int(n) for label, n in tables.tables["topics"]} == {
        t["label"]: t["complaints"] for t in dashboard["complaint_topics"]["topics"]
    }
    moves = [(m["contact"], f"{m['from']} → {m['to']}", m["reason"]) for m in dashboard["ladder_moves"]]
    assert [tuple(row) for row in tables.tables["ladder"]] == moves and len(moves) == 4
    pairs: dict[tuple[str, str], int] = {}
    for m in dashboard["ladder_moves"]:
        pairs[(m["from"], m["to"])] = pairs.get((m["from"], m["to"]), 0) + 1
    assert pairs == KNOWN["moves"]
    assert [(text, int(votes)) for text, votes, _ in tables.tables["ideas"]] == KNOWN["ideas"]
    assert dashboard["handled"] == KNOWN["handled"]
    # first response by a person: Mia, 30 minutes after Ben's conversation opened; his one handover waited
    # 30 min less 2 s, within the 1-hour target
    assert dashboard["response_times"]["overall"]["first_human_response"]["median"] == 1800.0
    figures = re.findall(r'class="figure">([^<]+)<', html)
    assert figures == ["10", "4", "30.0 min", "0 of 1", "6", "1"]
    assert "waits for a person over the 1 h target" in html
    assert [tuple(row) for row in tables.tables["times"]] == [
        ("email", "-", "30.0 min", "30.0 min", "-", "0 of 1"),
    ]  # no bot reply was sent and nothing resolved; the other channels have no timed event
    assert {k: sum(v) for k, v in dashboard["volume_by_intent"].items()}["complaint"] == 4

    text = plain.get_content().replace("\r\n", "\n")
    assert "messages in: 10\n  complaints: 4\n" in text and "conversations escalated to staff: 1" in text
    for channel, n in KNOWN["volume"].items():
        assert f"  {channel} | {n}\n" in text
    zip_label = next(t["label"] for t in dashboard["complaint_topics"]["topics"] if not t["article_id"])
    assert (
        f"  {zip_label} | 2\n" in text
        and "  delivery-times | 2\n" in text
        and "  Ben | owner → detractor | complained twice in a week\n" in text
    )
    assert "  sell the jacket in green | 3 | new\n" in text
    assert (
        "http://127.0.0.1:8000/console/insights?days=7" in text
        and 'href="http://127.0.0.1:8000/console' in html
    )
    assert "an old complaint" not in text and "<b>" not in html.replace("<body", "")  # customer text escaped

    with Session(db_engine) as session:
        run = session.get(DigestRun, "2026-W49")
        audit = session.exec(select(AuditEvent).where(AuditEvent.action == "digest.sent")).one()
    assert run.sent_at is not None and run.recipients == 2 and run.attempts == 1 and run.error is None
    assert (audit.actor_kind, audit.details["recipients"]) == ("system", 2)
    assert audit.details["days"][0] == "2026-11-24" and audit.details["days"][-1] == "2026-11-30"


def test_the_digest_goes_out_once_a_week_from_its_day_and_hour(db_engine, make_settings):
    with LocalSMTP() as smtp:
        settings = digest_settings(make_settings, smtp, digest_weekday="monday", digest_hour=9)
        sender = smtp_sender(settings)
        assert send_due_digest(db_engine, settings, sender=sender, now=NOW - timedelta(minutes=1)) is None
        assert send_due_digest(db_engine, settings, sender=sender, now=NOW) == "2026-W49"
        for later in (timedelta(minutes=15), timedelta(days=2), timedelta(days=6, hours=14)):
            assert send_due_digest(db_engine, settings, sender=sender, now=NOW + later) is None
        assert send_due_digest(db_engine, settings, sender=sender, now=NOW + timedelta(days=7)) == "2026-W50"
        assert len(smtp.mails) == 2
        # A Sunday digest of a week whose Sunday has not come is not due yet.
        sunday = digest_settings(make_settings, smtp, digest_weekday="sunday", digest_hour=0)
        assert send_due_digest(db_engine, sunday, sender=sender, now=NOW + timedelta(days=14)) is None
    assert week_key(NOW) == "2026-W49" and week_key(datetime(2027, 1, 1, tzinfo=UTC)) == "2026-W53"


def test_a_refused_digest_is_sent_again_once_its_claim_is_stale(db_engine, make_settings):
    with LocalSMTP() as smtp:
        settings = digest_settings(make_settings, smtp)
        sender = smtp_sender(settings)
        smtp.refuse_with = "451 4.3.0 try again later"
        assert send_due_digest(db_engine, settings, sender=sender, now=NOW) is None
        with Session(db_engine) as session:
            run = session.get(DigestRun, "2026-W49")
        assert run.sent_at is None and "451" in run.error
        smtp.refuse_with = None
        soon = NOW + RECLAIM_AFTER - timedelta(minutes=1)
        assert send_due_digest(db_engine, settings, sender=sender, now=soon) is None  # the claim still holds
        later = NOW + RECLAIM_AFTER + timedelta(minutes=1)
        assert send_due_digest(db_engine, settings, sender=sender, now=later) == "2026-W49"
        assert send_due_digest(db_engine, settings, sender=sender, now=later + RECLAIM_AFTER * 2) is None
        assert len(smtp.mails) == 1
    with Session(db_engine) as session:
        run = session.get(DigestRun, "2026-W49")
    assert run.sent_at is not None and run.attempts == 2 and run.error is None


def test_the_digest_logs_in_to_the_smtp_server_with_the_mailboxs_login(db_engine, make_settings):
    with LocalSMTP(login=("insights@fernhill.example", "s3cret-mailbox")) as smtp:
        email = {
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_security": "none",
            "username": "insights@fernhill.example",
        }
        wrong = make_settings(email={**email, "password": "nope"}, insights={"digest_recipients": RECIPIENTS})
        assert send_due_digest(db_engine, wrong, sender=smtp_sender(wrong), now=NOW) is None
        settings = make_settings(
            email={**email, "password": "s3cret-mailbox"}, insights={"digest_recipients": RECIPIENTS}
        )
        later = NOW + RECLAIM_AFTER * 2
        assert send_due_digest(db_engine, settings, sender=smtp_sender(settings), now=later) == "2026-W49"
        assert smtp.logins == ["insights@fernhill.example"] and len(smtp.mails) == 1
        assert smtp.envelopes[0][0] == "insights@fernhill.example"  # from the username: no from_address
    with Session(db_engine) as session:
        assert session.get(DigestRun, "2026-W49").attempts == 2


def test_two_workers_schedulers_send_the_weekly_digest_once(make_settings, models):
    from bot.worker.build import build_runtime
    from bot.worker.scheduler import start_scheduler

    today = datetime.now(UTC).strftime("%A").lower()
    with LocalSMTP() as smtp:
        settings = digest_settings(make_settings, smtp, digest_weekday=today, digest_hour=0)
        workers = [build_runtime(settings, models=models) for _ in range(2)]
        schedulers = []
        try:
            schedulers = [start_scheduler(worker) for worker in workers]  # both check at start
            deadline = time.monotonic() + 30
            while not smtp.mails and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(3)  # the other scheduler has checked by now, too
            for scheduler in schedulers:
                scheduler.get_job("weekly_digest").modify(next_run_time=datetime.now(UTC))
            time.sleep(3)
        finally:
            for scheduler in schedulers:
                scheduler.shutdown()
            for worker in workers:
                worker.close()
        assert len(smtp.mails) == 1
    engine = workers[0].engine
    with Session(engine) as session:
        runs = session.exec(select(DigestRun)).all()
        audits = session.exec(select(AuditEvent).where(AuditEvent.action == "digest.sent")).all()
    assert [(r.week, r.attempts, r.sent_at is not None) for r in runs] == [
        (week_key(datetime.now(UTC)), 1, True)
    ]
    assert len(audits) == 1


def test_workers_racing_on_postgresql_send_the_digest_once_with_the_same_numbers(pg_url, make_settings):
    from bot.crm.db import create_db_engine, upgrade_database

    upgrade_database(pg_url)
    engines = [create_db_engine(pg_url) for _ in range(4)]
    try:
        script_week(engines[0])
        with LocalSMTP() as smtp:
            settings = digest_settings(make_settings, smtp)
            barrier = threading.Barrier(len(engines))
            results: list[str | None] = []

            def worker(engine) -> None:
                barrier.wait()
                results.append(send_due_digest(engine, settings, sender=smtp_sender(settings), now=NOW))

            threads = [threading.Thread(target=worker, args=(engine,)) for engine in engines]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert sorted(results, key=str) == ["2026-W49", None, None, None]
            assert len(smtp.mails) == 1
            html = smtp.mails[0].get_payload()[1].get_payload()[0].get_content()
        volumes = {channel: int(n) for channel, n in read_tables(html).tables["volumes"]}
        assert volumes == KNOWN["volume"]
    finally:
        for engine in engines:
            engine.dispose()


def write_config(tmp_path: Path, insights: str, smtp_port: int = 25) -> Path:
    config = tmp_path / "settings.toml"
    config.write_text(
        f'[data]\ndir = "{tmp_path / "data"}"\n'
        f'[email]\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\nsmtp_security = "none"\n'
        'from_address = "insights@fernhill.example"\n'
        f"[insights]\n{insights}\n",
        encoding="utf-8",
    )
    return config


def run_cli(tmp_path: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=180,
    )


def test_a_bad_digest_address_stops_start_up_with_one_line(tmp_path):
    config = write_config(tmp_path, 'digest_recipients = ["mia@fernhill.example", "bob@"]')
    result = run_cli(tmp_path, config, "db", "upgrade")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith(
        "socialbot: setting insights.digest_recipients: 'bob@' is not an e-mail address"
    )
    assert "SOCIALBOT_INSIGHTS__DIGEST_RECIPIENTS" in result.stderr


def test_the_digest_command_previews_and_sends(tmp_path):
    from bot.crm.db import create_db_engine, upgrade_database

    with LocalSMTP() as smtp:
        config = write_config(tmp_path, f"digest_recipients = {RECIPIENTS!r}".replace("'", '"'), smtp.port)
        url = f"sqlite:///{tmp_path / 'data' / 'socialbot.sqlite3'}"
        (tmp_path / "data").mkdir()
        upgrade_database(url)
        engine = create_db_engine(url)
        script_week(engine, now=datetime.now(UTC))
        engine.dispose()

        preview = tmp_path / "digest.html"
        shown = run_cli(tmp_path, config, "insights", "digest", "--preview", str(preview))
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith("wrote the digest of ") and str(preview) in shown.stdout
        html = preview.read_text(encoding="utf-8")
        sources = [img["src"] for img in read_tables(html).images]
        assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
        assert not smtp.mails

        sent = run_cli(tmp_path, config, "insights", "digest", "--send", "--to", "boss@fernhill.example")
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.strip().endswith("to 1 address(es)")
        assert [to for _, to in smtp.envelopes] == [["boss@fernhill.example"]]
        assert run_cli(tmp_path, config, "insights", "digest", "--send").returncode == 0
        assert [to for _, to in smtp.envelopes][-1] == RECIPIENTS

        nothing = run_cli(tmp_path, config, "insights", "digest")
        assert nothing.returncode == 2 and nothing.stderr.strip().count("\n") == 0
        wrong = run_cli(tmp_path, config, "insights", "digest", "--send", "--to", "nobody")
        assert wrong.returncode == 2 and "--to:" in wrong.stderr and "Traceback" not in wrong.stderr
        smtp.stop()
        down = run_cli(tmp_path, config, "insights", "digest", "--send")
        assert down.returncode == 2 and "the digest was not sent: SMTP server 127.0.0.1" in down.stderr


@pytest.mark.browser
def test_the_digest_preview_reads_well_in_a_browser_and_on_a_phone(db_engine, page, encoder):
    script_week(db_engine, encoder=encoder)
    digest = build_digest(
        db_engine,
        brand="Fernhill Outdoor",
        dashboard_url="https://fernhill.example/console",
        now=NOW,
        encoder=encoder.name,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    preview = ARTIFACTS / "digest-preview.html"
    preview.write_text(digest_html(digest), encoding="utf-8")
    for width, height, name in ((760, 1000, "digest"), (390, 844, "digest-390")):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(preview.as_uri())
        page.wait_for_function("() => [...document.images].every((i) => i.complete && i.naturalWidth > 0)")
        assert page.evaluate("() => document.images.length") == 5
        # Nothing sticks out sideways: the charts and tables shrink to the screen.
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        shown = page.evaluate("() => [...document.images].map((i) => i.getBoundingClientRect().width)")
        assert all(0 < w <= min(width, 640) for w in shown)
        assert page.get_by_role("heading", name="Complaint topics").is_visible()
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
