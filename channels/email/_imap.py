"""IMAP intake with imapclient: new mails of one mailbox folder handed on once each, in arrival order.

- Where the poller stands is a `MailboxPosition` (the folder's UIDVALIDITY and the last UID handed on),
  loaded from and saved to the caller's `MailboxPositionStore` after every mail, so a restart neither loses
  nor repeats one. A mail is handed on, then marked processed (a keyword, or `\\Seen` where the server
  allows no keywords, and moved to `processed_folder` if one is set), then the position moves.
- The first time (no position, or the server changed the folder's UIDVALIDITY) the mails not yet marked
  processed are taken (on first contact only the unread ones: what people have read, they have handled).
- Between rounds the connection waits in IDLE when the server offers it (re-issued every few minutes, as
  RFC 2177 asks), else sleeps `poll_interval_seconds`. A dropped connection or a failed hand-over is retried
  after a backoff with full jitter; the position is only moved for mails that were handed on.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from channels.base import ChannelError

__all__ = [
    "ImapAccount",
    "ImapPoller",
    "ImapSecurity",
    "MailHandler",
    "MailboxPosition",
    "MailboxPositionStore",
]

log = logging.getLogger("socialbot.channels.email.imap")

#: The keyword a processed mail gets (where the server allows keywords).
PROCESSED_KEYWORD = b"$SocialbotProcessed"
#: How long one IDLE lasts before the folder is searched again and IDLE re-issued. IDLE announces a mail only
#: if the server notices it while the client idles, and one can slip between the last look and the IDLE (seen
#: under load in the suite: a mail waited the whole IDLE); this bounds that wait. Five round trips per period
#: for one mailbox cost nothing; servers may drop an IDLE after 30 minutes anyway.
IDLE_SECONDS = 10.0
#: Mails fetched per round at most; the rest wait for the next round (a huge backlog doesn't block stop()).
MAX_MAILS_PER_ROUND = 200
_BACKOFF_BASE_SECONDS, _BACKOFF_CAP_SECONDS = 1.0, 120.0
# What a lost or broken connection raises in imapclient (imaplib's errors are IMAPClientError's bases).
_CONNECTION_ERRORS = (IMAPClientError, OSError, ssl.SSLError, socket.timeout, EOFError)


class ImapSecurity(StrEnum):
    """How the IMAP connection is protected."""

    TLS = "tls"  # TLS from the first byte (port 993)
    STARTTLS = "starttls"  # connect in clear, then STARTTLS (port 143); refused -> no connection
    NONE = "none"  # no TLS: a server on the same host only


@dataclass(frozen=True, slots=True)
class MailboxPosition:
    """How far a mailbox folder has been read: mails with a higher UID under the same UIDVALIDITY are new."""

    uidvalidity: int
    last_uid: int


class MailboxPositionStore(Protocol):
    """Where the caller keeps a folder's `MailboxPosition` across restarts (the bot: a database row)."""

    def load(self, mailbox: str) -> MailboxPosition | None: ...

    def save(self, mailbox: str, position: MailboxPosition) -> None: ...


#: Takes one raw mail and its fallback id ("imap:<uidvalidity>:<uid>", for a mail without `Message-ID`).
#: Returns once the mail is stored, recognised as seen before, or found unreadable (logged: it is never
#: offered again); raises only when storing failed for now (it is offered again after a backoff).
MailHandler = Callable[[bytes, str], None]


