"""A real, throw-away IMAP server for tests: Debian's Dovecot with its own configuration in a temporary
folder, listening on free loopback ports (plain IMAP, and IMAP over TLS with a self-signed certificate the
tests trust), one mailbox per user name (a static passdb), mail kept in Maildir folders under that folder.

Dovecot drops privileges itself but needs to start as the user it runs as: when the tests run as root (CI) it
is started as `nobody` through `runuser`, like tests/pg.py does for PostgreSQL. When the binary is missing,
`DovecotUnavailable` says so (the fixture skips with that reason, or fails when `SOCIALBOT_REQUIRE` names
dovecot).
"""

from __future__ import annotations

import datetime
import grp
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["DOVECOT", "DovecotServer", "DovecotUnavailable", "self_signed_certificate"]

DOVECOT = Path("/usr/sbin/dovecot")

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
{extra}
"""


class DovecotUnavailable(Exception):
    """Dovecot is not installed here, or would not start; the message says which."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_as() -> tuple[str, str] | None:
    """The (user, group) to run Dovecot as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        raise DovecotUnavailable(
            "running as root and there is no `nobody` account to run Dovecot as"
        ) from None
    return user.pw_name, grp.getgrgid(user.pw_gid).gr_name


def self_signed_certificate(folder: Path, host: str = "127.0.0.1") -> Path:
    """Write `cert.pem` and `key.pem` for `host` into `folder`; return the certificate's path (a client's
    `ssl.create_default_context(cafile=...)` then trusts it)."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder / "cert.pem"


@dataclass
class DovecotServer:
    """One Dovecot instance: `start()`, `deliver()`, `stop()`; `restart()` drops every connection. Any user
    name (an address, usually) logs in with `password` and has its own mailbox."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="socialbot-dovecot-")))
    port: int = field(default_factory=_free_port)
    tls_port: int = field(default_factory=_free_port)
    run_as: tuple[str, str] | None = field(default_factory=_run_as)
    #: The password of every mailbox (a static passdb: any user name logs in with it and gets a mailbox).
    password: str = field(default_factory=lambda: f"pw-{uuid.uuid4().hex}")
    #: More configuration lines (e.g. `imap_capability = ...` to play a server without IDLE).
    extra_config: str = ""

    def __post_init__(self) -> None:
        if not DOVECOT.exists():
            raise DovecotUnavailable(f"{DOVECOT} not found; install Debian's `dovecot-imapd` package")

    @property
    def certificate(self) -> Path:
        return self.root / "cert.pem"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate (and checks the host name)."""
        return ssl.create_default_context(cafile=str(self.certificate))

    def _chown_tree(self) -> None:
        if self.run_as is None:
            return
        uid, gid = pwd.getpwnam(self.run_as[0]).pw_uid, grp.getgrnam(self.run_as[1]).gr_gid
        for folder, _folders, files in os.walk(self.root):
            os.chown(folder, uid, gid)
            for name in files:
                os.chown(os.path.join(folder, name), uid, gid)

    def start(self) -> None:
        """Write the configuration and start Dovecot; wait until it accepts IMAP connections.

        Raises:
            DovecotUnavailable: it would not start; the message holds its log.
        """
        if not self.certificate.exists():
            self_signed_certificate(self.root)
        user, group = self.run_as or (pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name)
        (self.root / "dovecot.conf").write_text(
            _CONFIG.format(
                root=self.root,
                user=user,
                group=group,
                port=self.port,
                tls_port=self.tls_port,
                password=self.password,
                extra=self.extra_config,
            )
        )
        self._chown_tree()
        command = [str(DOVECOT), "-c", str(self.root / "dovecot.conf")]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as[0], "--", *command]
        # Dovecot forks into the background; its output goes to a file so no pipe stays open behind it.
        with open(self.root / "start.log", "w+") as output:
            result = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, timeout=30)
            output.seek(0)
            said = output.read().strip()
        if result.returncode != 0:
            raise DovecotUnavailable(f"dovecot did not start: {said}")
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DovecotUnavailable(f"dovecot did not answer on port {self.port}: {self.log()[-2000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _master_pid(self) -> int | None:
        path = self.root / "run" / "master.pid"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Stop Dovecot (its master process and children); connections drop. Waits until the port is free."""
        pid = self._master_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def restart(self) -> None:
        """Stop and start again on the same ports with the same mail (clients see their connection drop)."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def client(self, user: str):
        """A logged-in imapclient connection over plain IMAP (for the test's own looking and delivering)."""
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(user, self.password)
        return client

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX", flags: tuple[bytes, ...] = ()) -> None:
        """Put a mail into `user`'s `folder` (IMAP APPEND, as a delivery agent would)."""
        client = self.client(user)
        try:
            client.append(folder, raw, flags=flags)
        finally:
            client.logout()
