"""The weekly digest: an e-mail to marketers with the dashboard's last 7 days as charts and figures.

Every number comes from the dashboard's own functions (`dashboard_data` with `days=7`, and the ideas board's
`list_ideas`): the digest draws and words them, it computes nothing of its own. The charts (volumes by
channel, sentiment, complaint topics, ladder moves, top ideas) are drawn on the server as PNG with
matplotlib's Agg renderer and travel inside the mail as inline images (multipart/related, `cid:` links), with
a plain-text alternative holding the same figures, so a mail client that blocks images still reads it all.

`send_due_digest` is what the scheduler calls in every worker: from `[insights] digest_weekday` at
`digest_hour` UTC, the first check of an ISO week claims the week (a `DigestRun` row: the primary key lets
one insert win, on SQLite and PostgreSQL alike) and sends; every other check that week finds the claim and
does nothing. A claim that was not sent (the SMTP server refused, the worker died) is taken again after
`RECLAIM_AFTER`.
"""

from __future__ import annotations

import base64
import email.policy
import io
import logging
import textwrap
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from jinja2 import Environment
from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError

from bot.crm.audit import audit
from bot.crm.db import session_scope
from bot.crm.models import DigestRun, as_utc, utcnow
from bot.insights.dashboard import dashboard_data
from bot.insights.ideas import IdeaView, list_ideas
from bot.runtime.settings import Settings
from channels.base import ChannelError
from channels.email import SmtpSender

__all__ = [
    "DIGEST_DAYS",
    "RECLAIM_AFTER",
    "Chart",
    "Digest",
    "build_digest",
    "compose_digest",
    "dashboard_url",
    "digest_html",
    "digest_text",
    "due_at",
    "send_digest",
    "send_due_digest",
    "week_key",
]

log = logging.getLogger("socialbot.digest")

#: The digest covers the dashboard's "last 7 days": the 7 UTC days up to and including the day it is made.
DIGEST_DAYS = 7
TOP_IDEAS = 5
TOP_TOPICS = 8
#: A claim not sent by then (a refused send, a worker that died while sending) is taken again.
RECLAIM_AFTER = timedelta(minutes=30)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_POLICY = email.policy.default.clone(max_line_length=998)

PALETTE = ("#2f6b4f", "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")
SENTIMENT_COLOURS = {"negative": "#e15759", "neutral": "#bab0ac", "positive": "#59a14f", "unknown": "#dddddd"}
UP, DOWN = "#2f6b4f", "#e15759"


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart of the digest as a PNG, with the words that stand in for it (alt text)."""

    name: str
    png: bytes
    alt: str


@dataclass(frozen=True, slots=True)
class Digest:
    """What one digest says: the dashboard's figures for 7 days, the top ideas, and their charts."""

    brand: str
    made_at: datetime
    figures: dict[str, Any]
    ideas: list[IdeaView]
    dashboard_url: str
    charts: dict[str, Chart] = field(default_factory=dict)

    @property
    def first_day(self) -> date:
        return date.fromisoformat(self.figures["days"][0])

    @property
    def last_day(self) -> date:
        return date.fromisoformat(self.figures["days"][-1])

    @property
    def period(self) -> str:
        """ "27 Nov - 3 Dec 2026"."""
        first, last = self.first_day, self.last_day
        start = f"{first.day} {first:%b}" + ("" if first.year == last.year else f" {first.year}")
        return f"{start} - {last.day} {last:%b %Y}"

    @property
    def subject(self) -> str:
        return f"{self.brand}: your week in social, {self.period}"

    def totals(self, series: str) -> dict[str, int]:
        """The 7-day total of each line of a per-day series of the figures ("volume_by_channel", ...)."""
        return {key: sum(days) for key, days in self.figures[series].items()}

    @property
    def messages_in(self) -> int:
        return sum(self.totals("volume_by_channel").values())

    def ladder_transitions(self) -> list[tuple[str, str, str, int]]:
        """(from, to, direction, contacts) for the ladder moves of the figures, commonest first."""
        counts = Counter((m["from"], m["to"], m["direction"]) for m in self.figures["ladder_moves"])
        return [(a, b, d, n) for (a, b, d), n in counts.most_common()]


