"""The chaos soak (bench/soak.py) at CI size, marked `soak`: about 1,000 messages on Slack, Telegram, X,
e-mail and web chat (some delivered twice, customers writing several times, follow-ups falling due) through
`serve --workers 3` on PostgreSQL, while the X poller's holder is killed, PostgreSQL restarts and random
workers are SIGKILLed a few seconds after all are ready. A few minutes on 2 quiet cores.

Nothing accepted is lost or left undecided, every queued reply and due follow-up goes out, nothing is sent
twice where the platform can be asked (Slack, X) or where replies are stored (web chat), and /metrics agrees
with the database. Every due follow-up goes out once, those a killed worker had in hand too (no claim of its
outlives it), and one staff replaced by a newer one before it was queued never goes out. Telegram and SMTP
can't be asked whether a send went out: a reply cut off between the platform accepting it and the database
recording it goes out again; the soak counts those."""

from __future__ import annotations

import pytest

from bench.soak import SoakOptions, render, run_soak

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1800)]


def test_a_thousand_messages_survive_killed_workers_a_poller_kill_and_a_database_restart(
    postgres_server, tmp_path
):
    options = SoakOptions(messages=1000, kill_after=(2.0, 4.0), min_kills=3, workdir=tmp_path)
    report = run_soak(options, postgres=postgres_server, say=lambda _line: None)
    render(report)  # the table, in the output of a failing run (or with -s)

    assert report.problems() == [], report.problems()
    for name, row in report.channels.items():
        assert row.accepted >= 150 and row.stored == row.accepted and row.lost == 0, (name, row)
        assert row.decided >= row.accepted and row.replies >= row.decided * 0.5, (name, row)
    assert sum(event["what"] == "worker" for event in report.kills) >= 3
    # Every due follow-up reached its platform once (Telegram / e-mail: or more, counted), including those
    # a killed worker had in hand; one staff replaced before it was queued never went out.
    assert report.followups_due >= 10, report.followups_due
    assert report.followups_sent_once + report.followups_duplicated == report.followups_due, report.notes
    assert report.followup_max_queue_seconds < 60, report.followup_max_queue_seconds
    assert report.readyz["200"] > 0 and report.webchat_latencies
