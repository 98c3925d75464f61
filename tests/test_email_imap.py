"""IMAP intake against a real Dovecot on loopback: new mails are handed on once each and in order, a mail
delivered while the poller waits arrives at once (IDLE), or within the poll interval on a server without IDLE;
a restart resumes from the stored position and repeats nothing; a failed hand-over is offered again; a dropped
connection is re-made; processed mails are flagged or moved; TLS checks the server's certificate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from channels.base import ChannelError
from channels.email import ImapAccount, ImapPoller, ImapSecurity, MailboxPosition
from channels.email._imap import PROCESSED_KEYWORD
from tests.parts import missing_part

WAIT_SECONDS = 15


class MemoryPositions:
    """A position store in memory that counts its saves."""

    def __init__(self) -> None:
        self.positions: dict[str, MailboxPosition] = {}
        self.saves = 0

    def load(self, mailbox: str) -> MailboxPosition | None:
        return self.positions.get(mailbox)

    def save(self, mailbox: str, position: MailboxPosition) -> None:
        self.positions[mailbox] = position
        self.saves += 1


class Collector:
    """A mail handler that keeps the subjects it was given; `fail_on` makes it raise for one subject once."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.subjects: list[str] = []
        self.fallback_ids: list[str] = []
        self.fail_on = fail_on
        self.changed = threading.Condition()

    def __call__(self, raw: bytes, fallback_id: str) -> None:
        subject = next(
            line.split(": ", 1)[1] for line in raw.decode().split("\r\n") if line.startswith("Subject: ")
        )
        if subject == self.fail_on:
            self.fail_on = None
            raise RuntimeError("database unavailable")
        with self.changed:
            self.subjects.append(subject)
            self.fallback_ids.append(fallback_id)
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[str]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.subjects) >= count, timeout), self.subjects
            return list(self.subjects)


def raw_mail(subject: str, sender: str = "jane@customer.example") -> bytes:
    return (
        f"From: Jane <{sender}>\r\nTo: help@fernhill.example\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@customer.example>\r\n\r\nAbout {subject}.\r\n"
    ).encode()


def account_for(server, user: str, **extra) -> ImapAccount:
    return ImapAccount(
        host="127.0.0.1",
        port=server.port,
        username=user,
        password=server.password,
        security=ImapSecurity.NONE,
        timeout=10,
        **extra,
    )


@pytest.fixture
def run_poller() -> Iterator[Callable[..., ImapPoller]]:
    started: list[ImapPoller] = []

    def run(account: ImapAccount, handle, positions, **options) -> ImapPoller:
        poller = ImapPoller(account, handle=handle, positions=positions, **options)
        poller.start()
        started.append(poller)
        return poller

    yield run
    for poller in started:
        poller.stop()