def build_digest(
    engine: Engine,
    *,
    brand: str,
    dashboard_url: str,
    now: datetime | None = None,
    charts: bool = True,
    first_response_target: timedelta | None = None,
    encoder: str | None = None,
    article_titles: Mapping[str, str] | None = None,
) -> Digest:
    """The digest as of `now`: the dashboard's figures for its last 7 days and the top of the ideas board
    (`first_response_target`, `encoder` and `article_titles` as `dashboard_data` takes them)."""
    now = now or utcnow()
    figures = dashboard_data(
        engine,
        days=DIGEST_DAYS,
        now=now,
        first_response_target=first_response_target,
        encoder=encoder,
        article_titles=article_titles,
    )
    ideas = list_ideas(engine, limit=TOP_IDEAS)
    digest = Digest(brand=brand, made_at=now, figures=figures, ideas=ideas, dashboard_url=dashboard_url)
    if charts:
        digest.charts.update(render_charts(digest))
    return digest


# --- Charts ---------------------------------------------------------------------------------------------


def _figure(height: float = 2.9):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.6, height), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.tick_params(labelsize=11, colors="#444444")
    return figure, axes


def _literal(text: str) -> str:
    """`text` as matplotlib shows it word for word: a pair of `$` would start mathtext (customers' words
    like "$5 ^_^ $50" would be typeset as a formula, or fail the whole digest)."""
    return text.replace("$", r"\$")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=160, metadata={"Software": None})
    return buffer.getvalue()


def _stacked_days(days: list[str], series: dict[str, list[int]], colours: Callable[[str, int], str]) -> bytes:
    figure, axes = _figure()
    labels = [date.fromisoformat(d).strftime("%a %d") for d in days]
    bottom = [0] * len(days)
    for i, (key, values) in enumerate(series.items()):
        axes.bar(labels, values, bottom=bottom, label=_literal(key), color=colours(key, i), width=0.7)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.set_ylabel("messages", fontsize=11)
    figure.legend(loc="outside upper left", ncols=min(len(series), 6), fontsize=10, frameon=False)
    return _png(figure)


def _bars(labels: list[str], values: list[int], colours: list[str], unit: str) -> bytes:
    figure, axes = _figure(height=max(1.6, 0.45 * len(labels) + 0.8))
    short = [_literal(textwrap.shorten(label, 36, placeholder="...")) for label in labels]
    positions = list(range(len(labels)))[::-1]  # the first label on top
    axes.barh(positions, values, color=colours, height=0.6)
    axes.set_yticks(positions, short)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_xlabel(unit, fontsize=11)
    for position, value in zip(positions, values, strict=True):
        axes.text(value, position, f" {value}", va="center", fontsize=11, color="#444444")
    axes.set_xlim(0, max(values) * 1.08)
    return _png(figure)


def duration(seconds: float | None) -> str:
    """A duration as the dashboard words it: "-" for none, "42.0 s", "12.5 min", "3.2 h"."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def target_text(seconds: float) -> str:
    """A target as set: "1 h", "30 min", "90 s"."""
    if seconds % 3600 == 0:
        return f"{seconds / 3600:.0f} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def render_charts(digest: Digest) -> dict[str, Chart]:
    """The digest's charts as PNG (only those with something to show)."""
    figures = digest.figures
    charts: dict[str, Chart] = {}
    volumes = figures["volume_by_channel"]
    if any(sum(v) for v in volumes.values()):
        totals = ", ".join(f"{k} {n}" for k, n in digest.totals("volume_by_channel").items())
        charts["volumes"] = Chart(
            "volumes",
            _stacked_days(figures["days"], volumes, lambda key, i: PALETTE[i % len(PALETTE)]),
            f"Messages in per day by channel: {totals}",
        )
    sentiment = figures["sentiment"]
    if any(sum(v) for v in sentiment.values()):
        totals = ", ".join(f"{k} {n}" for k, n in digest.totals("sentiment").items())
        charts["sentiment"] = Chart(
            "sentiment",
            _stacked_days(
                figures["days"],
                sentiment,
                lambda key, i: SENTIMENT_COLOURS.get(key, PALETTE[i % len(PALETTE)]),
            ),
            f"Messages in per day by sentiment: {totals}",
        )
    topics = figures["complaint_topics"]["topics"][:TOP_TOPICS]
    if topics:
        charts["topics"] = Chart(
            "topics",
            _bars(
                [t["label"] for t in topics],
                [t["complaints"] for t in topics],
                ["#e15759"] * len(topics),
                "complaints",
            ),
            "Complaint topics: " + ", ".join(f"{t['label']} {t['complaints']}" for t in topics),
        )
    moves = digest.ladder_transitions()
    if moves:
        charts["ladder"] = Chart(
            "ladder",
            _bars(
                [f"{a or 'new'} → {b}" for a, b, _, _ in moves],
                [n for *_, n in moves],
                [UP if d == "up" else DOWN for _, _, d, _ in moves],
                "contacts",
            ),
            "Ladder moves: " + ", ".join(f"{a} to {b} {n}" for a, b, _, n in moves),
        )
    if digest.ideas:
        charts["ideas"] = Chart(
            "ideas",
            _bars(
                [i.text for i in digest.ideas],
                [i.votes for i in digest.ideas],
                ["#4e79a7"] * len(digest.ideas),
                "votes",
            ),
            "Top ideas: " + "; ".join(f"{i.text} ({i.votes})" for i in digest.ideas),
        )
    return charts