@dataclass(frozen=True, slots=True)
class ImapAccount:
    """One mailbox folder to read.

    Args:
        host, port: the IMAP server (993 with TLS, 143 with STARTTLS, usually).
        username, password: the login.
        security: how the connection is protected (`ImapSecurity`).
        folder: the folder new mail arrives in.
        processed_folder: where processed mails are moved (created if missing); None leaves them in place.
        timeout: seconds a connection or command may take.
        ssl_context: certificate checks for TLS; None = the system's trusted CAs and host-name checks.
    """

    host: str
    port: int
    username: str
    password: str
    security: ImapSecurity = ImapSecurity.TLS
    folder: str = "INBOX"
    processed_folder: str | None = None
    timeout: float = 30.0
    ssl_context: ssl.SSLContext | None = None

    @property
    def mailbox(self) -> str:
        """The key its position is stored under."""
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"

    def connect(self) -> IMAPClient:
        """A logged-in connection.

        Raises:
            LoginError: the server refused the login.
            IMAPClientError, OSError: the server can't be reached or refused TLS.
        """
        context = self.ssl_context or ssl.create_default_context()
        client = IMAPClient(
            self.host,
            port=self.port,
            ssl=self.security == ImapSecurity.TLS,
            ssl_context=context,
            timeout=self.timeout,
        )
        try:
            if self.security == ImapSecurity.STARTTLS:
                client.starttls(context)
            client.login(self.username, self.password)
        except BaseException:
            _close(client)
            raise
        return client

    def check(self) -> str:
        """Log in, open the folder, and describe it.

        Raises:
            ChannelError: the server can't be reached, refused TLS or the login, or has no such folder.
        """
        try:
            client = self.connect()
            try:
                status = client.folder_status(self.folder, [b"MESSAGES", b"UIDVALIDITY"])
            finally:
                _close(client)
        except _CONNECTION_ERRORS as error:
            raise ChannelError(f"IMAP {self.host}:{self.port}: {error}") from None
        return f"IMAP {self.host}:{self.port} {self.folder}: {status.get(b'MESSAGES', 0)} mails"


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except _CONNECTION_ERRORS:
        with contextlib.suppress(*_CONNECTION_ERRORS):
            client.shutdown()