def flags_of(server, user: str, folder: str = "INBOX") -> dict[str, tuple[bytes, ...]]:
    client = server.client(user)
    try:
        client.select_folder(folder, readonly=True)
        fetched = client.fetch(client.search(["ALL"]), [b"FLAGS", b"BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    finally:
        client.logout()
    return {
        data[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(": ", 1)[1].strip(): data[b"FLAGS"]
        for data in fetched.values()
    }


def test_new_mails_are_handed_on_once_in_order_and_a_mail_in_idle_arrives_at_once(mailbox, run_poller):
    server, user = mailbox
    server.deliver(user, raw_mail("already read"), flags=(b"\\Seen",))
    server.deliver(user, raw_mail("unread before start"))
    collector, positions = Collector(), MemoryPositions()
    account = account_for(server, user)
    run_poller(account, collector, positions, poll_interval_seconds=300)
    # First contact: what people already read is theirs; the unread mail is ours.
    assert collector.wait_for(1) == ["unread before start"]
    for subject in ("first", "second", "third"):
        server.deliver(user, raw_mail(subject))
    started = time.monotonic()
    assert collector.wait_for(4) == ["unread before start", "first", "second", "third"]
    assert time.monotonic() - started < 5  # pushed by IDLE, not the 300 s poll
    time.sleep(0.5)
    assert len(collector.subjects) == 4
    flags = flags_of(server, user)
    assert PROCESSED_KEYWORD not in flags["already read"]
    assert all(PROCESSED_KEYWORD in flags[s] for s in ("unread before start", "first", "second", "third"))
    assert b"\\Seen" not in flags["first"]  # staff still see it as unread in their mail client
    position = positions.positions[account.mailbox]
    assert position.last_uid == 5 and collector.fallback_ids[-1] == f"imap:{position.uidvalidity}:5"


def test_a_restart_resumes_from_the_stored_position_and_repeats_nothing(mailbox, run_poller):
    server, user = mailbox
    positions = MemoryPositions()
    account = account_for(server, user)
    first = Collector()
    poller = run_poller(account, first, positions)
    for subject in ("one", "two"):
        server.deliver(user, raw_mail(subject))
    first.wait_for(2)
    poller.stop()
    for subject in ("three", "four"):
        server.deliver(user, raw_mail(subject))  # arrive while no poller runs
    # A fresh poller (a restarted worker) with the same store picks up exactly where the first stopped.
    second = Collector()
    run_poller(account, second, positions)
    assert second.wait_for(2) == ["three", "four"]
    time.sleep(0.5)
    assert second.subjects == ["three", "four"] and first.subjects == ["one", "two"]


def test_a_failed_hand_over_is_offered_again_and_later_mails_wait_for_it(mailbox, run_poller):
    server, user = mailbox
    collector, positions = Collector(fail_on="two"), MemoryPositions()
    run_poller(account_for(server, user), collector, positions)
    for subject in ("one", "two", "three"):
        server.deliver(user, raw_mail(subject))
    assert collector.wait_for(3) == ["one", "two", "three"]


def test_a_dropped_connection_is_made_again(mailbox, run_poller):
    server, user = mailbox
    collector = Collector()
    run_poller(account_for(server, user), collector, MemoryPositions(), poll_interval_seconds=1)
    server.deliver(user, raw_mail("before"))
    collector.wait_for(1)
    server.restart()  # every connection drops, the poller's IDLE too
    server.deliver(user, raw_mail("after"))
    assert collector.wait_for(2, timeout=30) == ["before", "after"]


def test_processed_mails_are_moved_to_a_folder_when_one_is_set(mailbox, run_poller):
    server, user = mailbox
    collector = Collector()
    run_poller(account_for(server, user, processed_folder="Socialbot-done"), collector, MemoryPositions())
    server.deliver(user, raw_mail("move me"))
    collector.wait_for(1)
    deadline = time.monotonic() + WAIT_SECONDS
    while flags_of(server, user) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert flags_of(server, user) == {}
    assert PROCESSED_KEYWORD in flags_of(server, user, "Socialbot-done")["move me"]


def test_a_changed_uidvalidity_reads_every_unprocessed_mail(mailbox, run_poller):
    server, user = mailbox
    server.deliver(user, raw_mail("done before"), flags=(PROCESSED_KEYWORD,))
    server.deliver(user, raw_mail("read by staff"), flags=(b"\\Seen",))
    positions = MemoryPositions()
    account = account_for(server, user)
    positions.save(account.mailbox, MailboxPosition(uidvalidity=1, last_uid=99))  # from a former folder
    collector = Collector()
    run_poller(account, collector, positions)
    assert collector.wait_for(1) == ["read by staff"]
    time.sleep(0.5)
    assert collector.subjects == ["read by staff"]
    assert positions.positions[account.mailbox].uidvalidity != 1


def test_a_server_without_idle_is_polled(run_poller):
    from tests.dovecot import DovecotServer, DovecotUnavailable

    try:
        server = DovecotServer(extra_config="imap_capability = IMAP4rev1 LITERAL+ UIDPLUS MOVE")
    except DovecotUnavailable as error:
        missing_part("dovecot", str(error))
    try:
        server.start()
        client = server.client("help@fernhill.example")
        assert not client.has_capability("IDLE")
        client.logout()
        collector = Collector()
        run_poller(
            account_for(server, "help@fernhill.example"),
            collector,
            MemoryPositions(),
            poll_interval_seconds=0.3,
        )
        server.deliver("help@fernhill.example", raw_mail("polled"))
        assert collector.wait_for(1) == ["polled"]
    finally:
        server.cleanup()


def test_tls_checks_the_servers_certificate_and_the_login_is_checked(mailbox):
    server, user = mailbox
    plain = account_for(server, user, ssl_context=server.ssl_context())
    over_tls = replace(plain, port=server.tls_port, security=ImapSecurity.TLS)
    assert "INBOX: 0 mails" in over_tls.check()
    assert "INBOX: 0 mails" in replace(plain, security=ImapSecurity.STARTTLS).check()
    with pytest.raises(ChannelError, match="CERTIFICATE_VERIFY_FAILED"):
        replace(over_tls, ssl_context=None).check()  # the system's CAs don't know the test certificate
    with pytest.raises(ChannelError, match="IMAP 127.0.0.1"):
        replace(plain, password="wrong").check()