# --- The mail ---------------------------------------------------------------------------------------------


def _headline(digest: Digest) -> list[tuple[str, str]]:
    handled = digest.figures["handled"]
    times = digest.figures["response_times"]
    overall = times["overall"]
    return [
        ("messages in", str(digest.messages_in)),
        ("complaints", str(digest.totals("volume_by_intent").get("complaint", 0))),
        ("first response by a person (median)", duration(overall["first_human_response"]["median"])),
        (
            f"waits for a person over the {target_text(times['target_seconds'])} target",
            f"{overall['sla']['breaches']} of {overall['sla']['handovers']}",
        ),
        ("conversations answered by the bot", str(handled.get("bot", 0))),
        ("conversations escalated to staff", str(handled.get("staff", 0))),
    ]


def _sections(digest: Digest) -> list[dict[str, Any]]:
    """The digest's sections, each a title, its chart (if any), the table of its figures and an empty line."""
    figures = digest.figures
    volume = digest.totals("volume_by_channel")
    sentiment = digest.totals("sentiment")
    total = sum(sentiment.values())
    topics = figures["complaint_topics"]["topics"][:TOP_TOPICS]
    return [
        {
            "title": "Messages in, by channel",
            "chart": "volumes",
            "head": ("channel", "messages"),
            "rows": [(k, str(n)) for k, n in sorted(volume.items(), key=lambda kv: -kv[1])],
            "empty": "No messages came in these 7 days.",
        },
        {
            "title": "Sentiment",
            "chart": "sentiment",
            "head": ("sentiment", "messages", "share"),
            "rows": [(k, str(n), f"{n / total:.0%}") for k, n in sentiment.items()] if total else [],
            "empty": "No messages came in these 7 days.",
        },
        {
            "title": "Complaint topics",
            "chart": "topics",
            "head": ("topic", "complaints"),
            "rows": [(t["label"], str(t["complaints"])) for t in topics],
            "empty": "No complaints these 7 days.",
        },
        {
            "title": "Response times by channel (medians)",
            "chart": "times",
            "head": (
                "channel",
                "bot",
                "first by a person",
                "waiting for a person",
                "resolution",
                "SLA breaches",
            ),
            "rows": [
                (
                    channel,
                    duration(t["bot_response"]["median"]),
                    duration(t["first_human_response"]["median"]),
                    duration(t["waiting_for_person"]["median"]),
                    duration(t["resolution"]["median"]),
                    f"{t['sla']['breaches']} of {t['sla']['handovers']}",
                )
                for channel, t in figures["response_times"]["by_channel"].items()
            ],
            "empty": "No conversations these 7 days.",
        },
        {
            "title": "Moves on the advocacy ladder",
            "chart": "ladder",
            "head": ("contact", "move", "why"),
            "rows": [
                (m["contact"], f"{m['from']} → {m['to']}", m["reason"] or "") for m in figures["ladder_moves"]
            ],
            "empty": "Nobody moved on the ladder these 7 days.",
        },
        {
            "title": "Top ideas",
            "chart": "ideas",
            "head": ("idea", "votes", "status"),
            "rows": [(i.text, str(i.votes), i.status) for i in digest.ideas],
            "empty": "No ideas on the board yet.",
        },
    ]


_HTML = Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ digest.subject }}</title></head>
<body style="margin:0;padding:0;background:#f4f5f3;font-family:Arial,Helvetica,sans-serif;color:#1f2328">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f5f3">
<tr><td align="center" style="padding:16px 8px">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"
 style="max-width:680px;background:#ffffff;border:1px solid #d8dcd6;border-radius:6px">