class ImapPoller:
    """Reads one folder in its own thread and hands each new mail to `handle`.

    Args:
        account: the mailbox folder.
        handle: stores one mail (see `MailHandler`).
        positions: where the position is kept.
        poll_interval_seconds: the pause between rounds on a server without IDLE.
        idle_seconds: how long one IDLE lasts before it is re-issued.
    """

    def __init__(
        self,
        account: ImapAccount,
        *,
        handle: MailHandler,
        positions: MailboxPositionStore,
        poll_interval_seconds: float = 60.0,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.account = account
        self.handle = handle
        self.positions = positions
        self.poll_interval_seconds = poll_interval_seconds
        self.idle_seconds = idle_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: IMAPClient | None = None
        self._processed_flag = PROCESSED_KEYWORD
        self._uid_next = 0  # the folder's UIDNEXT when the last round began
        self._failures = 0

    # Life cycle

    def start(self) -> None:
        """Start reading in a daemon thread; returns at once."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="imap-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading and log out; waits for the round in progress (one mail at most)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.account.timeout + 10)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    if self._client is None:
                        self._client = self._open()
                    handled = self.poll_once()
                    self._failures = 0
                    if not handled:  # after a round that found mail, look again before waiting
                        self._wait_for_mail()
                except LoginError as error:
                    self._fail(f"login refused: {error}")
                except _CONNECTION_ERRORS as error:
                    self._fail(f"connection lost: {type(error).__name__}: {error}")
                except Exception as error:  # the handler failed (database away): offer the mail again later
                    self._fail(
                        f"handing a mail on failed: {type(error).__name__}: {error}", keep_connection=True
                    )
        finally:
            self._disconnect()

    def _fail(self, why: str, *, keep_connection: bool = False) -> None:
        self._failures += 1
        delay = random.uniform(0, min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**self._failures))
        log.warning("IMAP %s: %s; retrying in %.0f s", self.account.mailbox, why, delay)
        if not keep_connection:
            self._disconnect()
        self._stopping.wait(delay)

    def _open(self) -> IMAPClient:
        client = self.account.connect()
        selected = client.select_folder(self.account.folder)
        permanent = selected.get(b"PERMANENTFLAGS", ())
        self._processed_flag = PROCESSED_KEYWORD if b"\\*" in permanent else b"\\Seen"
        target = self.account.processed_folder
        if target and not client.folder_exists(target):
            client.create_folder(target)
        log.info(
            "IMAP %s: connected (%s)",
            self.account.mailbox,
            "IDLE" if client.has_capability("IDLE") else "polling",
        )
        return client

    def _disconnect(self) -> None:
        if self._client is not None:
            _close(self._client)
            self._client = None

    # One round

    def poll_once(self) -> int:
        """Hand on the folder's new mails, oldest first (at most `MAX_MAILS_PER_ROUND`); return how many."""
        client = self._client
        if client is None:
            self._client = client = self._open()
        status = client.select_folder(self.account.folder)
        if b"UIDNEXT" not in status:
            status = client.folder_status(self.account.folder, [b"UIDVALIDITY", b"UIDNEXT"])
        uidvalidity, uid_next = int(status[b"UIDVALIDITY"]), int(status[b"UIDNEXT"])
        self._uid_next = uid_next
        position = self.positions.load(self.account.mailbox)
        keyword = self._processed_flag == PROCESSED_KEYWORD
        unprocessed = [b"UNKEYWORD", PROCESSED_KEYWORD] if keyword else []
        if position is not None and position.uidvalidity == uidvalidity:
            criteria = [b"UID", f"{position.last_uid + 1}:*".encode(), *unprocessed]
            floor = position.last_uid
        else:
            if position is not None:
                log.warning(
                    "IMAP %s: UIDVALIDITY changed; reading every unprocessed mail", self.account.mailbox
                )
            first_contact = position is None or not keyword
            criteria = [b"UNSEEN", *unprocessed] if first_contact else unprocessed or [b"ALL"]
            floor = 0
        uids = sorted(uid for uid in client.search(criteria) if uid > floor)
        batch = uids[:MAX_MAILS_PER_ROUND]
        for handled, uid in enumerate(batch):
            if self._stopping.is_set():
                return handled
            self._process(client, uidvalidity, uid)
        if len(batch) == len(uids) and (position is None or position.uidvalidity != uidvalidity):
            # Everything below UIDNEXT is read or deliberately left; from now on only higher UIDs are new.
            last = max([uid_next - 1, *batch])
            self.positions.save(self.account.mailbox, MailboxPosition(uidvalidity, last))
        return len(batch)

    def _process(self, client: IMAPClient, uidvalidity: int, uid: int) -> None:
        fetched = client.fetch([uid], [b"BODY.PEEK[]"]).get(uid)
        raw = fetched.get(b"BODY[]") if fetched else None
        if raw is not None:
            self.handle(raw, f"imap:{uidvalidity}:{uid}")
            client.add_flags([uid], [self._processed_flag])
            if self.account.processed_folder:
                client.move([uid], self.account.processed_folder)
        self.positions.save(self.account.mailbox, MailboxPosition(uidvalidity, uid))

    def _wait_for_mail(self) -> None:
        """Until the server announces a mail (IDLE) or the poll interval passes, or `stop()`."""
        client = self._client
        if client is None or not client.has_capability("IDLE"):
            self._stopping.wait(self.poll_interval_seconds)
            return
        # A mail that arrived after the round's search was announced in a response we didn't read; the server
        # won't announce it again in IDLE, so look first.
        status = client.folder_status(self.account.folder, [b"UIDNEXT"])
        if int(status[b"UIDNEXT"]) > self._uid_next:
            return
        client.idle()
        try:
            deadline = time.monotonic() + self.idle_seconds
            while not self._stopping.is_set() and time.monotonic() < deadline:
                responses = client.idle_check(timeout=1.0)
                if any(len(item) > 1 and item[1] in (b"EXISTS", b"RECENT") for item in responses):
                    return
        finally:
            client.idle_done()
