"""A real, throw-away PostgreSQL server for tests: `initdb` into a temporary folder, `pg_ctl start` on a free
loopback port (its unix socket in the same folder), one fresh database per test.

`initdb` refuses to run as root, so when the tests run as root (CI) the server runs as the `postgres` user
(Debian's package creates it) or else `nobody`, through `runuser`. When no server binaries are found the tests
that need the server are skipped with the reason, or fail when `SOCIALBOT_REQUIRE` names `postgres` (CI). A
server that is there but will not start is an error, never a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PostgresServer", "PostgresStartError", "PostgresUnavailable", "find_binaries"]

USER = "socialbot"


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries here (a missing part: the tests that need it skip, or fail in CI)."""


class PostgresStartError(RuntimeError):
    """The server binaries are here but initdb or pg_ctl failed: a broken set-up, reported as an error."""


def find_binaries() -> Path:
    """The folder holding `initdb`, `pg_ctl` and `postgres`.

    Raises:
        PostgresUnavailable: none found on PATH nor in /usr/lib/postgresql/*/bin.
    """
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's `postgresql` package"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_user() -> str | None:
    """The unprivileged account to run the server as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise PostgresUnavailable("running as root and neither a `postgres` nor a `nobody` account exists")


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in a temporary folder. `start()`, `database()` per test, `stop()` at the end."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="socialbot-pg-")))
    port: int = field(default_factory=_free_port)
    bin_dir: Path = field(default_factory=find_binaries)
    run_as: str | None = field(default_factory=_server_user)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def start(self) -> None:
        """Create the cluster (first time) and start the server; wait until it accepts connections.

        Raises:
            PostgresStartError: initdb or pg_ctl failed; the message holds their output.
        """
        if self.run_as is not None:
            os.chown(self.root, pwd.getpwnam(self.run_as).pw_uid, -1)
        if not self.data_dir.exists():
            result = self._run(
                "initdb", "-D", str(self.data_dir), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"
            )
            if result.returncode != 0:
                raise PostgresStartError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        result = self._run(
            "pg_ctl",
            "start",
            "-w",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
        )
        if result.returncode != 0:
            log_text = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise PostgresStartError(f"pg_ctl start failed: {result.stderr.strip()} {log_text}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast` disconnects clients and shuts down cleanly; `immediate` is a crash)."""
        self._run("pg_ctl", "stop", "-w", "-D", str(self.data_dir), "-m", mode)

    def restart(self) -> None:
        """Stop the server and start it again on the same port (clients see their connections drop)."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of `database` (psycopg 3 over TCP on the loopback port)."""
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        deadline = time.monotonic() + 10
        while True:
            try:
                with psycopg.connect(
                    f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres", autocommit=True
                ) as connection:
                    connection.execute(f'CREATE DATABASE "{name}"')
                return self.url(name)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