<tr><td style="padding:20px 20px 8px">
<p style="margin:0;font-size:13px;color:#57606a">{{ digest.brand }} &middot; weekly insights</p>
<h1 style="margin:4px 0 0;font-size:22px;line-height:1.3">Your week in social, {{ digest.period }}</h1>
</td></tr>
<tr><td style="padding:8px 14px 4px;font-size:0">
{% for label, value in headline %}<div style="display:inline-block;width:33.3%;min-width:150px;padding:6px;\
vertical-align:top;box-sizing:border-box"><div style="background:#eef4f0;border-radius:6px;padding:10px 8px;\
min-height:62px"><div style="font-size:20px;font-weight:bold;color:#2f6b4f" class="figure">{{ value }}</div>
<div style="font-size:12px;color:#444c56;line-height:1.3">{{ label }}</div></div></div>
{% endfor %}</td></tr>
{% for section in sections %}<tr><td style="padding:16px 20px 4px;border-top:1px solid #eaecea">
<h2 style="margin:0 0 8px;font-size:17px">{{ section.title }}</h2>
{% set chart = digest.charts.get(section.chart) %}{% if chart %}<img src="{{ sources[chart.name] }}"
 alt="{{ chart.alt }}" width="640"
 style="display:block;width:100%;max-width:640px;height:auto;border:0;margin:0 0 8px">
{% endif %}{% if section.rows %}<table cellpadding="0" cellspacing="0" width="100%"
 style="border-collapse:collapse;font-size:13px;margin:0 0 8px" data-section="{{ section.chart }}">
<tr>{% for name in section.head %}<th align="left" style="padding:4px 6px;border-bottom:1px solid #d8dcd6;\
color:#57606a;font-weight:normal">{{ name }}</th>{% endfor %}</tr>
{% for row in section.rows %}<tr>{% for value in row %}<td style="padding:4px 6px;\
border-bottom:1px solid #eaecea;vertical-align:top">{{ value }}</td>{% endfor %}</tr>
{% endfor %}</table>{% else %}<p style="margin:0 0 8px;color:#57606a">{{ section.empty }}</p>{% endif %}
</td></tr>
{% endfor %}<tr><td style="padding:16px 20px 20px;border-top:1px solid #eaecea;font-size:13px;color:#57606a">
<a href="{{ digest.dashboard_url }}" style="color:#2f6b4f">Open the dashboard</a> for the detail.
The last 7 days are UTC days, {{ digest.first_day.isoformat() }} to {{ digest.last_day.isoformat() }}
(the last one up to {{ digest.made_at.strftime("%H:%M") }} UTC).
</td></tr></table>
</td></tr></table>
</body></html>
"""
)


def digest_html(digest: Digest, *, sources: dict[str, str] | None = None) -> str:
    """The digest as HTML. `sources` maps each chart to its `src`; by default a `data:` URI (a preview a
    browser can open on its own); the mail passes `cid:` links."""
    if sources is None:
        sources = {
            name: "data:image/png;base64," + base64.b64encode(chart.png).decode()
            for name, chart in digest.charts.items()
        }
    return _HTML.render(
        digest=digest, headline=_headline(digest), sections=_sections(digest), sources=sources
    )


def digest_text(digest: Digest) -> str:
    """The digest as plain text: the same figures as the HTML, without the charts."""
    lines = [f"{digest.brand}: your week in social, {digest.period}", ""]
    lines += [f"  {label}: {value}" for label, value in _headline(digest)]
    for section in _sections(digest):
        lines += ["", section["title"], "-" * len(section["title"])]
        if not section["rows"]:
            lines.append(section["empty"])
        for row in section["rows"]:
            lines.append("  " + " | ".join(row))
    lines += [
        "",
        f"The dashboard: {digest.dashboard_url}",
        f"The last 7 days are UTC days, {digest.first_day} to {digest.last_day} "
        f"(the last one up to {digest.made_at:%H:%M} UTC).",
    ]
    return "\n".join(lines) + "\n"


def compose_digest(digest: Digest, *, sender: Address, recipients: Sequence[str]) -> EmailMessage:
    """The digest as a mail: multipart/alternative of the plain text and a multipart/related holding the
    HTML and its charts as inline PNG images (`Content-ID`, `cid:` in the HTML)."""
    mail = EmailMessage(policy=_POLICY)
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Subject"] = digest.subject
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = make_msgid("digest", domain=sender.domain or None)
    mail["Auto-Submitted"] = "auto-generated"
    ids = {name: make_msgid(name, domain=sender.domain or None) for name in digest.charts}
    mail.set_content(digest_text(digest))
    mail.add_alternative(
        digest_html(digest, sources={name: "cid:" + cid.strip("<>") for name, cid in ids.items()}),
        subtype="html",
    )
    html = mail.get_payload()[1]
    for name, chart in digest.charts.items():
        html.add_related(
            chart.png,
            maintype="image",
            subtype="png",
            cid=ids[name],
            disposition="inline",
            filename=f"{name}.png",
        )
    return mail


def _sender_address(settings: Settings) -> Address:
    return Address(display_name=settings.brand.name, addr_spec=settings.email.sender_address)


def dashboard_url(settings: Settings) -> str:
    """The dashboard's last 7 days, where the digest links to."""
    return settings.server.public_url.rstrip("/") + f"/console/insights?days={DIGEST_DAYS}"


def send_digest(
    engine: Engine,
    settings: Settings,
    *,
    sender: SmtpSender,
    recipients: Sequence[str] | None = None,
    now: datetime | None = None,
    actor_kind: str = "operator",
    encoder: str | None = None,
    article_titles: Mapping[str, str] | None = None,
) -> Digest:
    """Make the digest as of `now` and send it to `recipients` (default: `[insights] digest_recipients`);
    audited as `digest.sent`.

    Raises:
        ValueError: no recipients.
        channels.base.ChannelError: the SMTP server did not take it.
    """
    recipients = list(recipients if recipients is not None else settings.insights.digest_recipients)
    if not recipients:
        raise ValueError("insights.digest_recipients: no addresses to send the digest to")
    digest = build_digest(
        engine,
        brand=settings.brand.name,
        dashboard_url=dashboard_url(settings),
        now=now,
        first_response_target=settings.support.first_response_target,
        encoder=encoder,
        article_titles=article_titles,
    )
    sender.send(compose_digest(digest, sender=_sender_address(settings), recipients=recipients))
    with session_scope(engine) as session:
        audit(
            session,
            "digest.sent",
            "digest",
            actor_kind=actor_kind,
            details={"recipients": len(recipients), "days": digest.figures["days"]},
        )
    return digest


# --- Once a week, whatever the number of workers ------------------------------------------------------


def week_key(moment: datetime) -> str:
    """The ISO week of `moment` (UTC): "2026-W49"."""
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def due_at(moment: datetime, weekday: str, hour: int) -> datetime:
    """When the digest of `moment`'s ISO week falls due: its `weekday` at `hour`:00 UTC."""
    day = moment.astimezone(UTC).date()
    monday = day - timedelta(days=day.weekday())
    return datetime.combine(monday + timedelta(days=WEEKDAYS.index(weekday)), time(hour), tzinfo=UTC)


def _claim(engine: Engine, week: str, now: datetime) -> bool:
    """Take the week's digest for this worker: insert its row, or retake a stale unsent one."""
    with session_scope(engine, read_only=True) as session:
        run = session.get(DigestRun, week)
    if run is not None and (run.sent_at is not None or as_utc(run.claimed_at) >= now - RECLAIM_AFTER):
        return False  # the usual answer, read without a failed insert in the database's log
    try:
        with session_scope(engine) as session:
            session.add(DigestRun(week=week, claimed_at=now))
        return True
    except IntegrityError:
        pass
    with session_scope(engine) as session:
        retaken = session.execute(
            update(DigestRun)
            .where(
                DigestRun.week == week,
                DigestRun.sent_at.is_(None),
                DigestRun.claimed_at < now - RECLAIM_AFTER,
            )
            .values(claimed_at=now, attempts=DigestRun.attempts + 1)
        )
        return retaken.rowcount == 1


def _finish(engine: Engine, week: str, **values: Any) -> None:
    with session_scope(engine) as session:
        session.execute(update(DigestRun).where(DigestRun.week == week).values(**values))


def send_due_digest(
    engine: Engine,
    settings: Settings,
    *,
    sender: SmtpSender,
    now: datetime | None = None,
    encoder: str | None = None,
    article_titles: Mapping[str, str] | None = None,
) -> str | None:
    """Send this week's digest if it is due and no worker has: returns the week sent, else None.

    A send the SMTP server refuses is logged and kept on the claim's row (`error`); the week is tried again
    after `RECLAIM_AFTER`.
    """
    insights = settings.insights
    now = now or utcnow()
    if not insights.digest_recipients or now < due_at(now, insights.digest_weekday, insights.digest_hour):
        return None
    week = week_key(now)
    if not _claim(engine, week, now):
        return None
    try:
        send_digest(
            engine,
            settings,
            sender=sender,
            now=now,
            actor_kind="system",
            encoder=encoder,
            article_titles=article_titles,
        )
    except ChannelError as error:
        log.warning("weekly digest %s not sent: %s", week, error)
        _finish(engine, week, error=str(error)[:500])
        return None
    except Exception as error:  # a bug: said with its traceback, and the week is tried again later
        log.exception("weekly digest %s not sent", week)
        _finish(engine, week, error=f"{type(error).__name__}: {error}"[:500])
        return None
    _finish(engine, week, sent_at=utcnow(), recipients=len(insights.digest_recipients), error=None)
    log.info("weekly digest %s sent to %d address(es)", week, len(insights.digest_recipients))
    return week
